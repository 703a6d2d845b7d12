"""Ice from an MR image: the signal void against the baseline, robust to Rician noise, to the
probes' susceptibility voids, to partial volume and to a few millimetres of motion.

The target is the analytic ice ball's 0 °C surface (radius 12 mm); Dice and distances are on
the 2 mm plan grid (volumes) or the 1.5 mm slice pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import BALL_CENTER_MM, BALL_RADIUS_MM, ball_field

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics, zone_on_image
from CryoAblationLogic.analysis.ice_observation import IceSettings, ice_on_grid, observe_ice
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io import mr_synthesis as mr


def pair(ball_case, baseline_probes=True, shift=(0.0, 0.0, 0.0), snr=12.0, field=None):
    grid, ball, probes = ball_case
    warm = np.full(grid.size, 37.0)
    baseline = mr.render_volume(warm, grid, probes if baseline_probes else [], snr=snr, seed=1)
    image = mr.render_volume(ball if field is None else field, grid, probes, shift_mm=shift, snr=snr, seed=2)
    return baseline, image


@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (1.0, -1.5, 3.0)])
def test_volume_ice_matches_the_zero_degree_ball_despite_noise_and_motion(ball_case, shift):
    grid, field, probes = ball_case
    baseline, image = pair(ball_case, shift=shift)
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    on_grid = ice_on_grid(observation, grid).astype(bool)
    metrics = overlap_metrics(on_grid, field <= 0.0, grid.spacing_mm)
    # A 12 mm ball on 2 mm voxels: one voxel of edge error all round would cost 0.25 of Dice.
    assert metrics["dice"] >= 0.92
    assert metrics["mean_surface_distance_mm"] <= 0.6  # under a third of a plan voxel
    assert np.allclose(observation.motion_mm, shift, atol=0.5)  # registration finds the breathing shift
    # The signal is gone by -1 °C, half gone at -0.5 °C, 0.12 mm inside the 0 °C surface here.
    expected_ml = 4.0 / 3.0 * np.pi * BALL_RADIUS_MM**3 / 1000.0
    assert metrics["volume_ml"] == pytest.approx(expected_ml, rel=0.12)


def test_probe_voids_in_the_baseline_are_not_ice(ball_case):
    grid, _field, probes = ball_case
    baseline, image = pair(ball_case)
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    on_grid = ice_on_grid(observation, grid).astype(bool)
    ball = ball_field(grid, BALL_RADIUS_MM + 2.5) <= 0.0  # the ice ball plus a partial-volume allowance
    assert not np.any(on_grid & ~ball), "the shaft's void outside the ice is not ice"


def test_without_probes_in_the_baseline_an_exclusion_radius_keeps_the_shaft_out(ball_case):
    grid, field, probes = ball_case
    baseline, image = pair(ball_case, baseline_probes=False)
    ball = ball_field(grid, BALL_RADIUS_MM + 2.5) <= 0.0
    unguarded = observe_ice(
        baseline.array,
        baseline.ijk_to_ras,
        image.array,
        image.ijk_to_ras,
        probes,
        IceSettings(probes_in_baseline=True),  # wrongly told the probes were in the baseline
    )
    assert np.any(ice_on_grid(unguarded, grid).astype(bool) & ~ball), "the shaft would pass for ice"
    guarded = observe_ice(
        baseline.array,
        baseline.ijk_to_ras,
        image.array,
        image.ijk_to_ras,
        probes,
        IceSettings(probes_in_baseline=False),
    )
    on_grid = ice_on_grid(guarded, grid).astype(bool)
    assert not np.any(on_grid & ~ball)
    assert overlap_metrics(on_grid, field <= 0.0, grid.spacing_mm)["dice"] >= 0.92
    assert any("4 mm of each shaft" in note for note in guarded.notes)


def test_a_void_far_from_the_probes_is_not_ice(ball_case):
    grid, field, probes = ball_case
    # A second, separate cold spot 22 mm lateral to the ball and no probe near it.
    x, y, z = np.meshgrid(*(grid.axis_mm(a) for a in range(3)), indexing="ij")
    far = np.array(BALL_CENTER_MM) + np.array([0.0, 0.0, 22.0])
    r_far = np.sqrt((x - far[0]) ** 2 + (y - far[1]) ** 2 + (z - far[2]) ** 2)
    two = np.minimum(field, np.clip(4.0 * (r_far - 5.0), -150, 37.0))
    baseline, image = pair(ball_case, field=two)
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    on_grid = ice_on_grid(observation, grid).astype(bool)
    assert not np.any(on_grid & (r_far < 4.0))
    assert overlap_metrics(on_grid, field <= 0.0, grid.spacing_mm)["dice"] >= 0.92


def test_no_ice_before_freezing(ball_case):
    grid, _, probes = ball_case
    baseline, image = pair(ball_case, field=np.full(grid.size, 37.0), shift=(0.0, 0.0, 2.0))
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    assert observation.frozen_count == 0


@pytest.mark.parametrize("plane_index", [0, 1, 2])
def test_slice_ice_matches_the_ball_in_its_plane(ball_case, plane_index):
    grid, field, probes = ball_case
    plane = mr.probe_cluster_planes(probes)[plane_index]
    warm = np.full(grid.size, 37.0)
    baseline = mr.render_slice(plane, warm, grid, probes, snr=12.0, seed=3)
    shift = plane.row_axis  # 1 mm in the plane
    image = mr.render_slice(plane, field, grid, probes, shift_mm=shift, snr=12.0, seed=4)
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    assert observation.kind == "slice" and observation.label.shape == image.array.shape
    truth = zone_on_image(field, grid, observation)
    assert overlap_metrics(observation.label, truth, observation.spacing_mm)["dice"] >= 0.92
    assert np.allclose(observation.motion_mm, shift, atol=0.6)


@pytest.mark.parametrize("offset_mm", [7.0, 9.0])
def test_a_slice_beside_the_probe_shows_the_ice_around_the_probes_trace(ball_case, offset_mm):
    """A real-time plane placed between probes, or moved across by breathing (which the slice
    cannot show), cuts a probe's ice off its axis: the cross-section is centred on the probe's
    in-plane trace, farther from the probe itself than the 6 mm seed radius. A cold spot in the
    same plane 22 mm beside the trace is still not ice."""
    grid, field, probes = ball_case
    plane = mr.probe_cluster_planes(probes)[1]  # contains the probe's axis
    plane = replace(plane, center_mm=tuple(np.asarray(plane.center_mm) + offset_mm * plane.normal))
    x, y, z = np.meshgrid(*(grid.axis_mm(a) for a in range(3)), indexing="ij")
    far = np.asarray(plane.center_mm) + 22.0 * np.asarray(plane.row_axis)
    r_far = np.sqrt((x - far[0]) ** 2 + (y - far[1]) ** 2 + (z - far[2]) ** 2)
    two = np.minimum(field, np.clip(4.0 * (r_far - 5.0), -150, 37.0))
    warm = np.full(grid.size, 37.0)
    baseline = mr.render_slice(plane, warm, grid, probes, snr=12.0, seed=3)
    image = mr.render_slice(plane, two, grid, probes, snr=12.0, seed=4)
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    truth = zone_on_image(field, grid, observation)
    # The ball's cross-section: radius 9.7 mm at 7 mm, 7.9 mm at 9 mm, averaged over the 5 mm slab.
    assert np.count_nonzero(truth) * 1.5**2 >= np.pi * 6.0**2
    assert overlap_metrics(observation.label, truth, observation.spacing_mm)["dice"] >= 0.9
    spot = zone_on_image(two, grid, observation) & ~truth
    assert np.count_nonzero(spot) * 1.5**2 >= 50.0  # the cold spot is in the slice (r 5 mm)
    assert not np.any(observation.label & spot)


def test_a_slice_on_the_plan_grid_marks_only_voxels_within_its_thickness(ball_case):
    grid, field, probes = ball_case
    plane = mr.probe_cluster_planes(probes)[0]
    warm = np.full(grid.size, 37.0)
    baseline = mr.render_slice(plane, warm, grid, probes, snr=12.0, seed=3)
    image = mr.render_slice(plane, field, grid, probes, snr=12.0, seed=4)
    observation = observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    on_grid = ice_on_grid(observation, grid).astype(bool)
    x, y, z = np.meshgrid(*(grid.axis_mm(a) for a in range(3)), indexing="ij")
    offset = (np.stack([x, y, z], -1) - np.asarray(plane.center_mm)) @ plane.normal
    assert np.any(on_grid)
    assert np.all(np.abs(offset[on_grid]) <= plane.thickness_mm / 2 + 1e-6)


def test_mismatched_baseline_and_missing_probes_are_refused(ball_case):
    _grid, _field, probes = ball_case
    baseline, image = pair(ball_case)
    moved = baseline.ijk_to_ras.copy()
    moved[0, 3] += 10.0
    with pytest.raises(InputError, match="baseline"):
        observe_ice(baseline.array, moved, image.array, image.ijk_to_ras, probes)
    with pytest.raises(InputError, match="baseline"):
        observe_ice(baseline.array[:-1], baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes)
    with pytest.raises(InputError, match="probes"):
        observe_ice(baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, [])
    with pytest.raises(InputError, match="seed_radius_mm"):
        observe_ice(
            baseline.array,
            baseline.ijk_to_ras,
            image.array,
            image.ijk_to_ras,
            probes,
            IceSettings(seed_radius_mm=-1),
        )
