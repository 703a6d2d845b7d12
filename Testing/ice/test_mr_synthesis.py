"""Synthetic MR of freezing tissue: ice is a signal void with partial-volume edges, each probe a
susceptibility void, Rician noise at the stated SNR, breathing shifts; seeded and deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BALL_CENTER_MM, BALL_RADIUS_MM

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io import mr_synthesis as mr


def voxel_centres(image: mr.MRImage) -> np.ndarray:
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in image.array.shape), indexing="ij")
    ijk = np.stack([ii, jj, kk, np.ones_like(ii)], axis=-1).astype(float)
    return (ijk @ image.ijk_to_ras.T)[..., :3]


def test_ice_is_a_signal_void_with_a_partial_volume_edge(ball_case):
    grid, field, _probes = ball_case
    image = mr.render_volume(field, grid, [], spacing_mm=2.0, snr=15.0, seed=1)
    r = np.linalg.norm(voxel_centres(image) - BALL_CENTER_MM, axis=-1)
    sigma = image.info["noise_sigma"]
    rician_floor = sigma * math.sqrt(math.pi / 2.0)  # mean magnitude of pure noise
    inside = image.array[r < BALL_RADIUS_MM - 3.0]
    outside = image.array[(r > BALL_RADIUS_MM + 3.0) & (r < BALL_RADIUS_MM + 6.0)]
    edge = image.array[np.abs(r - BALL_RADIUS_MM) < 0.3]
    assert abs(inside.mean() - rician_floor) < 0.2 * rician_floor  # frozen tissue: noise only
    assert outside.mean() > 8.0 * rician_floor  # unfrozen tissue keeps its signal
    # Voxels centred on the 0 °C surface are about half frozen.
    assert rician_floor < edge.mean() < outside.mean()
    assert 0.25 < edge.mean() / outside.mean() < 0.75


def test_each_probe_is_a_susceptibility_void_along_its_shaft(ball_case):
    grid, _, probes = ball_case
    warm = np.full(grid.size, 37.0)
    tip = np.asarray(probes[0].tip_mm)
    # A 1 mm box around the distal 40 mm of the shaft.
    box = Grid(tuple(tip - np.array([10.0, 50.0, 10.0])), (1.0, 1.0, 1.0), (21, 51, 21))
    image = mr.render_volume(warm, grid, probes, grid=box, snr=1e6, seed=1)  # noise-free
    without = mr.render_volume(warm, grid, [], grid=box, snr=1e6, seed=1)
    centres = voxel_centres(image)
    entry = np.asarray(probes[0].entry_mm)
    axis = (entry - tip) / np.linalg.norm(entry - tip)
    along = (centres - tip) @ axis
    radial = np.linalg.norm(centres - tip - along[..., None] * axis, axis=-1)
    on_shaft = (radial < 1.0) & (along > 5.0)
    away = (radial > 5.0) & (radial < 8.0) & (along > 5.0)
    assert np.all(image.array[on_shaft] < 0.05 * without.array[on_shaft])
    assert np.allclose(image.array[away], without.array[away], rtol=1e-3)


def test_rician_noise_has_the_stated_snr(ball_case):
    grid, _, _ = ball_case
    warm = np.full(grid.size, 37.0)
    first = mr.render_volume(warm, grid, [], snr=12.0, seed=3)
    second = mr.render_volume(warm, grid, [], snr=12.0, seed=4)
    expected_sigma = first.info["reference_signal"] / 12.0
    bright = first.array > 0.5 * first.info["reference_signal"]
    measured = np.std((first.array - second.array)[bright]) / math.sqrt(2.0)
    assert measured == pytest.approx(expected_sigma, rel=0.1)


def test_rendering_is_seeded_and_deterministic(ball_case):
    grid, field, probes = ball_case
    a = mr.render_volume(field, grid, probes, snr=15.0, seed=5)
    b = mr.render_volume(field, grid, probes, snr=15.0, seed=5)
    c = mr.render_volume(field, grid, probes, snr=15.0, seed=6)
    assert np.array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)


def test_a_breathing_shift_moves_the_ice_with_the_body(ball_case):
    grid, field, _ = ball_case
    shift = np.array([0.5, -1.0, 3.0])
    still = mr.render_volume(field, grid, [], spacing_mm=1.0, snr=1e6, seed=1)
    moved = mr.render_volume(field, grid, [], spacing_mm=1.0, snr=1e6, seed=1, shift_mm=shift)
    centres = voxel_centres(still)

    def void_centroid(image):
        void = image.array < 0.5 * image.info["reference_signal"] * 0.3
        near = np.linalg.norm(centres - BALL_CENTER_MM, axis=-1) < BALL_RADIUS_MM + 6.0
        return centres[void & near].mean(axis=0)

    assert np.allclose(void_centroid(moved) - void_centroid(still), shift, atol=0.3)


def test_breathing_shifts_are_a_few_millimetres_mostly_superior_inferior():
    shifts = np.array([mr.breathing_shift(seed, 3.0) for seed in range(200)])
    rms = np.sqrt(np.mean(shifts**2, axis=0))
    assert np.argmax(rms) == 2  # S–I
    assert np.max(np.linalg.norm(shifts, axis=1)) < 5.0
    assert np.array_equal(mr.breathing_shift(7), mr.breathing_shift(7))


def test_three_planes_through_the_probe_cluster(ball_case):
    _, _, probes = ball_case
    planes = mr.probe_cluster_planes(probes)
    assert [p.name for p in planes] == ["across", "along-1", "along-2"]
    axis = probes[0].direction
    assert abs(planes[0].normal @ axis) == pytest.approx(1.0)  # across: cuts the shaft
    for plane in planes[1:]:
        assert abs(plane.normal @ axis) == pytest.approx(0.0, abs=1e-9)  # along: contains it
    normals = np.array([p.normal for p in planes])
    assert np.allclose(np.abs(normals @ normals.T), np.eye(3), atol=1e-9)
    matrix = planes[0].ijk_to_ras()
    assert np.linalg.norm(matrix[:3, 0]) == pytest.approx(mr.SLICE_PIXEL_MM)
    assert np.linalg.norm(matrix[:3, 2]) == pytest.approx(mr.SLICE_THICKNESS_MM)
    centre = matrix @ np.array([(planes[0].size - 1) / 2, (planes[0].size - 1) / 2, 0, 1])
    assert np.allclose(centre[:3], planes[0].center_mm)


def test_a_slice_shows_the_ice_cross_section(ball_case):
    grid, field, probes = ball_case
    plane = mr.probe_cluster_planes(probes)[0]
    image = mr.render_slice(plane, field, grid, probes, snr=15.0, seed=2)
    assert image.array.shape == (plane.size, plane.size, 1) and image.is_slice
    r = np.linalg.norm(voxel_centres(image) - BALL_CENTER_MM, axis=-1)
    floor = image.info["noise_sigma"] * math.sqrt(math.pi / 2.0)
    # The slab is 5 mm thick: well inside the ball's cross-section it is all void.
    assert image.array[r < BALL_RADIUS_MM - 4.0].mean() < 1.3 * floor


def test_oblique_slice_round_trips_through_nrrd(tmp_path, ball_case):
    grid, field, probes = ball_case
    plane = mr.SliceGeometry("oblique", tuple(BALL_CENTER_MM), (0.6, 0.8, 0.0), (0.0, 0.0, 1.0), fov_mm=30.0)
    image = mr.render_slice(plane, field, grid, probes, seed=1)
    path = mr.write_mr_image(tmp_path / "slice.nrrd", image)
    back = mr.read_mr_image(path)
    assert back.kind == "slice"
    assert np.allclose(back.ijk_to_ras, image.ijk_to_ras, atol=1e-4)
    assert np.allclose(back.array, image.array)


def test_bad_inputs_name_what_to_fix(ball_case, tmp_path):
    grid, field, probes = ball_case
    with pytest.raises(InputError, match="snr"):
        mr.render_volume(field, grid, probes, snr=0.0)
    with pytest.raises(InputError, match="shift_mm"):
        mr.render_volume(field, grid, probes, shift_mm=[1.0, 2.0])
    with pytest.raises(InputError, match="temperature_c"):
        mr.render_volume(field[:-1], grid, probes)
    with pytest.raises(InputError, match="row_axis"):
        mr.render_slice(mr.SliceGeometry("bad", (0, 0, 0), (1, 0, 0), (1, 0, 0)), field, grid, probes)
    with pytest.raises(InputError, match="--image"):
        mr.read_mr_image(tmp_path / "missing.nrrd", "--image")
    (tmp_path / "junk.nrrd").write_text("not an image")
    with pytest.raises(InputError, match="--image"):
        mr.read_mr_image(tmp_path / "junk.nrrd", "--image")
