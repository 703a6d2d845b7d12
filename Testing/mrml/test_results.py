"""A result shows up as SlicerRT shows isodoses: temperature volumes, isotherm segments, playback
over time, ice-volume and sensor plots; rerunning updates the same nodes; all of it survives .mrb."""

from __future__ import annotations

import numpy as np
import pytest
from scene_testing import AnalyticResult, isotherm_radius
from slicer import vtkMRMLSubjectHierarchyNode

from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene import results, tables, volumes
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb, save_scene_mrb
from CryoAblationLogic.scene.colors import TEMPERATURE_TABLE_NAME, TEMPERATURE_WINDOW_C, set_isotherm_levels
from CryoAblationLogic.scene.isotherms import isotherm_surface, segmentation_levels, surface_volume_ml


def sphere_ml(radius_mm: float) -> float:
    return 4 / 3 * np.pi * radius_mm**3 / 1000


def test_result_nodes_exist_with_the_right_content(scene, analytic_result):
    parameters = P.get_parameter_node(scene)
    nodes = results.show_result(scene, parameters, analytic_result)

    field, grid = volumes.volume_field(nodes.temperature)
    assert grid == analytic_result.grid
    np.testing.assert_array_equal(field, analytic_result.temperature_final)
    display = nodes.temperature.GetDisplayNode()
    assert display.GetColorNode().GetName() == TEMPERATURE_TABLE_NAME
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == TEMPERATURE_WINDOW_C
    np.testing.assert_array_equal(
        volumes.volume_field(nodes.min_temperature)[0], analytic_result.min_temperature
    )

    # isotherm segments agree with the solver's (here analytic) volumes within a voxel layer
    for level in (0.0, -20.0, -40.0):
        radius = isotherm_radius(level, 18.0)
        layer_ml = 4 * np.pi * radius**2 * grid.spacing_mm[0] / 1000
        assert nodes.isotherm_volumes_ml[level] == pytest.approx(
            analytic_result.isotherm_volumes_ml[level], abs=layer_ml
        )

    assert parameters.get(P.TEMPERATURE_VOLUME) is nodes.temperature
    assert parameters.get(P.ISOTHERM_SEGMENTATION) is nodes.isotherms
    assert parameters.get(P.PLAYBACK_BROWSER) is nodes.browser

    # plots: ice-ball volume per isotherm over time, sensor temperatures over time
    assert tables.table_column(nodes.ice_volume_table, "Time") == [1.0, 2.0, 3.0]  # minutes
    np.testing.assert_allclose(
        tables.table_column(nodes.ice_volume_table, "-20 °C"), analytic_result.ice_volume_history[-20.0][1]
    )
    assert nodes.ice_volume_chart.GetNumberOfPlotSeriesNodes() == 3
    series = nodes.ice_volume_chart.GetNthPlotSeriesNode(1)
    assert (series.GetXColumnName(), series.GetYColumnName()) == ("Time", "-20 °C")
    np.testing.assert_allclose(
        tables.table_column(nodes.sensor_table, "TC1"), analytic_result.sensors["TC1"][1]
    )
    assert nodes.sensor_chart.GetNumberOfPlotSeriesNodes() == 1


def test_playback_scrubbing_moves_temperature_and_isotherms(scene_app, analytic_result):
    scene = scene_app.scene
    nodes = results.show_result(scene, P.get_parameter_node(scene), analytic_result)
    assert nodes.temperature_sequence.GetNumberOfDataNodes() == 3
    assert nodes.isotherm_sequence.GetNumberOfDataNodes() == 3
    assert nodes.temperature_sequence.GetIndexUnit() == "s"

    for time_s, radius in analytic_result.radius_of_time.items():
        shown = results.select_playback_time(nodes.browser, time_s, scene_app.sequences_logic)
        assert shown == time_s
        field = volumes.volume_field(nodes.temperature)[0]
        assert field.min() == pytest.approx(
            analytic_result.snapshots.get(time_s, analytic_result.temperature_final).min()
        )
        volume = surface_volume_ml(isotherm_surface(nodes.isotherms, 0.0))
        expected = sphere_ml(isotherm_radius(0.0, radius))
        assert volume == pytest.approx(expected, rel=0.05)
        assert not nodes.isotherms.GetDisplayNode().GetVisibility2DFill()  # still outlines


def test_running_again_updates_the_same_nodes(scene, small_grid, analytic_result):
    parameters = P.get_parameter_node(scene)
    first = results.show_result(scene, parameters, analytic_result)
    count = scene.GetNumberOfNodes()
    bigger = AnalyticResult(small_grid, {100.0: 12.0, 200.0: 20.0})
    second = results.show_result(scene, parameters, bigger)
    assert scene.GetNumberOfNodes() == count
    assert second.temperature is first.temperature and second.browser is first.browser
    assert second.temperature_sequence.GetNumberOfDataNodes() == 2
    assert tables.table_column(second.ice_volume_table, "Time") == pytest.approx(
        [100 / 60, 200 / 60]
    )  # minutes


def test_results_and_settings_survive_an_mrb_round_trip(tmp_path, scene, analytic_result):
    parameters = P.get_parameter_node(scene)
    parameters.update_settings(grid_spacing_mm=2.0, playback_interval_s=30.0)
    nodes = results.show_result(scene, parameters, analytic_result)
    path = save_scene_mrb(scene, tmp_path / "result.mrb")

    app = create_scene_app()
    load_scene_mrb(app.scene, path)
    loaded = P.get_parameter_node(app.scene, create=False)
    assert loaded is not None
    assert loaded.settings().grid_spacing_mm == 2.0 and loaded.settings().playback_interval_s == 30.0
    temperature = loaded.get(P.TEMPERATURE_VOLUME)
    np.testing.assert_array_equal(volumes.volume_field(temperature)[0], analytic_result.temperature_final)
    assert temperature.GetDisplayNode().GetColorNode().GetName() == TEMPERATURE_TABLE_NAME
    isotherms = loaded.get(P.ISOTHERM_SEGMENTATION)
    assert surface_volume_ml(isotherm_surface(isotherms, -20.0)) == pytest.approx(
        nodes.isotherm_volumes_ml[-20.0]
    )
    browser = loaded.get(P.PLAYBACK_BROWSER)
    assert browser.GetMasterSequenceNode().GetNumberOfDataNodes() == 3
    results.select_playback_time(browser, 60.0, app.sequences_logic)
    assert surface_volume_ml(isotherm_surface(isotherms, 0.0)) == pytest.approx(
        sphere_ml(isotherm_radius(0.0, 10.0)), rel=0.05
    )
    assert tables.table_column(loaded.get(P.ICE_VOLUME_TABLE), "Time") == [1.0, 2.0, 3.0]  # minutes
    assert loaded.get(P.ICE_VOLUME_CHART).GetNumberOfPlotSeriesNodes() == 3


def test_editing_the_level_table_recontours_shown_and_playback_isotherms(scene_app, analytic_result):
    scene = scene_app.scene
    parameters = P.get_parameter_node(scene)
    nodes = results.show_result(scene, parameters, analytic_result)
    table = parameters.get(P.ISOTHERM_LEVELS)

    set_isotherm_levels(table, [0.0, -10.0])
    volumes_ml = results.recontour_isotherms(scene, parameters)
    assert segmentation_levels(nodes.isotherms) == [0.0, -10.0]
    assert volumes_ml[-10.0] == pytest.approx(sphere_ml(isotherm_radius(-10.0, 18.0)), rel=0.05)
    results.select_playback_time(nodes.browser, 60.0, scene_app.sequences_logic)
    assert segmentation_levels(nodes.isotherms) == [0.0, -10.0]
    assert surface_volume_ml(isotherm_surface(nodes.isotherms, -10.0)) == pytest.approx(
        sphere_ml(isotherm_radius(-10.0, 10.0)), rel=0.05
    )


def test_result_nodes_are_grouped_in_a_subject_hierarchy_folder(scene, analytic_result):
    nodes = results.show_result(scene, P.get_parameter_node(scene), analytic_result)
    hierarchy = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = hierarchy.GetItemChildWithName(hierarchy.GetSceneItemID(), results.RESULT_FOLDER)
    assert folder
    for node in (nodes.temperature, nodes.isotherms, nodes.browser, nodes.ice_volume_chart):
        assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == folder
