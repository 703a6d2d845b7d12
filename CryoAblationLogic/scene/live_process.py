"""Live mode in a worker process, so that it keeps its speed inside Slicer.

In Slicer a Python thread runs only while the main thread runs Python (PythonQt never releases
the GIL while Qt idles): our OpenIGTLink socket threads would take a message only during the
module's 100 ms timer slot, and the live solver, stepped in the main thread, would freeze the panel
for as long as each update takes. So everything that does not touch MRML runs in a worker process
(``multiprocessing`` with ``spawn``, ``PythonSlicer`` in Slicer, as :mod:`.solver_process`): the
journal, the :class:`~CryoAblationLogic.live.mode.LiveSession` (its solver), and the links of our
own client (the console, and the scanner where Slicer's OpenIGTLinkIF connector does not carry it).
Its threads have that process's GIL to themselves.

The main thread keeps the scene: :class:`LiveProcessDriver` has the interface of
:class:`~.live_link.LiveSceneDriver` (``step`` from the timer, ``events``, ``session``,
``live_scene``, ``send_scan_plane``, ``send_scanner_command``, ``stop``). Each step takes the
worker's batches from a ``Pipe`` without waiting (MR frames and probe poses onto their nodes, the
newest field onto the overlay, the readings and notes into :class:`SessionMirror`). Where the
scanner comes through the connector (its C++ threads do the socket; its nodes change in the main
thread), the connector source's messages are forwarded to the worker, which journals them before
they are used, as the connector source does in process.

Update latency (message arrival in the worker → overlay updated in the scene) is kept per overlay
update in :attr:`LiveProcessDriver.overlay_latencies_s`.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.inbox import LinkEvent, Received
from CryoAblationLogic.igtl.messages import ImageMessage
from CryoAblationLogic.live.console import ProbePose, ScannerImage, Unrecognised
from CryoAblationLogic.live.late_correction import (
    EnsemblePreparation,
    GatedCorrector,
    LiveCorrection,
    serve_preparations,
)
from CryoAblationLogic.live.link import LiveLink
from CryoAblationLogic.live.runner import LIVE_COALESCED, open_session
from CryoAblationLogic.scene import volumes
from CryoAblationLogic.scene.corrected_ice import CorrectedIceView, check_members, correction_payload
from CryoAblationLogic.scene.live_link import (
    CONNECTOR_PEER,
    LIVE_FOLDER,
    ConnectorSource,
    LiveScene,
    choose_sources,
    connector_available,
    connector_honours,
    scanner_connector,
)

WORKER_PEER = "live worker"
START_TIMEOUT_S = 300.0  # opening the session: a resumed journal is fed again, kernels may compile
REQUEST_TIMEOUT_S = 10.0  # a scan plane or scanner command sent by the worker's link
STOP_TIMEOUT_S = 120.0  # the worker feeds what is left and brings the solver to the clock
_POLL_S = 0.002  # the worker's wait for a request before it looks at its links again


@dataclass
class LiveBatch:
    """What the worker did since its last batch."""

    events: list  # (peer, event): what the messages carried, link events, command timeouts
    scene_events: list  # (peer, device name, forwarded, event): MR frames and probe poses to show
    fed: int  # messages fed to the session
    clock_s: float
    console_messages: int
    states: dict
    samples: list  # new since the last batch
    notes: list  # new since the last batch
    note_counts: dict
    freezing_started: bool
    connected: dict  # link → connected
    commands_pending: dict  # link → number of commands not yet acknowledged
    case: Any = None  # the session's case, when it changed (a probe pose rebuilt the solver)
    overlay: tuple | None = None  # (solver time s, field °C, arrival time of the message that moved it)
    ice: tuple | None = None  # (counts, observed ice map, grid, new records) when an image was segmented
    correction: dict | None = None  # the correction's state (CorrectionState fields) when it changed


@dataclass
class ObservedIceMirror:
    """The worker's :class:`~CryoAblationLogic.live.ice_tracking.IceTracker` as the main thread
    sees it: what :class:`~.observed_ice.ObservedIceView` reads (``counts``, ``ice_map``, ``grid``,
    ``records``)."""

    grid: Any
    ice_map: np.ndarray
    counts: dict = field(default_factory=dict)
    records: list = field(default_factory=list)

    def take(self, counts: dict, ice_map: np.ndarray, grid, records: list) -> None:
        self.counts, self.ice_map, self.grid = counts, ice_map, grid
        self.records.extend(records)  # the tracker's records are append-only and bounded


@dataclass
class CorrectionState:
    """Live mode's correction as the main thread sees it (``scene/corrected_ice.py``).

    ``phase``: "off", "preparing" (the ensemble runs), "ready", "failed"; ``done``/``total``:
    ensemble members run; ``kept``: images observed while it was prepared (assimilated when it is
    ready); ``freeze_before_ready``: the first freeze came while it was preparing; ``departures``: where
    the console left the planned protocol; ``payload``: the latest correction
    (:func:`~.corrected_ice.correction_payload`), None before the first."""

    phase: str = "off"
    members: int = 0
    done: int = 0
    total: int = 0
    kept: int = 0
    freeze_before_ready: bool = False
    placement: str = ""  # the poses the ensemble is drawn around: "planned" or "reported" (by the console)
    generation: int = 0  # the ensemble answering: 0, then 1, 2, … after each re-centring
    recentring: dict | None = None  # {generation, done, total} while a re-centred ensemble is prepared
    departures: list = field(default_factory=list)
    error: str = ""
    payload: dict | None = None
    corrections: int = 0  # payloads taken
    fields: dict = field(default_factory=dict)  # percentile → min-temperature field (°C), as last sent

    def take(self, update: dict) -> None:
        payload = update.pop("payload", None)
        for key, value in update.items():
            setattr(self, key, value)
        if payload is not None:
            self.payload = payload
            self.fields.update(payload["fields"])
            self.corrections += 1

    def text(self) -> str:
        """The Monitor section's line about the correction."""
        # corrected_ice imports slicer's vtkSegmentation; the worker never needs it
        from CryoAblationLogic.scene.corrected_ice import status_line

        if self.phase == "off":
            return ""
        if self.phase == "failed":
            return f"Correction: the ensemble could not be prepared: {self.error}"
        lines = []
        if self.phase == "preparing":
            around = f" around the {self.placement} probe poses" if self.placement else ""
            lines.append(f"Correction: preparing the ensemble, {self.done}/{self.total} solver runs{around}")
            if self.freeze_before_ready:
                lines.append(
                    "The freeze started before the ensemble was ready: the images until it is ready "
                    f"are kept ({self.kept} so far) and taken in when it is."
                )
        elif self.payload is None:
            lines.append(
                f"Correction: ensemble of {self.members} ready; it corrects from the next observed image"
                + (f", with the {self.kept} images observed while it was prepared" if self.kept else "")
            )
        else:
            lines.append(status_line(self.payload, self.departures, self.kept))
        if self.recentring:
            lines.append(
                f"Re-centring the ensemble on the images ({self.recentring['generation']}): "
                f"{self.recentring['done']}/{self.recentring['total']} solver runs; "
                "the current one answers meanwhile"
            )
        if self.departures and (self.payload is None):
            lines.append(
                "Correction NOT VALID: the console departs from the planned protocol: " + self.departures[0]
            )
        return "\n".join(lines)


@dataclass
class SessionMirror:
    """The worker's :class:`~CryoAblationLogic.live.mode.LiveSession` as the main thread sees it:
    what the scene nodes and the panel read (``case``, ``settings``, ``clock_s``, ``time_s``,
    ``temperature_c``, ``states``, ``samples``, ``notes``, ``probe_name``); ``result()`` once live
    mode has stopped."""

    case: Any
    settings: Any
    clock_s: float = 0.0
    time_s: float = 0.0
    temperature_c: np.ndarray | None = None
    console_messages: int = 0
    freezing_started: bool = False
    states: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    note_counts: dict = field(default_factory=dict)
    final_result: Any = None
    ice: ObservedIceMirror | None = None  # the observed ice, once the worker has segmented an image
    correction: CorrectionState = field(default_factory=CorrectionState)

    def probe_name(self, number: int) -> str | None:
        names = self.settings.probe_names
        return names[number - 1] if 1 <= number <= len(names) else None

    def take(self, batch: LiveBatch) -> None:
        self.clock_s = batch.clock_s
        self.console_messages = batch.console_messages
        self.states = batch.states
        self.samples.extend(batch.samples)
        self.notes.extend(batch.notes)
        self.note_counts = batch.note_counts
        self.freezing_started = batch.freezing_started
        if batch.case is not None:
            self.case = batch.case
        if batch.overlay is not None:
            self.time_s, self.temperature_c, _ = batch.overlay
        if batch.ice is not None:
            counts, ice_map, grid, records = batch.ice
            if self.ice is None:
                self.ice = ObservedIceMirror(grid, ice_map)
            self.ice.take(counts, ice_map, grid, records)
        if batch.correction is not None:
            self.correction.take(dict(batch.correction))

    def result(self):
        """The session's prediction as a ``SimulationResult`` (after :meth:`LiveProcessDriver.stop`)."""
        if self.final_result is None:
            raise RuntimeError("live mode is still running: its result comes when it stops")
        return self.final_result


# ---------------------------------------------------------------------------------------------
# The worker process


class _Worker:
    """Runs in the worker process: the journal, the session and our own links."""

    def __init__(self, connection, spec: dict):
        self.connection = connection
        self.spec = spec
        self.journal = self.session = self.link = None
        self.forwarded_role = spec["forwarded_role"]
        self._outbox: queue.Queue = queue.Queue()
        self._samples_sent = self._notes_sent = 0
        self._ice_observed_sent = self._ice_records_sent = 0
        self._case_sent = None
        self._overlay_time_s: float | None = None
        self._last_arrival_s: float | None = None
        self._events: list = []
        self._scene_events: list = []
        self._fed = 0
        # the correction (spec "correction_members"): its ensemble prepared in a process of its own
        self.live_correction: LiveCorrection | None = None
        self.gated: GatedCorrector | None = None
        self._correction_sent: dict | None = None
        self._correction_taken = None  # the tracker's correction last sent
        self._sent_fields: dict = {}

    # the pipe is written by its own thread: a main thread busy in its timer slot (or idling with
    # the GIL held, in Slicer) reads a large field late, and the session must not wait for it
    def _sender(self) -> None:
        while True:
            item = self._outbox.get()
            try:
                self.connection.send(item)
            except (OSError, ValueError):
                return
            if item[0] == "finished":
                return

    def send(self, *item) -> None:
        self._outbox.put(item)

    def run(self) -> None:
        sender = threading.Thread(target=self._sender, name="live worker pipe", daemon=True)
        sender.start()
        try:
            self.open()
        except Exception as error:
            self.send("failed", _sendable(error))
            sender.join(5.0)
            return
        case = self.session.case
        self.send("started", case, self.session.settings, self.session.time_s, self.session.temperature_c)
        self._overlay_time_s = self.session.time_s
        self._case_sent = case
        try:
            self.serve()
        finally:
            sender.join(STOP_TIMEOUT_S)

    def open(self) -> None:
        spec = self.spec
        members = spec.get("correction_members")
        if members is not None:
            # the planned protocol's check of the console needs no ensemble: from the first message;
            # the ensemble, drawn around the poses the console reports, in the process Slicer started
            preparation = EnsemblePreparation(spec["preparation"])
            self.live_correction = LiveCorrection(spec["case"], members, preparation)
            self.gated = self.live_correction.gated
        self.journal, self.session, _ = open_session(
            spec["case"],
            spec["journal_path"],
            update_interval_s=spec["update_interval_s"],
            corrector=self.gated,
        )
        if self.gated is not None:
            if self.session.ice is None:
                self.journal.close()
                raise InputError(
                    "correct", "corrects from the observed ice: this journal's session does not track it"
                )
            session = self.session
            self.live_correction.attach(self.journal, lambda: session.clock_s, session.planned_case)
        scanner, console = spec["scanner"], spec["console"]
        if scanner is not None or console is not None:
            self.link = LiveLink(self.journal, scanner=scanner, console=console, coalesce=LIVE_COALESCED)
            try:
                self.link.start()
            except Exception:
                self.link.stop()
                self.journal.close()
                raise

    def poll_preparation(self) -> None:
        """The ensemble's progress and, when ready, its corrector installed (journaled)."""
        if self.live_correction is not None:
            self.live_correction.poll()

    def _correction_update(self) -> dict | None:
        """The correction's state for the next batch, when it changed (with a new correction)."""
        if self.gated is None:
            return None
        live = self.live_correction.state
        if self.session.freezing_started and not self.gated.ready and live["phase"] == "preparing":
            live["freeze_before_ready"] = True
        state = dict(live)
        state.update(kept=self.gated.kept, departures=self.gated.departures)
        correction = self.session.ice.correction
        payload = None
        if correction is not None and correction is not self._correction_taken:
            self._correction_taken = correction
            margin = self.gated.corrector.settings.target_margin_mm
            payload = correction_payload(correction, self._sent_fields, margin)
        if payload is None and state == self._correction_sent:
            return None
        self._correction_sent = dict(state)
        if payload is not None:
            state["payload"] = payload
        return state

    def serve(self) -> None:
        silence_s = self.spec["silence_s"]
        while True:
            request = None
            try:
                if self.connection.poll(_POLL_S):
                    request = self.connection.recv()
            except (EOFError, OSError):
                request = ("stop",)  # the main process went away: end the procedure cleanly
            if request is not None and request[0] == "stop":
                self.finish()
                return
            if request is not None:
                self.handle(request)
            self.poll_links()
            self.poll_preparation()
            if self._fed == 0 and silence_s:
                self.session.follow_wall_clock(silence_s)
            self.flush()

    def handle(self, request: tuple) -> None:
        kind = request[0]
        if kind == "forwarded":  # a message the connector took in Slicer's process
            _, message, arrival = request
            try:  # journaled before it is used; what cannot be is not used
                self.journal.record_message(
                    message, arrival, "in", peer=CONNECTOR_PEER, link=self.forwarded_role
                )
            except Exception as error:  # a journal fault costs this message, not the session
                detail = f"{message.message_type} {message.device_name!r} dropped, not journaled: {error!r}"
                event = LinkEvent("error", 0, CONNECTOR_PEER, detail[:400], time.time())
                self._events.append((self.forwarded_role, event))
                return
            self.feed(self.forwarded_role, message, arrival, None, forwarded=True)
            return
        try:
            if self.link is None:
                raise InputError("scanner", "live mode's own link does not carry the scanner")
            if kind == "plane":
                value = self.link.send_scan_plane(request[1]) if "scanner" in self.link.links else 0
            elif kind == "command":
                value = self.link.send_scanner_command(request[1]) if "scanner" in self.link.links else None
            else:
                raise ValueError(f"unknown live request {kind!r}")
            self.send("reply", value, None)
        except Exception as error:
            self.send("reply", None, _sendable(error))

    def poll_links(self) -> None:
        if self.link is None:
            return
        for peer, item, events in self.link.poll_received():
            if isinstance(item, Received):
                self.feed(peer, item.message, item.arrival_time_s, events)
            else:  # a link event or a command not acknowledged in time
                self._events.append((peer, item))

    def feed(self, peer: str, message, arrival: float, events, forwarded: bool = False) -> None:
        events = self.session.feed(message, arrival, events, link=peer)
        self._events += [(peer, event) for event in events]
        self._scene_events += [
            (peer, message.device_name, forwarded and isinstance(message, ImageMessage), event)
            for event in events
            if isinstance(event, (ScannerImage, ProbePose))
        ]
        self._last_arrival_s = arrival
        self._fed += 1

    def flush(self) -> None:
        session = self.session
        overlay = None
        if session.time_s != self._overlay_time_s:
            self._overlay_time_s = session.time_s
            overlay = (session.time_s, session.temperature_c, self._last_arrival_s)
        ice = None
        tracker = getattr(session, "ice", None)
        if tracker is not None and tracker.counts["observed"] != self._ice_observed_sent:
            # the map only when it changed: one byte per plan-grid voxel
            ice = (dict(tracker.counts), tracker.ice_map.copy(), tracker.grid)
            ice += (tracker.records[self._ice_records_sent :],)
            self._ice_observed_sent = tracker.counts["observed"]
            self._ice_records_sent = len(tracker.records)
        correction = self._correction_update()
        if not (self._events or self._scene_events or self._fed or overlay or ice or correction):
            return
        case = session.case if session.case is not self._case_sent else None
        self._case_sent = session.case
        links = self.link.links if self.link is not None else {}
        batch = LiveBatch(
            events=self._events,
            scene_events=self._scene_events,
            fed=self._fed,
            clock_s=session.clock_s,
            console_messages=session.console_messages,
            states=dict(session.states),
            samples=session.samples[self._samples_sent :],
            notes=session.notes[self._notes_sent :],
            note_counts=dict(session.note_counts),
            freezing_started=session.freezing_started,
            connected={peer: self.link.connected(peer) for peer in links},
            commands_pending={peer: len(self.link.commands[peer].pending) for peer in links},
            case=case,
            overlay=overlay,
            ice=ice,
            correction=correction,
        )
        self._samples_sent, self._notes_sent = len(session.samples), len(session.notes)
        self._events, self._scene_events, self._fed = [], [], 0
        self.send("batch", batch)

    def finish(self) -> None:
        error = None
        result = None
        try:
            if self.link is not None:
                self.link.stop()
                while True:  # everything received before the stop
                    before = self._fed
                    self.poll_links()
                    if self._fed == before:
                        break
            self.session.finish()
            self.flush()
            self.journal.record_note("stop", {"time_s": self.session.clock_s})
            result = self.session.result()
        except Exception as failure:
            error = _sendable(failure)
        finally:
            try:
                self.journal.close()
            except Exception as failure:
                error = error or _sendable(failure)
        self.send("finished", result, error)


def _serve_live(connection, spec: dict) -> None:  # the worker process's entry
    _Worker(connection, spec).run()


def _prepare_ensemble(connection) -> None:  # the ensemble process's entry
    """Prepares an ensemble for each placement the worker asks for, as the CLI's monitor does
    (``live.late_correction.serve_preparations``: a replay prepared from the journal agrees), and
    sends each back whole; progress after each member. Ends when the worker goes away."""
    try:
        serve_preparations(connection)
    finally:
        connection.close()


def _sendable(error: BaseException) -> BaseException:
    from CryoAblationLogic.scene.solver_process import _sendable as sendable  # one rule for both workers

    return sendable(error)


# ---------------------------------------------------------------------------------------------
# The main thread


class LiveProcessDriver:
    """Live mode with its session and links in a worker process; the scene in the caller's (main)
    thread, brought up to date by :meth:`step` (Slicer: the module's timer). ``sources``: message
    sources that run in the main thread (Slicer's OpenIGTLinkIF connector, see
    :class:`~.live_link.ConnectorSource`, made with no journal: the worker journals what they bring)."""

    def __init__(
        self,
        scene,
        case,
        journal_path,
        *,
        scanner=None,
        console=None,
        sources: list | None = None,
        level_table=None,
        update_interval_s: float = 1.0,
        silence_s: float | None = 1.0,
        executable: str | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        correction_members: int | None = None,
    ):
        if correction_members is not None:
            check_members(correction_members)
            if not case.protocol:
                raise InputError(
                    "protocol", "the correction needs the planned protocol: plan the freeze first"
                )
            if not case.probes:
                raise InputError("probes", "the correction needs the planned probes: place a probe first")
        self.sources = list(sources or [])
        roles = {source.role for source in self.sources}
        if len(roles) > 1:
            raise InputError("sources", "the connector sources must carry one link")
        context = multiprocessing.get_context("spawn")
        if executable:
            context.set_executable(executable)  # Slicer: PythonSlicer, not the Slicer application
        self._connection, child = context.Pipe()
        self._ensemble = None  # the correction's ensemble runs in a process of its own
        preparation = None
        if correction_members is not None:
            preparation, ensemble_end = context.Pipe()
            self._ensemble = context.Process(
                target=_prepare_ensemble, args=(ensemble_end,), name="CryoAblation ensemble", daemon=True
            )
        spec = {
            "case": case,
            "journal_path": str(journal_path),
            "scanner": scanner,
            "console": console,
            "update_interval_s": update_interval_s,
            "silence_s": silence_s,
            "forwarded_role": next(iter(roles), "scanner"),
            "correction_members": correction_members,
            "preparation": preparation,  # the worker's end of the pipe to the ensemble's process
        }
        self._process = context.Process(
            target=_serve_live, args=(child, spec), name="CryoAblation live", daemon=True
        )
        self._process.start()
        child.close()
        if self._ensemble is not None:
            self._ensemble.start()
            ensemble_end.close()
            preparation.close()  # both ends now live in the two processes
        self._batches: list[LiveBatch] = []
        self._finished: tuple | None = None
        self.stopped = False
        self.events: list[tuple[str, object]] = []
        self.connected: dict[str, bool] = {}
        self.commands_pending: dict[str, int] = {}
        self.overlay_latencies_s: list[float] = []
        self._pending_arrival_s: float | None = None
        reply = self._wait_for(("started", "failed"), start_timeout_s, "open the live session")
        if reply[0] == "failed":
            self._process.join(5.0)
            self._end_ensemble()
            raise reply[1]
        _, case, settings, time_s, field = reply
        self.session = SessionMirror(case, settings, time_s=time_s, temperature_c=field)
        self.live_scene = LiveScene(scene, self.session, level_table)
        # the corrected prediction's nodes, made with its first correction; None: not correcting
        self.corrected_view = CorrectedIceView(scene, case.grid, LIVE_FOLDER) if correction_members else None
        self.show_correction = True  # False: the nodes stay as they are, no longer updated
        for source in self.sources:
            source.start()

    # -- the pipe --------------------------------------------------------------------------------
    def _take(self, item: tuple) -> tuple | None:
        """Keep a batch for :meth:`step` (None); anything else is a reply for the caller."""
        if item[0] == "batch":
            self._batches.append(item[1])
            return None
        if item[0] == "finished":
            self._finished = item
        return item

    def _drain(self) -> None:
        """The worker's batches so far, without waiting."""
        try:
            while self._connection.poll(0):
                self._take(self._connection.recv())
        except (EOFError, OSError):
            pass

    def _wait_for(self, kinds: tuple[str, ...], timeout_s: float, what: str) -> tuple:
        """Wait for a reply of one of ``kinds`` (batches on the way are kept for :meth:`step`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the live worker did not {what} within {timeout_s:g} s")
            try:
                reply = self._take(self._connection.recv()) if self._connection.poll(0.05) else None
            except (EOFError, OSError):
                reply = None
                if not self._process.is_alive():
                    code = self._process.exitcode
                    raise RuntimeError(
                        f"the live worker ended (exit code {code}) before it could {what}"
                    ) from None
            if reply is not None and reply[0] in kinds:
                return reply

    def _request(self, *request) -> Any:
        if self.stopped:
            raise RuntimeError("live mode has stopped")
        self._connection.send(request)
        _, value, error = self._wait_for(("reply",), REQUEST_TIMEOUT_S, f"send {request[0]}")
        if error is not None:
            raise error
        return value

    # -- the driver's interface ------------------------------------------------------------------
    def step(self, follow_wall_clock: bool = True) -> int:
        """Forward what the main-thread sources brought, take the worker's batches, show them.
        Returns the messages fed since the last step. (The worker follows the wall clock itself
        while the console is silent; ``follow_wall_clock`` is there for the driver's interface.)"""
        del follow_wall_clock
        self.events = []
        if self.stopped:
            return 0
        for source in self.sources:
            for peer, message, arrival, events in source.poll():
                if message is None:
                    self.events += [(peer, event) for event in events]
                else:
                    try:
                        self._connection.send(("forwarded", message, arrival))
                    except (OSError, ValueError):
                        break
        self._drain()
        fed = self._show(self._batches)
        self._batches = []
        if not self._process.is_alive() and self._finished is None and not self._connection.poll(0):
            self.stopped = True
            detail = f"live mode's worker process ended unexpectedly (exit code {self._process.exitcode})"
            self.events.append(("live", LinkEvent("error", 0, WORKER_PEER, detail, time.time())))
        return fed

    def _show(self, batches: list[LiveBatch]) -> int:
        fed = 0
        for batch in batches:
            self.session.take(batch)
            self.events += batch.events
            self.connected.update(batch.connected)
            self.commands_pending.update(batch.commands_pending)
            fed += batch.fed
            if batch.overlay is not None:
                self._pending_arrival_s = batch.overlay[2]
            for peer, device, forwarded, event in batch.scene_events:
                node = self._connector_image(device) if forwarded else None
                if node is not None:  # the connector's volume node is already updated in place
                    self.live_scene.image_node = node
                    continue
                try:
                    self.live_scene.apply([event])
                except Exception as error:  # a frame or pose the scene cannot show costs that message
                    kind = "IMAGE" if isinstance(event, ScannerImage) else "TRANSFORM"
                    self.events.append((peer, Unrecognised(kind, device, f"not shown: {error!r}"[:300], 0.0)))
        if self.live_scene.refresh_overlay() and self._pending_arrival_s is not None:
            self.overlay_latencies_s.append(time.time() - self._pending_arrival_s)
            self._pending_arrival_s = None
        self.live_scene.refresh_sensor_table()
        self.live_scene.observed_ice.refresh()
        self.refresh_correction()
        return fed

    def refresh_correction(self, force: bool = False) -> bool:
        """Put the newest correction on the corrected nodes (if shown and newer)."""
        view, state = self.corrected_view, self.session.correction
        if view is None or not self.show_correction or state.payload is None:
            return False
        if not force and view.payload is state.payload:
            return False
        view.show(dict(state.payload, fields=dict(state.fields)))  # every field as last sent
        view.payload = state.payload
        return True

    def _connector_image(self, device: str):
        for source in self.sources:
            node = source.image_node_for(device)
            if node is not None:
                return node
        return None

    def send_scan_plane(self, plane_to_ras: np.ndarray) -> int:
        """Our scan plane (4×4, RAS) to the MR bridge as TRANSFORM ``PLANE_0``."""
        count = sum(source.send_scan_plane(plane_to_ras) for source in self.sources)
        return count + (self._request("plane", np.asarray(plane_to_ras, float)) or 0)

    def send_scan_plane_from_slice(self, slice_node) -> int:
        """The plane of a slice view (its SliceToRAS) as the scan plane."""
        return self.send_scan_plane(volumes.vtk_to_matrix(slice_node.GetSliceToRAS()))

    def send_scanner_command(self, command: str) -> str | None:
        """START_UP / START_SEQUENCE / STOP_SEQUENCE as ``CMD_<id>`` (answered by ``ACK_<id>``)."""
        for source in self.sources:
            command_id = source.send_scanner_command(command)
            if command_id is not None:
                return command_id
        return self._request("command", command)

    def _end_ensemble(self) -> None:
        """The ensemble's process ends with the worker (its pipe closes); one still running at
        the stop is of no use any more."""
        if self._ensemble is None:
            return
        self._ensemble.join(2.0)
        if self._ensemble.is_alive():
            self._ensemble.terminate()
            self._ensemble.join(5.0)
        self._ensemble = None

    def alive(self) -> bool:
        return not self.stopped and self._process.is_alive()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the links, feed what is left, bring the solver to the procedure clock, close the
        journal (all in the worker); then show the end in the scene."""
        for source in self.sources:
            source.stop()
        if self.stopped and self._finished is None:
            self._process.join(1.0)
            self._end_ensemble()
            return
        try:
            for source in self.sources:  # what the connector brought before it stopped
                for _peer, message, arrival, _events in source.poll():
                    if message is not None:
                        self._connection.send(("forwarded", message, arrival))
            self._connection.send(("stop",))
            self._wait_for(("finished",), timeout_s, "finish the procedure")
        finally:
            self.stopped = True
            self._show(self._batches)
            self._batches = []
            self._process.join(5.0)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5.0)
            self._connection.close()
            self._end_ensemble()
        _, result, error = self._finished
        if error is not None:
            raise error
        self.session.final_result = result
        self.session.time_s = result.simulated_s
        self.session.temperature_c = result.temperature_final
        self.live_scene.refresh_overlay(force=True)
        self.live_scene.refresh_sensor_table(force=True)
        self.live_scene.observed_ice.refresh()


def start_live_process(
    scene,
    case,
    journal_path,
    *,
    scanner=None,
    console=None,
    use_connector: bool | None = None,
    level_table=None,
    update_interval_s: float = 1.0,
    silence_s: float | None = 1.0,
    executable: str | None = None,
    correction_members: int | None = None,
) -> LiveProcessDriver:
    """Live mode in ``scene`` with its session and links in a worker process (what the module
    uses): the MR bridge through Slicer's OpenIGTLinkIF connector where it can carry it (the same
    choice as :func:`~.live_link.choose_sources`), everything else through our own link in the
    worker. ``executable``: the worker's Python (Slicer: PythonSlicer). ``correction_members``:
    correct the prediction from the observed ice with an ensemble of this many solver runs
    (``scene/corrected_ice.py``; None: no correction)."""
    if use_connector is None:
        use_connector = connector_available() and connector_honours(scanner)
    elif use_connector and scanner is not None and not connector_honours(scanner):
        choose_sources(scene, None, scanner=scanner, use_connector=True)  # raises, naming the field
    sources = []
    if use_connector and scanner is not None:
        sources = [ConnectorSource(scanner_connector(scene, scanner), journal=None)]  # the worker journals
        scanner = None
    return LiveProcessDriver(
        scene,
        case,
        journal_path,
        scanner=scanner,
        console=console,
        sources=sources,
        level_table=level_table,
        update_interval_s=update_interval_s,
        silence_s=silence_s,
        executable=executable,
        correction_members=correction_members,
    )
