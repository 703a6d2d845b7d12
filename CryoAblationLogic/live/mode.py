"""Live mode: the plan's simulation driven by what the cryo console reports, as it happens.

A :class:`LiveSession` owns a :class:`~CryoAblationLogic.physics.simulation.Simulation` of the
plan's case. Every probe starts off; the console's freeze/thaw/off events switch the probes in
the solver (``set_probe_state``) at the moment they happened, and the solver follows the
procedure clock.

Procedure clock: the console's own time stamps (a message without one counts at its arrival
time), from the first console message on (procedure time 0). Only console messages move it, and it
never goes back: an event stamped earlier than the clock takes effect at the clock. No message
moves it by more than ``max_clock_step_s`` (a stamp further ahead moves it that far and is noted),
and it stops at ``MAX_PROCEDURE_S``, so a few bytes cannot buy minutes of solver time. When the
console falls silent, :meth:`LiveSession.follow_wall_clock` moves it on with a monotonic clock (by
the same bounded steps), and journals each such move, so that a replay moves it at the same point.

No message can end a session: what live mode cannot use in a message (a bad number, a fault in
the solver or in interpreting it) becomes a note on that message ("message_fault", journaled and
shown) and the session goes on. Commands that change the simulation (freeze, thaw, off, probe
poses, and the console's clock) count only when they came over the console link (``link``
"console", or None where the caller has no links, as in tests and old journals).

Determinism: the solver stops only at the update ticks (every ``update_interval_s`` of procedure
time), at the snapshot times of the case and at the times of applied events — all functions of the
messages, never of when they were polled. Feeding the journaled messages again in journal order
(:func:`feed_journal`) therefore repeats every solver step and gives the same field bit for bit.
That holds while all console messages come over one link (their order is then the journal order)
and TRANSFORM poses are not coalesced (the monitor keeps every pose).

Probe poses (``Probe<n>ToScanner``: origin at the tip, z axis up the shaft): console probe ``n`` is
the plan's ``n``-th probe. Before any probe has frozen, a pose that differs from the solver's
geometry (by more than ``pose_tolerance_mm`` at the tip or ``pose_tolerance_deg``) rebuilds the
solver with the measured placement (public API: a new ``Simulation`` of the moved case, advanced
to the clock with the probes as they were; probes that never froze leave the field untouched, so
nothing is lost). Once freezing has begun, the solver has no way to move a probe inside an
existing ice ball, and a probe frozen into the ice cannot move much anyway: a later move is
recorded (a :class:`Note` "probe_move_ignored" with the distance) and the solver keeps the
geometry it froze with.

Snapshots of the field are kept at the case's ``outputs.snapshot_times_s``, read as procedure
times.

Sensor readings: probe temperatures (``ProbeTemps`` / ``Probe<n>Temp``) are recorded beside the
solver's probe surface temperature and the predicted tissue temperature at the probe tip; readings
of the plan's sensors (SENSOR ``<sensor name>``) beside the predicted temperature at the sensor.

Observed ice (``track_ice=True``, journaled with the settings): every MR image goes to an
:class:`~.ice_tracking.IceTracker` — a baseline of its geometry before the first freeze, then the
ice segmented against it and compared with the solver's field at that moment; the optional
``corrector`` (``update(time_s, observation)``) gets each observation. :func:`write_live_outputs`
writes ``predicted/``, ``observed/``, ``corrected/`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.plan import Case
from CryoAblationLogic.igtl.messages import Message
from CryoAblationLogic.io.case_file import save_case
from CryoAblationLogic.io.result_folder import write_result_folder
from CryoAblationLogic.live.console import (
    ConsoleFault,
    Event,
    ProbePose,
    ProbeStateChange,
    ProbeTemperatures,
    ScannerImage,
    SensorReading,
    Unrecognised,
    interpret_or_unrecognised,
)
from CryoAblationLogic.live.ice_tracking import IceTracker, procedure_time
from CryoAblationLogic.live.journal import JournalContents, image_kept, record_to_message

CONSOLE_EVENTS = (ProbePose, ProbeStateChange, ConsoleFault, ProbeTemperatures, SensorReading)
DEFAULT_UPDATE_INTERVAL_S = 1.0
MIN_UPDATE_INTERVAL_S, MAX_UPDATE_INTERVAL_S = 0.05, 600.0
DEFAULT_MAX_CLOCK_STEP_S = 60.0  # the most one message (or one wall-clock move) advances the clock
MAX_PROCEDURE_S = 12 * 3600.0  # the clock stops here: no procedure runs for half a day
MAX_NOTES_PER_KIND = 200  # further notes of a kind are counted (a flooding peer cannot fill memory)
_EPS = 1e-9


@dataclass(frozen=True)
class FieldUpdate:
    """The solver reached ``time_s`` (procedure s): isotherm volumes (ml) of the field then."""

    time_s: float
    volumes_ml: dict[float, float]
    states: dict[str, tuple[str, float, str | None]]


@dataclass(frozen=True)
class SensorSample:
    """A measured temperature beside the prediction. ``time_s``: the reading's procedure time;
    ``predicted_time_s``: the solver time of the prediction (the last update at or before it)."""

    name: str
    time_s: float
    measured_c: float
    predicted_c: float
    predicted_time_s: float
    kind: str  # "probe" (surface temperature predicted) or "sensor" (tissue temperature)
    predicted_tissue_c: float | None = None  # probes: tissue temperature at the tip


@dataclass(frozen=True)
class Note:
    """Something live mode did or declined to do, at procedure time ``time_s``."""

    time_s: float
    what: str
    detail: dict


@dataclass
class _Settings:
    update_interval_s: float
    pose_tolerance_mm: float
    pose_tolerance_deg: float
    probe_names: list[str]
    max_clock_step_s: float = DEFAULT_MAX_CLOCK_STEP_S
    track_ice: bool = False

    def to_dict(self) -> dict:
        return {
            "track_ice": self.track_ice,
            "update_interval_s": self.update_interval_s,
            "pose_tolerance_mm": self.pose_tolerance_mm,
            "pose_tolerance_deg": self.pose_tolerance_deg,
            "probe_names": list(self.probe_names),
            "max_clock_step_s": self.max_clock_step_s,
        }


def pose_to_tip_entry(pose: np.ndarray, shaft_length_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(tip, point on the shaft ``shaft_length_mm`` up from the tip) of a probe pose."""
    pose = np.asarray(pose, dtype=np.float64)
    axis = pose[:3, 2]
    norm = np.linalg.norm(axis)
    if not norm > 0:
        raise InputError("Probe<n>ToScanner", "pose has no shaft direction (zero z axis)")
    tip = pose[:3, 3].copy()
    return tip, tip + axis / norm * shaft_length_mm


class LiveSession:
    """Live mode for one procedure (see the module docstring).

    ``journal``: a :class:`~.journal.Journal` that receives the session's own records (settings,
    clock moves, applied events); None in a replay. ``on_update(session, update)`` is called at each
    update tick.
    """

    def __init__(
        self,
        case: Case,
        *,
        update_interval_s: float = DEFAULT_UPDATE_INTERVAL_S,
        pose_tolerance_mm: float = 0.25,
        pose_tolerance_deg: float = 0.5,
        probe_names: list[str] | None = None,
        max_clock_step_s: float | None = None,
        journal=None,
        on_update: Callable[[LiveSession, FieldUpdate], None] | None = None,
        simulation_options: dict | None = None,
        track_ice: bool = False,
        corrector=None,
    ):
        # the settings also come from a journal (a resume or a replay): every one is checked
        _check_number(
            "update_interval_s", update_interval_s, MIN_UPDATE_INTERVAL_S, MAX_UPDATE_INTERVAL_S, "s"
        )
        _check_number("pose_tolerance_mm", pose_tolerance_mm, 0.0, 1000.0, "mm")
        _check_number("pose_tolerance_deg", pose_tolerance_deg, 0.0, 180.0, "°")
        if max_clock_step_s is None:  # at least one update interval, so that the clock can tick
            max_clock_step_s = max(DEFAULT_MAX_CLOCK_STEP_S, float(update_interval_s))
        _check_number("max_clock_step_s", max_clock_step_s, update_interval_s, 3600.0, "s")
        names = [p.name for p in case.probes] if probe_names is None else probe_names
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError("probe_names", "must be a list of the case's probe names")
        unknown = set(names) - {p.name for p in case.probes}
        if unknown:
            raise InputError("probe_names", f"not probes of the case: {sorted(unknown)}")
        if not isinstance(track_ice, bool):
            raise InputError("track_ice", f"must be true or false, got {track_ice!r}")
        self.settings = _Settings(
            float(update_interval_s),
            float(pose_tolerance_mm),
            float(pose_tolerance_deg),
            list(names),
            float(max_clock_step_s),
            track_ice,
        )
        self.planned_case = case
        self.case = case
        self.journal = journal
        self.on_update = on_update
        self._simulation_options = dict(simulation_options or {})
        # numba: compiled or loaded on first use, and installed in Slicer only on first use
        from CryoAblationLogic.physics.simulation import (
            Simulation,  # numba kernels compile or load on first use
        )

        self._simulation_class = Simulation
        self.simulation = Simulation(case, **self._simulation_options)
        self.states: dict[str, tuple[str, float, str | None]] = {}
        for probe in case.probes:
            self._set_state(probe.name, "off", 0.0, None)
        self.origin_s: float | None = None  # sender clock at procedure time 0
        self.clock_s = 0.0  # procedure time (s)
        self.console_messages = 0
        self.freezing_started = False
        self._ticks = 0  # update ticks reached; the next one is at (ticks + 1) × interval
        self._next_tick = self.settings.update_interval_s
        self._ignored_moves: dict[str, float] = {}  # probe → largest move noted after freezing began
        self._sensors = {s.name: s for s in case.sensors}
        self._snapshot_times = sorted(float(t) for t in case.outputs.snapshot_times_s)
        self.snapshots: dict[float, np.ndarray] = {}
        self.updates: list[FieldUpdate] = []
        self.samples: list[SensorSample] = []
        self._last_reading: dict[str, tuple[float, float]] = {}
        self.notes: list[Note] = []
        self.note_counts: dict[str, int] = {}  # notes of each kind, also those not kept
        self._noted: set[tuple] = set()  # (kind, key) of notes made once (unknown sensors, ...)
        self.poses: dict[int, np.ndarray] = {}
        self.latest_image: ScannerImage | None = None
        self.image_count = 0
        # the ice in every image against the prediction (live/ice_tracking.py); the corrector, if
        # any, gets each observation (``update(time_s, observation)``)
        self.ice = IceTracker(case, corrector=corrector) if track_ice else None
        self._wall_ref: float | None = None  # monotonic time when the clock last moved
        self.started_wall_s = time.perf_counter()
        if journal is not None:
            journal.record_note("start", {"settings": self.settings.to_dict(), "case": case.name or ""})

    # --- feeding ---------------------------------------------------------------------------------

    def feed(
        self,
        message: Message,
        arrival_time_s: float,
        events: list[Event] | None = None,
        link: str | None = None,
    ) -> list[Event]:
        """One received message (``events``: what :func:`~.console.interpret` made of it, if
        already known; ``link``: "scanner" or "console", the link it came over). Returns the
        events. Never raises for what a peer sent: a fault costs this message only."""
        try:
            return self._feed(message, arrival_time_s, events, link)
        except Exception as error:  # a fault on this message, never the end of the session
            reason = f"{error}" if isinstance(error, InputError) else f"{error!r}"
            self._note(
                "message_fault",
                message_type=message.message_type,
                device=message.device_name,
                reason=reason[:300],
            )
            return [Unrecognised(message.message_type, message.device_name, f"fault: {reason[:300]}", 0.0)]

    def _feed(self, message: Message, arrival_time_s: float, events, link) -> list[Event]:
        if events is None:
            events = interpret_or_unrecognised(message, arrival_time_s)
        if link == "scanner" and any(isinstance(e, CONSOLE_EVENTS) for e in events):
            # a console's command over the scanner's link (anyone who reached the scanner port)
            self._note_once(
                ("wrong_link", message.device_name),
                "command_from_wrong_link",
                device=message.device_name,
                message_type=message.message_type,
                link=link,
            )
            return [
                Unrecognised(
                    message.message_type, message.device_name, "console command on the scanner link", 0.0
                )
            ]
        sender_s = message.timestamp_s if message.timestamp_s else arrival_time_s
        if not math.isfinite(sender_s):
            raise InputError("arrival_time_s", f"{sender_s!r} is not a time")
        if any(isinstance(e, CONSOLE_EVENTS) for e in events):
            self.console_messages += 1
            if self.origin_s is None:
                self.origin_s = sender_s
            procedure_s = sender_s - self.origin_s
            step = self.settings.max_clock_step_s
            if procedure_s - self.clock_s > step:
                self._note(
                    "clock_step_limited",
                    device=message.device_name,
                    ahead_s=procedure_s - self.clock_s,
                    step_s=step,
                )
                procedure_s = self.clock_s + step
            self._move_clock(procedure_s)
            self._wall_ref = time.monotonic()
        for event in events:
            try:
                self._apply(event)
            except InputError as error:  # a message live mode cannot use costs that message only
                self._note("event_refused", event=type(event).__name__, reason=str(error))
        return events

    def follow_wall_clock(self, silence_s: float = 1.0, now: float | None = None) -> bool:
        """While the console is silent for more than ``silence_s``, move the procedure clock on in
        real time (whole update intervals), journaling the move. True if it moved."""
        if self.origin_s is None or self._wall_ref is None:
            return False
        now = time.monotonic() if now is None else now
        silent = now - self._wall_ref
        if silent <= silence_s:
            return False
        interval = self.settings.update_interval_s
        silent = min(silent, self.settings.max_clock_step_s)  # the same bounded step as a message
        target = math.floor((self.clock_s + silent) / interval + _EPS) * interval
        if target <= self.clock_s + _EPS or self.clock_s >= MAX_PROCEDURE_S:
            return False
        self._wall_ref = now
        if self.journal is not None:
            self.journal.record_note(
                "clock", {"time_s": target, "after_console_messages": self.console_messages}
            )
        self._move_clock(target)
        return True

    def set_clock(self, time_s: float) -> None:
        """Move the procedure clock to ``time_s`` (a journaled wall-clock move, in a replay): at
        most ``max_clock_step_s`` ahead, as live mode moved it (InputError otherwise)."""
        if isinstance(time_s, bool) or not isinstance(time_s, (int, float)) or not math.isfinite(time_s):
            raise InputError("clock.time_s", f"{time_s!r} is not a time")
        if time_s - self.clock_s > self.settings.max_clock_step_s + _EPS:
            raise InputError(
                "clock.time_s",
                f"{time_s:g} s is {time_s - self.clock_s:g} s ahead of the clock; live mode moves it "
                f"at most {self.settings.max_clock_step_s:g} s at a time",
            )
        self._move_clock(float(time_s))

    def finish(self) -> None:
        """Bring the solver to the procedure clock (end of the session)."""
        self._advance_stops(self.clock_s)
        self.simulation.advance_to(self.clock_s)

    # --- the clock and the solver ---------------------------------------------------------------

    def _move_clock(self, time_s: float) -> None:
        if time_s > MAX_PROCEDURE_S:
            self._note_once(("procedure_end",), "clock_at_limit", limit_s=MAX_PROCEDURE_S)
            time_s = MAX_PROCEDURE_S
        if time_s <= self.clock_s:
            return
        self.clock_s = time_s
        self._advance_stops(time_s)

    def _advance_stops(self, target_s: float) -> None:
        """Advance the solver through every tick and snapshot time up to ``target_s``."""
        while True:
            snapshot = next((t for t in self._snapshot_times if t not in self.snapshots), math.inf)
            stop = min(self._next_tick, snapshot)
            if stop > target_s + _EPS:
                return
            self.simulation.advance_to(stop)
            if abs(stop - snapshot) <= _EPS:
                self.snapshots[snapshot] = self.simulation.temperature_c
            if abs(stop - self._next_tick) <= _EPS:
                self._ticks += 1
                self._next_tick = (self._ticks + 1) * self.settings.update_interval_s
                self._publish(stop)

    def _publish(self, time_s: float) -> None:
        update = FieldUpdate(time_s, self.simulation.isotherm_volumes_ml(), dict(self.states))
        self.updates.append(update)
        if self.on_update is not None:
            self.on_update(self, update)

    def _at_clock(self) -> None:
        """Bring the solver exactly to the clock (an event takes effect now)."""
        self._advance_stops(self.clock_s)
        self.simulation.advance_to(self.clock_s)

    def _set_state(self, name: str, action: str, flow: float, mode: str | None) -> None:
        self.simulation.set_probe_state(name, action, flow if action == "freeze" else 100, mode)
        self.states[name] = self.simulation.probe_state(name)
        tracker = getattr(self, "ice", None)  # None while __init__ sets the probes off
        corrector = tracker.corrector if tracker is not None else None
        if corrector is not None and hasattr(corrector, "console_state"):
            # the corrector's ensemble ran the planned protocol: it must know when the console leaves it
            try:
                found = corrector.console_state(self.clock_s, {name: self.states[name][:2]})
            except InputError as error:
                found = [str(error)]
            for text in found:
                what = "console departs from the plan the correction assumes"
                self._note_once(("departure", text), what, detail=text)

    def _note(self, what: str, **detail) -> Note:
        note = Note(self.clock_s, what, detail)
        count = self.note_counts.get(what, 0) + 1
        self.note_counts[what] = count
        if count > MAX_NOTES_PER_KIND:  # counted, not kept: a flood of bad messages stays bounded
            return note
        self.notes.append(note)
        if self.journal is not None:
            try:
                self.journal.record_note(what, {"time_s": self.clock_s, **detail})
            except (InputError, OSError) as error:  # a closed or full journal: the note stays here
                self.notes.append(Note(self.clock_s, "journal_fault", {"reason": str(error)[:300]}))
        return note

    def _note_once(self, key: tuple, what: str, **detail) -> None:
        """A note made the first time only (a set lookup: linear in the messages)."""
        if key not in self._noted:
            self._noted.add(key)
            self._note(what, **detail)

    def probe_name(self, number: int) -> str | None:
        names = self.settings.probe_names
        return names[number - 1] if 1 <= number <= len(names) else None

    def _apply(self, event: Event) -> None:
        if isinstance(event, ProbeStateChange):
            name = self.probe_name(event.probe)
            if name is None:
                self._note("unknown_probe", probe=event.probe, action=event.action)
                return
            self._at_clock()
            flow = 100.0 if event.flow_percent is None else float(event.flow_percent)
            if event.action == "freeze" and flow <= 0:  # the console's way of saying "no gas"
                self._set_state(name, "off", 0.0, None)
            else:
                self._set_state(name, event.action, flow, event.mode)
            self.freezing_started |= event.action == "freeze" and flow > 0
            self._placement_to_corrector()
            action, flow_applied, mode = self.states[name]
            self._note("probe_state", probe=name, action=action, flow_percent=flow_applied, mode=mode)
        elif isinstance(event, ProbePose):
            try:
                self._apply_pose(event)
            finally:  # also a pose live mode declined: the correction checks it against its own
                self._placement_to_corrector()
        elif isinstance(event, ProbeTemperatures):
            self._record_probe_temperatures(event)
        elif isinstance(event, SensorReading):
            self._record_sensor(event)
        elif isinstance(event, ConsoleFault):
            self._note("console_fault", code=event.code, error=event.error_name, text=event.text)
        elif isinstance(event, ScannerImage):
            self.latest_image = event
            self.image_count += 1
            if self.ice is not None:
                self._track_ice(event)

    def _track_ice(self, event: ScannerImage) -> None:
        """The ice in the image against the solver's field now (its time is recorded beside)."""
        record = self.ice.process(
            event,
            time_s=procedure_time(event, self.origin_s, self.clock_s),
            freezing_started=self.freezing_started,
            case=self.case,
            temperature_c=self.simulation.temperature_c,
            predicted_time_s=self.simulation.time_s,
        )
        if record.status == "refused":
            self._note("image_refused", device=record.device, reason=record.reason)
        for name, entry in (record.comparison or {}).get("structures", {}).items():
            # noted when a structure first comes within its margin (the series has every image)
            if entry.get("warning"):
                self._note_once(
                    ("observed_ice_warning", name),
                    "observed_ice_warning",
                    structure=name,
                    device=record.device,
                    image_time_s=record.time_s,
                    warning=entry["warning"],
                )

    # --- probe poses ------------------------------------------------------------------------------

    def _apply_pose(self, event: ProbePose) -> None:
        self.poses[event.probe] = np.asarray(event.matrix, dtype=np.float64)
        name = self.probe_name(event.probe)
        if name is None:
            return
        index = next(i for i, p in enumerate(self.case.probes) if p.name == name)
        spec = self.case.probes[index]
        shaft = float(np.linalg.norm(np.subtract(spec.entry_mm, spec.tip_mm)))
        tip, entry = pose_to_tip_entry(event.matrix, shaft)
        moved_mm = float(np.linalg.norm(tip - np.asarray(spec.tip_mm)))
        cosine = float(np.clip(np.dot(spec.direction, (entry - tip) / shaft), -1.0, 1.0))
        turned_deg = math.degrees(math.acos(cosine))
        if moved_mm <= self.settings.pose_tolerance_mm and turned_deg <= self.settings.pose_tolerance_deg:
            return
        if self.freezing_started:
            # noted the first time and whenever the probe has moved a further millimetre
            if moved_mm >= self._ignored_moves.get(name, -math.inf) + 1.0:
                self._ignored_moves[name] = moved_mm
                self._note("probe_move_ignored", probe=name, moved_mm=moved_mm, turned_deg=turned_deg)
            return
        probes = list(self.case.probes)
        probes[index] = replace(
            spec, tip_mm=tuple(float(v) for v in tip), entry_mm=tuple(float(v) for v in entry)
        )
        if not all(self.case.grid.contains_ras(end) for end in (tip, *probes[index].active_segment_mm())):
            self._note_once(("outside", name), "probe_outside_grid", probe=name, tip_mm=tip.tolist())
            return
        self._rebuild(replace(self.case, probes=probes))
        self._note("probe_moved", probe=name, moved_mm=moved_mm, turned_deg=turned_deg, tip_mm=tip.tolist())

    def reported_probes(self) -> list:
        """The probes whose pose the console has reported, as last reported (specs of the case
        with the reported tip and shaft; a pose without a shaft direction is left out)."""
        reported = []
        for number, matrix in sorted(self.poses.items()):
            name = self.probe_name(number)
            spec = next((p for p in self.case.probes if p.name == name), None)
            if spec is None:
                continue
            shaft = float(np.linalg.norm(np.subtract(spec.entry_mm, spec.tip_mm)))
            try:
                tip, entry = pose_to_tip_entry(matrix, shaft)
            except InputError:
                continue
            if not (np.all(np.isfinite(tip)) and np.all(np.isfinite(entry))):
                continue
            reported.append(
                replace(spec, tip_mm=tuple(float(v) for v in tip), entry_mm=tuple(float(v) for v in entry))
            )
        return reported

    def _placement_to_corrector(self) -> None:
        """Tell the corrector (``probes_reported``, :mod:`.late_correction`) the placement now: its
        ensemble is drawn around the reported poses, and a pose beyond its prior after the first
        freeze makes the correction not valid (a departure, noted as the console's are)."""
        tracker = getattr(self, "ice", None)
        hook = getattr(tracker.corrector if tracker is not None else None, "probes_reported", None)
        if hook is None:
            return
        try:
            found = hook(self.case, self.reported_probes(), self.freezing_started)
        except InputError as error:
            found = [str(error)]
        for text in found or []:
            self._note_once(
                ("departure", text), "console departs from the plan the correction assumes", detail=text
            )

    def _rebuild(self, case: Case) -> None:
        """A new solver with the moved probes, brought to the solver's time with the same states
        (before any freezing the probes have not touched the field)."""
        time_s = self.simulation.time_s
        self.case = case
        self.simulation = self._simulation_class(case, **self._simulation_options)
        for name, (action, flow, mode) in self.states.items():
            self._set_state(name, action, flow, mode)
        self.simulation.advance_to(time_s)

    # --- sensors ----------------------------------------------------------------------------------

    def _reading_time(self, time_s: float | None, arrival_s: float) -> float:
        sender = time_s if time_s else arrival_s
        return sender - self.origin_s if self.origin_s is not None else 0.0

    def _record_probe_temperatures(self, event: ProbeTemperatures) -> None:
        history = self.simulation.probe_history
        t = self._reading_time(event.time_s, event.arrival_time_s)
        for number, measured in sorted(event.temperatures_c.items()):
            name = self.probe_name(number)
            if name is None or not math.isfinite(measured):
                continue
            last = self._last_reading.get(name)
            if last is not None and last[0] == t and abs(last[1] - measured) < 1e-6:
                continue  # the same reading sent twice (NDARRAY ProbeTemps and SENSOR Probe<n>Temp)
            self._last_reading[name] = (t, measured)
            surface = history[name]["surface_c"]
            predicted = float(surface[-1]) if len(surface) else float(self.case.initial_temperature_c)
            spec = next(p for p in self.case.probes if p.name == name)
            tissue = self.simulation.temperature_at(spec.tip_mm)
            self.samples.append(
                SensorSample(name, t, float(measured), predicted, self.simulation.time_s, "probe", tissue)
            )

    def _record_sensor(self, event: SensorReading) -> None:
        sensor = self._sensors.get(event.name)
        if sensor is None:
            self._note_once(("unknown_sensor", event.name), "unknown_sensor", name=event.name)
            return
        t = self._reading_time(event.time_s, event.arrival_time_s)
        predicted = self.simulation.temperature_at(sensor.position_mm)
        self.samples.append(
            SensorSample(
                sensor.name, t, float(event.temperatures_c[0]), predicted, self.simulation.time_s, "sensor"
            )
        )

    # --- reading ---------------------------------------------------------------------------------

    @property
    def time_s(self) -> float:
        """Solver time (procedure s)."""
        return self.simulation.time_s

    @property
    def temperature_c(self) -> np.ndarray:
        return self.simulation.temperature_c

    def result(self):
        """The session so far as a :class:`~CryoAblationLogic.physics.simulation.SimulationResult`."""
        return self.simulation.result(dict(self.snapshots), wall_s=time.perf_counter() - self.started_wall_s)


# ---------------------------------------------------------------------------------------------
# Results


def write_live_results(session: LiveSession, out_dir: str | Path) -> Path:
    """The result folder of ``docs/case-format.md`` (the prediction at the end of the session) plus,
    from live mode: ``ice_volume_history.csv`` (isotherm volumes at every update),
    ``sensor_readings.csv`` (measured beside predicted), ``live_events.csv`` (what was applied
    when), ``case.cryo.json`` (the case as finally placed) and keys ``live`` in summary.json."""

    out = Path(out_dir)
    result = session.result()
    write_result_folder(result, out, session.case)
    levels = list(session.case.outputs.isotherms_c)
    with (out / "ice_volume_history.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["time_s", *[f"volume_ml_at_{level:g}C" for level in levels]])
        for update in session.updates:
            writer.writerow([f"{update.time_s:g}", *[f"{update.volumes_ml[float(lv)]:.6g}" for lv in levels]])
    with (out / "sensor_readings.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["name", "kind", "time_s", "measured_c", "predicted_c", "predicted_time_s", "predicted_tissue_c"]
        )
        for s in session.samples:
            tissue = "" if s.predicted_tissue_c is None else f"{s.predicted_tissue_c:.4f}"
            writer.writerow(
                [
                    s.name,
                    s.kind,
                    f"{s.time_s:.3f}",
                    f"{s.measured_c:.4f}",
                    f"{s.predicted_c:.4f}",
                    f"{s.predicted_time_s:.3f}",
                    tissue,
                ]
            )
    with (out / "live_events.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["time_s", "what", "detail"])
        for note in session.notes:
            writer.writerow([f"{note.time_s:.3f}", note.what, json.dumps(note.detail, sort_keys=True)])
    save_case(session.case, out / "case.cryo.json", labelmap_filename="labels.nrrd")
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["live"] = {
        "settings": session.settings.to_dict(),
        "procedure_time_s": session.clock_s,
        "console_messages": session.console_messages,
        "images": session.image_count,
        "updates": len(session.updates),
        "sensor_readings": len(session.samples),
        "probe_states": {name: list(state) for name, state in session.states.items()},
        "notes": [{"time_s": n.time_s, "what": n.what, **n.detail} for n in session.notes],
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out


def write_live_outputs(session: LiveSession, out_dir: str | Path, write_corrected=None) -> Path:
    """The outputs of a monitored procedure (``cryoablation monitor --out`` and ``replay --out``):

    - ``predicted/``: the plan following the console (:func:`write_live_results`);
    - ``observed/`` (sessions that track the ice): ``ice_final.nrrd`` (the observed ice map on the
      plan grid, 1 = frozen), one label map per observed image in its own geometry, and
      ``observations.csv`` (the observed-vs-predicted series);
    - ``corrected/``: the corrector's latest correction, written by ``write_corrected(correction,
      case, folder)`` when the session has a corrector and that function is given;
    - ``summary.json``: the procedure (clock, messages, images), the predicted isotherm volumes,
      ``observed`` (the series) and ``correction`` (the corrector's, or null).
    """
    out = Path(out_dir)
    predicted = write_live_results(session, out / "predicted")
    predicted_summary = json.loads((predicted / "summary.json").read_text(encoding="utf-8"))
    summary: dict = {
        "format": "cryoablation-monitor/1",
        "procedure_time_s": session.clock_s,
        "solver_time_s": session.time_s,
        "console_messages": session.console_messages,
        "images": session.image_count,
        "predicted": {"folder": "predicted", "isotherms": predicted_summary.get("isotherms")},
        "observed": None,
        "correction": None,
    }
    tracker = session.ice
    if tracker is not None:
        tracker.write(out / "observed")
        summary["observed"] = {"folder": "observed", **tracker.summary()}
        correction = tracker.correction
        if correction is not None:
            entry: dict = {"time_s": tracker.correction_time_s, "faults": tracker.correction_faults}
            to_dict = getattr(correction, "to_dict", None)
            if callable(to_dict):
                entry.update(to_dict())
            if write_corrected is not None:
                write_corrected(correction, session.case, out / "corrected")
                entry["folder"] = "corrected"
            summary["correction"] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------------
# Replay


SETTING_KEYS = (
    "update_interval_s",
    "pose_tolerance_mm",
    "pose_tolerance_deg",
    "probe_names",
    "max_clock_step_s",
    "track_ice",
)


def session_settings(records: list[dict]) -> dict:
    """The settings the session of a journal ran with (its first "start" record), checked for
    their keys (their values are checked by :class:`LiveSession`)."""
    for record in records:
        if record.get("kind") == "live" and record.get("note") == "start":
            settings = record["detail"].get("settings")
            if not isinstance(settings, dict):
                raise InputError("journal start record", "has no settings object")
            unknown = set(settings) - set(SETTING_KEYS)
            if unknown:
                raise InputError("journal start record", f"unknown settings {sorted(unknown)}")
            return dict(settings)
    raise InputError("journal", "has no live-mode start record (not written by a monitor session)")


def session_for_journal(case: Case, contents: JournalContents, on_update=None, corrector=None) -> LiveSession:
    """A session with the settings a journal's session ran with (``corrector``: given each observed
    image when the session tracks the ice); a bad start record is an InputError naming its line."""
    index = next(
        (n for n, r in enumerate(contents.records) if r["kind"] == "live" and r["note"] == "start"), None
    )
    if index is None:
        raise InputError("journal", "has no live-mode start record (not written by a monitor session)")
    try:
        settings = session_settings(contents.records[index:])
        return LiveSession(case, on_update=on_update, corrector=corrector, **settings)
    except InputError as error:
        raise InputError(contents.where(index), str(error)) from None


def _check_number(key: str, value, low: float, high: float, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InputError(key, f"must be a number of {unit} in {low:g} … {high:g}, got {value!r}")


def feed_journal(session: LiveSession, contents: JournalContents, start_index: int = 0) -> int:
    """Feed a journal's incoming messages (and its journaled wall-clock moves) into ``session``
    in journal order; returns how many messages were fed. A record that cannot be rebuilt, or a
    clock move live mode could not have made, is an InputError naming its line."""

    indexed = list(enumerate(contents.records))[start_index:]
    clock_moves = []
    for index, record in indexed:
        if record["kind"] == "live" and record["note"] == "clock":
            detail = record["detail"]
            after, time_s = detail.get("after_console_messages"), detail.get("time_s")
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                raise InputError(contents.where(index), f"clock record: after_console_messages {after!r}")
            if (
                isinstance(time_s, bool)
                or not isinstance(time_s, (int, float))
                or not 0 <= time_s <= MAX_PROCEDURE_S
            ):
                raise InputError(
                    contents.where(index), f"clock record: time_s {time_s!r} is not 0 … {MAX_PROCEDURE_S:g} s"
                )
            clock_moves.append((after, float(time_s), index))
    clock_moves.sort()
    moves = iter(clock_moves)
    pending = next(moves, None)

    def move_clock(move) -> None:
        try:
            session.set_clock(move[1])
        except InputError as error:
            raise InputError(contents.where(move[2]), str(error)) from None

    fed = 0
    for index, record in indexed:
        if record["kind"] != "message" or record["direction"] != "in" or not image_kept(record):
            continue
        while pending is not None and pending[0] <= session.console_messages:
            move_clock(pending)
            pending = next(moves, None)
        try:
            message = record_to_message(record, contents.folder)
        except InputError as error:
            raise InputError(contents.where(index), str(error)) from None
        session.feed(message, record["arrival_time_s"], link=record.get("link"))
        fed += 1
    while pending is not None and pending[0] <= session.console_messages:
        move_clock(pending)
        pending = next(moves, None)
    return fed
