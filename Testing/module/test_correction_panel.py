"""The Monitor section's correction option, driven as a user would (the .ui under PySide6, the
scene real): stored in the parameter node and restored by a scene reload; a bad ensemble size or
a plan without a protocol refused with its field named; live mode with the option on shows the
ensemble's preparation, and the option off leaves the nodes as they are."""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("slicer", reason="the panel runs on slicer-core's real MRML")

import CryoAblationScenarios as scenarios

from CryoAblationLogic.analysis.ice_correction import CorrectionSettings
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import load_scene_mrb, save_scene_mrb

SHORT_PROTOCOL = [
    {"action": "freeze", "duration_s": 120, "probes": "all", "flow_percent": 100},
    {"action": "thaw", "mode": "passive", "duration_s": 60, "probes": "all"},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_option_is_off_by_default_with_the_clis_ensemble_size(widget, scene_app):
    settings = P.get_parameter_node(scene_app.scene).settings()
    assert settings.correct_live is False
    assert settings.ensemble_members == CorrectionSettings.members  # the CLI's --ensemble-members default
    assert not widget.ui.correctLiveCheckBox.checked
    assert widget.ui.ensembleMembersSpinBox.value == CorrectionSettings.members


def test_the_option_round_trips_through_the_parameter_node_and_a_scene_reload(widget, scene_app, tmp_path):
    ui = widget.ui
    ui.correctLiveCheckBox.checked = True
    ui.ensembleMembersSpinBox.value = 16
    settings = P.get_parameter_node(scene_app.scene).settings()
    assert (settings.correct_live, settings.ensemble_members) == (True, 16)
    bundle = save_scene_mrb(scene_app.scene, tmp_path / "plan.mrb")
    load_scene_mrb(scene_app.scene, bundle, clear=True)
    reloaded = P.get_parameter_node(scene_app.scene, create=False).settings()
    assert (reloaded.correct_live, reloaded.ensemble_members) == (True, 16)
    widget.initializeParameterNode()
    assert ui.correctLiveCheckBox.checked and ui.ensembleMembersSpinBox.value == 16


def _plan_for_live(widget, scene_app, tmp_path):
    ui = widget.ui
    ui.loadPhantomButton.click()
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    widget.logic.session.set_grid_spacing_mm(4.0)
    widget.logic.session.parameters.update_settings(protocol=SHORT_PROTOCOL, snapshot_times_s=[])
    parameters = widget._parameterNode
    parameters.scanner_port = free_port()
    parameters.console_port = free_port()  # nobody there: the client keeps trying, which is fine
    parameters.journal_path = str(tmp_path / "corrected-panel.jsonl")


def test_a_bad_ensemble_size_is_refused_naming_the_field(widget, scene_app, module, tmp_path):
    import slicer

    _plan_for_live(widget, scene_app, tmp_path)
    node = P.get_parameter_node(scene_app.scene)
    widget.ui.correctLiveCheckBox.checked = True
    node.node.SetParameter("ensemble_members", "4")  # a scene edited by hand: outside the spin box's range
    widget.ui.liveModeCheckBox.checked = True
    assert not widget.logic.session.monitor.live() and not widget.ui.liveModeCheckBox.checked
    shown_text = " ".join(str(m) for m in slicer.util.shown)
    assert "ensemble_members: 4 is outside 8…512" in shown_text
    assert node.node.GetParameter("correct_live") == "True"  # the option itself is kept
    assert not (tmp_path / "corrected-panel.jsonl").exists()


def test_live_mode_with_the_option_shows_the_preparation_and_off_stops_updating(widget, scene_app, tmp_path):
    ui = widget.ui
    _plan_for_live(widget, scene_app, tmp_path)
    ui.correctLiveCheckBox.checked = True
    ui.ensembleMembersSpinBox.value = 8
    user_table = scene_app.scene.AddNewNodeByClass("vtkMRMLTableNode", "My notes")
    monitor = widget.logic.session.monitor
    try:
        ui.liveModeCheckBox.checked = True
        assert monitor.live()
        deadline = time.monotonic() + 300.0  # a worker without a numba cache compiles the kernels first
        seen = set()
        while time.monotonic() < deadline and monitor.correction().phase != "ready":
            widget.onTimer()
            seen.add(ui.correctionStatusLabel.text.split(",")[0])
            time.sleep(0.05)
        assert monitor.correction().phase == "ready", monitor.correction()
        widget.onTimer()
        assert "Correction: preparing the ensemble" in seen
        assert ui.correctionStatusLabel.text.startswith("Correction: ensemble of 8 ready")
        ui.correctLiveCheckBox.checked = False
        assert monitor.corrected_nodes() is not None
        assert widget.logic.session.monitor._live_monitor.show_correction is False
        widget.onTimer()
        assert "option is off" in ui.correctionStatusLabel.text
    finally:
        ui.liveModeCheckBox.checked = False
    assert scene_app.scene.GetNodeByID(user_table.GetID()) is user_table  # nothing the user made is removed
