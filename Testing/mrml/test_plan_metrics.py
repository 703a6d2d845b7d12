"""Plan metrics in table nodes agree with values computed by hand on analytic shapes: a sphere
target inside the spherical isotherms of a radial ice ball, and spherical critical structures."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scene_testing import BALL_CENTER_MM, BALL_MIN_C, BODY_C, isotherm_radius

from CryoAblationLogic.analysis.findings import SEVERITIES
from CryoAblationLogic.scene import case_io, inputs, probes, tables, workflow
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.colors import create_isotherm_color_table
from CryoAblationLogic.scene.volumes import add_volume_node

CATALOG = {
    "test-17G": SimpleNamespace(name="test-17G", diameter_mm=1.5, active_length_mm=10.0, tip_length_mm=2.0)
}
BALL_RADIUS_MM = 18.0  # the analytic result's final radius (conftest)
TARGET_RADIUS_MM = 6.0
NEAR_CENTER = BALL_CENTER_MM + np.array([16.0, 0.0, 0.0])  # surface 13 mm from the ball centre
FAR_CENTER = BALL_CENTER_MM + np.array([0.0, 0.0, -19.0])  # surface 16 mm away, ball edge at 11.1
INSIDE_CENTER = BALL_CENTER_MM + np.array([0.0, 12.0, 0.0])  # reaches 9 mm from the centre: frozen
STRUCTURE_RADIUS_MM = 3.0


def sphere_mask(grid, center, radius):
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    return (x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2 <= radius**2


@pytest.fixture
def analytic_plan(scene_app, small_grid):
    scene = scene_app.scene
    labels = np.ones(small_grid.size, dtype=np.uint8)
    labels[sphere_mask(small_grid, BALL_CENTER_MM, TARGET_RADIUS_MM)] = 2
    labels[sphere_mask(small_grid, NEAR_CENTER, STRUCTURE_RADIUS_MM)] = 3
    labels[sphere_mask(small_grid, INSIDE_CENTER, STRUCTURE_RADIUS_MM)] = 4
    labels[sphere_mask(small_grid, FAR_CENTER, STRUCTURE_RADIUS_MM)] = 5
    info = {
        1: ("Liver", "liver", "organ"),
        2: ("Tumor", "tumor", "target"),
        3: ("Near", "muscle", "critical"),
        4: ("Inside", "muscle", "critical"),
        5: ("Far vessel", "blood", "vessel"),
    }
    parameters = P.get_parameter_node(scene)
    parameters.set(P.INPUT_VOLUME, add_volume_node(scene, "image", labels.astype(np.int16), small_grid))
    segmentation = inputs.add_segmentation_from_labels(
        scene, scene_app.segmentations_logic, labels, small_grid, info, name="anatomy"
    )
    parameters.set(P.INPUT_SEGMENTATION, segmentation)
    parameters.set(P.ISOTHERM_LEVELS, create_isotherm_color_table(scene))
    tip = BALL_CENTER_MM - np.array([0.0, 0.0, 5.0])
    parameters.add(P.PROBE, probes.add_probe(scene, "P1", tip, tip + np.array([0.0, 0.0, 60.0]), "test-17G"))
    return scene, parameters


def test_metrics_tables_match_hand_computed_values(analytic_plan, analytic_result):
    scene, parameters = analytic_plan
    scene_case = case_io.build_case(scene, parameters)
    plan = workflow.show_plan_result(scene, parameters, scene_case, analytic_result, catalog=CATALOG)

    table = plan.metrics_table
    assert parameters.get(P.METRICS_TABLE) is table
    assert tables.table_column(table, "Isotherm") == ["0 °C", "-20 °C", "-40 °C"]
    coverage = tables.table_column(table, "Target covered (%)")
    margin = tables.table_column(table, "Min margin (mm)")
    not_covered = tables.table_column(table, "Surface not covered (%)")
    thin = tables.table_column(table, "Surface margin 0–5 mm (%)")
    thick = tables.table_column(table, "Surface margin ≥ 5 mm (%)")
    radii = [isotherm_radius(level, BALL_RADIUS_MM) for level in (0.0, -20.0, -40.0)]  # 11.1, 7.4, 3.7 mm
    # 0 °C: covered with a 5.1 mm margin all round; −20 °C: covered, 1.4 mm margin;
    # −40 °C: a 3.7 mm ball inside a 6 mm target, (3.7/6)³ = 24 % covered, 2.3 mm short.
    assert margin[0] == pytest.approx(radii[0] - TARGET_RADIUS_MM, abs=0.5)
    assert margin[1] == pytest.approx(radii[1] - TARGET_RADIUS_MM, abs=0.5)
    assert margin[2] == pytest.approx(radii[2] - TARGET_RADIUS_MM, abs=0.5)
    assert coverage[0] == pytest.approx(100.0) and coverage[1] == pytest.approx(100.0)
    assert coverage[2] == pytest.approx(100 * (radii[2] / TARGET_RADIUS_MM) ** 3, abs=6.0)
    assert (not_covered[0], thin[0] + thick[0]) == (pytest.approx(0.0), pytest.approx(100.0))
    assert thin[1] == pytest.approx(100.0)  # the whole surface within 0–5 mm of the −20 °C isotherm
    assert not_covered[2] == pytest.approx(100.0)

    critical = plan.critical_table
    assert tables.table_column(critical, "Structure") == ["Near", "Inside"]
    lowest = tables.table_column(critical, "Lowest temperature (°C)")
    distance = tables.table_column(critical, "Distance to ice edge (mm)")
    reached = tables.table_column(critical, "Reached by ice")
    # Near: nearest surface point 13 mm from the centre, T = 37 − 97 (1 − 13/18) = 10.1 °C,
    # 13 − 11.1 = 1.9 mm outside the 0 °C isotherm.
    assert lowest[0] == pytest.approx(BODY_C - (BODY_C - BALL_MIN_C) * (1 - 13.0 / BALL_RADIUS_MM), abs=2.0)
    assert distance[0] == pytest.approx(13.0 - radii[0], abs=0.5)
    assert reached == ["no", "yes"]
    assert lowest[1] < 0.0 and distance[1] < 0.0

    warnings = tables.table_column(plan.warnings_table, "Warning")
    assert any("Inside" in warning for warning in warnings)  # the ice reaches a critical structure
    assert warnings == plan.warnings
    # highest severity first, as in the report and metrics.json: the structure inside the ice leads
    severities = tables.table_column(plan.warnings_table, "Severity")
    assert severities == [finding.severity for finding in plan.findings]
    ranks = [SEVERITIES.index(severity) for severity in severities]
    assert ranks == sorted(ranks) and "Inside" in warnings[0] and severities[0] in ("critical", "high")


def test_probe_crossing_a_vessel_is_flagged(analytic_plan, analytic_result):
    scene, parameters = analytic_plan
    # a second probe whose shaft runs through the vessel below the target
    tip = BALL_CENTER_MM + np.array([5.0, 0.0, 0.0])
    crossing = probes.add_probe(
        scene, "P2", tip, FAR_CENTER + np.array([5.0, 0.0, -4.0]) - [5.0, 0.0, 0.0], "test-17G"
    )
    parameters.add(P.PROBE, crossing)
    scene_case = case_io.build_case(scene, parameters)
    plan = workflow.show_plan_result(scene, parameters, scene_case, analytic_result, catalog=CATALOG)
    assert any("P2" in warning and "Far vessel" in warning for warning in plan.warnings)
