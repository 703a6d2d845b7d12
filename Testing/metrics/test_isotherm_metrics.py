"""Isotherm metrics agree with hand-computed values on analytic shapes (1 mm grids).

Target: a ball of radius 15 mm at the origin, voxelised by voxel-centre inclusion. Ice: radial
fields T(r) = 3 °C/mm · (r − R) (0 °C at R) or planar fields. Tolerances: margins ±0.5 mm (the
target mask's own voxelisation is ±0.4 mm), coverage ±0.5 percentage points, surface (QAM)
fractions ±2 percentage points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from CryoAblationLogic.analysis.distances import _IsothermDistance
from CryoAblationLogic.analysis.metrics import (
    CRITICAL_COLUMNS,
    ISOTHERM_COLUMNS,
    ice_volume_history,
    isotherm_metrics,
)
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid

TARGET_RADIUS_MM = 15.0
MARGIN_TOL_MM = 0.5
COVERAGE_TOL_PERCENT = 0.5
SURFACE_TOL_PERCENT = 2.0


@pytest.fixture(scope="module")
def target(grid_30mm, shapes):
    return shapes.ball(grid_30mm, TARGET_RADIUS_MM)


def sphere_fraction_within(rho: float, a: float, d: float) -> float:
    """Area fraction of a sphere of radius a lying within distance rho of a point d from its centre."""
    if rho <= abs(a - d):
        return 0.0 if rho < a - d or d < a else 1.0
    if rho >= a + d:
        return 1.0
    return (rho**2 - (a - d) ** 2) / (4 * a * d)


def test_target_inside_a_larger_ice_ball_is_fully_covered_with_a_5mm_margin(grid_30mm, target, shapes):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=20.0)
    metrics = isotherm_metrics(field, grid_30mm, target, levels_c=[0.0])
    ice = metrics.isotherm(0.0)
    assert ice.target_coverage_percent == pytest.approx(100.0, abs=1e-9)
    assert ice.min_margin_mm == pytest.approx(5.0, abs=MARGIN_TOL_MM)
    assert ice.surface_not_covered_percent == pytest.approx(0.0, abs=1e-9)


def test_colder_isotherms_inside_the_target_give_the_ball_volume_ratio_and_a_negative_margin(
    grid_30mm, target, shapes
):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=20.0)
    metrics = isotherm_metrics(field, grid_30mm, target)  # default levels 0, −20, −40 °C
    assert [item.level_c for item in metrics.isotherms] == [0.0, -20.0, -40.0]
    target_volume = 4 / 3 * math.pi * TARGET_RADIUS_MM**3
    assert metrics.target_volume_ml == pytest.approx(target_volume / 1000, rel=0.01)
    for level in (-20.0, -40.0):
        radius = shapes.radius_of_level(20.0, level)  # 13.33 and 6.67 mm
        item = metrics.isotherm(level)
        assert item.target_coverage_percent == pytest.approx(
            100 * (radius / TARGET_RADIUS_MM) ** 3, abs=COVERAGE_TOL_PERCENT
        )
        assert item.min_margin_mm == pytest.approx(radius - TARGET_RADIUS_MM, abs=MARGIN_TOL_MM)
        assert item.surface_not_covered_percent == pytest.approx(100.0)
        assert item.ice_volume_ml == pytest.approx(4 / 3 * math.pi * radius**3 / 1000, rel=0.03)
        assert any(f"{level:g} °C isotherm does not cover the target" in w for w in metrics.warnings)


@pytest.mark.parametrize("offset_mm", [(3.0, 0.0, 0.0), (2.0, -2.0, 1.0), (0.0, 0.0, -4.5)])
def test_offset_ice_ball_gives_the_analytic_minimum_margin(grid_30mm, target, shapes, offset_mm):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=20.0, centre_mm=offset_mm)
    item = isotherm_metrics(field, grid_30mm, target, levels_c=[0.0]).isotherm(0.0)
    expected = 20.0 - TARGET_RADIUS_MM - float(np.linalg.norm(offset_mm))
    assert item.min_margin_mm == pytest.approx(expected, abs=MARGIN_TOL_MM)
    assert item.target_coverage_percent == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("spacing_mm", [(0.5, 0.5, 0.5), (1.5, 1.5, 1.5), (0.8, 0.8, 2.0)])
def test_margin_and_coverage_hold_on_finer_coarser_and_anisotropic_grids(shapes, spacing_mm):
    # The target mask's voxelisation dominates: margins within half the largest spacing.
    size = tuple(round(60 / s) + 1 for s in spacing_mm)
    grid = Grid((-30.0, -30.0, -30.0), spacing_mm, size)
    offset = (2.0, 0.0, -2.0)
    field = shapes.radial_field(grid, ice_radius_mm=20.0, centre_mm=offset)
    metrics = isotherm_metrics(field, grid, shapes.ball(grid, TARGET_RADIUS_MM), levels_c=[0.0])
    expected = 20.0 - TARGET_RADIUS_MM - float(np.linalg.norm(offset))
    assert metrics.isotherm(0.0).min_margin_mm == pytest.approx(expected, abs=0.5 * max(spacing_mm))
    concentric = shapes.radial_field(grid, ice_radius_mm=20.0)
    item = isotherm_metrics(concentric, grid, shapes.ball(grid, TARGET_RADIUS_MM), levels_c=[-20.0]).isotherm(
        -20.0
    )
    expected_coverage = 100 * (shapes.radius_of_level(20.0, -20.0) / TARGET_RADIUS_MM) ** 3
    assert item.target_coverage_percent == pytest.approx(expected_coverage, abs=1.0)


def test_planar_ice_front_covers_the_analytic_cap_fraction(grid_30mm, target, shapes):
    # Ice for x ≤ 5 mm: the warm cap x > 5 mm has height h = 10 mm.
    x, _, _ = shapes.coordinates(grid_30mm)
    field = (2.0 * (x - 5.0)).astype(np.float32)
    item = isotherm_metrics(field, grid_30mm, target, levels_c=[0.0]).isotherm(0.0)
    r, h = TARGET_RADIUS_MM, 10.0
    cap_fraction = math.pi * h**2 * (3 * r - h) / 3 / (4 / 3 * math.pi * r**3)
    assert item.target_coverage_percent == pytest.approx(100 * (1 - cap_fraction), abs=COVERAGE_TOL_PERCENT)
    assert item.min_margin_mm == pytest.approx(-10.0, abs=MARGIN_TOL_MM)  # x = 15 lies 10 mm past the front
    # A sphere's area between two parallel planes is proportional to their distance (Archimedes).
    assert item.surface_not_covered_percent == pytest.approx(100 * h / (2 * r), abs=SURFACE_TOL_PERCENT)
    assert item.surface_margin_0_to_5mm_percent == pytest.approx(100 * 5 / 30, abs=SURFACE_TOL_PERCENT)
    assert item.surface_margin_5mm_or_more_percent == pytest.approx(50.0, abs=SURFACE_TOL_PERCENT)


@pytest.mark.parametrize(
    ("ice_radius_mm", "expected_bins"),
    [(22.0, (0.0, 0.0, 100.0)), (18.0, (0.0, 100.0, 0.0)), (12.0, (100.0, 0.0, 0.0))],
)
def test_qam_histogram_of_concentric_spheres_puts_the_whole_surface_in_one_bin(
    grid_30mm, target, shapes, ice_radius_mm, expected_bins
):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=ice_radius_mm)
    item = isotherm_metrics(field, grid_30mm, target, levels_c=[0.0]).isotherm(0.0)
    bins = (
        item.surface_not_covered_percent,
        item.surface_margin_0_to_5mm_percent,
        item.surface_margin_5mm_or_more_percent,
    )
    assert bins == pytest.approx(expected_bins, abs=SURFACE_TOL_PERCENT)
    assert sum(bins) == pytest.approx(100.0)


@pytest.mark.parametrize("offset_mm", [4.0, 8.0])
def test_qam_histogram_of_offset_spheres_matches_the_spherical_cap_areas(
    grid_30mm, target, shapes, offset_mm
):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=20.0, centre_mm=(0.0, offset_mm, 0.0))
    item = isotherm_metrics(field, grid_30mm, target, levels_c=[0.0]).isotherm(0.0)
    # The mask's surface lies within ±0.4 mm of the sphere, and these fractions move by
    # 2ρ/(4ad) ≈ 6 %/mm at d = 8 mm: 3 percentage points here.
    tolerance = 3.0
    a = TARGET_RADIUS_MM
    within_ice = sphere_fraction_within(20.0, a, offset_mm)  # margin ≥ 0
    within_thick = sphere_fraction_within(15.0, a, offset_mm)  # margin ≥ 5 mm
    assert item.surface_not_covered_percent == pytest.approx(100 * (1 - within_ice), abs=tolerance)
    assert item.surface_margin_0_to_5mm_percent == pytest.approx(
        100 * (within_ice - within_thick), abs=tolerance
    )
    assert item.surface_margin_5mm_or_more_percent == pytest.approx(100 * within_thick, abs=tolerance)
    assert item.min_margin_mm == pytest.approx(5.0 - offset_mm, abs=MARGIN_TOL_MM)


def test_a_warm_pocket_inside_the_target_gives_a_negative_margin_though_the_surface_is_covered(
    grid_30mm, target, shapes
):
    # Ice ball of 20 mm with a warm ball of 3 mm at the centre (a heat sink): the deepest uncovered
    # point is the centre, 3 mm from the ice.
    field = np.maximum(
        shapes.radial_field(grid_30mm, ice_radius_mm=20.0), -shapes.radial_field(grid_30mm, ice_radius_mm=3.0)
    )
    item = isotherm_metrics(field, grid_30mm, target, levels_c=[0.0]).isotherm(0.0)
    assert item.surface_not_covered_percent == pytest.approx(0.0)
    assert item.min_margin_mm == pytest.approx(-3.0, abs=MARGIN_TOL_MM)
    assert item.target_coverage_percent == pytest.approx(100 * (1 - (3 / 15) ** 3), abs=COVERAGE_TOL_PERCENT)


def test_critical_structure_away_from_the_ice_reports_its_distance_and_no_warning(shapes):
    grid = shapes.cube_grid((40, 30, 30))
    field = shapes.radial_field(grid, ice_radius_mm=20.0)
    target = shapes.ball(grid, TARGET_RADIUS_MM)
    bowel = shapes.ball(grid, 5.0, centre_mm=(30.0, 0.0, 0.0))  # surface 25 mm from the centre
    metrics = isotherm_metrics(field, grid, target, levels_c=[0.0], critical_masks={"Bowel": bowel})
    item = metrics.critical("Bowel")
    assert item.distance_to_ice_edge_mm == pytest.approx(5.0, abs=MARGIN_TOL_MM)
    assert item.lowest_temperature_c == pytest.approx(3.0 * (25.0 - 20.0), abs=0.01)  # voxel at x = 25
    assert not item.reached_by_ice
    assert not any("Bowel" in w for w in metrics.warnings)


def test_critical_structure_reached_by_the_ice_gives_a_negative_distance_and_a_warning(shapes):
    grid = shapes.cube_grid((40, 30, 30))
    field = shapes.radial_field(grid, ice_radius_mm=20.0)
    target = shapes.ball(grid, TARGET_RADIUS_MM)
    bowel = shapes.ball(grid, 5.0, centre_mm=(22.0, 0.0, 0.0))  # nearest point at r = 17: 3 mm inside the ice
    metrics = isotherm_metrics(field, grid, target, levels_c=[0.0], critical_masks={"Bowel": bowel})
    item = metrics.critical("Bowel")
    assert item.reached_by_ice
    assert item.distance_to_ice_edge_mm == pytest.approx(-3.0, abs=MARGIN_TOL_MM)
    assert item.lowest_temperature_c == pytest.approx(3.0 * (17.0 - 20.0), abs=0.01)
    warning = next(w for w in metrics.warnings if "Bowel" in w)
    assert "reaches critical structure 'Bowel'" in warning
    assert "-9.0 °C" in warning


def test_long_and_far_critical_structures_get_their_true_distance(shapes):
    # Only the part of a structure near the ice is meshed (within 15 mm of the ice's box); a structure
    # entirely farther away is measured whole.
    grid = shapes.cube_grid((50, 30, 40))
    x, y, _ = shapes.coordinates(grid)
    field = shapes.radial_field(grid, ice_radius_mm=12.0)
    target = shapes.ball(grid, 8.0)
    tube = (x - 21.0) ** 2 + y**2 <= 4.0**2  # along S–I through the whole grid: 5 mm from the ice
    far = shapes.ball(grid, 4.0, centre_mm=(-40.0, 0.0, 0.0))  # 24 mm from the ice
    metrics = isotherm_metrics(field, grid, target, levels_c=[0.0], critical_masks={"Tube": tube, "Far": far})
    assert metrics.critical("Tube").distance_to_ice_edge_mm == pytest.approx(5.0, abs=MARGIN_TOL_MM)
    assert metrics.critical("Far").distance_to_ice_edge_mm == pytest.approx(24.0, abs=MARGIN_TOL_MM)
    assert metrics.critical("Tube").lowest_temperature_c == pytest.approx(3.0 * (17.0 - 12.0), abs=0.01)


def test_thin_ice_margin_warns_and_a_field_without_ice_reports_no_isotherm(grid_30mm, target, shapes):
    thin = isotherm_metrics(shapes.radial_field(grid_30mm, 17.0), grid_30mm, target, levels_c=[0.0])
    assert thin.isotherm(0.0).min_margin_mm == pytest.approx(2.0, abs=MARGIN_TOL_MM)
    warning = next(w for w in thin.warnings if w.startswith("Ice margin (0 °C) around the target is "))
    assert warning.endswith("mm, less than the usual 5 mm")

    warm = np.full(grid_30mm.size, 37.0, dtype=np.float32)
    metrics = isotherm_metrics(warm, grid_30mm, target, levels_c=[0.0, -40.0])
    for item in metrics.isotherms:
        assert item.min_margin_mm is None
        assert item.target_coverage_percent == 0.0
        assert item.surface_not_covered_percent == 100.0
        assert item.ice_volume_ml == 0.0
    assert any("never reaches -40 °C" in w for w in metrics.warnings)


def test_rows_carry_the_table_columns_in_order(grid_30mm, target, shapes):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=20.0)
    organ = shapes.ball(grid_30mm, 3.0, centre_mm=(25.0, 0.0, 0.0))
    metrics = isotherm_metrics(
        field, grid_30mm, target, levels_c=[-40.0, 0.0], critical_masks={"Organ": organ}
    )
    rows = metrics.as_rows()
    assert [row["level_c"] for row in rows] == [-40.0, 0.0]  # the caller's order
    assert all(list(row) == list(ISOTHERM_COLUMNS) for row in rows)
    assert [list(row) for row in metrics.critical_rows()] == [list(CRITICAL_COLUMNS)]


def test_bad_inputs_raise_input_errors_naming_the_input(grid_30mm, target, shapes):
    field = shapes.radial_field(grid_30mm, ice_radius_mm=20.0)
    with pytest.raises(InputError, match="temperature_c"):
        isotherm_metrics(field[:-1], grid_30mm, target)
    with pytest.raises(InputError, match="target_mask"):
        isotherm_metrics(field, grid_30mm, target.astype(np.uint8))
    with pytest.raises(InputError, match="target_mask: is empty"):
        isotherm_metrics(field, grid_30mm, np.zeros_like(target))
    with pytest.raises(InputError, match="levels_c"):
        isotherm_metrics(field, grid_30mm, target, levels_c=[])
    with pytest.raises(InputError, match="Bowel"):
        isotherm_metrics(field, grid_30mm, target, critical_masks={"Bowel": np.zeros_like(target)})
    broken = field.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        isotherm_metrics(broken, grid_30mm, target)


def test_ice_volume_history_counts_voxels_at_or_below_each_level_in_time_order(grid_30mm, shapes):
    fields = {t: shapes.radial_field(grid_30mm, ice_radius_mm=r) for t, r in ((600.0, 15.0), (60.0, 5.0))}
    history = ice_volume_history(fields, grid_30mm, levels_c=[0.0, -20.0])
    times, volumes = history[0.0]
    assert times.tolist() == [60.0, 600.0]
    expected = [np.count_nonzero(fields[t] <= 0.0) / 1000.0 for t in (60.0, 600.0)]
    assert volumes.tolist() == pytest.approx(expected)
    assert volumes[1] == pytest.approx(4 / 3 * math.pi * 15**3 / 1000, rel=0.02)
    assert history[-20.0][1][0] == pytest.approx(0.0)  # −20 °C sits at r < 0 when R0 = 5 mm
    # A generator of (time, field) pairs works the same.
    same = ice_volume_history(((t, f) for t, f in fields.items()), grid_30mm, levels_c=[0.0, -20.0])
    assert same[0.0][1].tolist() == volumes.tolist()


@pytest.mark.parametrize(("ice_radius_mm", "tolerance_mm"), [(20.0, 0.05), (8.0, 0.1)])
def test_sub_voxel_distance_to_a_spherical_isotherm_matches_the_analytic_distance(
    grid_30mm, shapes, ice_radius_mm, tolerance_mm
):
    # The accuracy stated in the metrics module docstring: points on analytic spheres (no mask in
    # the way) against an off-grid-centred spherical isotherm.
    centre = np.array([0.4, -0.3, 0.2])
    field = shapes.radial_field(grid_30mm, ice_radius_mm=ice_radius_mm, centre_mm=centre)
    distance = _IsothermDistance.build(field, grid_30mm, 0.0, field <= 0.0, [(slice(0, 61),) * 3])
    rng = np.random.default_rng(7)
    directions = rng.normal(size=(400, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = rng.uniform(0.3 * ice_radius_mm, ice_radius_mm + 8.0, size=400)
    points = centre + directions * radii[:, None]
    expected = ice_radius_mm - radii  # positive inside the ice ball
    assert distance.exact_mm(points) == pytest.approx(expected, abs=tolerance_mm)
