"""Saving the scene as .mrb and loading it back restores the plan, the settings and the results:
the loaded scene describes the same case and shows the same result."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from CryoAblationLogic.io import phantom
from CryoAblationLogic.scene import case_io, inputs, probes, tables, workflow
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb, save_scene_mrb
from CryoAblationLogic.scene.isotherms import isotherm_surface, surface_volume_ml
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
from CryoAblationLogic.scene.volumes import volume_field

CATALOG = {"argon-1.47mm": SimpleNamespace(diameter_mm=1.47, active_length_mm=30.0, tip_length_mm=5.0)}


def tumour_ice_result(grid):
    """A radial ice ball on the case grid around the tumour (0 °C at 16 mm), as a solver result."""
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    center = phantom.TUMOR_CENTER_MM
    r = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2)
    field = (37.0 - 137.0 * np.clip(1 - r / 27.0, 0, 1)).astype(np.float32)
    t = np.array([600.0, 1680.0])
    return SimpleNamespace(
        grid=grid,
        simulated_s=1680.0,
        snapshots={600.0: (field + 20).astype(np.float32)},
        temperature_final=field,
        min_temperature=field,
        sensors={"TC1": (t, np.array([5.0, -10.0])), "TC2": (t, np.array([30.0, 20.0]))},
        ice_volume_history={level: (t, np.array([1.0, 2.0])) for level in (0.0, -20.0, -40.0)},
    )


def test_plan_settings_and_results_survive_mrb(tmp_path, scene_app):
    scene = scene_app.scene
    parameters = build_phantom_scene(scene, scene_app.segmentations_logic, spacing_mm=3.0)
    parameters.update_settings(roi_margin_mm=20.0, playback_interval_s=120.0)
    probes.set_probe_model(
        parameters.probes()[2], "argon-1.47mm", protocol_group="late", active_length_mm=25.0
    )
    follower = probes.NeedleFollower(CATALOG)
    follower.follow_all(scene)
    scene_case = case_io.build_case(scene, parameters)
    plan = workflow.show_plan_result(
        scene, parameters, scene_case, tumour_ice_result(scene_case.grid), CATALOG
    )
    follower.stop()
    path = save_scene_mrb(scene, tmp_path / "plan.mrb")

    app = create_scene_app()
    load_scene_mrb(app.scene, path)
    loaded = P.get_parameter_node(app.scene, create=False)
    assert loaded.settings() == parameters.settings()
    # the plan: same case from the loaded scene (probes, groups, overrides, anatomy, sensors)
    loaded_case = case_io.build_case(app.scene, loaded)
    assert loaded_case.data == scene_case.data
    np.testing.assert_array_equal(loaded_case.arrays["labels"], scene_case.arrays["labels"])
    third = loaded.probes()[2]
    assert probes.probe_group(third) == "late" and third.GetAttribute(probes.ACTIVE_LENGTH_ATTRIBUTE) == "25"
    assert third.GetNodeReference(probes.NEEDLE_REFERENCE) is not None
    roles = {info.name: info.role for info in inputs.segment_infos(loaded.get(P.INPUT_SEGMENTATION))}
    assert roles["Tumor"] == "target" and roles["Bowel"] == "critical"
    # the results
    np.testing.assert_array_equal(
        volume_field(loaded.get(P.MIN_TEMPERATURE_VOLUME))[0], volume_field(plan.nodes.min_temperature)[0]
    )
    assert surface_volume_ml(isotherm_surface(loaded.get(P.ISOTHERM_SEGMENTATION), 0.0)) == pytest.approx(
        plan.nodes.isotherm_volumes_ml[0.0]
    )
    for role, original in ((P.METRICS_TABLE, plan.metrics_table), (P.CRITICAL_TABLE, plan.critical_table)):
        table = loaded.get(role)
        for column in range(original.GetNumberOfColumns()):
            name = original.GetColumnName(column)
            expected = tables.table_column(original, name)
            if expected and isinstance(expected[0], str):
                assert tables.table_column(table, name) == expected
            else:  # the .tsv keeps six significant digits
                assert tables.table_column(table, name) == pytest.approx(expected, rel=1e-5, nan_ok=True)
    assert tables.table_column(loaded.get(P.WARNINGS_TABLE), "Warning") == plan.warnings
    assert loaded.get(P.SENSOR_CHART).GetNumberOfPlotSeriesNodes() == 2
    assert loaded.get(P.PLAYBACK_BROWSER).GetMasterSequenceNode().GetNumberOfDataNodes() == 2

    # after loading, dragging a probe moves its needle again
    follower = probes.NeedleFollower(CATALOG)
    follower.follow_all(app.scene)
    needle = third.GetNodeReference(probes.NEEDLE_REFERENCE)
    tip, entry = probes.probe_tip_entry(third)
    third.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + np.array([0.0, 0.0, 4.0])).tolist())
    third.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, (entry + np.array([0.0, 0.0, 4.0])).tolist())
    bounds = [0.0] * 6
    needle.GetPolyData().GetBounds(bounds)
    assert bounds[4] == pytest.approx(tip[2] + 4.0 - 0.735, abs=0.05)
    follower.stop()
