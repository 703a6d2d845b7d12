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
import math
import re
from dataclasses import dataclass, field

import numpy as np

from CryoAblationLogic.core.coordinates import RAS_TO_LPS_MATRIX_4X4
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
# Bounds on what a peer may send (a number outside them makes the message unrecognised, never an
# exception): probe numbers, temperatures, text to parse, positions.
MAX_PROBE_NUMBER = 99
MIN_TEMPERATURE_C, MAX_TEMPERATURE_C = -273.15, 1000.0
MAX_TEMPERATURE_TEXT = 4096  # characters of a STRING ProbeTemps
MAX_JSON_DEPTH = 4
MAX_POSITION_MM = 10_000.0  # 10 m from the scanner's origin: no probe is farther
_PROBE_POSE = re.compile(r"^Probe(\d{1,3})ToScanner$")
_PROBE_TEMP = re.compile(r"^Probe(\d{1,3})Temp$")
_ACK = re.compile(r"^ACK_(.+)$")
_STATE = re.compile(
    r"^\s*(FREEZE|THAW|OFF|IDLE)\s+(?:PROBE\s*)?(\d{1,3})"
    r"(?:\s+(PASSIVE|ACTIVE|\d{1,3}(?:\.\d{1,6})?\s*%))?\s*$",
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
    return ProbeStateChange(_probe_number(match.group(2), source), action, mode, flow, source, arrival_time_s)


def _probe_number(text: str, key: str) -> int:
    """A probe number 1 … MAX_PROBE_NUMBER from (at most a few) digits."""
    if not (isinstance(text, str) and text.isdigit() and len(text) <= 3):
        raise InputError(key, f"probe number {text[:20]!r} is not 1 … {MAX_PROBE_NUMBER}")
    number = int(text)
    if not 1 <= number <= MAX_PROBE_NUMBER:
        raise InputError(key, f"probe number {number} is not 1 … {MAX_PROBE_NUMBER}")
    return number


def _temperature(value, key: str) -> float:
    """A temperature (°C) within physical bounds; NaN is kept (a sensor's "no reading")."""
    if isinstance(value, bool):
        raise InputError(key, f"{value!r} is not a temperature")
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(key, f"{str(value)[:40]!r} is not a temperature") from None
    if math.isnan(value):
        return value
    if not MIN_TEMPERATURE_C <= value <= MAX_TEMPERATURE_C:
        raise InputError(key, f"{value:g} °C is outside {MIN_TEMPERATURE_C:g} … {MAX_TEMPERATURE_C:g} °C")
    return value


def _json_depth_ok(text: str) -> bool:
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _bounded_number(text: str) -> float:
    if len(text) > 32:
        raise ValueError(f"number {text[:20]}… has too many digits")
    return float(text)


def _temperatures_from_text(text: str) -> dict[int, float]:
    text = text.strip()
    if len(text) > MAX_TEMPERATURE_TEXT:
        raise InputError("ProbeTemps", f"{len(text)} characters, at most {MAX_TEMPERATURE_TEXT}")
    if text.startswith("{"):
        if not _json_depth_ok(text):
            raise InputError("ProbeTemps", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(text, parse_int=_bounded_number, parse_float=_bounded_number)
        except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
            raise InputError("ProbeTemps", f"not valid JSON: {str(error)[:200]}") from None
        if not isinstance(data, dict):
            raise InputError("ProbeTemps", "must map probe numbers to °C")
        return {
            _probe_number(k.strip(), "ProbeTemps"): _temperature(v, f"ProbeTemps[{k[:8]}]")
            for k, v in data.items()
        }
    values = text.split(",")
    if len(values) > MAX_PROBE_NUMBER:
        raise InputError("ProbeTemps", f"{len(values)} values, at most {MAX_PROBE_NUMBER} probes")
    return {n + 1: _temperature(v.strip(), f"ProbeTemps[{n + 1}]") for n, v in enumerate(values)}


def interpret(message: Message, arrival_time_s: float = 0.0) -> list[Event]:
    """Events carried by one message from the scanner bridge or the cryo console."""
    name, t = message.device_name, arrival_time_s
    if isinstance(message, ImageMessage):
        matrix = message.ijk_to_world
        if message.coordinate_system == "LPS":
            matrix = RAS_TO_LPS_MATRIX_4X4 @ matrix  # the same flip both ways
        if message.size != tuple(message.voxels.shape[:3]):
            return [Unrecognised("IMAGE", name, "sub-volume updates are not applied", t)]
        return [ScannerImage(name, message.voxels, matrix, message.timestamp_s, t)]
    if isinstance(message, TransformMessage):
        match = _PROBE_POSE.match(name)
        if match:
            if not np.all(np.abs(message.matrix[:3, 3]) <= MAX_POSITION_MM):
                raise InputError(
                    f"TRANSFORM {name}", f"tip farther than {MAX_POSITION_MM:g} mm from the origin"
                )
            number = _probe_number(match.group(1), f"TRANSFORM {name}")
            return [ProbePose(number, message.matrix, message.timestamp_s, t)]
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
        if message.array.dtype.kind not in "iuf" or message.array.size > MAX_PROBE_NUMBER:
            raise InputError("NDARRAY ProbeTemps", f"must be at most {MAX_PROBE_NUMBER} real numbers (°C)")
        values = np.asarray(message.array, dtype=np.float64).reshape(-1)
        temperatures = {n + 1: _temperature(v, f"ProbeTemps[{n + 1}]") for n, v in enumerate(values)}
        return [ProbeTemperatures(temperatures, message.timestamp_s, t)]
    if isinstance(message, SensorMessage):
        match = _PROBE_TEMP.match(name)
        if match and message.values.size >= 1:
            if message.unit != KELVIN:
                raise InputError(
                    f"SENSOR {name}.unit", f"temperatures must be in kelvin, got unit {message.unit:#x}"
                )
            value_c = _temperature(kelvin_to_celsius(message.values[0]), f"SENSOR {name}")
            number = _probe_number(match.group(1), f"SENSOR {name}")
            return [ProbeTemperatures({number: value_c}, message.timestamp_s, t)]
        if not match and message.unit == KELVIN and message.values.size >= 1:
            values = tuple(_temperature(kelvin_to_celsius(v), f"SENSOR {name}") for v in message.values)
            return [SensorReading(name, values, message.timestamp_s, t)]
    return [Unrecognised(message.message_type, name, "no convention for it", t)]


def interpret_or_unrecognised(message: Message, arrival_time_s: float = 0.0) -> list[Event]:
    """:func:`interpret`, with a message that breaks a convention (InputError) as one
    :class:`Unrecognised` event saying why: a bad message costs that message only (so does one
    that trips a fault in the interpretation itself)."""
    try:
        return interpret(message, arrival_time_s)
    except InputError as error:
        return [Unrecognised(message.message_type, message.device_name, str(error), arrival_time_s)]
    except Exception as error:  # a fault on this message, never the end of the session
        reason = f"fault while interpreting: {error!r}"[:300]
        return [Unrecognised(message.message_type, message.device_name, reason, arrival_time_s)]


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
