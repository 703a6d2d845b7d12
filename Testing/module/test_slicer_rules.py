"""What real Slicer enforces (issue 16), each checked here with a test that failed before the fix:
the wrapper's GUI binding rules, the release check, the self-test offline in testing mode, slot
order, no modal dialogs from the timer, placed probes by *defined* points, no stray colour tables,
scene import and close."""

from __future__ import annotations

import ast
import sys
import time
from pathlib import Path
from typing import Annotated

import pytest

pytest.importorskip("slicer", reason="the module runs on slicer-core's real MRML")

import CryoAblationScenarios as scenarios

from CryoAblationLogic.io import phantom
from CryoAblationLogic.scene import case_io, probes
from CryoAblationLogic.scene import parameters as P

MODULE_FILE = Path(__file__).resolve().parents[2] / "CryoAblation" / "CryoAblation.py"


def _wrapper_module():
    return sys.modules["slicer.parameterNodeWrapper"]


def _annotations_of(wrapper_class) -> dict:
    wrapper = _wrapper_module()
    annotations = {}
    for name, (base, bounds, _default) in wrapper_class.allParameters.items():
        annotations[name] = (
            Annotated[base, wrapper.WithinRange(bounds.minimum, bounds.maximum)] if bounds else base
        )
    return annotations


def test_a_slider_bound_to_an_unbounded_float_is_refused_as_slicer_refuses_it(
    module, widget, ui_file, monkeypatch
):
    """Slicer 5.10's connectGui raised on the .ui's timeSlider bound to a plain float; the panel now
    sets up through the (enforcing) stand-in, and the old binding fails there as in Slicer."""
    assert widget._parameterNodeGuiTag is not None  # setup() connected the GUI
    node = widget.logic.session.parameters.node
    slider = ui_file.widgets["timeSlider"]
    monkeypatch.setitem(ui_file.widgets, "timeSlider", type(slider)("timeSlider", slider.cls, "displayTimeS"))
    wrapper = _wrapper_module()
    old = _annotations_of(module.CryoAblationParameterNode) | {"displayTimeS": float}
    Old = wrapper.parameterNodeWrapper(type("Old", (), {"__annotations__": old, "displayTimeS": 0.0}))
    with pytest.raises(RuntimeError, match="unbounded"):
        Old(node).connectGui(widget.ui)
    bounded = old | {"displayTimeS": Annotated[float, wrapper.WithinRange(0.0, 86400.0)]}
    Bounded = wrapper.parameterNodeWrapper(
        type("Bounded", (), {"__annotations__": bounded, "displayTimeS": 0.0})
    )
    Bounded(node).disconnectGui(Bounded(node).connectGui(widget.ui))


def test_the_wrapper_stand_in_refuses_what_slicer_cannot_serialize(module):
    wrapper = _wrapper_module()
    with pytest.raises(Exception, match="Unable to create serializer"):
        wrapper.parameterNodeWrapper(type("T", (), {"__annotations__": {"spacing": float | None}}))
    with pytest.raises(Exception, match="Unable to create serializer"):
        wrapper.parameterNodeWrapper(type("T", (), {"__annotations__": {"protocol": list}}))


def test_the_module_file_parses_as_python_39_and_older_slicer_gets_a_message():
    """Slicer 5.8 runs Python 3.9: the file must parse there (no SyntaxError) and stop at the
    release check with a message naming the supported releases (no TypeError further down)."""
    source = MODULE_FILE.read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 9))
    header = source[: source.index("import logging")]
    exec(compile(header, str(MODULE_FILE), "exec"), {"__name__": "CryoAblation"})  # this Python passes
    slicer_58 = type(sys)("sys")
    slicer_58.version_info = (3, 9, 10, "final", 0)
    as_on_slicer_58 = header.replace("import sys\n", "", 1)
    with pytest.raises(ImportError, match=r"3D Slicer 5\.10 or later.*Python 3\.9"):
        exec(
            compile(as_on_slicer_58, str(MODULE_FILE), "exec"), {"__name__": "CryoAblation", "sys": slicer_58}
        )


def test_in_testing_mode_nothing_is_asked_or_installed(no_numba, module, questions, monkeypatch):
    import slicer

    monkeypatch.setattr(slicer.app, "testingEnabled", lambda: True)
    installs: list = []
    monkeypatch.setattr(slicer.util, "pip_install", installs.append, raising=False)
    logic = module.CryoAblationLogic()
    assert not logic.ensureNumba()
    assert questions.asked == [] and installs == []
    text = logic.numbaStatusText()
    assert "testing mode" in text and "slicer.util.pip_install('numba')" in text  # what to install, and how


def test_a_new_segmentation_shows_in_the_table_though_the_wrapper_stores_it_later(widget, scene_app):
    """PythonQt calls slots in connection order: the section's slot runs before the wrapper's, so
    it must use the signal's node, not the parameter node's."""
    ui = widget.ui
    ui.loadPhantomButton.click()
    other = scene_app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Other")
    other.GetSegmentation().AddEmptySegment("seg-a", "Lesion A")
    ui.segmentationSelector.emit("currentNodeChanged", other)
    assert ui.segmentsTable.rowCount == 1 and ui.segmentsTable.item(0, 0).text() == "Lesion A"
    assert widget._parameterNode.InputSegmentation is other  # the wrapper's slot ran after


def test_the_timer_reports_in_the_panel_and_never_opens_a_dialog(widget, module, scene_app):
    """A segmentation without roles and a placed probe: the probe checks fail on every timer tick;
    that goes to the panel's warning line, not to a stack of modal dialogs."""
    import slicer

    ui = widget.ui
    ui.loadPhantomButton.click()
    session = widget.logic.session
    segmentation = session.parameters.get(P.INPUT_SEGMENTATION)
    for segment_id, *_ in session.segment_rows(segmentation):
        session.set_segment_role(segmentation, segment_id, "", "")
    scenarios.place_probes(scene_app.scene, session.parameters)
    dialogs_before = len(slicer.util.shown)
    for _tick in range(3):
        session.on_probes_changed()
        time.sleep(0.35)
        widget.onTimer()
    assert len(slicer.util.shown) == dialogs_before
    assert (
        ui.probeWarningsLabel.text.startswith("Cannot check the probes")
        and "role" in ui.probeWarningsLabel.text
    )


def test_a_probe_is_placed_when_both_points_are_defined_not_while_the_entry_is_previewed(logic):
    import slicer

    logic.session.load_sample_phantom()
    node = logic.startProbePlacement(logic.session.probe_model_names()[0])
    plan = phantom.demo_probe_plan()[0]
    node.AddControlPointWorld(plan["tip_mm"])
    # the point under the mouse while the user places the entry: a control point in preview state
    # (Markups adds it as one; here it is added and made a preview in one modification)
    was_modifying = node.StartModify()
    entry = node.AddControlPointWorld(plan["entry_mm"])
    node.SetNthControlPointPosition(entry, *plan["entry_mm"], slicer.vtkMRMLMarkupsNode.PositionPreview)
    node.EndModify(was_modifying)
    assert node.GetNumberOfControlPoints() == 2 and not probes.is_placed(node)
    assert logic.session.probe_rows()[0][2] == "placing…"
    assert node.GetNodeReference(probes.NEEDLE_REFERENCE) is None
    node.SetNthControlPointPosition(entry, *plan["entry_mm"])  # the click: defined
    assert probes.is_placed(node) and logic.session.probe_rows()[0][2] != "placing…"


def test_building_the_case_leaves_no_colour_table_behind(logic, scene_app):
    plan = logic.session.load_sample_phantom()

    def color_tables():
        nodes = scene_app.scene.GetNodesByClass("vtkMRMLColorTableNode")
        return sorted(nodes.GetItemAsObject(i).GetName() for i in range(nodes.GetNumberOfItems()))

    before = color_tables()
    for _ in range(2):
        case_io.build_case(scene_app.scene, plan, spacing_mm=4.0)
    assert color_tables() == before
    assert not any(name.endswith("_ColorTable") for name in before)


def test_scene_import_follows_the_plan_only_while_the_module_is_shown(widget, scene_app, monkeypatch):
    import slicer

    connected: list = []
    monkeypatch.setattr(widget, "setParameterNode", connected.append)
    widget.parent.isEntered = False
    scene_app.scene.InvokeEvent(slicer.vtkMRMLScene.EndImportEvent)
    assert connected == []
    widget.parent.isEntered = True
    scene_app.scene.InvokeEvent(slicer.vtkMRMLScene.EndImportEvent)
    assert len(connected) == 1


def test_stopping_live_mode_while_the_scene_closes_writes_nothing_into_it(logic, scene_app, tmp_path):
    import socket

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    plan = logic.session.load_sample_phantom()
    scenarios.place_probes(scene_app.scene, plan)
    logic.session.set_grid_spacing_mm(4.0)
    monitor = logic.session.monitor
    monitor.start_live("127.0.0.1", free_port(), "127.0.0.1", free_port(), str(tmp_path / "closing.jsonl"))
    assert monitor.live()
    logic.session.stop_background_work(scene_closing=True)
    assert not monitor.active()
    assert plan.get(P.TEMPERATURE_VOLUME) is None and plan.get(P.ISOTHERM_SEGMENTATION) is None


def test_readme_and_help_state_the_supported_releases_and_how_to_install_today(module):
    import types

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    install = readme[readme.index("## Installing into Slicer") : readme.index("## Using the module")]
    assert "3D Slicer 5.10 and later" in install and "not in the Extensions Manager yet" in install
    assert "search for **CryoAblation**" not in readme  # no claim that it is listed
    assert "Additional module paths" in install and "Extensions Index" in install
    parent = types.SimpleNamespace()
    module.CryoAblation(parent)
    assert module.SUPPORTED_SLICER in parent.helpText and "testing mode" in parent.helpText


def test_the_run_and_the_preview_compute_in_worker_processes_never_in_threads_here(logic):
    """numba's workqueue threading layer aborts when parallel kernels run concurrently from two
    threads of one process; the module's full run and preview each have their own process."""
    import os
    import threading

    session = logic.session
    session.load_sample_phantom(with_probes=True)
    session.set_grid_spacing_mm(4.0)
    session.set_preview_enabled(True)
    session.start_simulation()
    solver_threads = [t.name for t in threading.enumerate() if t.name.startswith("CryoAblation")]
    assert solver_threads == []
    pids = {purpose: solver._process.pid for purpose, solver in session._solvers.items()}
    assert (
        set(pids) == {"run", "preview"} and os.getpid() not in pids.values() and len(set(pids.values())) == 2
    )
    session.cancel_simulation()
    deadline = time.monotonic() + 120.0
    while session.poll_simulation() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
