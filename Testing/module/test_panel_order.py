"""The panel when things are done in an unexpected order: a plan refused at Simulate, the scene
closed under a run or a connection, the plan changed before its report, a probe the protocol names.
Each is said clearly, loses nothing and leaves the panel usable.

The panel runs with Slicer's Qt layer stood in (conftest.py) on slicer-core's real scene; runs are
short (the 3-1-3 protocol on a 4 mm grid).
"""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("slicer", reason="the panel runs on slicer-core's real MRML")

import CryoAblationScenarios as scenarios

from CryoAblationLogic.core import protocols
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.scene import case_io


def shown() -> list[str]:
    import slicer

    return slicer.util.shown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def short_plan(widget, scene_app) -> None:
    widget.ui.loadPhantomButton.click()
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    widget.logic.session.follow_probes()
    widget.logic.session.apply_protocol_preset("3-1-3")
    widget.ui.gridSpacingSpinBox.value = 4.0
    widget.updateSections()


def simulate(widget, timeout_s: float = 300.0) -> None:
    """Simulate and pump the panel's timer until the run has ended (its first worker may compile)."""
    widget.ui.simulateButton.click()
    deadline = time.monotonic() + timeout_s
    while widget.logic.session.simulation_running() and time.monotonic() < deadline:
        widget.onTimer()
        time.sleep(0.05)
    widget.onTimer()
    assert not widget.logic.session.simulation_running(), "the run did not end"


def segment_row(ui, name: str) -> int:
    rows = {ui.segmentsTable.item(r, 0).text(): r for r in range(ui.segmentsTable.rowCount)}
    return rows[name]


def test_a_plan_refused_at_simulate_leaves_no_run_behind_and_keeps_the_last_one(widget, scene_app, tmp_path):
    ui = widget.ui
    short_plan(widget, scene_app)
    simulate(widget)
    last = widget.logic.session.last_run
    assert last is not None
    ui.addProbeButton.click()  # a new probe, its points not yet placed
    dialogs = len(shown())
    ui.simulateButton.click()
    assert any("needs two control points" in d for d in shown()[dialogs:])
    assert not widget.logic.session.simulation_running()
    assert ui.simulateButton.enabled and not ui.cancelButton.enabled
    for _ in range(3):
        widget.onTimer()
    assert widget.logic.session.last_run is last  # the good run is kept, not replaced by a failure
    assert "failed" not in ui.simulationStatusLabel.text


def test_a_protocol_step_longer_than_a_day_is_refused_in_the_table():
    row = protocols.StepRow("freeze", "", 1500.0, 100.0, "all")
    with pytest.raises(InputError, match=r"protocol step 1\.minutes: 1500 min is longer than a run"):
        protocols.row_to_step(row, 0)
    day = [protocols.StepRow("freeze", "", 800.0, 100.0, "all")] * 2  # each step fits, not both
    with pytest.raises(InputError, match=r"protocol: the steps last 1600 min in all"):
        protocols.rows_to_protocol(day)


def test_a_plan_without_a_target_is_refused_before_it_runs(widget, scene_app):
    ui = widget.ui
    short_plan(widget, scene_app)
    ui.segmentsTable.cellWidget(segment_row(ui, "Tumor"), 1).setCurrentText("")  # the tumour leaves the plan
    dialogs = len(shown())
    ui.simulateButton.click()
    assert any("no target segment" in d for d in shown()[dialogs:])
    assert not widget.logic.session.simulation_running() and ui.simulateButton.enabled


def test_closing_the_scene_under_a_run_leaves_simulate_usable(widget, scene_app):
    ui = widget.ui
    short_plan(widget, scene_app)
    ui.simulateButton.click()
    assert not ui.simulateButton.enabled
    scene_app.scene.Clear(0)  # StartClose/EndClose: the run is cancelled with the scene
    short_plan(widget, scene_app)
    assert ui.simulateButton.enabled and not ui.cancelButton.enabled
    simulate(widget)
    assert widget.logic.session.last_run is not None


def test_closing_the_scene_while_connected_resets_the_monitor_controls(widget):
    ui = widget.ui
    widget._parameterNode.scanner_port = free_port()
    widget._parameterNode.console_port = free_port()
    ui.connectButton.checked = True
    assert widget.logic.session.monitor.active() and not ui.consoleHostLineEdit.enabled
    widget.parent.isEntered = True  # the panel is shown: it follows the new scene at once
    scene = widget.logic.session.scene
    scene.Clear(0)
    assert not widget.logic.session.monitor.active()
    assert not ui.connectButton.checked and ui.connectButton.text == "Connect"
    assert ui.consoleHostLineEdit.enabled and ui.replayJournalButton.enabled


def test_a_report_after_a_segments_role_changed_is_refused(widget, scene_app, tmp_path):
    ui = widget.ui
    short_plan(widget, scene_app)
    simulate(widget)
    ui.segmentsTable.cellWidget(segment_row(ui, "Bowel"), 1).setCurrentText("")  # bowel out of the plan
    ui.outputDirectoryButton.directory = str(tmp_path)
    dialogs = len(shown())
    ui.exportReportButton.click()
    assert any("roles or materials changed since the last run" in d for d in shown()[dialogs:])
    assert not (tmp_path / "report" / "metrics.json").exists()


def test_a_probe_that_the_protocol_names_cannot_be_removed(widget, scene_app):
    ui = widget.ui
    short_plan(widget, scene_app)
    session = widget.logic.session
    protocol = session.settings().protocol
    session.set_protocol([{**protocol[0], "probes": ["P1"]}, *protocol[1:]])
    widget.updateSections()
    ui.probesTable.selectRow(0)
    dialogs = len(shown())
    ui.removeProbeButton.click()
    assert any("probe P1: protocol step 1 names it" in d for d in shown()[dialogs:])
    assert [row[0] for row in session.probe_rows()][:1] == ["P1"]  # still there


def test_refused_isotherm_levels_put_the_plans_levels_back_in_the_box(widget):
    ui = widget.ui
    before = ui.isothermLevelsLineEdit.text
    ui.isothermLevelsLineEdit.text = "abc"
    dialogs = len(shown())
    ui.isothermLevelsLineEdit.editingFinished.emit()
    assert shown()[dialogs:] and ui.isothermLevelsLineEdit.text == before


def test_a_grid_too_fine_for_this_computer_is_refused_before_painting(widget, scene_app, monkeypatch):
    short_plan(widget, scene_app)
    monkeypatch.setattr(case_io, "available_memory_bytes", lambda: 4 * 1024**3)  # a 4 GiB computer
    volume = widget.logic.session.parameters.get("InputVolume")
    with pytest.raises(InputError, match=r"grid_spacing_mm: 0\.2 mm over this image is [\d,]+ voxels"):
        case_io.image_grid(volume, 0.2)
    assert case_io.image_grid(volume, 2.0).spacing_mm == (2.0, 2.0, 2.0)


def test_a_probe_line_deleted_outside_the_panel_takes_its_models_and_leaves_the_table(widget, scene_app):
    """Deleted in the Data module (or with the Delete key in a view): its needle and active-zone
    models go with it, and once the table has followed, its rows are the remaining probes."""
    ui = widget.ui
    short_plan(widget, scene_app)
    scene = scene_app.scene
    scene.RemoveNode(scene.GetFirstNodeByName("P1"))
    widget.onTimer()  # the panel's next timer slot
    assert (
        scene.GetFirstNodeByName("P1 needle") is None and scene.GetFirstNodeByName("P1 active zone") is None
    )
    time.sleep(0.4)  # the table follows once probe changes have settled
    widget.onTimer()
    assert [ui.probesTable.item(r, 0).text() for r in range(ui.probesTable.rowCount)] == ["P2", "P3"]
    ui.probesTable.selectRow(0)
    ui.removeProbeButton.click()
    assert scene.GetFirstNodeByName("P2") is None and scene.GetFirstNodeByName("P3") is not None


def test_moving_the_segmentations_transform_moves_the_warnings_and_the_region(widget, scene_app):
    """Registering the segmentation in the Transforms module changes no modification time the
    panel's tissue-map cache keyed on: the probe warnings must follow the moved anatomy, and the
    simulated region its moved target."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    from CryoAblationLogic.scene.inputs import segment_infos, segment_ras_bounds

    ui = widget.ui
    short_plan(widget, scene_app)
    parameters = widget.logic.session.parameters
    segmentation = parameters.get("InputSegmentation")
    registration = scene_app.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    segmentation.SetAndObserveTransformNodeID(registration.GetID())
    widget.updateSections()
    before = ui.probeWarningsLabel.text
    (target,) = [i.segment_id for i in segment_infos(segmentation) if i.role == "target"]
    bounds_before = segment_ras_bounds(segmentation, target)
    shift = vtkMatrix4x4()
    shift.SetElement(0, 3, 20.0)  # 20 mm to the patient's left
    registration.SetMatrixTransformToParent(shift)
    widget.updateSections()
    assert ui.probeWarningsLabel.text != before
    widget.logic.session._labels_cache.clear()  # what the panel shows equals a fresh painting
    after = ui.probeWarningsLabel.text
    widget.updateSections()
    assert ui.probeWarningsLabel.text == after
    moved = segment_ras_bounds(segmentation, target) - bounds_before
    assert moved[:, 0] == pytest.approx([20.0, 20.0], abs=1e-6) and moved[:, 1:] == pytest.approx(
        0.0, abs=1e-6
    )


def test_choosing_another_segmentation_is_followed_by_every_section(widget, scene_app):
    from test_protection_panel import add_ball_segment

    ui = widget.ui
    short_plan(widget, scene_app)
    other = scene_app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Anatomy v2")
    other.CreateDefaultDisplayNodes()
    add_ball_segment(other, "Liver", (-22.0, -6.0, 4.0), 30.0)
    ui.segmentationSelector.emit("currentNodeChanged", other)
    assert widget.logic.session.parameters.get("InputSegmentation") is other
    offered = [ui.protectionSegmentComboBox.itemText(i) for i in range(ui.protectionSegmentComboBox.count)]
    assert offered == ["Liver"]


def test_closing_the_scene_clears_the_last_runs_status(widget, scene_app):
    ui = widget.ui
    short_plan(widget, scene_app)
    simulate(widget)
    assert ui.simulationStatusLabel.text.startswith("Simulated")
    scene_app.scene.Clear(0)
    assert ui.simulationStatusLabel.text == "" and ui.simulationProgressBar.value == 0


def test_showing_and_reloading_the_panel_leaves_one_isotherm_level_table(widget, scene_app):
    """Reading the levels makes no table; loading the phantom keeps the plan's levels table."""
    scene = scene_app.scene

    def level_tables() -> int:
        tables = scene.GetNodesByClass("vtkMRMLColorTableNode")
        return sum(
            tables.GetItemAsObject(i).GetAttribute("CryoAblation.Role") == "IsothermLevels"
            for i in range(tables.GetNumberOfItems())
        )

    widget.updateSections()
    assert level_tables() == 0
    widget.ui.loadPhantomButton.click()
    widget.ui.loadPhantomButton.click()
    assert level_tables() == 1
