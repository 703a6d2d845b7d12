"""The module panel (``CryoAblationWidget``) driven as a user would, here.

Its ``.ui`` is loaded with PySide6 and reached the way PythonQt reaches Qt in Slicer (properties as
attributes, signals by signature); Slicer's Qt layer is stood in (conftest.py); the scene and the
logic are real. What a user does is done through the widgets: clicks are signal emissions or the
slot the button is connected to, edits set the widget's value.
"""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("slicer", reason="the panel runs on slicer-core's real MRML")

import CryoAblationScenarios as scenarios

from CryoAblationLogic.core.about import RESEARCH_USE_NOTE
from CryoAblationLogic.io import phantom
from CryoAblationLogic.scene import parameters as P


def shown(module):
    import slicer

    return slicer.util.shown


def test_setup_shows_the_research_note_and_fills_the_choices(widget):
    ui = widget.ui
    assert ui.researchUseLabel.text == RESEARCH_USE_NOTE
    assert ui.probeModelComboBox.count > 0
    assert [ui.protocolPresetComboBox.itemText(i) for i in range(ui.protocolPresetComboBox.count)] == [
        "10-8-10",
        "10-5-10",
    ]
    assert ui.numbaStatusLabel.text == ""


def test_load_phantom_then_edit_a_segment_role_in_the_table(widget):
    ui = widget.ui
    ui.loadPhantomButton.click()
    assert ui.segmentsTable.rowCount == len(phantom.LABELS)
    rows = {ui.segmentsTable.item(r, 0).text(): r for r in range(ui.segmentsTable.rowCount)}
    role_box = ui.segmentsTable.cellWidget(rows["Bowel"], 1)
    material_box = ui.segmentsTable.cellWidget(rows["Bowel"], 2)
    assert (role_box.currentText, material_box.currentText) == ("critical", "muscle")
    role_box.setCurrentText("organ")  # the user picks another role
    segmentation = widget.logic.session.parameters.get(P.INPUT_SEGMENTATION)
    roles = {row[1]: row[2] for row in widget.logic.session.segment_rows(segmentation)}
    assert roles["Bowel"] == "organ"


def test_add_a_probe_by_clicks_and_see_it_in_the_table(widget, scene_app):
    ui = widget.ui
    ui.loadPhantomButton.click()
    ui.addProbeButton.click()
    node = widget.logic.session.probe_nodes()[0]
    plan = phantom.demo_probe_plan()[0]
    node.AddControlPointWorld(plan["tip_mm"])
    node.AddControlPointWorld(plan["entry_mm"])
    time.sleep(0.35)  # the table follows once the probe has been still a moment
    widget.onTimer()
    assert ui.probesTable.rowCount == 1
    assert ui.probesTable.item(0, 0).text() == "P1"
    assert ui.probesTable.cellWidget(0, 1).currentText == ui.probeModelComboBox.currentText
    ui.probesTable.selectRow(0)
    ui.removeProbeButton.click()
    assert ui.probesTable.rowCount == 0 and widget.logic.session.probe_nodes() == []


def test_protocol_preset_and_a_cell_edit(widget, module):
    ui = widget.ui
    ui.loadPhantomButton.click()
    ui.protocolPresetComboBox.setCurrentText("10-5-10")
    ui.applyPresetButton.click()
    assert ui.protocolTable.rowCount == 3 and ui.protocolTable.item(1, 2).text() == "5"
    ui.protocolTable.item(0, 2).setText("7")  # the user types 7 minutes
    assert widget.logic.session.parameters.settings().protocol[0]["duration_s"] == 420.0
    ui.protocolTable.item(0, 0).setText("melt")  # refused: the message says why, the table recovers
    assert "protocol step 1.action" in shown(module)[-1]
    assert ui.protocolTable.item(0, 0).text() == "freeze"


def run_to_the_end(widget, timeout_s=600.0):
    # a hang guard: the first worker of a test run compiles the solver into a fresh numba cache
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not widget.ui.simulateButton.enabled:
        widget.onTimer()
        time.sleep(0.05)
    assert widget.ui.simulateButton.enabled, "the run did not end"


def test_simulate_play_back_plot_and_export_from_the_panel(widget, module, scene_app, tmp_path):
    import slicer

    ui = widget.ui
    ui.loadPhantomButton.click()
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    ui.protocolPresetComboBox.setCurrentText("10-5-10")
    widget.logic.session.apply_protocol_preset("3-1-3")  # a short run (the presets list holds the usual two)
    ui.gridSpacingSpinBox.value = 4.0
    assert widget.logic.session.grid_spacing_mm() == 4.0
    ui.isothermLevelsLineEdit.text = "0, -40"
    ui.isothermLevelsLineEdit.editingFinished.emit()
    ui.simulateButton.click()
    assert not ui.simulateButton.enabled and ui.cancelButton.enabled
    run_to_the_end(widget)
    assert ui.simulationStatusLabel.text.startswith("Simulated 420 s. Target coverage 0 °C:")
    assert ui.simulationProgressBar.value == 100
    assert (ui.timeSlider.minimum, ui.timeSlider.maximum) == (60.0, 420.0)
    ui.timeSlider.emit("valueChanged", 240.0)
    assert ui.metricsTableView._table["node"].GetNumberOfRows() == 2  # two isotherm levels
    ui.showIceVolumePlotButton.click()
    assert slicer.modules.plots.shown[-1] is widget.logic.session.parameters.get(P.ICE_VOLUME_CHART)
    ui.outputDirectoryButton.directory = str(tmp_path)
    ui.exportCaseButton.click()
    ui.exportReportButton.click()
    assert (tmp_path / "CryoAblation.cryo.json").is_file() and (tmp_path / "report" / "report.html").is_file()
    assert any("Report written" in text for text in shown(module))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def freeze_and_read_until_shown(widget, console, freeze_text: str, reading_c: str, timeout_s: float) -> None:
    """Once the console link is up, send a freeze event and a probe reading; run the panel's timer
    until the readings table shows a row (or the time runs out)."""
    from CryoAblationLogic.igtl.messages import StringMessage

    deadline = time.monotonic() + timeout_s
    sent = False
    while time.monotonic() < deadline and widget.ui.sensorsTable.rowCount == 0:
        if not sent and console.connected:
            console.send(StringMessage(device_name="CryoState", text=freeze_text))
            console.send(StringMessage(device_name="ProbeTemps", text=reading_c))
            sent = True
        widget.onTimer()
        time.sleep(0.02)


def test_connect_see_readings_disconnect_and_replay(widget, tmp_path):
    from CryoAblationLogic.igtl.transport import Server

    ui = widget.ui
    console_port = free_port()
    console = Server(console_port, "127.0.0.1")
    console.start()
    parameters = widget._parameterNode
    parameters.scanner_port = free_port()
    parameters.console_port = console_port
    parameters.journal_path = str(tmp_path / "case-7.jsonl")
    try:
        ui.connectButton.checked = True
        assert ui.connectButton.text == "Disconnect" and not ui.consoleHostLineEdit.enabled
        freeze_and_read_until_shown(widget, console, "FREEZE 1 90%", "-64.5", timeout_s=10.0)
        assert ui.sensorsTable.item(0, 0).text() == "Probe 1 (freeze 90%)"
        assert ui.sensorsTable.item(0, 1).text() == "-64.5"
        assert "#2ca02c" in ui.consoleStatusLabel.styleSheet  # green: connected
        assert "#f0a020" in ui.scannerStatusLabel.styleSheet  # orange: waiting for the bridge
    finally:
        ui.connectButton.checked = False
        console.stop()
    assert ui.connectButton.text == "Connect" and "#9e9e9e" in ui.consoleStatusLabel.styleSheet
    ui.replayJournalButton.click()
    assert ui.monitorStatusLabel.text.startswith("Replayed 2 messages.")
    assert ui.sensorsTable.item(0, 1).text() == "-64.5"


def test_declining_numba_leaves_the_panel_usable_and_says_why(no_numba, widget, questions, scene_app):
    ui = widget.ui
    questions.answer = False
    ui.loadPhantomButton.click()
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    ui.simulateButton.click()  # asks, the user declines
    assert questions.asked and "numba" in questions.asked[0]
    assert ui.numbaStatusLabel.text.startswith("numba was not installed")
    assert ui.simulateButton.enabled and not ui.cancelButton.enabled
    ui.previewCheckBox.checked = True
    assert not ui.previewCheckBox.checked  # the preview cannot run: it unticks itself
    ui.protocolPresetComboBox.setCurrentText("10-5-10")
    ui.applyPresetButton.click()
    assert ui.protocolTable.rowCount == 3  # planning goes on


def test_live_mode_from_the_panel(widget, scene_app, tmp_path):
    from CryoAblationLogic.igtl.transport import Server

    ui = widget.ui
    ui.loadPhantomButton.click()
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    widget.logic.session.set_grid_spacing_mm(4.0)
    console_port = free_port()
    console = Server(console_port, "127.0.0.1")
    console.start()
    parameters = widget._parameterNode
    parameters.scanner_port = free_port()
    parameters.console_port = console_port
    parameters.journal_path = ""
    try:
        ui.liveModeCheckBox.checked = True  # refused without a journal: the box unticks itself
        assert not ui.liveModeCheckBox.checked and not widget.logic.session.monitor.live()
        parameters.journal_path = str(tmp_path / "live-panel.jsonl")
        ui.liveModeCheckBox.checked = True
        assert widget.logic.session.monitor.live()
        assert not ui.connectButton.enabled and not ui.replayJournalButton.enabled
        freeze_and_read_until_shown(widget, console, "FREEZE 1 100%", "-20.0", timeout_s=30.0)
        assert "predicted" in ui.sensorsTable.item(0, 1).text()
        assert "#2ca02c" in ui.consoleStatusLabel.styleSheet  # the light follows live mode's events
        table = (
            widget.logic.session.monitor.live_scene_nodes().sensor_table
        )  # the timer's step fills the scene too
        assert table is not None and table.GetName() == "Live sensor readings"
    finally:
        ui.liveModeCheckBox.checked = False
        console.stop()
    assert not widget.logic.session.monitor.live() and ui.connectButton.enabled
    assert widget.logic.session.parameters.get(P.TEMPERATURE_VOLUME) is not None
    shown_rows = [ui.sensorsTable.item(r, 1).text() for r in range(ui.sensorsTable.rowCount)]

    # Replaying live mode's journal runs live mode again in a solver process: the panel stays
    # responsive, the links cannot be started meanwhile, and the same readings come back.
    ui.replayJournalButton.click()
    assert ui.monitorStatusLabel.text.startswith("Replaying the journal")
    assert not ui.connectButton.enabled and not ui.liveModeCheckBox.enabled
    assert not ui.replayJournalButton.enabled
    deadline = time.monotonic() + 300.0
    while widget.logic.session.monitor.replaying() and time.monotonic() < deadline:
        widget.onTimer()
        time.sleep(0.05)
    widget.onTimer()
    assert ui.monitorStatusLabel.text.startswith("Replayed ")
    assert ui.connectButton.enabled and ui.liveModeCheckBox.enabled and ui.replayJournalButton.enabled
    assert [ui.sensorsTable.item(r, 1).text() for r in range(ui.sensorsTable.rowCount)] == shown_rows
