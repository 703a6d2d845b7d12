"""Slicer's logic class of the module (``CryoAblationLogic`` in ``CryoAblation.py``), run here.

The module file imports Slicer's Qt layer, which does not exist outside Slicer. Only that layer is
replaced, by small stand-ins for what the logic class takes from it (the scripted-module base
classes, ``tr``, ``slicer.util``'s dialogs, ``slicer.app``'s folders, ``slicer.modules``' logics);
the scene, the node classes and the module logics are real (``slicer-core``, set up the way Slicer
sets them up). The stand-ins are in conftest.py; the widget runs in test_module_widget.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the module logic runs on slicer-core's real MRML")

import CryoAblationScenarios as scenarios  # noqa: E402

from CryoAblationLogic.core.errors import InputError  # noqa: E402
from CryoAblationLogic.io import phantom  # noqa: E402
from CryoAblationLogic.scene import parameters as P  # noqa: E402


def test_one_parameter_scheme_the_wrapper_and_the_plan_settings_share_each_parameter(module, logic):
    """Slicer's wrapper class is built from the plan settings: the same parameters, the same
    encoding, so a value written on one side is read on the other, and the wrapper keeps the input
    references the Qt-free side set (it would reset a node field it does not find)."""
    plan = logic.session.load_sample_phantom()
    wrapped = logic.getParameterNode()
    assert wrapped.parameterNode is plan.node
    assert set(module.CryoAblationParameterNode.allParameters) == {
        P.INPUT_VOLUME,
        P.INPUT_SEGMENTATION,
        *P.wrapper_fields(),
    }
    assert wrapped.InputSegmentation is plan.get(P.INPUT_SEGMENTATION) is not None
    assert wrapped.InputVolume is plan.get(P.INPUT_VOLUME) is not None
    plan.update_settings(
        scanner_port=20001, preview_enabled=True, journal_path="/tmp/p.jsonl", preview_spacing_mm=3.0
    )
    assert (
        wrapped.scanner_port,
        wrapped.preview_enabled,
        wrapped.journal_path,
        wrapped.preview_spacing_mm,
    ) == (
        20001,
        True,
        "/tmp/p.jsonl",
        3.0,
    )
    wrapped.console_port = 20002
    wrapped.playback_interval_s = 30.0
    settings = plan.settings()
    assert (settings.console_port, settings.playback_interval_s) == (20002, 30.0)
    with pytest.raises(ValueError, match="within"):
        wrapped.console_port = 70000  # a port is 1…65535, on both sides
    plan.node.SetParameter("scanner_port", "70000")
    with pytest.raises(InputError, match="scanner_port"):
        plan.settings()


def test_inputs_segments_roles_and_materials(logic):
    plan = logic.session.load_sample_phantom()
    segmentation = plan.get(P.INPUT_SEGMENTATION)
    rows = logic.session.segment_rows(segmentation)
    assert {(name, role, material) for _id, name, role, material in rows} == {
        (name, role, material) for name, material, role in phantom.LABELS.values()
    }
    assert "fat" in logic.session.material_names() and logic.session.role_names() == [
        "organ",
        "critical",
        "target",
        "vessel",
    ]
    bowel = next(segment_id for segment_id, name, *_ in rows if name == "Bowel")
    logic.session.set_segment_role(segmentation, bowel, "", "")  # leave it out of the plan
    assert next(r for r in logic.session.segment_rows(segmentation) if r[0] == bowel)[2:] == ("", "")
    logic.session.set_segment_role(segmentation, bowel, "critical", "muscle")
    assert next(r for r in logic.session.segment_rows(segmentation) if r[0] == bowel)[2:] == (
        "critical",
        "muscle",
    )
    with pytest.raises(InputError, match="role"):
        logic.session.set_segment_role(segmentation, bowel, "nerve", "muscle")


def test_probe_placement_by_two_clicks_tip_first(logic, scene_app):
    logic.session.load_sample_phantom()
    model = logic.session.probe_model_names()[0]
    node = logic.startProbePlacement(model)
    selection = scene_app.app_logic.GetSelectionNode()
    assert selection.GetActivePlaceNodeID() == node.GetID()
    assert (
        scene_app.app_logic.GetInteractionNode().GetCurrentInteractionMode()
        == slicer.vtkMRMLInteractionNode.Place
    )
    assert logic.session.probe_rows() == [("P1", model, "placing…", "")]
    tip, entry = phantom.demo_probe_plan()[0]["tip_mm"], phantom.demo_probe_plan()[0]["entry_mm"]
    node.AddControlPointWorld(tip)  # the user's first click: the tip
    node.AddControlPointWorld(entry)  # the second: the entry
    (name, shown_model, tip_text, length_text) = logic.session.probe_rows()[0]
    assert (name, shown_model) == ("P1", model)
    np.testing.assert_allclose([float(v) for v in tip_text.split(",")], tip, atol=0.06)
    assert float(length_text) == pytest.approx(float(np.linalg.norm(np.subtract(entry, tip))), abs=0.06)
    assert node.GetNodeReference("CryoAblation.Needle") is not None  # the needle follows the line
    second = logic.startProbePlacement(model)
    assert second.GetName() == "P2"
    logic.session.remove_probe(1)
    assert [row[0] for row in logic.session.probe_rows()] == ["P1"]
    with pytest.raises(ValueError, match="Select the probe"):
        logic.session.remove_probe(5)
    with pytest.raises(ValueError, match="catalog"):
        logic.startProbePlacement("no-such-probe")


def test_probe_warnings_name_a_probe_through_the_bowel(logic, scene_app):
    plan = logic.session.load_sample_phantom()
    model = logic.session.probe_model_names()[0]
    scenarios.place_probes(
        scene_app.scene,
        plan,
        [{"name": "PB", "model": model, "tip_mm": [-42.0, 24.0, 4.0], "entry_mm": [-42.0, -56.0, 4.0]}],
    )
    warnings = logic.session.probe_warnings()
    assert any("PB" in w and "Bowel" in w for w in warnings), warnings


def test_protocol_presets_and_table_edits(logic):
    logic.session.load_sample_phantom()
    logic.session.apply_protocol_preset("10-5-10")
    assert logic.session.protocol_rows() == [
        ["freeze", "", "10", "100", "all"],
        ["thaw", "passive", "5", "", "all"],
        ["freeze", "", "10", "100", "all"],
    ]
    # the phantom asked for a snapshot at 1680 s; the shorter protocol drops it
    assert logic.session.parameters.settings().snapshot_times_s == [600.0]
    logic.session.set_protocol_rows([["freeze", "", "4", "80", "all"], ["thaw", "active", "1.5", "", "all"]])
    steps = logic.session.parameters.settings().protocol
    assert steps[1] == {"action": "thaw", "duration_s": 90.0, "mode": "active", "probes": "all"}
    with pytest.raises(ValueError, match="step 1: minutes and flow must be numbers"):
        logic.session.set_protocol_rows([["freeze", "", "four", "", "all"]])
    with pytest.raises(InputError, match=r"protocol step 2\.probes"):
        logic.session.set_protocol_rows([["freeze", "", "4", "", "all"], ["thaw", "", "1", "", "P7"]])
    logic.session.add_protocol_step()
    assert len(logic.session.protocol_rows()) == 3
    logic.session.remove_protocol_step(2)
    logic.session.remove_protocol_step(1)
    with pytest.raises(ValueError, match="at least one step"):
        logic.session.remove_protocol_step(0)


def test_isotherm_levels_and_grid_spacing(logic):
    logic.session.load_sample_phantom()
    assert logic.session.isotherm_levels_text() == "0, -20, -40"
    logic.session.set_isotherm_levels("0; -30")
    assert logic.session.isotherm_levels_text() == "0, -30"
    with pytest.raises(ValueError, match="numbers"):
        logic.session.set_isotherm_levels("0, cold")
    assert logic.session.grid_spacing_mm() == 0.0  # the image's own voxels
    logic.session.set_grid_spacing_mm(2.5)
    assert logic.session.grid_spacing_mm() == 2.5
    logic.session.set_grid_spacing_mm(0.0)
    assert logic.session.parameters.settings().grid_spacing_mm is None


def wait_for_run(logic, timeout_s: float = 300.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outcome = logic.session.poll_simulation()
        if outcome is not None:
            return outcome
        time.sleep(0.05)
    raise AssertionError("the simulation did not finish")


def test_simulate_in_the_background_then_results_exports_and_report(logic, scene_app, tmp_path, questions):
    plan = logic.session.load_sample_phantom()
    scenarios.place_probes(scene_app.scene, plan)
    logic.session.apply_protocol_preset("3-1-3")
    logic.session.set_grid_spacing_mm(4.0)
    with pytest.raises(ValueError, match="Simulate the plan first"):
        logic.session.export_report(str(tmp_path))
    logic.session.start_simulation()
    assert logic.session.simulation_running()
    with pytest.raises(RuntimeError, match="already running"):
        logic.session.start_simulation()
    message = wait_for_run(logic)
    assert message.startswith("Simulated 420 s. Target coverage 0 °C:"), message
    assert not logic.session.simulation_running() and questions.asked == []  # numba was already there
    metrics_table, critical_table, warnings = logic.session.result_tables()
    assert metrics_table.GetNumberOfRows() == 3 and critical_table.GetNumberOfRows() == 1
    assert all(isinstance(w, str) and w for w in warnings)
    low, high = logic.session.playback_time_range()
    assert (low, high) == (60.0, 420.0)
    assert logic.session.show_time(185.0) == 180.0
    case_path = Path(logic.session.export_case(str(tmp_path)))
    assert case_path.name == "CryoAblation.cryo.json" and case_path.is_file()
    report = Path(logic.session.export_report(str(tmp_path)))
    assert report.is_file() and "P1" in report.read_text(encoding="utf-8")
    plan.probes()[0].SetNthControlPointPositionWorld(0, [-25.0, 8.0, 4.0])
    with pytest.raises(InputError, match="probes changed"):
        logic.session.export_report(str(tmp_path))


def test_cancelled_run_says_so(logic, scene_app):
    plan = logic.session.load_sample_phantom()
    scenarios.place_probes(scene_app.scene, plan)
    logic.session.set_grid_spacing_mm(4.0)
    logic.session.start_simulation()
    logic.session.cancel_simulation()
    assert wait_for_run(logic) == "Simulation cancelled."
    assert logic.session.result_tables() == (None, None, [])


def test_plots_need_a_run_first(logic):
    logic.session.load_sample_phantom()
    with pytest.raises(ValueError, match="Run a simulation first"):
        logic.showChart("ice")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_monitor_connects_shows_readings_and_replays_the_journal(logic, tmp_path):
    from CryoAblationLogic.igtl.messages import StringMessage
    from CryoAblationLogic.igtl.transport import Server

    console_port = free_port()
    console = Server(console_port, "127.0.0.1")
    console.start()
    journal = tmp_path / "case-001.jsonl"
    try:
        logic.session.monitor.start("127.0.0.1", free_port(), "127.0.0.1", console_port, str(journal))
        assert logic.session.monitor.active()
        lights, rows, _ = logic.session.monitor.poll()
        assert lights["scanner"] == "waiting"
        deadline = time.monotonic() + 10.0
        sent = False
        while time.monotonic() < deadline and not rows:
            if not sent and console.connected:
                console.send(StringMessage(device_name="ProbeTemps", text="-31.5"))
                sent = True
            lights, rows, _ = logic.session.monitor.poll()
            time.sleep(0.02)
        assert lights["console"] == "connected"
        assert rows[0][:2] == ("Probe 1", "-31.5")
        with pytest.raises(RuntimeError, match="Disconnect"):
            logic.session.monitor.review_journal(str(journal))
    finally:
        logic.session.monitor.stop()
        console.stop()
    assert not logic.session.monitor.active()
    assert logic.session.monitor.poll()[0] == {"scanner": "off", "console": "off"}
    assert logic.session.monitor.review_journal(str(journal)) == 1
    assert logic.session.monitor.poll()[1][0][:2] == ("Probe 1", "-31.5")


def test_a_port_in_use_is_refused_when_connecting_and_nothing_is_left_running(logic, tmp_path):
    """The links run in the monitor's worker process; what they refuse is raised where Connect was
    pressed, as the same error naming the port, with no journal line written."""
    from CryoAblationLogic.igtl.errors import ProtocolError

    monitor = logic.session.monitor
    journal = tmp_path / "case-002.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ProtocolError, match=rf"port: cannot listen on 127\.0\.0\.1:{port}"):
            monitor.start("127.0.0.1", port, "127.0.0.1", free_port(), str(journal))
    assert not monitor.active()
    assert not journal.exists() or journal.read_text(encoding="utf-8") == ""


def test_a_monitoring_process_that_ends_is_said_once(logic):
    """If the links' worker process dies (killed, out of memory), the panel says so once, among
    the links' messages, and Disconnect still works."""
    monitor = logic.session.monitor
    monitor.start("127.0.0.1", free_port(), "127.0.0.1", free_port())
    try:
        process = monitor._link._process
        process.kill()
        process.join(10.0)
        said = [m for m in monitor.poll()[2] if "monitoring process ended" in m]
        assert len(said) == 1 and "disconnect" in said[0]
        assert not [m for m in monitor.poll()[2] if "monitoring process ended" in m][1:]
    finally:
        monitor.stop()
    assert not monitor.active()


def test_module_description_and_sample_data_registration(module, monkeypatch, scene_app, tmp_path):
    """The module class fills Slicer's description and registers the phantom with SampleData; the
    SampleData button makes the files locally, then loads them from Slicer's download cache."""
    import sys
    import types

    import slicer

    connections = []
    monkeypatch.setattr(slicer.app, "connect", lambda signal, slot: connections.append((signal, slot)))
    parent = types.SimpleNamespace()
    module.CryoAblation(parent)
    assert parent.title == "CryoAblation" and parent.categories == ["IGT"] and parent.dependencies == []
    assert "research software, not a medical device" in parent.helpText
    assert "#using-the-module" in parent.helpText and parent.contributors and parent.acknowledgementText
    assert connections == [("startupCompleted()", module.registerSampleData)]

    registered = []
    loaded = []

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            registered.append(kwargs)

        def downloadFromSource(self, source):
            loaded.append(source)
            return ["volume node", "segmentation node"]

    monkeypatch.setitem(sys.modules, "SampleData", types.SimpleNamespace(SampleDataLogic=SampleDataLogic))
    cache = tmp_path / "remote-cache"
    scene_app.scene.GetCacheManager().SetRemoteCacheDirectory(str(cache))
    module.registerSampleData()
    (entry,) = registered
    assert entry["category"] == "CryoAblation" and entry["sampleName"] == "CryoAblationPhantom"
    assert entry["loadFileType"] == ["VolumeFile", "SegmentationFile"]
    assert len(entry["uris"]) == len(entry["fileNames"]) == len(entry["nodeNames"]) == 2
    assert Path(entry["thumbnailFileName"]).is_file()
    files = [cache / name for name in entry["fileNames"]]
    assert [Path(uri.removeprefix("file://")) for uri in entry["uris"]] == files
    assert not any(f.exists() for f in files)  # nothing is made before the user asks
    source = types.SimpleNamespace(sampleName=entry["sampleName"])
    assert entry["customDownloader"](source) == ["volume node", "segmentation node"]
    assert all(f.is_file() for f in files) and loaded == [source]


def test_without_numba_the_user_is_asked_and_the_rest_keeps_working(
    no_numba, module, scene_app, questions, tmp_path
):
    """numba missing and the user declines: planning, probe checks, the protocol and the case
    export still work; the solver and the preview say what is missing."""
    import os

    questions.answer = False
    logic = module.CryoAblationLogic()
    assert os.environ["NUMBA_CACHE_DIR"].startswith(str(tmp_path))  # set before any numba import
    plan = logic.session.load_sample_phantom()
    model = logic.session.probe_model_names()[0]
    scenarios.place_probes(
        scene_app.scene,
        plan,
        [{"name": "PB", "model": model, "tip_mm": [-42.0, 24.0, 4.0], "entry_mm": [-42.0, -56.0, 4.0]}],
    )
    assert any("PB" in w for w in logic.session.probe_warnings())
    logic.session.apply_protocol_preset("10-5-10")
    assert Path(logic.session.export_case(str(tmp_path))).is_file()
    with pytest.raises(RuntimeError, match="numba was not installed") as declined:
        logic.session.start_simulation()
    for feature in ("solver", "preview", "live monitoring"):
        assert feature in str(declined.value)
    assert len(questions.asked) == 1 and "numba" in questions.asked[0]
    with pytest.raises(RuntimeError, match="numba was not installed"):
        logic.session.set_preview_enabled(True)
    assert not logic.session.preview_active() and not logic.session.simulation_running()
    assert logic.numbaStatusText().startswith("numba was not installed")
    logic.session.stop_background_work()


def test_live_mode_runs_the_plan_in_step_with_the_console_and_replays_the_same(logic, scene_app, tmp_path):
    """Live mode: the console's freeze events drive the plan's probes in the solver, its probe
    readings come back beside the prediction, the prediction lands in the scene when it stops, and
    replaying the journal gives the same prediction."""
    from CryoAblationLogic.igtl.messages import StringMessage
    from CryoAblationLogic.igtl.transport import Server, timestamp_from_seconds

    plan = logic.session.load_sample_phantom()
    scenarios.place_probes(scene_app.scene, plan)
    logic.session.set_grid_spacing_mm(4.0)
    console_port = free_port()
    console = Server(console_port, "127.0.0.1")
    console.start()
    journal = tmp_path / "live-001.jsonl"
    base = float(int(time.time()))

    def at(seconds: float, device: str, text: str) -> StringMessage:
        message = StringMessage(device_name=device, text=text)
        message.timestamp_raw = timestamp_from_seconds(base + seconds)  # the console's clock
        return message

    try:
        logic.session.monitor.start_live("127.0.0.1", free_port(), "127.0.0.1", console_port, str(journal))
        assert logic.session.monitor.live() and logic.session.monitor.active()
        # live mode's worker process connects to the console (slower on a busy machine)
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not console.connected:
            logic.session.monitor.poll()
            time.sleep(0.02)
        assert console.connected, "live mode's worker did not connect to the console"
        for number in (1, 2, 3):
            console.send(at(0.0, "CryoState", f"FREEZE {number} 100%"), stamp=False)
        console.send(at(30.0, "ProbeTemps", "-75.0, -70.5, -72.0"), stamp=False)
        rows: list = []
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and len(rows) < 3:
            lights, rows, notes = logic.session.monitor.poll()
            time.sleep(0.02)
        assert lights["console"] == "connected"
        assert [row[0] for row in rows] == ["P1 (freeze 100%)", "P2 (freeze 100%)", "P3 (freeze 100%)"]
        assert rows[0][1].startswith("-75.0 (predicted ") and rows[0][2] == "30.0"
        assert any("probe state" in note for note in notes)
    finally:
        logic.session.monitor.stop()
        console.stop()
    assert not logic.session.monitor.live()
    temperature = plan.get(P.TEMPERATURE_VOLUME)
    assert temperature is not None  # the prediction so far, shown in the scene
    live_rows = logic.session.monitor.poll()[1]
    # a live-mode journal is replayed in a solver process: polled from the panel's timer
    assert logic.session.monitor.review_journal(str(journal)) is None
    assert logic.session.monitor.replaying()
    with pytest.raises(RuntimeError, match="being replayed"):
        logic.session.monitor.start("127.0.0.1", free_port(), "127.0.0.1", console_port)
    deadline = time.monotonic() + 300.0  # the replay's worker loads (or compiles) the kernels
    count = None
    while count is None and time.monotonic() < deadline:
        time.sleep(0.05)
        count = logic.session.monitor.poll_replay()
    assert count == 4 and not logic.session.monitor.replaying()
    # the views show the replayed prediction; the Results tables are still the plan's last run's
    assert logic.session.result_tables()[2][0].startswith("The views show the replayed journal's prediction")
    assert logic.session.monitor.poll()[1] == live_rows  # the replay predicts exactly the same
    # a journal moved without the case saved beside it: the worker's refusal, named, and no replay
    moved = tmp_path / "moved" / journal.name
    moved.parent.mkdir()
    moved.write_bytes(journal.read_bytes())
    assert logic.session.monitor.review_journal(str(moved)) is None
    with pytest.raises(InputError, match="the case file saved beside the journal is missing"):
        deadline = time.monotonic() + 60.0
        while logic.session.monitor.poll_replay() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not logic.session.monitor.replaying()
    with pytest.raises(ValueError, match="journal file"):
        logic.session.monitor.start_live("127.0.0.1", free_port(), "127.0.0.1", console_port, "")


def test_live_mode_against_the_simulated_bridge_and_console_fills_the_scene(logic, scene_app, tmp_path):
    """Live mode as the panel runs it (``startLiveMode``, then ``pollMonitoring`` from the timer)
    against the MR bridge and cryo console simulators on loopback, in real time: both lights turn
    green, the bridge's frames show in one live volume, probe 1's line follows the pose the console
    reports, the overlay is refreshed at least once per second of procedure time while freezing,
    and the readings fill the sensor table, its chart and the panel's rows."""
    from CryoAblationLogic.igtl.messages import StringMessage
    from CryoAblationLogic.live.simulator import ConsoleSimulator, probe_pose
    from CryoAblationLogic.scene import probes, tables, volumes
    from CryoAblationLogic.scene.live_link import IMAGE_NODE_NAME

    plan = logic.session.load_sample_phantom()
    scenarios.place_probes(scene_app.scene, plan)
    logic.session.set_grid_spacing_mm(4.0)
    shift = np.array([1.5, 0.0, 0.0])  # probe 1 as placed, off the plan
    placed = [
        (np.add(p["tip_mm"], shift if n == 0 else 0.0), np.add(p["entry_mm"], shift if n == 0 else 0.0))
        for n, p in enumerate(phantom.demo_probe_plan())
    ]
    console = ConsoleSimulator(
        [probe_pose(tip, entry) for tip, entry in placed], port=0, update_interval_s=0.2
    )
    image = plan.get(P.INPUT_VOLUME)
    scanner_port = free_port()
    bridge = scenarios.simulated_mr_bridge(image, scanner_port, slice_pixels=(48, 48))
    bridge.state = "Scanning"  # as after START_SEQUENCE
    console.start()
    overlay_times: list[float] = []
    panel: dict = {}

    def poll_until(done, what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            panel["lights"], panel["rows"], panel["messages"] = (
                logic.session.monitor.poll()
            )  # the timer's call
            live = logic.session.monitor.live_scene_nodes()
            if live.overlay_time_s is not None and live.overlay_time_s not in overlay_times[-1:]:
                overlay_times.append(live.overlay_time_s)
            if done():
                return
            assert time.monotonic() < deadline, f"no {what}; the panel shows {panel}"
            time.sleep(0.02)

    def line_tip(name: str) -> np.ndarray:
        line = next(n for n in probes.probe_nodes(scene_app.scene) if n.GetName() == name)
        return probes.probe_tip_entry(line)[0]

    try:
        logic.session.monitor.start_live(
            "127.0.0.1", scanner_port, "127.0.0.1", console.port, str(tmp_path / "sim.jsonl")
        )
        bridge.start()
        live = logic.session.monitor.live_scene_nodes()
        session = live.session
        poll_until(
            lambda: (
                panel["lights"] == {"scanner": "connected", "console": "connected"}
                and live.image_node is not None
                and np.allclose(line_tip("P1"), placed[0][0], atol=1e-3)
            ),
            "connection, MR frame and probe pose",
        )
        assert live.image_node.GetName() == IMAGE_NODE_NAME
        assert live.image_node.GetImageData().GetDimensions() == (48, 48, 1)
        # the operator freezes every probe at the console, which reports it (STATUS Cryo)
        for number in (1, 2, 3):
            *_, status = console.handle(StringMessage(f"FREEZE {number} 100%", device_name=f"CMD_{number}"))
            console.server.send(status)
        poll_until(lambda: session.freezing_started, "freeze")
        frozen_at = session.clock_s
        # the first overlay of the freeze (its first solver steps may still be compiled by numba)
        poll_until(lambda: overlay_times[-1] > frozen_at, "overlay after the freeze began")
        watched_from = overlay_times[-1]
        poll_until(lambda: session.clock_s >= watched_from + 3.0, "3 s of freezing")
        frames_shown = bridge.frames_sent
    finally:
        logic.session.monitor.stop()
        bridge.stop()
        console.stop()
    assert scene_app.scene.GetNodesByName(IMAGE_NODE_NAME).GetNumberOfItems() == 1 and frames_shown > 5
    assert np.allclose(line_tip("P1"), placed[0][0], atol=1e-3)
    assert np.allclose(line_tip("P2"), placed[1][0], atol=1e-3)
    freezing = [t for t in overlay_times if t >= watched_from]
    gaps = np.diff(freezing)
    assert len(freezing) >= 4 and gaps.max() <= 1.0 + 1e-9, (
        f"overlay at {overlay_times}, froze at {frozen_at}"
    )
    assert volumes.image_data_to_array(live.temperature_node.GetImageData()).min() < 37.0
    readings = [s.measured_c for s in session.samples if s.name == "P1"]
    assert len(readings) >= 10 and tables.table_column(live.sensor_table, "P1 measured")[: len(readings)] == (
        pytest.approx(readings)
    )
    assert live.sensor_chart.GetNumberOfPlotSeriesNodes() == 2 * 3  # measured and predicted per probe
    assert [row[0] for row in panel["rows"]] == ["P1 (freeze 100%)", "P2 (freeze 100%)", "P3 (freeze 100%)"]
    assert all("(predicted " in row[1] for row in panel["rows"])
    assert not any("not acknowledged" in text for text in panel["messages"])
    assert logic.session.monitor.poll()[0] == {"scanner": "off", "console": "off"}


def test_the_slicer_self_test_itself_runs_here(module, monkeypatch, scene_app, tmp_path):
    """``CryoAblationTest`` (what ``--testing`` runs in Slicer), run on the stood-in Qt layer:
    SampleData is replaced by a stand-in that loads the cached files with Slicer's own readers."""
    import sys
    import types

    import slicer

    parent = types.SimpleNamespace()
    module.CryoAblation(parent)
    monkeypatch.setattr(slicer.modules, "cryoablation", parent, raising=False)
    cache = tmp_path / "remote-cache"
    scene_app.scene.GetCacheManager().SetRemoteCacheDirectory(str(cache))
    sources: dict[str, list] = {}

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            sources.setdefault(kwargs["category"], []).append(types.SimpleNamespace(**kwargs))

        @staticmethod
        def sampleDataSourcesByCategory(category):
            return sources.get(category, [])

        def downloadSamples(self, name):
            (source,) = [s for group in sources.values() for s in group if s.sampleName == name]
            nodes = []
            for file_name, node_name, kind in zip(
                source.fileNames, source.nodeNames, source.loadFileType, strict=True
            ):
                path = cache / file_name
                assert path.is_file(), f"SampleData would have to download {file_name}"
                if kind == "VolumeFile":
                    node = scene_app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", node_name)
                    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
                else:
                    node = scene_app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", node_name)
                    storage = slicer.vtkMRMLSegmentationStorageNode()
                scene_app.scene.AddNode(storage)
                storage.SetFileName(str(path))
                assert storage.ReadData(node) == 1
                nodes.append(node)
            return nodes

    monkeypatch.setitem(sys.modules, "SampleData", types.SimpleNamespace(SampleDataLogic=SampleDataLogic))
    module.registerSampleData()
    test = module.CryoAblationTest()
    test.runTest()


def test_the_scanner_link_admits_only_the_peers_the_panel_names(logic):
    """Where Slicer listens for the scanner's bridge, only this computer may connect unless the
    panel's "Scanner peers" names others (addresses, networks, host names; "*": anyone)."""
    monitor = logic.session.monitor
    try:
        monitor.start("0.0.0.0", free_port(), "127.0.0.1", free_port())
        assert monitor._link.allowed_peers["scanner"] == ("127.0.0.0/8", "::1")  # this computer only
        monitor.start(
            "0.0.0.0", free_port(), "127.0.0.1", free_port(), scanner_peers="192.0.2.7, 10.1.2.0/24"
        )
        assert monitor._link.allowed_peers["scanner"] == ("192.0.2.7", "10.1.2.0/24")
        monitor.start("0.0.0.0", free_port(), "127.0.0.1", free_port(), scanner_peers="*")
        assert monitor._link.allowed_peers["scanner"] is None  # anyone, as asked
    finally:
        monitor.stop()
    with pytest.raises(InputError, match=r"scanner peers.*'10\.1\.2\.0/33'"):
        monitor.start("0.0.0.0", free_port(), "127.0.0.1", free_port(), scanner_peers="10.1.2.0/33")
    assert not monitor.active()
