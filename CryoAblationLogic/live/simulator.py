"""Stand-ins for the MR scanner bridge and the cryo console, on our own OpenIGTLink codec, so live
mode can be developed and tested without hardware (no simulator usable off the shelf exists).

- :class:`ScannerSimulator` plays a BWH-style MR IGTL bridge: an OpenIGTLink *client* of the
  navigation software (Slicer listens on 18944). It acknowledges ``CMD_<id>`` commands
  (START_UP, START_SEQUENCE/START_SCAN, STOP_SEQUENCE/STOP_SCAN) with ``ACK_<id>``, reports
  STATUS ``MR`` and, while scanning, sends IMAGE frames: the volume it was given, resliced
  (nearest voxel) on the latest TRANSFORM ``PLANE_0``.
- :class:`ConsoleSimulator` plays a cryo console: an OpenIGTLink *server*. It acknowledges
  ``CMD_<id>`` "FREEZE <n> [<flow>%]", "THAW <n> [PASSIVE|ACTIVE]", "OFF <n>", reports the change
  as STATUS ``Cryo`` and sends every ``update_interval_s`` the probe poses (TRANSFORM
  ``Probe<n>ToScanner``) and tip temperatures (NDARRAY ``ProbeTemps`` in °C, SENSOR
  ``Probe<n>Temp`` in kelvin).

The tip temperature follows a first-order lag towards a set point of the probe's state; it is a
plausible-looking signal for testing the link, not a thermal model (the solver does the physics).

    python -m CryoAblationLogic.live.simulator --scanner-port 18944 --console-port 18945
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from dataclasses import dataclass

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
from CryoAblationLogic.igtl.transport import Client, Server
from CryoAblationLogic.igtl.units import KELVIN, celsius_to_kelvin
from CryoAblationLogic.io.phantom import demo_probe_plan, make_phantom
from CryoAblationLogic.live.console import SCAN_PLANE_DEVICE, parse_probe_state

BODY_TEMPERATURE_C = 37.0
# Set points (°C) and time constants (s) of the tip temperature lag, per probe state.
FREEZE_SET_POINT_C = -150.0
FREEZE_TAU_S = 20.0
ACTIVE_THAW_SET_POINT_C = 30.0
ACTIVE_THAW_TAU_S = 15.0
PASSIVE_THAW_TAU_S = 60.0
STATUS_UNKNOWN_INSTRUCTION = 12


class _Runner:
    """Calls ``step`` every ``period_s`` on a background thread."""

    def __init__(self, step, period_s: float, name: str):
        self._step = step
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._step(time.monotonic())
            self._stop.wait(self._period_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


def _ack(message: StringMessage) -> StringMessage:
    return StringMessage(message.text, device_name="ACK_" + message.device_name[4:])


# ---------------------------------------------------------------------------------------------
# MR scanner bridge


class ScannerSimulator:
    """An MR bridge serving slices of ``volume`` ([i, j, k], IJK→RAS ``ijk_to_ras``)."""

    def __init__(
        self,
        volume: np.ndarray,
        ijk_to_ras: np.ndarray,
        host: str = "127.0.0.1",
        port: int = 18944,
        *,
        frame_interval_s: float = 0.5,
        slice_pixels: tuple[int, int] = (64, 64),
        pixel_mm: float = 2.0,
        slice_thickness_mm: float = 5.0,
        device_name: str = "MR Image",
    ):
        self.volume = np.asarray(volume)
        if self.volume.ndim != 3:
            raise InputError("volume", "must be 3-D [i, j, k]")
        self.ijk_to_ras = np.asarray(ijk_to_ras, dtype=np.float64)
        self.ras_to_ijk = np.linalg.inv(self.ijk_to_ras)
        self.frame_interval_s = frame_interval_s
        self.slice_pixels = slice_pixels
        self.pixel_mm = pixel_mm
        self.slice_thickness_mm = slice_thickness_mm
        self.device_name = device_name
        centre = self.ijk_to_ras @ np.append((np.array(self.volume.shape) - 1) / 2.0, 1.0)
        self.plane_to_ras = np.eye(4)
        self.plane_to_ras[:3, 3] = centre[:3]  # axial through the volume centre until told
        self.state = "Idle"
        self.frames_sent = 0
        self._next_frame_s = 0.0
        self.client = Client(host, port)
        self._runner = _Runner(self.step, 0.02, "mr-bridge-simulator")

    def start(self) -> None:
        self.client.start()
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop()
        self.client.stop()

    def handle(self, message: Message) -> list[Message]:
        """Replies to one message from the navigation software (pure: no I/O)."""
        if isinstance(message, TransformMessage) and message.device_name == SCAN_PLANE_DEVICE:
            self.plane_to_ras = message.matrix.copy()
            return []
        if isinstance(message, StringMessage) and message.device_name.startswith("CMD_"):
            command = message.text.strip().upper()
            if command == "START_UP":
                self.state = "Idle"
            elif command in ("START_SEQUENCE", "START_SCAN"):
                self.state = "Scanning"
            elif command in ("STOP_SEQUENCE", "STOP_SCAN"):
                self.state = "Idle"
            else:
                return [
                    StatusMessage(STATUS_UNKNOWN_INSTRUCTION, 0, "UNKNOWN", message.text, device_name="MR")
                ]
            return [_ack(message), StatusMessage(1, 0, "", self.state, device_name="MR")]
        return []

    def frame(self) -> ImageMessage:
        """The current slice: pixels (nearest voxel) on the scan plane, one slice thick."""
        ni, nj = self.slice_pixels
        u = (np.arange(ni) - (ni - 1) / 2.0) * self.pixel_mm
        v = (np.arange(nj) - (nj - 1) / 2.0) * self.pixel_mm
        uu, vv = np.meshgrid(u, v, indexing="ij")
        points = np.stack([uu, vv, np.zeros_like(uu), np.ones_like(uu)], axis=-1) @ self.plane_to_ras.T
        ijk = np.rint(points @ self.ras_to_ijk.T)[..., :3].astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.volume.shape)), axis=-1)
        pixels = np.zeros((ni, nj), dtype=self.volume.dtype)
        pixels[inside] = self.volume[tuple(ijk[inside].T)]
        axes = self.plane_to_ras[:3, :3] @ np.diag([self.pixel_mm, self.pixel_mm, self.slice_thickness_mm])
        return ImageMessage(
            pixels[:, :, None],
            axes,
            self.plane_to_ras[:3, 3].copy(),  # the slice centre is the plane origin
            device_name=self.device_name,
        )

    def step(self, now_s: float) -> None:
        for item in self.client.inbox.drain():
            for reply in self.handle(getattr(item, "message", None)):
                self.client.send(reply)
        if self.state == "Scanning" and now_s >= self._next_frame_s and self.client.connected:
            self.client.send(self.frame())
            self.frames_sent += 1
            self._next_frame_s = now_s + self.frame_interval_s


# ---------------------------------------------------------------------------------------------
# Cryo console


@dataclass
class SimulatedProbe:
    pose: np.ndarray  # 4×4, scanner RAS (mm)
    action: str = "off"
    mode: str | None = None
    flow_percent: float = 100.0
    temperature_c: float = BODY_TEMPERATURE_C

    def set_point_and_tau(self) -> tuple[float, float]:
        if self.action == "freeze":
            return FREEZE_SET_POINT_C * self.flow_percent / 100.0, FREEZE_TAU_S
        if self.action == "thaw" and self.mode == "active":
            return ACTIVE_THAW_SET_POINT_C, ACTIVE_THAW_TAU_S
        return BODY_TEMPERATURE_C, PASSIVE_THAW_TAU_S

    def advance(self, dt_s: float) -> None:
        target, tau = self.set_point_and_tau()
        self.temperature_c = target + (self.temperature_c - target) * math.exp(-dt_s / tau)


def probe_pose(tip_mm, entry_mm) -> np.ndarray:
    """4×4 probe pose: origin at the tip, z axis pointing back along the shaft to the entry."""
    tip, entry = np.asarray(tip_mm, dtype=np.float64), np.asarray(entry_mm, dtype=np.float64)
    z = entry - tip
    length = np.linalg.norm(z)
    if not length > 0:
        raise InputError("entry_mm", "must differ from tip_mm")
    z /= length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    pose[:3, 3] = tip
    return pose


class ConsoleSimulator:
    """A cryo console with probes at ``probe_poses`` (4×4 each, numbered from 1)."""

    def __init__(
        self,
        probe_poses: list[np.ndarray],
        host: str = "127.0.0.1",
        port: int = 18945,
        update_interval_s: float = 0.5,
    ):
        if not probe_poses:
            raise InputError("probe_poses", "at least one probe")
        self.probes = [SimulatedProbe(np.asarray(p, dtype=np.float64)) for p in probe_poses]
        self.update_interval_s = update_interval_s
        self._last_update_s: float | None = None
        self.server = Server(port, host)
        self._runner = _Runner(self.step, 0.02, "cryo-console-simulator")

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start()
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop()
        self.server.stop()

    def handle(self, message: Message) -> list[Message]:
        """Replies to one message (pure: no I/O): ACK and STATUS for a valid command."""
        if not (isinstance(message, StringMessage) and message.device_name.startswith("CMD_")):
            return []
        try:
            change = parse_probe_state(message.text, "CMD", 0.0)
        except InputError as error:
            change, reason = None, error.reason
        else:
            reason = "not FREEZE/THAW/OFF <probe>"
        if change is None or not 1 <= change.probe <= len(self.probes):
            reason = reason if change is None else f"no probe {change.probe}"
            return [
                StatusMessage(
                    STATUS_UNKNOWN_INSTRUCTION, 0, "UNKNOWN", f"{message.text}: {reason}", device_name="Cryo"
                )
            ]
        probe = self.probes[change.probe - 1]
        probe.action, probe.mode = change.action, change.mode
        probe.flow_percent = 100.0 if change.flow_percent is None else change.flow_percent
        state = f"{change.action.upper()} {change.probe}"
        if change.mode:
            state += f" {change.mode.upper()}"
        elif change.action == "freeze":
            state += f" {probe.flow_percent:g}%"
        return [_ack(message), StatusMessage(1, 0, "", state, device_name="Cryo")]

    def updates(self) -> list[Message]:
        """Poses and temperatures of every probe."""
        messages: list[Message] = [
            TransformMessage(p.pose, device_name=f"Probe{n}ToScanner") for n, p in enumerate(self.probes, 1)
        ]
        temperatures = np.array([p.temperature_c for p in self.probes])
        messages.append(NdArrayMessage(temperatures, device_name="ProbeTemps"))
        messages.extend(
            SensorMessage([celsius_to_kelvin(t)], unit=KELVIN, device_name=f"Probe{n}Temp")
            for n, t in enumerate(temperatures, 1)
        )
        return messages

    def step(self, now_s: float) -> None:
        for item in self.server.inbox.drain():
            message = getattr(item, "message", None)
            for reply in self.handle(message):
                self.server.send(reply, connection_id=item.connection_id)
        if self._last_update_s is None:
            self._last_update_s = now_s
        elif now_s - self._last_update_s >= self.update_interval_s:
            for probe in self.probes:
                probe.advance(now_s - self._last_update_s)
            self._last_update_s = now_s
            for message in self.updates():
                self.server.send(message)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - interactive tool

    parser = argparse.ArgumentParser(description="Simulated MR bridge and cryo console for live mode.")
    parser.add_argument("--scanner-host", default="127.0.0.1", help="host where Slicer listens")
    parser.add_argument("--scanner-port", type=int, default=18944, help="0: no scanner")
    parser.add_argument(
        "--console-port", type=int, default=18945, help="port the console listens on; 0: none"
    )
    args = parser.parse_args(argv)
    running = []
    if args.scanner_port:
        phantom = make_phantom(2.0)
        running.append(
            ScannerSimulator(
                phantom.image, phantom.grid.ijk_to_ras_matrix(), args.scanner_host, args.scanner_port
            )
        )
    if args.console_port:
        poses = [probe_pose(p["tip_mm"], p["entry_mm"]) for p in demo_probe_plan()]
        running.append(ConsoleSimulator(poses, port=args.console_port))
    for simulator in running:
        simulator.start()
    print("simulators running; Ctrl-C stops them")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        for simulator in running:
            simulator.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
