"""End-to-end scenarios of the module, run by Slicer's self-test and by pytest on the same code.

``CryoAblationTest`` (in ``CryoAblation/CryoAblation.py``) calls these functions with Slicer's own
scene and module logics; ``Testing/module`` calls them with a ``slicer-core`` scene set up the way
Slicer sets it up (:func:`CryoAblationLogic.scene.app.create_scene_app`). Each function takes the
scene (and the paths it writes to) as arguments, does what a user does in the panel through the
same adapters the panel uses, and checks the outcome: a failed check raises
:class:`ScenarioFailure` saying what differs, so the same message shows in both places.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from CryoAblationLogic.io import phantom as phantom_module

# Coarse grids and a short double freeze keep the scenarios quick enough for a self-test.
SCENARIO_SPACING_MM = 2.0  # the phantom image
SIMULATION_SPACING_MM = 3.0  # the full run's grid
SIMULATION_PROTOCOL = "5-2-5"  # minutes of freeze, passive thaw, freeze


@dataclass
class SimulationRun:
    """A finished full run: the case read from the scene, the solver's result and how the scene shows it."""

    scene_case: Any  # mrml.case_io.SceneCase
    case: Any  # case.Case
    result: Any  # physics.simulation.SimulationResult
    plan: Any  # mrml.workflow.PlanResult


class ScenarioFailure(AssertionError):
    """A scenario's check failed; the message says what was expected and what was found."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioFailure(message)


# -- load the phantom --------------------------------------------------------------------------
def load_phantom(scene, segmentations_logic, spacing_mm: float = SCENARIO_SPACING_MM):
    """Load the synthetic phantom (image, segments with roles and materials, sensors) without probes.

    Returns the plan's parameter node (:class:`CryoAblationLogic.scene.parameters.ParameterNode`).
    """
    from CryoAblationLogic.scene import inputs
    from CryoAblationLogic.scene import parameters as P
    from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
    from CryoAblationLogic.scene.volumes import volume_grid

    parameters = build_phantom_scene(scene, segmentations_logic, spacing_mm=spacing_mm, with_probes=False)
    volume = parameters.get(P.INPUT_VOLUME)
    check(volume is not None, "the phantom image volume is not referenced by the parameter node")
    expected_grid = phantom_module.make_grid(spacing_mm)
    found_grid = volume_grid(volume)
    check(found_grid == expected_grid, f"phantom volume grid {found_grid} differs from {expected_grid}")
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    check(segmentation is not None, "the phantom segmentation is not referenced by the parameter node")
    roles = {info.name: (info.role, info.material) for info in inputs.segment_infos(segmentation)}
    expected = {name: (role, material) for name, material, role in phantom_module.LABELS.values()}
    check(roles == expected, f"segment roles and materials {roles} differ from the phantom's {expected}")
    check(parameters.probes() == [], "the phantom was loaded with probes already placed")
    return parameters


# -- place probes ------------------------------------------------------------------------------
def place_probes(scene, parameters, plan: list[dict] | None = None) -> list:
    """Place probes as markups lines (tip = control point 0, entry = control point 1), as the panel does.

    ``plan`` holds case-format probe entries; the phantom's demo plan by default.
    """
    from CryoAblationLogic.scene import parameters as P
    from CryoAblationLogic.scene import probes

    plan = plan if plan is not None else phantom_module.demo_probe_plan()
    nodes = []
    for entry in plan:
        node = probes.add_probe(scene, entry["name"], entry["tip_mm"], entry["entry_mm"], entry["model"])
        parameters.add(P.PROBE, node)
        nodes.append(node)
    check(
        [node.GetName() for node in parameters.probes()] == [entry["name"] for entry in plan],
        "the parameter node does not list the placed probes in order",
    )
    for node, entry in zip(nodes, plan, strict=True):
        case_entry = probes.probe_case_entry(node)
        for key in ("tip_mm", "entry_mm"):
            check(
                np.allclose(case_entry[key], entry[key], atol=1e-3),
                f"probe {entry['name']}: {key} {case_entry[key]} differs from the placed {entry[key]}",
            )
        check(case_entry["model"] == entry["model"], f"probe {entry['name']}: model {case_entry['model']}")
    return nodes


# -- save and reload the scene ----------------------------------------------------------------
def plan_snapshot(scene) -> dict[str, Any]:
    """What a plan is, as the case built from the scene (JSON) and its tissue label map."""
    from CryoAblationLogic.scene.case_io import LABELMAP_KEY, build_case

    scene_case = build_case(scene)
    labels = scene_case.arrays.get(LABELMAP_KEY)
    return {
        "case": json.loads(json.dumps(scene_case.data)),
        "labels": None if labels is None else np.asarray(labels).copy(),
    }


def save_and_reload(scene, bundle_path: str | Path):
    """Save the scene as a ``.mrb`` bundle, load it back, and check the plan came back unchanged.

    Returns the reloaded parameter node.
    """
    from CryoAblationLogic.scene import parameters as P
    from CryoAblationLogic.scene.app import load_scene_mrb, save_scene_mrb

    before = plan_snapshot(scene)
    save_scene_mrb(scene, bundle_path)
    load_scene_mrb(scene, bundle_path, clear=True)
    parameters = P.get_parameter_node(scene, create=False)
    check(parameters is not None, "the reloaded scene has no CryoAblation parameter node")
    after = plan_snapshot(scene)
    for key in sorted(set(before["case"]) | set(after["case"])):
        check(
            before["case"].get(key) == after["case"].get(key),
            f"case key {key!r} changed on reload: {before['case'].get(key)!r} → {after['case'].get(key)!r}",
        )
    if before["labels"] is None or after["labels"] is None:
        check(before["labels"] is after["labels"], "the tissue label map appeared or vanished on reload")
    else:
        check(
            before["labels"].shape == after["labels"].shape
            and bool(np.array_equal(before["labels"], after["labels"])),
            "the tissue label map changed on reload",
        )
    return parameters


# -- simulate, check isotherms and metrics ------------------------------------------------------
def simulate_and_check(
    scene,
    parameters,
    sequences_logic=None,
    *,
    spacing_mm: float = SIMULATION_SPACING_MM,
    protocol_preset: str = SIMULATION_PROTOCOL,
):
    """Set the grid and the protocol as a user would in the panel, run the full simulation (as the
    Simulate button does), put the result into the scene and check isotherms, metrics and playback.

    The checks are physical, not numbers copied from a run: the simulated time is the protocol's;
    colder isotherms enclose less ice and lie closer to (or inside) the target; the contoured
    isotherm surfaces hold the volume the solver's voxels give; three probes around the tumour
    freeze nearly all of it to 0 °C; coverage does not grow with colder levels; the sensor at the
    tumour edge freezes; the energy balance closes. Returns the :class:`SimulationRun`.
    """
    from CryoAblationLogic.core import protocols
    from CryoAblationLogic.scene import parameters as P
    from CryoAblationLogic.scene import results, workflow

    protocol = protocols.preset_protocol(protocol_preset)
    parameters.update_settings(
        grid_spacing_mm=spacing_mm,
        protocol=protocol,
        snapshot_times_s=protocols.snapshot_times_within(parameters.settings().snapshot_times_s, protocol),
    )
    scene_case, result = workflow.simulate_scene(scene, parameters)
    plan = workflow.show_plan_result(scene, parameters, scene_case, result)
    protocol_s = protocols.total_duration_s(scene_case.data["protocol"])
    check(
        abs(result.simulated_s - protocol_s) < 1e-6,
        f"simulated {result.simulated_s} s, the protocol lasts {protocol_s} s",
    )
    levels = sorted((level for level, _rgb in results.levels_of(parameters)), reverse=True)
    solver_ml = {float(level): float(ml) for level, ml in result.isotherm_volumes_ml.items()}
    volumes = [solver_ml[level] for level in levels]
    check(volumes[-1] > 0, f"no ice at or below {levels[-1]:g} °C at the end of the protocol")
    check(
        all(warm > cold for warm, cold in itertools.pairwise(volumes)),
        f"colder isotherms must enclose less ice: {dict(zip(levels, volumes, strict=True))} ml",
    )
    for level in levels:
        contoured = float(plan.nodes.isotherm_volumes_ml[level])
        voxels = solver_ml[level]
        check(
            abs(contoured - voxels) <= 0.15 * voxels + 0.5,
            f"{level:g} °C isotherm surface holds {contoured:.2f} ml, the solver's voxels {voxels:.2f} ml",
        )
    coverage = [plan.metrics.isotherm(level).target_coverage_percent for level in levels]
    check(coverage[0] >= 95.0, f"the {levels[0]:g} °C isotherm covers only {coverage[0]:.1f} % of the target")
    margins = [plan.metrics.isotherm(level).min_margin_mm for level in levels]
    check(None not in margins, f"an isotherm has no margin to measure: {margins}")
    check(
        all(warm > cold for warm, cold in itertools.pairwise(margins)),
        f"colder isotherms must lie closer to the target: {dict(zip(levels, margins, strict=True))} mm",
    )
    check(
        all(warm >= cold - 1e-9 for warm, cold in itertools.pairwise(coverage)),
        f"coverage must not grow with colder isotherms: {dict(zip(levels, coverage, strict=True))}",
    )
    check(abs(result.energy_balance_error) < 0.05, f"energy balance error {result.energy_balance_error:.3f}")
    _edge_t, edge_temperature = result.sensors["TC1"]
    check(float(np.min(edge_temperature)) < 0.0, "the sensor at the tumour edge never froze")
    check(plan.metrics_table.GetNumberOfRows() == len(levels), "the metrics table lacks isotherm rows")
    check(parameters.get(P.METRICS_TABLE) is plan.metrics_table, "the metrics table is not in the plan")
    if sequences_logic is not None:
        shown = results.select_playback_time(plan.nodes.browser, 600.0, sequences_logic)
        check(abs(shown - 600.0) < 1e-6, f"playback at 600 s showed the frame of {shown} s")
    return SimulationRun(scene_case, scene_case.parse(), result, plan)


# -- export the case file and the report -------------------------------------------------------
def export_case_and_report(scene, parameters, run: SimulationRun, out_dir: str | Path, catalog=None) -> dict:
    """Export the plan as a case file and the last run as an HTML report, as the Results section
    does, and check both: the case file loads back to the simulated case, and the report shows
    every probe and isotherm with its pictures. Returns ``{"case": path, "report": path}``."""
    from CryoAblationLogic.io.case_file import load_case
    from CryoAblationLogic.scene.case_io import export_case
    from CryoAblationLogic.scene.plan_report import SimulatedPlan, write_plan_report

    out_dir = Path(out_dir)
    case_path = export_case(scene, out_dir / "plan.cryo.json", parameters)
    reloaded = load_case(case_path)
    check(
        [p.to_dict() for p in reloaded.probes] == [p.to_dict() for p in run.case.probes],
        "the exported case file's probes differ from the simulated ones",
    )
    check(reloaded.grid == run.case.grid, f"exported grid {reloaded.grid} differs from {run.case.grid}")
    check(
        bool(np.array_equal(reloaded.tissue_labels, run.case.tissue_labels)),
        "the exported label map differs from the simulated tissue",
    )
    simulated = SimulatedPlan(run.case, run.result, run.plan)
    report_path = write_plan_report(scene, parameters, simulated, out_dir / "report", catalog=catalog)
    html = Path(report_path).read_text(encoding="utf-8")
    for probe in run.case.probes:
        check(probe.name in html, f"the report does not name probe {probe.name}")
    pictures = [part.split('"', 1)[0] for part in html.split('src="')[1:]]
    check(pictures != [], "the report has no pictures")
    # pictures are embedded (data URIs): the page needs no file beside it
    missing = [name[:40] for name in pictures if not name.startswith("data:image/png;base64,")]
    check(missing == [], f"the report refers to pictures outside itself {missing}")
    check((Path(report_path).parent / "report.pdf").is_file(), "the report has no PDF")
    return {"case": case_path, "report": Path(report_path)}


# -- replay a short journal ---------------------------------------------------------------------
SHORT_JOURNAL_PROCEDURE = "short-freeze"


def write_short_journal(folder: str | Path) -> Path:
    """A short procedure journal, written with the live links' own journal: the console starts
    freezing two probes, reports their temperatures twice, the scanner sends a thermometry frame,
    probe 1 thaws passively. Returns the journal file's path."""
    from CryoAblationLogic.igtl.messages import ImageMessage, StringMessage
    from CryoAblationLogic.live.journal import Journal

    frame = np.linspace(-40.0, 37.0, 4 * 4 * 2, dtype=np.float32).reshape(4, 4, 2)
    messages = [
        (0.0, "console", StringMessage(device_name="CryoState", text="FREEZE 1 100%")),
        (0.5, "console", StringMessage(device_name="CryoState", text="FREEZE 2 80%")),
        (60.0, "console", StringMessage(device_name="ProbeTemps", text="-95.5, -80.25")),
        (90.0, "scanner", ImageMessage(device_name="MR Image", voxels=frame, axes_mm=np.eye(3) * 2.0)),
        (120.0, "console", StringMessage(device_name="ProbeTemps", text="-120.0, -101.5")),
        (600.0, "console", StringMessage(device_name="CryoState", text="THAW 1 PASSIVE")),
    ]
    with Journal(folder, SHORT_JOURNAL_PROCEDURE) as journal:
        for time_s, peer, message in messages:
            journal.record_message(message, arrival_time_s=1_800_000_000.0 + time_s, peer=peer)
        path = journal.path
    return path


def replay_short_journal(journal_path: str | Path):
    """Replay a journal through the Monitor section's pipeline and check what the panel shows:
    every incoming message replayed, the last temperature of each probe, each probe's last state,
    the scanner frame received. Returns the :class:`~CryoAblationLogic.live.link_panel.LinkPanel`."""
    from CryoAblationLogic.live.journal import read_journal
    from CryoAblationLogic.live.link_panel import LinkPanel, review_journal

    state = LinkPanel()
    count = review_journal(state, journal_path)
    incoming = [
        r for r in read_journal(journal_path).records if r["kind"] == "message" and r["direction"] == "in"
    ]
    check(count == len(incoming), f"replayed {count} of the journal's {len(incoming)} incoming messages")
    temperatures = {probe: value for probe, (value, _time) in state.temperatures_c.items()}
    check(temperatures == {1: -120.0, 2: -101.5}, f"last probe temperatures {temperatures}")
    check(
        state.probe_states == {1: "thaw passive", 2: "freeze 80%"},
        f"probe states after the replay {state.probe_states}",
    )
    check(state.images_received == 1, f"{state.images_received} scanner frames replayed, 1 recorded")
    check(list(state.messages) == [], f"the replay reported problems: {list(state.messages)}")
    return state


# -- a short procedure in live mode, and its replay ----------------------------------------------
LIVE_FREEZE_S = 30.0  # procedure seconds of freezing in the short live procedure
LIVE_READING_EVERY_S = 1.0  # the console's probe temperatures, this often
LIVE_PROBE_SHIFT_MM = (2.0, 0.0, 0.0)  # probe 1 as placed, off the plan
LIVE_THAW_S = 20.0  # probe 1 thaws passively then


def simulated_mr_bridge(image_node, port: int, frame_interval_s: float = 0.2, slice_pixels=(32, 32)):
    """An MR bridge on this computer (:class:`~CryoAblationLogic.live.simulator.ScannerSimulator`,
    not started) that scans ``image_node``'s volume and connects to live mode's ``port``."""
    from CryoAblationLogic.live.simulator import ScannerSimulator
    from CryoAblationLogic.scene import volumes

    return ScannerSimulator(
        np.array(volumes.image_data_to_array(image_node.GetImageData())),
        volumes.ijk_to_ras(image_node),
        port=port,
        frame_interval_s=frame_interval_s,
        slice_pixels=slice_pixels,
    )


@dataclass
class LiveRun:
    """A short live procedure, monitored and stopped: the session and how the scene showed it."""

    session: Any  # live mode's session as the scene sees it (scene.live_process.SessionMirror)
    scene_nodes: Any  # live.scene_link.LiveScene
    overlay_times_s: list[float]  # the solver times the overlay showed, in order
    frames_sent: int  # by the MR bridge
    overlay_latencies_s: list[float]  # console message arrival → overlay updated, per update


class FreeMainThread:
    """A main loop that steps live mode every ``interval_s`` and sleeps in Python in between
    (releasing the GIL), as a script or Slicer's self-test does; ``PythonQtIdle`` (the GIL held
    between 100 ms timer slots) is the Slicer-like alternative."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s

    def idle(self, seconds: float) -> None:
        import time

        time.sleep(seconds)


def _free_port() -> int:
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


class LoopbackPeers:
    """The cryo console (an OpenIGTLink server that sends what it is given) and the MR bridge
    (:func:`simulated_mr_bridge` on the plan's image), on this computer. ``in_process``: in a
    process of their own (other computers in reality: under a Slicer-like main thread, threads
    of this process would starve, which is no property of live mode); else threads here."""

    def __init__(self, image_node, in_process: bool = False):
        from CryoAblationLogic.scene import volumes

        self.scanner_port, self.console_port = _free_port(), _free_port()
        image = np.array(volumes.image_data_to_array(image_node.GetImageData()))
        spec = (image, volumes.ijk_to_ras(image_node), self.scanner_port, self.console_port)
        if in_process:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            self._connection, child = context.Pipe()
            self._process = context.Process(target=_serve_peers, args=(child, spec), daemon=True)
            self._process.start()
            child.close()
            self._local = None
            self.plane_to_ras = self._ask("plane")
        else:
            self._process = None
            self._local = _Peers(*spec)
            self.plane_to_ras = self._local.bridge.plane_to_ras

    def _ask(self, *request):
        if self._local is not None:
            return self._local.answer(request)
        self._connection.send(request)
        check(self._connection.poll(30.0), f"the loopback peers did not answer {request[0]!r}")
        return self._connection.recv()

    def console_connected(self) -> bool:
        return self._ask("state")[0]

    def bridge_state(self) -> str:
        return self._ask("state")[1]

    def send_from_console(self, message) -> None:
        self._ask("send", message)

    def send_paced_from_console(self, messages: list, interval_s: float) -> None:
        """Send ``messages`` one every ``interval_s`` from now on, without waiting for them."""
        self._ask("send paced", messages, interval_s)

    def stop(self) -> int:
        """Stop both; returns the frames the bridge sent."""
        frames = self._ask("stop")
        if self._process is not None:
            self._process.join(10.0)
            self._connection.close()
        return frames


class _Peers:
    def __init__(self, image, ijk_to_ras, scanner_port: int, console_port: int):
        from CryoAblationLogic.igtl.transport import Server
        from CryoAblationLogic.live.simulator import ScannerSimulator

        self.console = Server(console_port, "127.0.0.1")
        self.console.start()
        self.bridge = ScannerSimulator(
            image, ijk_to_ras, port=scanner_port, frame_interval_s=0.2, slice_pixels=(32, 32)
        )
        self.bridge.start()

    def answer(self, request):
        kind = request[0]
        if kind == "plane":
            return self.bridge.plane_to_ras
        if kind == "state":
            return self.console.connected, self.bridge.state
        if kind == "send":
            return self.console.send(request[1], stamp=False)
        if kind == "send paced":
            import threading
            import time

            def paced(messages, interval_s):
                for message in messages:
                    self.console.send(message, stamp=False)
                    time.sleep(interval_s)

            threading.Thread(target=paced, args=request[1:], daemon=True).start()
            return None
        if kind == "stop":
            self.bridge.stop()
            self.console.stop()
            return self.bridge.frames_sent
        raise ValueError(f"unknown request {kind!r}")


def _serve_peers(connection, spec) -> None:  # the loopback peers' own process
    peers = _Peers(*spec)
    while True:
        request = connection.recv()
        connection.send(peers.answer(request))
        if request[0] == "stop":
            return


def run_short_live_procedure(
    scene,
    parameters,
    journal_path: str | Path,
    timeout_s: float = 60.0,
    *,
    main_thread=None,
    peers_in_process: bool = False,
    worker_python: str | None = None,
) -> LiveRun:
    """Monitor a short freeze in live mode the way the panel's Live mode does
    (:func:`~CryoAblationLogic.scene.live_process.start_live_process` on the plan: session,
    solver and links in a worker process, the scene stepped from the main thread's timer), with an
    MR bridge and a cryo console on this computer (loopback, :class:`LoopbackPeers`): the bridge
    scans once told to; the console reports probe 1 placed 2 mm off the plan, freezes every probe,
    reports temperatures every second and a reading of the tumour-edge sensor every two seconds,
    thaws probe 1 passively.

    ``main_thread``: how the main thread idles between steps (its ``idle(seconds)`` and
    ``interval_s``; default :class:`FreeMainThread`; ``PythonQtIdle`` holds the GIL between 100 ms
    slots as Slicer does). ``worker_python``: the worker's Python (Slicer: PythonSlicer).

    The console's messages carry their own clock, sent one at a time: the procedure takes only the
    time the solver needs. Checks what the scene shows: the bridge's frames in one live volume
    node, probe 1's line at the reported pose, the overlay (temperature and isotherms) refreshed at
    every update of the solver, at least once per second of procedure time while freezing, and
    the readings in the sensor table. Always through our own client: the OpenIGTLinkIF connector
    takes its messages in Qt's event loop, which a scenario does not run.
    """
    import math
    import time

    from CryoAblationLogic.igtl.messages import SensorMessage, StringMessage, TransformMessage
    from CryoAblationLogic.igtl.transport import timestamp_from_seconds
    from CryoAblationLogic.igtl.units import KELVIN, celsius_to_kelvin
    from CryoAblationLogic.live.link import Endpoint
    from CryoAblationLogic.live.simulator import probe_pose
    from CryoAblationLogic.scene import parameters as P
    from CryoAblationLogic.scene import probes, tables, volumes
    from CryoAblationLogic.scene.case_io import build_case
    from CryoAblationLogic.scene.live_process import start_live_process

    main_thread = main_thread or FreeMainThread()
    case = build_case(scene, parameters).parse()
    start = float(int(time.time()))

    def at(seconds: float, message):
        message.timestamp_raw = timestamp_from_seconds(start + seconds)
        return message

    count = len(case.probes)
    first = case.probes[0]
    placed_tip = np.add(first.tip_mm, LIVE_PROBE_SHIFT_MM)
    placed_entry = np.add(first.entry_mm, LIVE_PROBE_SHIFT_MM)
    messages = [
        at(0.0, TransformMessage(probe_pose(placed_tip, placed_entry), device_name="Probe1ToScanner"))
    ]
    messages += [
        at(0.0, StringMessage(device_name="CryoState", text=f"FREEZE {n} 100%")) for n in range(1, count + 1)
    ]
    steps = round(LIVE_FREEZE_S / LIVE_READING_EVERY_S)
    for index in range(1, steps + 1):
        t = index * LIVE_READING_EVERY_S
        values = [-150.0 + 187.0 * math.exp(-t / 10.0)] * count  # the tips cooling towards -150 °C
        messages.append(
            at(t, StringMessage(device_name="ProbeTemps", text=", ".join(f"{v:.1f}" for v in values)))
        )
        if index % 2 == 0 and case.sensors:
            kelvin = celsius_to_kelvin(37.0 - t)
            messages.append(at(t, SensorMessage([kelvin], unit=KELVIN, device_name=case.sensors[0].name)))
        if abs(t - LIVE_THAW_S) < 1e-9:
            messages.append(at(t, StringMessage(device_name="CryoState", text="THAW 1 PASSIVE")))
    console_messages = len(messages)

    image_node = parameters.get(P.INPUT_VOLUME)
    check(image_node is not None, "the plan has no image for the MR bridge to scan")
    peers = LoopbackPeers(image_node, in_process=peers_in_process)
    try:
        monitor = start_live_process(
            scene,
            case,
            journal_path,
            scanner=Endpoint("server", "127.0.0.1", peers.scanner_port),
            console=Endpoint("client", "127.0.0.1", peers.console_port),
            use_connector=False,
            level_table=parameters.get(P.ISOTHERM_LEVELS),
            silence_s=None,  # the console's clock only: the run does not depend on the machine's speed
            executable=worker_python,
        )
    except BaseException:
        peers.stop()
        raise
    live = monitor.live_scene
    session = monitor.session
    overlay_times: list[float] = []
    deadline = time.monotonic() + timeout_s

    def step_until(done, what: str) -> None:
        while True:
            monitor.step()  # the module's timer slot
            if live.overlay_time_s is not None and live.overlay_time_s not in overlay_times[-1:]:
                overlay_times.append(live.overlay_time_s)
            if done():
                return
            check(time.monotonic() < deadline, f"live mode: no {what} within {timeout_s:g} s")
            main_thread.idle(main_thread.interval_s)

    frames_sent = 0
    try:
        step_until(
            lambda: peers.console_connected() and monitor.connected.get("scanner", False),
            "console and MR bridge",
        )
        monitor.send_scan_plane(peers.plane_to_ras)
        command_id = monitor.send_scanner_command("START_SEQUENCE")
        step_until(lambda: live.image_node is not None, "MR frame")
        check(
            peers.bridge_state() == "Scanning" and command_id is not None,
            "the MR bridge did not start scanning",
        )
        step_until(lambda: monitor.commands_pending.get("scanner") == 0, "acknowledgement of START_SEQUENCE")
        for message in messages:
            taken = session.console_messages
            peers.send_from_console(message)
            step_until(lambda taken=taken: session.console_messages > taken, f"{message.device_name} taken")
    finally:
        try:
            monitor.stop()
        finally:
            frames_sent = peers.stop()

    check(session.console_messages == console_messages, f"live mode took {session.console_messages} messages")
    check(
        abs(session.clock_s - LIVE_FREEZE_S) < 1e-6,
        f"the procedure clock is at {session.clock_s} s, not {LIVE_FREEZE_S} s",
    )
    check(session.states[first.name][0] == "thaw", "probe 1 was not thawed by the console")
    check(float(np.min(session.temperature_c)) < 0.0, "live mode predicted no freezing")
    # the MR bridge's frames: one live volume node, a slice of the plan's image
    frame = live.image_node.GetImageData() if live.image_node is not None else None
    check(
        frame is not None and frame.GetDimensions() == (32, 32, 1), "the MR frame is not in the live volume"
    )
    check(
        scene.GetNodesByName(live.image_node.GetName()).GetNumberOfItems() == 1,
        "the MR frames made more than one volume node",
    )
    # probe 1's line at the pose the console reported
    line = next((n for n in probes.probe_nodes(scene) if n.GetName() == first.name), None)
    tip, entry = probes.probe_tip_entry(line)
    check(
        np.allclose(tip, placed_tip, atol=1e-3) and np.allclose(entry, placed_entry, atol=1e-3),
        f"probe {first.name}'s line is at {tip.tolist()} → {entry.tolist()}, not the reported pose",
    )
    # the overlay followed the solver: every update shown, at least once a second while freezing
    interval = session.settings.update_interval_s
    shown = [t for t in overlay_times if t <= LIVE_FREEZE_S + 1e-9]
    gaps = [b - a for a, b in itertools.pairwise([0.0, *shown])]
    check(
        interval <= 1.0 and shown and max(gaps) <= interval + 1e-9 and shown[-1] >= LIVE_FREEZE_S - 1e-9,
        f"the overlay showed solver times {shown}: not at least once per second of procedure time",
    )
    check(len(shown) >= LIVE_FREEZE_S / interval, f"the overlay was refreshed {len(shown)} times")
    field = volumes.image_data_to_array(live.temperature_node.GetImageData())
    check(float(np.min(field)) < 0.0, "the overlay's temperature volume shows no freezing")
    check(
        live.isotherm_node.GetSegmentation().GetNumberOfSegments() == len(live.overlay_volumes_ml) > 0,
        "the overlay's isotherm segmentation has no isotherm segments",
    )
    # the readings beside the prediction: one table row per reading, a chart of them
    readings = sum(1 for s in session.samples if s.name == first.name)
    check(readings == steps, f"{readings} readings of probe {first.name} recorded, {steps} sent")
    check(live.sensor_table is not None, "no sensor table")
    measured = tables.table_column(live.sensor_table, f"{first.name} measured")
    expected = [s.measured_c for s in session.samples if s.name == first.name]
    check(
        np.allclose(measured[:readings], expected) and live.sensor_table.GetNumberOfRows() >= readings,
        f"the sensor table shows {measured} for probe {first.name}, the console sent {expected}",
    )
    check(live.sensor_chart is not None, "no chart of the sensor readings")
    return LiveRun(session, live, overlay_times, frames_sent, monitor.overlay_latencies_s)


def replay_live_procedure(journal_path: str | Path, live_session):
    """Replay a live-mode journal (as the panel's Replay does) and check it predicts exactly what
    live mode predicted: the same field, the same readings beside the same predictions.
    ``live_session``: the :class:`~CryoAblationLogic.live.mode.LiveSession` (``LiveRun.session``)."""
    from CryoAblationLogic.live.runner import replay_procedure

    session, truncated = replay_procedure(journal_path)
    check(not truncated, "the journal's last line was cut off")
    check(
        bool(np.array_equal(session.temperature_c, live_session.temperature_c)),
        "the replayed prediction differs from the live one",
    )
    check(
        [(s.name, s.time_s, s.measured_c, s.predicted_c) for s in session.samples]
        == [(s.name, s.time_s, s.measured_c, s.predicted_c) for s in live_session.samples],
        "the replayed readings and predictions differ from the live ones",
    )
    return session
