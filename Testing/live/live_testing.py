"""Helpers of the live-mode tests: a small one-probe case and console messages stamped with a
procedure clock."""

from __future__ import annotations

import socket

from CryoAblationLogic.igtl.messages import (
    NdArrayMessage,
    SensorMessage,
    StatusMessage,
    TransformMessage,
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.units import KELVIN, celsius_to_kelvin
from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.live.simulator import probe_pose

ORIGIN_S = 1_800_000_000.0  # the console's clock at procedure time 0 (Unix s)
TIP_MM = (0.0, 0.0, -15.0)
ENTRY_MM = (0.0, 0.0, 60.0)


def small_case(spacing_mm: float = 3.0, sensors=(("TC1", (9.0, 0.0, 0.0)),)):
    """Gel cube of 15 voxels a side, one 17 G probe through the middle, probes off in the plan."""
    n = 15
    half = (n - 1) * spacing_mm / 2.0
    data = {
        "format": "cryoablation-case/1",
        "name": "live test",
        "grid": {"origin_mm": [-half, -half, -half], "spacing_mm": spacing_mm, "size": [n, n, n]},
        "initial_temperature_c": 37.0,
        "tissue": "gel",
        "probes": [
            {"name": "P1", "model": "argon-1.47mm", "tip_mm": list(TIP_MM), "entry_mm": list(ENTRY_MM)}
        ],
        "protocol": [{"action": "off", "duration_s": 600}],
        "sensors": [{"name": name, "position_mm": list(pos)} for name, pos in sensors],
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": [30]},
    }
    return parse_case(data)


def stamped(message, procedure_time_s: float):
    message.timestamp_raw = timestamp_from_seconds(ORIGIN_S + procedure_time_s)
    return message


def state(text: str, t: float) -> StatusMessage:
    return stamped(StatusMessage(1, 0, "", text, device_name="Cryo"), t)


def pose(t: float, tip=TIP_MM, entry=ENTRY_MM, number: int = 1) -> TransformMessage:
    return stamped(TransformMessage(probe_pose(tip, entry), device_name=f"Probe{number}ToScanner"), t)


def temperatures(t: float, values) -> NdArrayMessage:
    import numpy as np

    return stamped(NdArrayMessage(np.asarray(values, dtype=np.float64), device_name="ProbeTemps"), t)


def sensor(name: str, t: float, value_c: float) -> SensorMessage:
    return stamped(SensorMessage([celsius_to_kelvin(value_c)], unit=KELVIN, device_name=name), t)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
