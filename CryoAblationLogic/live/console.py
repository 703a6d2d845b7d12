"""What the MR scanner bridge and the cryo console say, as typed events (pure functions, no I/O).

Conventions (OpenIGTLink reference §6): the scanner talks through a BWH "MR IGTL bridge" —
IMAGE frames (default device ``MR Image``), STATUS ``MR``, optional STRING ``IMAGE_TIMESTAMP``;
we send the scan plane as TRANSFORM ``PLANE_0`` and commands as STRING ``CMD_<id>``, answered by
STRING ``ACK_<id>``. The cryo console sends TRANSFORM ``Probe<n>ToScanner`` (probe pose, mm),
STATUS ``Cryo`` or STRING ``CryoState`` with "<ACTION> <probe> [PASSIVE|ACTIVE|<flow>%]" (ACTION
is FREEZE, THAW, OFF or IDLE), and temperatures as NDARRAY ``ProbeTemps`` (°C, one per probe in
probe order), SENSOR ``Probe<n>Temp`` (kelvin, the SI unit code) or STRING ``ProbeTemps`` (JSON
object or comma-separated °C); other sensors of the plan (thermocouples) as SENSOR ``<sensor name>``
in kelvin.

    for event in interpret(received.message, received.arrival_time_s): ...
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import (
    ImageMessage,
    Message,
    NdArrayMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
)
from CryoAblationLogic.igtl.units import KELVIN, kelvin_to_celsius

SCAN_PLANE_DEVICE = "PLANE_0"
SCANNER_STATUS_DEVICE = "MR"
SCANNER_IMAGE_DEVICES = ("MR Image", "MRSIM Image")
SCANNER_COMMANDS = ("START_UP", "START_SEQUENCE", "STOP_SEQUENCE", "START_SCAN", "STOP_SCAN")
CONSOLE_STATUS_DEVICE = "Cryo"
CONSOLE_STATE_DEVICE = "CryoState"
STATUS_OK = 1
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_PROBE_POSE = re.compile(r"^Probe(\d+)ToScanner$")
_PROBE_TEMP = re.compile(r"^Probe(\d+)Temp$")
_ACK = re.compile(r"^ACK_(.+)$")
_STATE = re.compile(
    r"^\s*(FREEZE|THAW|OFF|IDLE)\s+(?:PROBE\s*)?(\d+)(?:\s+(PASSIVE|ACTIVE|\d+(?:\.\d+)?\s*%))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ScannerImage:
    """An MR frame: voxels indexed [i, j, k], IJK→RAS (mm), sender time (s, None if unset)."""

    device_name: str
    voxels: np.ndarray
    ijk_to_ras: np.ndarray
    acquisition_time_s: float | None
    arrival_time_s: float


@dataclass(frozen=True)
class ScannerStatus:
    code: int
    state: str
    ok: bool
    arrival_time_s: float


@dataclass(frozen=True)
class ImageTimestamp:
    text: str
    arrival_time_s: float


@dataclass(frozen=True)
class ProbePose:
    """Pose of probe ``probe`` (1-based) in scanner RAS (mm), as ``Probe<n>ToScanner`` sent it."""

    probe: int
    matrix: np.ndarray
    time_s: float | None
    arrival_time_s: float


@dataclass(frozen=True)
class ProbeStateChange:
    """A freeze/thaw/off event of one probe; ``mode`` passive/active for thaw, ``flow_percent``
    for freeze when the console states it."""

    probe: int
    action: str
    mode: str | None
    flow_percent: float | None
    source: str  # "STATUS" or "STRING"
    arrival_time_s: float


@dataclass(frozen=True)
class ConsoleFault:
    """A console STATUS that is not OK (e.g. 13 device not ready, 18 hardware failure, 3 panic)."""

    code: int
    error_name: str
    text: str
    arrival_time_s: float


@dataclass(frozen=True)
class ProbeTemperatures:
    """Probe temperatures in °C keyed by 1-based probe number."""

    temperatures_c: dict[int, float]
    time_s: float | None
    arrival_time_s: float


@dataclass(frozen=True)
class SensorReading:
    """Temperatures (°C) of a named sensor (a thermocouple or sensor needle of the plan): SENSOR
    ``<sensor name>`` in kelvin, any name other than ``Probe<n>Temp``."""

    name: str
    temperatures_c: tuple[float, ...]
    time_s: float | None
    arrival_time_s: float


@dataclass(frozen=True)
class CommandAck:
    command_id: str
    text: str
    arrival_time_s: float


@dataclass(frozen=True)
class Unrecognised:
    """A message no convention covers (kept so the caller can log it, never silently lost)."""

    message_type: str
    device_name: str
    reason: str
    arrival_time_s: float


Event = (
    ScannerImage
    | ScannerStatus
    | ImageTimestamp
    | ProbePose
    | ProbeStateChange
    | ConsoleFault
    | ProbeTemperatures
    | SensorReading
    | CommandAck
    | Unrecognised
)


def parse_probe_state(text: str, source: str, arrival_time_s: float) -> ProbeStateChange | None:
    """ "FREEZE 1", "FREEZE 1 80%", "THAW 2 ACTIVE", "OFF 3" → event; None if not such a text."""
    match = _STATE.match(text)
    if match is None:
        return None
    action = match.group(1).lower()
    action = "off" if action == "idle" else action
    extra = (match.group(3) or "").strip().lower()
    mode = extra if extra in ("passive", "active") else None
    flow = float(extra.rstrip("%").strip()) if extra.endswith("%") else None
    if flow is not None and not 0 <= flow <= 100:
        raise InputError(f"{source}.text", f"flow {flow} % outside 0 … 100 in {text!r}")
    if mode is not None and action != "thaw":
        raise InputError(f"{source}.text", f"{mode} applies to THAW only: {text!r}")
    return ProbeStateChange(int(match.group(2)), action, mode, flow, source, arrival_time_s)


def _temperatures_from_text(text: str) -> dict[int, float]:
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError("ProbeTemps", f"not valid JSON: {error}") from None
        try:
            return {int(k): float(v) for k, v in data.items()}
        except (TypeError, ValueError) as error:
            raise InputError("ProbeTemps", f"must map probe numbers to °C: {error}") from None
    try:
        return {n + 1: float(v) for n, v in enumerate(text.split(","))}
    except ValueError as error:
        raise InputError("ProbeTemps", f"must be comma-separated °C values: {error}") from None


def interpret(message: Message, arrival_time_s: float = 0.0) -> list[Event]:
    """Events carried by one message from the scanner bridge or the cryo console."""
    name, t = message.device_name, arrival_time_s
    if isinstance(message, ImageMessage):
        matrix = message.ijk_to_world
        if message.coordinate_system == "LPS":
            matrix = _LPS_TO_RAS @ matrix
        if message.size != tuple(message.voxels.shape[:3]):
            return [Unrecognised("IMAGE", name, "sub-volume updates are not applied", t)]
        return [ScannerImage(name, message.voxels, matrix, message.timestamp_s, t)]
    if isinstance(message, TransformMessage):
        match = _PROBE_POSE.match(name)
        if match:
            return [ProbePose(int(match.group(1)), message.matrix, message.timestamp_s, t)]
        return [Unrecognised("TRANSFORM", name, "not Probe<n>ToScanner", t)]
    if isinstance(message, StatusMessage):
        if name == SCANNER_STATUS_DEVICE:
            return [ScannerStatus(message.code, message.status_message, message.code == STATUS_OK, t)]
        if name == CONSOLE_STATUS_DEVICE:
            if message.code != STATUS_OK:
                return [ConsoleFault(message.code, message.error_name, message.status_message, t)]
            state = parse_probe_state(message.status_message, "STATUS", t)
            return (
                [state] if state else [Unrecognised("STATUS", name, f"state {message.status_message!r}", t)]
            )
        return [Unrecognised("STATUS", name, "unknown device", t)]
    if isinstance(message, StringMessage):
        ack = _ACK.match(name)
        if ack:
            return [CommandAck(ack.group(1), message.text, t)]
        if name == CONSOLE_STATE_DEVICE:
            state = parse_probe_state(message.text, "STRING", t)
            return [state] if state else [Unrecognised("STRING", name, f"state {message.text!r}", t)]
        if name == "ProbeTemps":
            return [ProbeTemperatures(_temperatures_from_text(message.text), message.timestamp_s, t)]
        if name == "IMAGE_TIMESTAMP":
            return [ImageTimestamp(message.text, t)]
        return [Unrecognised("STRING", name, "unknown device", t)]
    if isinstance(message, NdArrayMessage) and name == "ProbeTemps":
        values = np.asarray(message.array, dtype=np.float64).reshape(-1)
        return [ProbeTemperatures({n + 1: float(v) for n, v in enumerate(values)}, message.timestamp_s, t)]
    if isinstance(message, SensorMessage):
        match = _PROBE_TEMP.match(name)
        if match and message.values.size >= 1:
            if message.unit != KELVIN:
                raise InputError(
                    f"SENSOR {name}.unit", f"temperatures must be in kelvin, got unit {message.unit:#x}"
                )
            value_c = float(kelvin_to_celsius(message.values[0]))
            return [ProbeTemperatures({int(match.group(1)): value_c}, message.timestamp_s, t)]
        if not match and message.unit == KELVIN and message.values.size >= 1:
            values = tuple(float(kelvin_to_celsius(v)) for v in message.values)
            return [SensorReading(name, values, message.timestamp_s, t)]
    return [Unrecognised(message.message_type, name, "no convention for it", t)]


def interpret_or_unrecognised(message: Message, arrival_time_s: float = 0.0) -> list[Event]:
    """:func:`interpret`, with a message that breaks a convention (InputError) as one
    :class:`Unrecognised` event saying why: a bad message costs that message only."""
    try:
        return interpret(message, arrival_time_s)
    except InputError as error:
        return [Unrecognised(message.message_type, message.device_name, str(error), arrival_time_s)]


# ---------------------------------------------------------------------------------------------
# What we send


def scan_plane_message(plane_to_ras: np.ndarray) -> TransformMessage:
    """TRANSFORM ``PLANE_0``: the scan plane pose (4×4, RAS, mm) for the MR bridge."""
    return TransformMessage(np.asarray(plane_to_ras, dtype=np.float64), device_name=SCAN_PLANE_DEVICE)


def command_message(command: str, command_id: str) -> StringMessage:
    """STRING ``CMD_<id>`` carrying ``command`` (answered by ``ACK_<id>``)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,16}", command_id):
        raise InputError("command_id", f"{command_id!r}: 1–16 letters, digits, '_', '.' or '-'")
    return StringMessage(command, device_name=f"CMD_{command_id}")


def scanner_command(command: str, command_id: str) -> StringMessage:
    if command not in SCANNER_COMMANDS:
        raise InputError("command", f"{command!r} is not one of {SCANNER_COMMANDS}")
    return command_message(command, command_id)


@dataclass
class CommandTracker:
    """Commands sent and not yet acknowledged (``ACK_<id>`` with the same text)."""

    pending: dict[str, tuple[str, float]] = field(default_factory=dict)

    def sent(self, message: StringMessage, time_s: float) -> None:
        if not message.device_name.startswith("CMD_"):
            raise InputError("device_name", f"{message.device_name!r} is not a CMD_<id> command")
        self.pending[message.device_name[4:]] = (message.text, time_s)

    def acknowledge(self, ack: CommandAck) -> bool:
        """True if ``ack`` answers a pending command with the same text (then it is no longer pending)."""
        entry = self.pending.get(ack.command_id)
        if entry is None or entry[0] != ack.text:
            return False
        del self.pending[ack.command_id]
        return True

    def overdue(self, now_s: float, timeout_s: float) -> list[str]:
        """Ids of commands unanswered for more than ``timeout_s``."""
        return [cid for cid, (_, sent_s) in self.pending.items() if now_s - sent_s > timeout_s]
