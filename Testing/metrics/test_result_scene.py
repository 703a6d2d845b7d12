"""The result in Slicer's scene as the record shows it: playback every minute without touching the
solver's numbers, no stray nodes, the image under the temperature in every slice view, °C on the
temperature volumes and a colour legend."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the scene tests need slicer-core")

from CryoAblationLogic.cli.simulate import simulate_with_frames
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics.simulation import simulate
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app
from CryoAblationLogic.scene.results import show_result, show_result_views
from CryoAblationLogic.scene.volumes import add_volume_node


def ball_result(grid: Grid, frames: dict[float, float] | None = None):
    """A result whose ice ball grows 1 mm per minute: 0 °C at radius 4 + t/60 mm."""
    x, y, z = np.meshgrid(*(grid.axis_mm(a) for a in range(3)), indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2)

    def field(t_s: float) -> np.ndarray:
        return (3.0 * (r - 4.0 - t_s / 60.0)).astype(np.float32)

    t = np.array([60.0, 120.0, 180.0])
    return SimpleNamespace(
        grid=grid, simulated_s=180.0, temperature_final=field(180.0), min_temperature=field(180.0),
        snapshots={90.0: field(90.0)}, sensors={"TC1": (t, np.array([10.0, 0.0, -10.0]))},
        ice_volume_history={0.0: (t, np.array([1.0, 2.0, 3.0]))},
        playback_frames={t_s: field(t_s) for t_s in (frames or {})},
    )  # fmt: skip


@pytest.fixture
def app():
    return create_scene_app()


def test_playback_has_a_frame_every_minute_and_no_stray_nodes(app):
    grid = Grid((-12.0, -12.0, -12.0), (1.0, 1.0, 1.0), (25, 25, 25))
    scene = app.scene
    parameters = P.get_parameter_node(scene)
    result = ball_result(grid, frames={60.0: 0, 120.0: 0})
    for _ in range(2):  # running again reuses the nodes
        nodes = show_result(scene, parameters, result)
    sequence = nodes.browser.GetMasterSequenceNode()
    times = [float(sequence.GetNthIndexValue(i)) for i in range(sequence.GetNumberOfDataNodes())]
    assert times == [60.0, 90.0, 120.0, 180.0]
    for name in ("Temperature over time", "Isotherms over time"):
        found = [node.GetClassName() for node in scene.GetNodesByName(name)]
        assert found == ["vtkMRMLSequenceNode"], name  # the sequence only: no orphan proxy beside it


def test_result_views_put_the_image_under_the_temperature_with_a_legend_in_celsius(app):
    grid = Grid((-12.0, -12.0, -12.0), (1.0, 1.0, 1.0), (25, 25, 25))
    scene = app.scene
    parameters = P.get_parameter_node(scene)
    image = add_volume_node(scene, "MR", np.zeros(grid.size, np.float32), grid)
    nodes = show_result(scene, parameters, ball_result(grid))
    legend = show_result_views(scene, image, nodes.temperature, chart=nodes.sensor_chart)
    composites = {n.GetLayoutName(): n for n in scene.GetNodesByClass("vtkMRMLSliceCompositeNode")}
    for view in ("Red", "Yellow", "Green"):
        assert composites[view].GetBackgroundVolumeID() == image.GetID()
        assert composites[view].GetForegroundVolumeID() == nodes.temperature.GetID()
        assert 0.0 < composites[view].GetForegroundOpacity() < 1.0
    assert legend.GetTitleText() == "Temperature (°C)" and legend.GetVisibility()
    assert legend.GetPrimaryDisplayNode() is nodes.temperature.GetDisplayNode()
    for volume in (nodes.temperature, nodes.min_temperature):
        assert volume.GetVoxelValueUnits().GetCodeValue() == "Cel"
        assert volume.GetVoxelValueQuantity().GetCodeMeaning() == "Temperature"
    plot_view = scene.GetFirstNodeByClass("vtkMRMLPlotViewNode")
    assert plot_view.GetPlotChartNodeID() == nodes.sensor_chart.GetID()
    assert show_result_views(scene, image, nodes.temperature) is legend  # one legend, however often


def test_frames_every_minute_leave_the_solver_numbers_unchanged():
    grid = Grid((-10.0, -10.0, -10.0), (2.0, 2.0, 2.0), (11, 11, 11))
    case = parse_case(
        {
            "format": "cryoablation-case/1", "grid": grid.to_dict(), "tissue": "gel",
            "sources": [{"type": "sphere", "center_mm": [0, 0, 0], "radius_mm": 3, "temperature_c": -100}],
            "protocol": [{"action": "off", "duration_s": 150}],
            "outputs": {"snapshot_times_s": [100]},
        }
    )  # fmt: skip
    plain = simulate(case)
    framed = simulate_with_frames(case, 60.0)
    assert np.array_equal(plain.temperature_final, framed.temperature_final)
    assert np.array_equal(plain.min_temperature, framed.min_temperature)
    assert np.array_equal(plain.snapshots[100.0], framed.snapshots[100.0])
    assert plain.steps == framed.steps
    assert sorted(framed.playback_frames) == [60.0, 120.0]
    # a frame lies between the fields before and after it (the ice grows: colder later)
    early, late = framed.playback_frames[60.0], framed.playback_frames[120.0]
    assert (late <= early + 1e-4).all() and (framed.temperature_final <= late + 1e-4).all()
