"""A synthetic cryoablation procedure on the demo phantom, served over OpenIGTLink
(``cryoablation simulate-scanner``), for demos, training and tests.

The "truth" is a solver run of the demo case with perturbed tissue properties (conductivities and
perfusion scaled by seeded random factors) and probes placed with small insertion errors, so that
the monitor's prediction (the plan's properties and placement) and what is served differ the way
they do in a real procedure. It serves, stamped with the procedure clock (accelerated by
``acceleration``):

- IMAGE ``MR Image``: the phantom's T1w-like volume, int16, in which frozen tissue is a signal void
  (ice has no MR signal: the signal fades to a few per cent between 0 °C and -2 °C);
- STATUS ``MR`` ("Scanning") first; CMD_<id> commands are acknowledged (``ACK_<id>``);
- TRANSFORM ``Probe<n>ToScanner``: the true probe poses (origin at the tip, z up the shaft);
- STATUS ``Cryo`` "FREEZE <n> 100%", "THAW <n> PASSIVE", "OFF <n>" at each protocol change, stamped
  with the exact time of the change;
- NDARRAY ``ProbeTemps`` and SENSOR ``Probe<n>Temp`` (kelvin): the true probe surface temperatures,
  and SENSOR ``<sensor name>`` for the plan's sensors (true tissue temperature), with seeded noise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

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
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.units import KELVIN, celsius_to_kelvin
from CryoAblationLogic.io import phantom as ph
from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.io.demo_case import build_demo_case
from CryoAblationLogic.live.simulator import probe_pose

IMAGE_DEVICE = "MR Image"
VOID_START_C = 0.0  # signal starts to fade here ...
VOID_END_C = -2.0  # ... and is a void (VOID_FLOOR of the tissue signal) below this
VOID_FLOOR = 0.03


@dataclass(frozen=True)
class SyntheticSettings:
    spacing_mm: float = 3.0
    protocol_scale: float = 1.0  # demo protocol durations × this (0.1: 60 s freeze, 48 s thaw, 60 s freeze)
    lead_in_s: float = 20.0  # procedure s with the probes placed and off before the first freeze
    acceleration: float = 1.0  # procedure seconds per wall second
    update_interval_s: float = 0.5  # wall seconds between console updates
    image_every: int = 2  # an image every n-th update
    seed: int = 7
    insertion_error_mm: float = 1.5  # RMS tip displacement
    insertion_error_deg: float = 2.0  # RMS shaft tilt
    property_spread: float = 0.15  # tissue property factors within 1 ± spread
    temperature_noise_c: float = 0.3

    def check(self) -> None:
        if not 0.5 <= self.spacing_mm <= 4.0:
            raise InputError("--spacing-mm", "must lie between 0.5 and 4 mm")
        for key in ("protocol_scale", "acceleration", "update_interval_s"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"--{key.replace('_', '-')}", f"must be a positive number, got {value}")
        if not (math.isfinite(self.lead_in_s) and self.lead_in_s >= 0):
            raise InputError("--lead-in-s", f"must be a number of seconds ≥ 0, got {self.lead_in_s}")
        if self.image_every < 1:
            raise InputError("--image-every", "must be at least 1")
        if not 0 <= self.property_spread < 0.9:
            raise InputError("--property-spread", "must lie in [0, 0.9)")


def plan_case(spacing_mm: float, protocol_scale: float = 1.0, lead_in_s: float = 0.0):
    """The demo case (``commands/demo.py``) with its protocol durations scaled, after a lead-in
    of ``lead_in_s`` with the probes off (placement checked on the images before freezing)."""

    data, labels = build_demo_case(spacing_mm)
    protocol = [{"action": "off", "duration_s": lead_in_s, "probes": "all"}] if lead_in_s > 0 else []
    data["protocol"] = protocol + [
        {**step, "duration_s": round(step["duration_s"] * protocol_scale, 3)} for step in data["protocol"]
    ]
    data["outputs"]["snapshot_times_s"] = [
        round(lead_in_s + t * protocol_scale, 3) for t in data["outputs"]["snapshot_times_s"]
    ]
    return parse_case(data, arrays={"labels.nrrd": labels})


def perturbed_truth(case, settings: SyntheticSettings):
    """The case as it "really" is: tissue properties and probe placement off the plan (seeded)."""
    rng = np.random.default_rng(settings.seed)
    spread = settings.property_spread
    materials = dict(case.materials)
    for name in sorted(set(case.label_materials.values()) | ({case.tissue} if case.tissue else set())):
        m = materials[name]
        k = rng.uniform(1 - spread, 1 + spread)
        w = rng.uniform(1 - 2 * spread, 1 + 2 * spread)  # perfusion varies most between patients
        materials[name] = replace(
            m, k_unfrozen=m.k_unfrozen * k, k_frozen=m.k_frozen * k, perfusion=m.perfusion * w
        )
    probes = []
    for spec in case.probes:
        tip = np.asarray(spec.tip_mm) + rng.normal(0.0, settings.insertion_error_mm / math.sqrt(3.0), 3)
        axis = spec.direction + np.tan(math.radians(settings.insertion_error_deg)) * rng.normal(0, 0.7071, 3)
        axis /= np.linalg.norm(axis)
        shaft = float(np.linalg.norm(np.subtract(spec.entry_mm, spec.tip_mm)))
        probes.append(
            replace(spec, tip_mm=tuple(tip.tolist()), entry_mm=tuple((tip + axis * shaft).tolist()))
        )
    return replace(case, materials=materials, probes=probes)


def phantom_image(case) -> np.ndarray:
    """The phantom's MR-like image on the case grid (the demo case's region of the phantom)."""

    full = ph.make_phantom(case.grid.spacing_mm[0])
    lo = np.rint(full.grid.ras_to_index(case.grid.origin_mm)).astype(int)
    hi = lo + np.asarray(case.grid.size)
    if np.any(lo < 0) or np.any(hi > np.asarray(full.grid.size)):
        raise InputError("case.grid", "does not lie within the phantom")
    return full.image[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy()


def ice_void_image(image: np.ndarray, temperature_c: np.ndarray) -> np.ndarray:
    """int16 MR image in which tissue below 0 °C fades to a signal void by -2 °C."""
    fraction = np.clip((temperature_c - VOID_END_C) / (VOID_START_C - VOID_END_C), 0.0, 1.0)
    factor = VOID_FLOOR + (1.0 - VOID_FLOOR) * fraction
    return np.clip(np.rint(image * factor), 0, 32767).astype(np.int16)


def probe_states(case, time_s: float) -> list[tuple[str, float, str | None]]:
    """(action, flow, mode) of each probe at ``time_s`` as the case's protocol has it."""
    for step in case.protocol:
        if step.start_s <= time_s < step.end_s:
            return [
                (step.action, step.flow_percent, step.mode) if step.applies_to(p.name) else ("off", 0.0, None)
                for p in case.probes
            ]
    return [("off", 0.0, None) for _ in case.probes]


def state_text(number: int, state: tuple[str, float, str | None]) -> str:
    action, flow, mode = state
    if action == "freeze":
        return f"FREEZE {number} {flow:g}%"
    if action == "thaw":
        return f"THAW {number} {(mode or 'passive').upper()}"
    return f"OFF {number}"


class SyntheticProcedure:
    """The truth run and the messages it produces (no I/O; :func:`serve` sends them)."""

    def __init__(self, settings: SyntheticSettings):
        # numba: compiled or loaded on first use, and installed in Slicer only on first use
        from CryoAblationLogic.physics.simulation import (
            Simulation,  # numba kernels compile or load on first use
        )

        settings.check()
        self.settings = settings
        self.plan = plan_case(settings.spacing_mm, settings.protocol_scale, settings.lead_in_s)
        self.truth = perturbed_truth(self.plan, settings)
        self.simulation = Simulation(self.truth)
        self.image = phantom_image(self.plan)
        self.rng = np.random.default_rng(settings.seed + 1)
        self.end_s = self.truth.duration_s
        boundaries = sorted({0.0, *(s.end_s for s in self.truth.protocol)})
        self.changes = boundaries  # times at which probe states may change
        self._states = [("off", 0.0, None)] * len(self.truth.probes)
        self.poses = [probe_pose(p.tip_mm, p.entry_mm) for p in self.truth.probes]

    def state_messages(self, time_s: float) -> list[Message]:
        """STATUS ``Cryo`` for every probe whose state changes at ``time_s``."""
        messages: list[Message] = []
        new = probe_states(self.truth, time_s)
        for number, (old, state) in enumerate(zip(self._states, new, strict=True), 1):
            if old != state:
                messages.append(StatusMessage(1, 0, "", state_text(number, state), device_name="Cryo"))
        self._states = new
        return messages

    def update_messages(self, with_image: bool) -> list[Message]:
        """Poses, temperatures and (optionally) an image at the truth's current time."""
        noise = self.settings.temperature_noise_c
        messages: list[Message] = [
            TransformMessage(pose, device_name=f"Probe{n}ToScanner") for n, pose in enumerate(self.poses, 1)
        ]
        history = self.simulation.probe_history
        temps = []
        for probe in self.truth.probes:
            surface = history[probe.name]["surface_c"]
            value = float(surface[-1]) if len(surface) else self.truth.initial_temperature_c
            temps.append(value + self.rng.normal(0.0, noise))
        messages.append(NdArrayMessage(np.asarray(temps), device_name="ProbeTemps"))
        messages.extend(
            SensorMessage([celsius_to_kelvin(t)], unit=KELVIN, device_name=f"Probe{n}Temp")
            for n, t in enumerate(temps, 1)
        )
        for sensor in self.truth.sensors:
            value = self.simulation.temperature_at(sensor.position_mm) + self.rng.normal(0.0, noise)
            messages.append(SensorMessage([celsius_to_kelvin(value)], unit=KELVIN, device_name=sensor.name))
        if with_image:
            messages.append(self.image_message())
        return messages

    def image_message(self) -> ImageMessage:
        grid = self.truth.grid
        voxels = ice_void_image(self.image, self.simulation.temperature_c)
        axes = np.diag(np.asarray(grid.spacing_mm, dtype=np.float64))
        centre = grid.index_to_ras((np.asarray(grid.size) - 1) / 2.0)
        return ImageMessage(voxels, axes, centre, device_name=IMAGE_DEVICE)

    def timeline(self):
        """(procedure time, messages) in order, from 0 to the end of the protocol."""
        step = self.settings.update_interval_s * self.settings.acceleration
        count = math.floor(self.end_s / step + 1e-9)
        updates = [n * step for n in range(count + 1)]
        if updates[-1] < self.end_s - 1e-9:
            updates.append(self.end_s)
        update_index = {t: n for n, t in enumerate(updates)}
        update_set = set(updates)
        change_set = set(self.changes)
        for t in sorted(update_set | change_set):
            self.simulation.advance_to(t)
            messages: list[Message] = self.state_messages(t) if t in change_set else []
            if t in update_set:
                n = update_index[t]
                messages += self.update_messages(n % self.settings.image_every == 0 or t == self.end_s)
            if messages:
                yield t, messages


def _ack(message: StringMessage) -> list[Message]:
    return [StringMessage(message.text, device_name="ACK_" + message.device_name[4:])]


def serve(
    procedure: SyntheticProcedure, endpoint, wait_s: float = 60.0, linger_s: float = 1.0, log=print
) -> int:
    """Serve the procedure over ``endpoint`` (a started Server or Client). Waits up to ``wait_s``
    for a peer, then plays the timeline paced by the wall clock. Returns messages sent."""
    deadline = time.monotonic() + wait_s
    while not endpoint.connected:
        if time.monotonic() > deadline:
            raise InputError("peer", f"nobody connected within {wait_s:g} s")
        time.sleep(0.02)
    sent = 0
    start_wall = time.monotonic()
    origin = time.time()
    hello = StatusMessage(1, 0, "", "Scanning", device_name="MR")
    hello.timestamp_raw = timestamp_from_seconds(origin)
    endpoint.send(hello, stamp=False)
    for t, messages in procedure.timeline():
        wait = start_wall + t / procedure.settings.acceleration - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        stamp = timestamp_from_seconds(origin + t)
        for message in messages:
            message.timestamp_raw = stamp
            sent += endpoint.send(message, stamp=False) > 0
        for item in endpoint.inbox.drain():
            message = getattr(item, "message", None)
            if isinstance(message, StringMessage) and message.device_name.startswith("CMD_"):
                for reply in _ack(message):
                    endpoint.send(reply)
    truth = ", ".join(
        f"{level:g} °C: {ml:.2f} ml" for level, ml in procedure.simulation.isotherm_volumes_ml().items()
    )
    log(
        f"procedure served: {procedure.end_s:g} s in {time.monotonic() - start_wall:.1f} s wall, "
        f"{sent} messages; the truth's ice volumes {truth}"
    )
    time.sleep(linger_s)
    return sent
