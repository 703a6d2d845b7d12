"""A planning session: everything the Slicer module's panel does to a plan, on a scene given to it.

:class:`PlanningSession` holds what Slicer's ``CryoAblationLogic`` class used to hold itself — the
probes and their needles, the protocol, the simulation settings, the live preview, the full run,
the Monitor section's links and live mode, and the last run for the report — and does it through
the scene layer's adapters, so the module is a thin shell and everything here runs (and is tested)
on ``slicer-core`` without Qt. Values the panel shows come from the plan (the parameter node's
settings, the nodes, the last run), never read back out of a display table.

Slicer-only services are passed in: ``segmentations_logic`` and ``sequences_logic`` (module
logics), ``require_solver`` (called before the numba solver is first imported; in Slicer it offers
to install numba and raises if it is not there). Everything runs on the caller's thread, the main
thread in Slicer; background work reports back when :meth:`poll_simulation`,
:meth:`process_preview` and :meth:`poll_monitoring` are called (a timer in Slicer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from slicer import vtkMRMLInteractionNode, vtkMRMLMarkupsNode

from CryoAblationLogic.core import protocols
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.live import link_panel
from CryoAblationLogic.live.runner import journal_location
from CryoAblationLogic.physics.materials import load_material_library
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.scene import case_io, colors, inputs, probes, results, sample_data, workflow
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.link_process import LinkProcess
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
from CryoAblationLogic.scene.solver_process import SolverProcess

# The panel's timer: every 100 ms, and every 20 ms while a probe move waits for its overlay. The
# worker answers within tens of ms, and a 100 ms timer alone added up to two slots (one to send the
# move, one per answer) to the preview's latency; a slot that finds nothing costs microseconds.
TIMER_INTERVAL_MS = 100
TIMER_INTERVAL_AWAITING_MS = 20

NEW_STEP = {"action": "freeze", "duration_s": 600.0, "probes": "all", "flow_percent": 100}
CASE_FILE_NAME = "CryoAblation.cryo.json"


def protocol_from_cells(cells: Sequence[Sequence[str]], names: Sequence[str]) -> list[dict]:
    """The protocol from the panel's table text: action, thaw mode, minutes, flow %, probes."""
    rows = []
    for index, (action, mode, minutes, flow, probe_names) in enumerate(cells):
        try:
            minutes_value = float(minutes)
            flow_value = float(flow) if flow.strip() else None
        except ValueError as error:
            raise ValueError(f"Protocol step {index + 1}: minutes and flow must be numbers.") from error
        rows.append(protocols.StepRow(action, mode, minutes_value, flow_value, probe_names))
    return protocols.rows_to_protocol(rows, list(names))


def protocol_cells(protocol: Sequence[dict]) -> list[list[str]]:
    """The protocol as the panel's table text (the inverse of :func:`protocol_from_cells`)."""
    cells = []
    for step in protocol:
        row = protocols.step_to_row(step)
        flow = "" if row.flow_percent is None else f"{row.flow_percent:g}"
        cells.append([row.action, row.mode, f"{row.minutes:g}", flow, row.probes])
    return cells


class PlanningSession:
    """The plan of one scene, as the module's panel works on it (see the module docstring)."""

    def __init__(
        self,
        scene,
        *,
        segmentations_logic=None,
        sequences_logic=None,
        require_solver: Callable[[], None] = lambda: None,
        on_probes_changed: Callable[[], None] | None = None,
        worker_python: str | None = None,
    ):
        self.scene = scene
        self.segmentations_logic = segmentations_logic
        self.sequences_logic = sequences_logic
        self.require_solver = require_solver
        self.on_probes_changed = on_probes_changed
        self.worker_python = worker_python  # the solver processes' Python (Slicer: PythonSlicer)
        self._solvers: dict[str, Any] = {}  # "run" and "preview": one worker process each
        self.last_run: workflow.FinishedRun | None = None
        self._catalog = None
        self._follower = None
        self._preview = None
        self._job = None
        self._placement_tags: dict[str, tuple[Any, int]] = {}
        self._labels_cache: dict = {}  # the tissue label map, reused while the segmentation is unchanged
        # set when the views show another prediction than the last run's (live mode's, a replay's)
        self.shown_prediction_note = ""
        self.monitor = MonitorSession(self)

    @property
    def parameters(self) -> P.ParameterNode:
        return P.get_parameter_node(self.scene)

    def settings(self) -> P.PlanSettings:
        return self.parameters.settings()

    # -- 1. inputs -----------------------------------------------------------------------
    def load_sample_phantom(self, with_probes: bool = False) -> P.ParameterNode:
        """The synthetic phantom as a plan (image, segments with roles, sensors)."""
        parameters = build_phantom_scene(
            self.scene,
            self.segmentations_logic,
            spacing_mm=sample_data.load_recipe().spacing_mm,
            with_probes=with_probes,
        )
        self.follow_probes()
        return parameters

    @staticmethod
    def role_names() -> list[str]:
        return list(inputs.ROLES)

    def material_names(self) -> list[str]:
        return sorted(set(load_material_library()) | set(self.settings().materials))

    @staticmethod
    def segment_rows(segmentation_node) -> list[tuple[str, str, str, str]]:
        """``(segment ID, name, role, material)`` of every segment; role and material may be empty."""
        tagged = {info.segment_id: info for info in inputs.segment_infos(segmentation_node)}
        segmentation = segmentation_node.GetSegmentation()
        rows = []
        for segment_id in segmentation.GetSegmentIDs():
            info = tagged.get(segment_id)
            name = segmentation.GetSegment(segment_id).GetName()
            rows.append((segment_id, name, info.role if info else "", (info.material or "") if info else ""))
        return rows

    @staticmethod
    def set_segment_role(segmentation_node, segment_id: str, role: str, material: str) -> None:
        """Give a segment its role and material; an empty role leaves the segment out of the plan."""
        if not role:
            inputs.clear_segment_role(segmentation_node, segment_id)
            return
        inputs.set_segment_role(segmentation_node, segment_id, role, material or None)

    # -- 2. probes -----------------------------------------------------------------------
    def probe_catalog(self):
        if self._catalog is None:
            self._catalog = load_probe_catalog()
        return self._catalog

    def probe_model_names(self) -> list[str]:
        return sorted(self.probe_catalog())

    def probe_nodes(self) -> list:
        return self.parameters.probes()

    def follow_probes(self) -> None:
        """Keep the needle models on their lines (and feed the preview) for every placed probe."""
        if self._follower is not None:
            self._follower.stop()
        self._follower = probes.NeedleFollower(self.probe_catalog(), on_probe_moved=self._probe_moved)
        for node in self.probe_nodes():
            if probes.is_placed(node):
                self._follower.follow(node)

    def start_probe_placement(self, model: str, selection_node, interaction_node):
        """A new probe of a catalog model, made by the same path as scripted probes; the user then
        clicks its tip, then its entry (Markups place mode on the given singleton nodes)."""
        if model not in self.probe_catalog():
            raise ValueError("Choose a probe model from the catalog first.")
        node = probes.new_probe(self.scene, probes.next_probe_name(self.scene), model)
        self.parameters.add(P.PROBE, node)
        tag = node.AddObserver(vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._probe_point_placed)
        self._placement_tags[node.GetID()] = (node, tag)
        selection_node.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsLineNode")
        selection_node.SetActivePlaceNodeID(node.GetID())
        interaction_node.SetCurrentInteractionMode(vtkMRMLInteractionNode.Place)
        return node

    def _probe_point_placed(self, node, _event) -> None:
        if not probes.is_placed(node):
            return
        node.RemoveObserver(self._placement_tags.pop(node.GetID())[1])
        if self._follower is not None:
            self._follower.follow(node)
        self._probe_moved(node)

    def _probe_moved(self, _node) -> None:
        if self._preview is not None:
            self._preview.request()
        if self.on_probes_changed is not None:
            self.on_probes_changed()

    def tidy_removed_probes(self) -> bool:
        """After a probe's line was deleted outside the panel (Data module, the Delete key): stop
        following it and remove its needle models; True when there was one (the table then
        follows). Called from the panel's timer: a scene observer in Python would tie the scene's
        life to this session's."""
        present = {node.GetID() for node in self.probe_nodes()}
        gone = [
            line for line in (self._follower.lines() if self._follower else []) if line.GetID() not in present
        ]
        for line in gone:
            self._follower.unfollow(line)
        for node_id in [i for i in self._placement_tags if i not in present]:
            node, tag = self._placement_tags.pop(node_id)
            node.RemoveObserver(tag)
            gone.append(node)
        orphans = probes.orphan_models(self.scene)
        for model in orphans:
            self.scene.RemoveNode(model)
        if gone or orphans:
            self._probe_moved(None)
        return bool(gone or orphans)

    def _probe_at(self, index: int):
        nodes = self.probe_nodes()
        if not 0 <= index < len(nodes):
            raise ValueError("Select the probe in the table.")
        return nodes[index]

    def remove_probe(self, index: int) -> None:
        node = self._probe_at(index)
        name = node.GetName()
        naming = [
            str(number)
            for number, step in enumerate(self.settings().protocol, 1)
            if not isinstance(step.get("probes", protocols.ALL_PROBES), str) and name in step["probes"]
        ]
        if naming:  # refused: the protocol would name a probe that no longer exists
            raise InputError(
                f"probe {name}",
                f"protocol step {', '.join(naming)} names it: change that step's probes (Protocol) first",
            )
        if self._follower is not None:
            self._follower.unfollow(node)
        node_and_tag = self._placement_tags.pop(node.GetID(), None)
        if node_and_tag is not None:
            node.RemoveObserver(node_and_tag[1])
        self.parameters.remove(P.PROBE, node)
        probes.remove_probe(node)
        self._probe_moved(None)

    def set_probe_model(self, index: int, model: str) -> None:
        node = self._probe_at(index)
        probes.set_probe_model(node, model, probes.probe_group(node))
        if probes.is_placed(node):
            probes.update_needle_models(node, self.probe_catalog())
        self._probe_moved(node)

    def probe_rows(self) -> list[tuple[str, str, str, str]]:
        """``(name, model, tip "R, A, S", length tip→entry)`` of each probe, as text (mm)."""
        rows = []
        for node in self.probe_nodes():
            model = node.GetAttribute(probes.MODEL_ATTRIBUTE) or ""
            if not probes.is_placed(node):
                rows.append((node.GetName(), model, "placing…", ""))
                continue
            tip, entry = probes.probe_tip_entry(node)
            tip_text = ", ".join(f"{value:.1f}" for value in tip)
            rows.append((node.GetName(), model, tip_text, f"{float(np.linalg.norm(entry - tip)):.1f}"))
        return rows

    def probe_warnings(self) -> list[str]:
        """Placement warnings on the preview grid (no solver, so no numba, needed)."""
        return workflow.placement_warnings(
            self.scene, self.parameters, self.probe_catalog(), self._labels_cache
        )

    # -- 3. protocol ---------------------------------------------------------------------
    @staticmethod
    def protocol_preset_names() -> list[str]:
        return list(protocols.PRESETS)

    def protocol_rows(self) -> list[list[str]]:
        return protocol_cells(self.settings().protocol)

    def set_protocol_rows(self, cells: Sequence[Sequence[str]]) -> None:
        nodes = self.probe_nodes()
        names = [node.GetName() for node in nodes] + [probes.probe_group(node) for node in nodes]
        self.set_protocol(protocol_from_cells(cells, names))

    def set_protocol(self, protocol: list[dict]) -> None:
        """A new protocol; snapshot times past its end are dropped."""
        kept = protocols.snapshot_times_within(self.settings().snapshot_times_s, protocol)
        self.parameters.update_settings(protocol=protocol, snapshot_times_s=kept)

    def apply_protocol_preset(self, name: str) -> None:
        self.set_protocol(protocols.preset_protocol(name))

    def add_protocol_step(self) -> None:
        self.set_protocol([*self.settings().protocol, dict(NEW_STEP)])

    def remove_protocol_step(self, index: int) -> None:
        protocol = list(self.settings().protocol)
        if not 0 <= index < len(protocol):
            raise ValueError("Select the step to remove in the table.")
        if len(protocol) == 1:
            raise ValueError("A protocol needs at least one step.")
        del protocol[index]
        self.set_protocol(protocol)

    # -- 4. simulate ---------------------------------------------------------------------
    def grid_spacing_mm(self) -> float:
        """The full run's voxel size; 0 stands for the image's own voxels."""
        return self.settings().grid_spacing_mm or 0.0

    def set_grid_spacing_mm(self, spacing_mm: float) -> None:
        self.parameters.update_settings(grid_spacing_mm=float(spacing_mm) if spacing_mm > 0 else None)

    def isotherm_levels_text(self) -> str:
        node = self.parameters.get(P.ISOTHERM_LEVELS)  # read only: a plan without one shows the defaults
        levels = (
            [level for level, _rgb in colors.isotherm_levels(node)]
            if node is not None
            else list(colors.DEFAULT_ISOTHERM_LEVELS_C)
        )
        return ", ".join(colors.format_level(level) for level in levels)

    def set_isotherm_levels(self, text: str) -> None:
        levels = colors.parse_levels(text)
        results.levels_of(self.parameters)  # makes the level table if the plan has none yet
        colors.set_isotherm_levels(self.parameters.get(P.ISOTHERM_LEVELS), levels)

    def set_preview_enabled(self, enabled: bool) -> None:
        if not enabled:
            if self._preview is not None:
                self._preview.stop()
                self._preview = None
            return
        self.require_solver()  # before importing the solver, which needs numba
        from CryoAblationLogic.scene.preview import LivePreview  # imports the numba solver

        if self._preview is None:
            self._preview = LivePreview(self.scene, self.parameters, solver=self.worker("preview"))
        self._preview.request()

    def preview_active(self) -> bool:
        return self._preview is not None

    @property
    def preview(self):
        """The running live preview (``LivePreview``: its overlay generation and latency), or None."""
        return self._preview

    def timer_interval_ms(self) -> int:
        """How soon the panel's timer should call again: sooner while the preview awaits an answer."""
        if self._preview is not None and self._preview.awaiting_answer:
            return TIMER_INTERVAL_AWAITING_MS
        return TIMER_INTERVAL_MS

    def process_preview(self) -> bool:
        """Apply a finished preview to the overlay; a failed preview raises its error once."""
        if self._preview is None:
            return False
        changed = self._preview.process_pending()
        if self._preview.last_error is not None:
            error, self._preview.last_error = self._preview.last_error, None
            raise error
        return changed

    def start_simulation(self):
        """Start the full run of the protocol in the background (poll it with poll_simulation)."""
        if self.simulation_running():
            raise RuntimeError("A simulation is already running.")
        self.require_solver()  # before importing the solver, which needs numba
        job = workflow.SimulationJob(
            self.scene, self.parameters, catalog=self.probe_catalog(), solver=self.worker("run")
        )
        job.start()  # reads and checks the plan: a refused plan leaves no run behind
        self._job = job
        return job

    def worker(self, purpose: str) -> SolverProcess:
        """The worker process for full runs, the preview or a journal's replay (``purpose``: "run",
        "preview", "replay"), started on first use and kept (its kernels stay loaded); never a
        thread, which would starve under Slicer's PythonQt."""
        solver = self._solvers.get(purpose)
        if solver is None or not solver.alive():
            solver = self._solvers[purpose] = SolverProcess(
                f"CryoAblation {purpose}", executable=self.worker_python
            )
        return solver

    def simulation_running(self) -> bool:
        return self._job is not None

    def simulation_progress(self) -> tuple[float, float]:
        """``(fraction done, simulated time s)`` of the run in progress."""
        if self._job is None:
            return 0.0, 0.0
        return self._job.progress, self._job.simulated_s

    def cancel_simulation(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def poll_simulation(self) -> str | None:
        """None while running; a status message once the run has ended (its results are then in
        the scene). A failed run raises its error."""
        job = self._job
        if job is None or job.running:
            return None
        self._job = None
        if job.error is not None:
            if job.cancelled:
                return "Simulation cancelled."
            raise job.error
        self.last_run = job.poll()
        self.shown_prediction_note = ""
        covered = ", ".join(
            f"{item.level_c:g} °C: {item.target_coverage_percent:.0f} %"
            for item in self.last_run.plan.metrics.isotherms
        )
        return f"Simulated {job.simulated_s:.0f} s. Target coverage {covered}."

    def playback_time_range(self) -> tuple[float, float]:
        browser = self.parameters.get(P.PLAYBACK_BROWSER)
        sequence = browser.GetMasterSequenceNode() if browser is not None else None
        if sequence is None or sequence.GetNumberOfDataNodes() == 0:
            return 0.0, 0.0
        times = [float(sequence.GetNthIndexValue(i)) for i in range(sequence.GetNumberOfDataNodes())]
        return min(times), max(times)

    def show_time(self, time_s: float) -> float:
        """Show the result frame nearest ``time_s``; returns the frame's time."""
        browser = self.parameters.get(P.PLAYBACK_BROWSER)
        if browser is None:
            return 0.0
        return results.select_playback_time(browser, time_s, self.sequences_logic)

    # -- 6. results ----------------------------------------------------------------------
    def result_tables(self) -> tuple[Any, Any, list[str]]:
        """``(metrics table node, critical-structures table node, warnings)`` of the last run; the
        warnings are the plan's values (kept with the scene), the tables are for display only."""
        parameters = self.parameters
        note = [self.shown_prediction_note] if self.shown_prediction_note else []
        return (
            parameters.get(P.METRICS_TABLE),
            parameters.get(P.CRITICAL_TABLE),
            note + list(parameters.settings().run_warnings),
        )

    def chart(self, which: str):
        """The plot chart node of the last run: ``"ice"`` (ice volume) or ``"sensors"``."""
        role = {"ice": P.ICE_VOLUME_CHART, "sensors": P.SENSOR_CHART}[which]
        chart = self.parameters.get(role)
        if chart is None:
            raise ValueError("Run a simulation first: there is no plot yet.")
        return chart

    def export_report(self, directory: str) -> str:
        """Write the HTML report of the last simulation in ``directory``/report."""
        from CryoAblationLogic.scene.plan_report import write_plan_report  # the report layer's templates

        if not directory:
            raise ValueError("Choose the folder to export to.")
        if self.last_run is None:
            raise ValueError("Simulate the plan first: the report shows the last simulation.")
        path = write_plan_report(
            self.scene,
            self.parameters,
            self.last_run,
            Path(directory) / "report",
            catalog=self.probe_catalog(),
        )
        return str(path)

    def export_case(self, directory: str) -> str:
        """Write the plan as ``CryoAblation.cryo.json`` (and its label map) in ``directory``."""
        if not directory:
            raise ValueError("Choose the folder to export to.")
        return str(case_io.export_case(self.scene, Path(directory) / CASE_FILE_NAME, self.parameters))

    # -- the end -------------------------------------------------------------------------
    def stop_background_work(self, *, scene_closing: bool = False) -> None:
        """Stop monitoring, the preview and a run in progress. While the scene closes, live mode's
        prediction is not written into it (the scene is going away)."""
        self.monitor.stop(show_result=not scene_closing)
        if self._preview is not None:
            self._preview.stop()
            self._preview = None
        if self._job is not None:
            self._job.cancel()
            self._job.wait(5.0)
            self._job = None
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        for solver in self._solvers.values():
            solver.stop()
        self._solvers.clear()
        for node, tag in self._placement_tags.values():
            node.RemoveObserver(tag)
        self._placement_tags.clear()
        if scene_closing:
            self.last_run = None
            self.shown_prediction_note = ""


class MonitorSession:
    """The Monitor section: links to the scanner and the cryo console, plain or in live mode."""

    def __init__(self, planning: PlanningSession):
        self.planning = planning
        self._link = None  # plain monitoring's links (link_process.LinkProcess), while connected
        self._live_monitor = None  # live mode: LiveProcessDriver (worker: links, journal, solver)
        self._live_session = None  # the last live-mode session (running, stopped or replayed)
        self._replay = None  # the solver process replaying a live-mode journal, while it does
        self._state = None

    def start(
        self, scanner_host, scanner_port, console_host, console_port, journal_path="", scanner_peers=""
    ) -> None:
        """Listen for the scanner's bridge and connect to the console; journal everything if a
        journal file is given. ``scanner_peers``: who may connect as the scanner besides this
        computer (:func:`~CryoAblationLogic.live.link_panel.parse_peers`)."""
        self._not_replaying()
        self.stop()
        scanner, console = link_panel.live_endpoints(
            scanner_host, scanner_port, console_host, console_port, link_panel.parse_peers(scanner_peers)
        )
        journal = journal_location(journal_path, key="journal") if journal_path.strip() else None
        # the links in a worker process: in Slicer their socket threads would starve (link_process)
        self._link = LinkProcess(journal, scanner, console, executable=self.planning.worker_python)
        self._live_session = None
        self._state = link_panel.LinkPanel()
        self._state.started()

    def _not_replaying(self) -> None:
        if self.replaying():
            raise RuntimeError("A journal is being replayed: wait for it to finish.")

    def active(self) -> bool:
        return self._link is not None or self._live_monitor is not None

    def live(self) -> bool:
        return self._live_monitor is not None

    def start_live(
        self,
        scanner_host,
        scanner_port,
        console_host,
        console_port,
        journal_path,
        scanner_peers="",
        correction_members: int | None = None,
    ) -> None:
        """Live mode (the live layer's monitor, ``live_link.start_live_scene``, in this scene):
        the console's events drive the plan's simulation in step with the procedure. Needs numba
        and a journal file (the procedure can then be replayed exactly). ``correction_members``:
        correct the prediction from the observed ice with an ensemble of this many solver runs
        (``scene/corrected_ice.py``; None: no correction)."""
        self._not_replaying()
        if not journal_path.strip():
            raise ValueError("Live mode records the procedure: enter a journal file (….jsonl) first.")
        journal_location(journal_path, key="journal")
        scanner, console = link_panel.live_endpoints(
            scanner_host, scanner_port, console_host, console_port, link_panel.parse_peers(scanner_peers)
        )
        self.planning.require_solver()  # before importing the solver, which needs numba
        from CryoAblationLogic.scene.live_process import start_live_process  # imports the numba solver

        planning = self.planning
        case = case_io.build_case(planning.scene, planning.parameters).parse()
        self.stop()
        # session, solver and our own links in a worker process: in Slicer a thread would starve
        self._live_monitor = start_live_process(
            planning.scene,
            case,
            journal_path.strip(),
            scanner=scanner,
            console=console,
            level_table=planning.parameters.get(P.ISOTHERM_LEVELS),
            executable=planning.worker_python,
            correction_members=correction_members,
        )
        self._live_session = self._live_monitor.session
        self._state = link_panel.LinkPanel(live=True)
        self._state.started()

    def correction(self):
        """Live mode's correction (``live_process.CorrectionState``; None without live mode)."""
        session = self._live_session
        return getattr(session, "correction", None)

    def corrected_nodes(self):
        """The corrected prediction's nodes (``corrected_ice.CorrectedIceView``), or None."""
        return getattr(self._live_monitor, "corrected_view", None)

    def show_correction(self, shown: bool) -> bool:
        """Keep the corrected nodes updated (True) or leave them as they are (False); False when
        live mode runs without a correction (the option takes effect when live mode starts)."""
        monitor = self._live_monitor
        if monitor is None or getattr(monitor, "corrected_view", None) is None:
            return False
        monitor.show_correction = bool(shown)
        if shown:
            monitor.refresh_correction(force=True)
        return True

    def live_scene_nodes(self):
        """The scene nodes of the running live mode (``LiveScene``); None when live mode is off."""
        return self._live_monitor.live_scene if self._live_monitor is not None else None

    def poll(self) -> tuple[dict, list, list]:
        """``(lights {source: off|waiting|connected}, sensor rows, messages)`` after taking the
        events that arrived since the last call (in live mode: one step of the live monitor)."""
        state = self._state or link_panel.LinkPanel()
        if self._link is not None:
            for source, event in self._link.poll():
                state.apply(source, event)
        if self._live_monitor is not None:
            self._live_monitor.step()
            for source, event in self._live_monitor.events:
                state.apply(source, event)
        if self._link is None and self._live_session is not None:  # running, stopped or replayed
            return link_panel.live_panel(state, self._live_session)
        return dict(state.lights), state.sensor_rows(), list(state.messages)

    def review_journal(self, journal_path: str) -> int | None:
        """Show a recorded procedure (not while connected); returns the number of messages replayed.
        A live-mode journal is run through live mode again, its prediction as well, in a solver
        process (it takes as long as a simulation): then None, and :meth:`poll_replay` ends it."""
        if self.active() or self.replaying():
            raise RuntimeError("Disconnect, or wait for the replay, before replaying a journal.")
        path = journal_path.strip()
        if not path:
            raise ValueError("Enter the journal file to replay.")
        if link_panel.is_live_journal(path):  # live mode again: the same prediction, into the scene
            self.planning.require_solver()
            replay = self.planning.worker("replay")
            replay.submit("replay_journal", path)
            self._replay, self._state, self._live_session = replay, link_panel.LinkPanel(), None
            return None
        state = link_panel.LinkPanel()
        count = link_panel.review_journal(state, path)
        self._state, self._live_session = state, None
        return count

    def _show_prediction(self, result, whose: str) -> None:
        """A live or replayed prediction into the scene's result nodes; the metrics tables and
        warnings stay those of the last simulation, and the panel says so."""
        results.show_result(self.planning.scene, self.planning.parameters, result)
        self.planning.shown_prediction_note = (
            f"The views show {whose} prediction (to {result.simulated_s:.0f} s of the procedure); the "
            "tables and warnings below are of the last simulation of the plan."
        )

    def replaying(self) -> bool:
        """A live-mode journal's replay runs (False once its process was stopped with the panel's
        background work: a closing scene)."""
        return self._replay is not None and self._replay.busy

    def poll_replay(self) -> int | None:
        """A live-mode journal's replay (:meth:`review_journal`): None while it runs; once done, its
        prediction is shown in the scene and the number of console messages replayed returned.
        Raises what the replay raised (a broken or foreign journal, a missing case file)."""
        if not self.replaying():
            self._replay = None
            return None
        reply = self._replay.poll()
        if reply is None:
            return None
        self._replay = None
        if reply.error is not None:
            raise reply.error
        replayed = reply.result
        self._show_prediction(replayed.result(), "the replayed journal's")
        self._live_session = replayed
        return replayed.console_messages

    def stop(self, *, show_result: bool = True) -> None:
        """Disconnect; live mode's prediction so far goes into the scene (unless it is closing). A
        journal's replay is left to run (its solver process stops with the panel's background work)."""
        monitor, self._live_monitor = self._live_monitor, None
        if monitor is not None:
            monitor.stop()  # feeds what is left, brings the solver to the procedure clock, closes the journal
            if show_result:
                self._show_prediction(monitor.session.result(), "live mode's")
            else:
                self._live_session = None
        link, self._link = self._link, None
        if not show_result:  # the scene closes: nothing of this session's readings is shown again
            self._state = self._live_session = None
        if self._state is not None:
            self._state.stopped()
        if link is not None:
            link.stop()  # its last events are not shown: the lights are off
