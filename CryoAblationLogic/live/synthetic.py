"""A synthetic cryoablation procedure on the demo phantom, served over OpenIGTLink
(``cryoablation simulate-scanner``), for demos, training and tests.

The "truth" is a solver run of the demo case with perturbed tissue properties (conductivities and
perfusion scaled by seeded random factors) and probes placed with small insertion errors, so that
the monitor's prediction (the plan's properties and placement) and what is served differ the way
they do in a real procedure. It serves, stamped with the procedure clock (accelerated by
``acceleration``):

- with ``imaging="scanner"`` (the default), what an MR-guided procedure shows, rendered by
  :mod:`~CryoAblationLogic.io.mr_synthesis` from the truth's field (Rician noise at ``snr``, each
  probe's susceptibility void, partial volume at the ice edge, a breathing-like rigid shift of up
  to ``breathing_mm`` per image), as IMAGE messages with their true geometry (int16):
  ``MR Slice across``, ``MR Slice along-1``, ``MR Slice along-2`` — the three real-time planes
  through the probe cluster as planned (1.5 × 1.5 mm pixels, 5 mm thick) every
  ``slice_interval_s`` of procedure time — and ``MR Volume`` (``volume_spacing_mm``) every
  ``volume_interval_s`` and at the end; at time 0, before any probe freezes, a baseline of each
  (at the reference position, no shift);
- with ``imaging="phantom"`` (the old behaviour), IMAGE ``MR Image``: the phantom's T1w-like volume
  on the case grid, noise-free, int16, in which frozen tissue is a signal void (the signal fades to
  a few per cent between 0 °C and -2 °C), with every ``image_every``-th update;
- STATUS ``MR`` ("Scanning") first; CMD_<id> commands are acknowledged (``ACK_<id>``);
- TRANSFORM ``Probe<n>ToScanner``: the true probe poses (origin at the tip, z up the shaft);
- STATUS ``Cryo`` "FREEZE <n> 100%", "THAW <n> PASSIVE", "OFF <n>" at each protocol change, stamped
  with the exact time of the change;
- NDARRAY ``ProbeTemps`` and SENSOR ``Probe<n>Temp`` (kelvin): the true probe surface temperatures,
  and SENSOR ``<sensor name>`` for the plan's sensors (true tissue temperature), with seeded noise.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.igtl.messages import (
    ImageMessage,
    Message,
    NdArrayMessage,
    QueryMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.units import KELVIN, celsius_to_kelvin
from CryoAblationLogic.io import mr_synthesis as mr
from CryoAblationLogic.io import phantom as ph
from CryoAblationLogic.io.case_file import parse_case, save_case
from CryoAblationLogic.io.demo_case import build_demo_case
from CryoAblationLogic.io.result_folder import write_result_folder
from CryoAblationLogic.live.console import CONSOLE_STATUS_DEVICE
from CryoAblationLogic.live.simulator import probe_pose

IMAGE_DEVICE = "MR Image"  # imaging "phantom"
VOLUME_DEVICE = "MR Volume"
SLICE_DEVICE_PREFIX = "MR Slice "
IMAGING = ("scanner", "phantom")
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
    imaging: str = "scanner"  # or "phantom": the noise-free volume with every image_every-th update
    slice_interval_s: float = 20.0  # procedure s between the real-time slices
    volume_interval_s: float = 180.0  # procedure s between the 3-D volumes
    volume_spacing_mm: float = 2.0
    snr: float = mr.DEFAULT_SNR
    breathing_mm: float = 3.0  # amplitude of the breathing-like shift (mostly S–I)

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
        if not (math.isfinite(self.insertion_error_mm) and 0 <= self.insertion_error_mm <= 20):
            raise InputError("--insertion-error-mm", "must be an RMS tip error of 0 … 20 mm")
        if not (math.isfinite(self.insertion_error_deg) and 0 <= self.insertion_error_deg <= 30):
            raise InputError("--insertion-error-deg", "must be an RMS shaft tilt of 0 … 30°")
        if self.imaging not in IMAGING:
            raise InputError("--imaging", f"must be one of {', '.join(IMAGING)}, got {self.imaging!r}")
        for key, low, high in (
            ("slice_interval_s", 1.0, 3600.0),
            ("volume_interval_s", 1.0, 36000.0),
            ("volume_spacing_mm", 0.5, 6.0),
            ("snr", 1.0, 1000.0),
            ("breathing_mm", 0.0, 20.0),
        ):
            value = getattr(self, key)
            if not (math.isfinite(value) and low <= value <= high):
                raise InputError(f"--{key.replace('_', '-')}", f"must lie in {low:g} … {high:g}, got {value}")


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


def _state_message(number: int, state) -> StatusMessage:
    """The console's STATUS of probe ``number``'s state (as sent on a change or asked for)."""
    return StatusMessage(1, 0, "", state_text(number, state), device_name=CONSOLE_STATUS_DEVICE)


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
        # the real-time planes are placed on the plan (the operator sets them before inserting)
        self.planes = mr.probe_cluster_planes(self.plan.probes)
        self.volume_grid = volume_grid(self.plan.grid, settings.volume_spacing_mm)
        self.images_rendered = 0
        self.snapshots: dict[float, np.ndarray] = {}  # the truth at the plan's snapshot times

    def state_messages(self, time_s: float) -> list[Message]:
        """STATUS ``Cryo`` for every probe whose state changes at ``time_s``."""
        messages: list[Message] = []
        new = probe_states(self.truth, time_s)
        for number, (old, state) in enumerate(zip(self._states, new, strict=True), 1):
            if old != state:
                messages.append(_state_message(number, state))
        self._states = new
        return messages

    def answer(self, message: Message) -> list[Message]:
        """The console's answer to a request: ``GET_STATUS`` (of ``Cryo`` or of every device): the
        STATUS ``Cryo`` of every probe's current state; nothing to anything else."""
        if not (
            isinstance(message, QueryMessage)
            and message.prefix == "GET"
            and message.data_type == "STATUS"
            and message.device_name in ("", CONSOLE_STATUS_DEVICE)
        ):
            return []
        return [_state_message(number, state) for number, state in enumerate(self._states, 1)]

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

    def scanner_images(self, time_s: float, slices: bool, volume: bool) -> list[Message]:
        """The MR images at ``time_s`` rendered from the truth's field now (baselines at 0)."""
        s = self.settings
        baseline = time_s == 0.0
        field = self.simulation.temperature_c
        messages: list[Message] = []
        views: list = ([None] if volume else []) + (list(self.planes) if slices else [])
        for view in views:
            number = self.images_rendered
            self.images_rendered += 1
            shift = np.zeros(3) if baseline else mr.breathing_shift(s.seed * 100_003 + number, s.breathing_mm)
            seed = s.seed * 1_000_003 + number
            if view is None:
                image = mr.render_volume(
                    field,
                    self.truth.grid,
                    self.truth.probes,
                    grid=self.volume_grid,
                    shift_mm=shift,
                    snr=s.snr,
                    seed=seed,
                )
                name = VOLUME_DEVICE
            else:
                image = mr.render_slice(
                    view, field, self.truth.grid, self.truth.probes, shift_mm=shift, snr=s.snr, seed=seed
                )
                name = SLICE_DEVICE_PREFIX + view.name
            messages.append(mr_image_message(image, name))
        return messages

    def image_times(self) -> tuple[set[float], set[float]]:
        """(slice times, volume times) of the scanner imaging: 0 (the baselines), every interval,
        and a volume at the end."""
        s = self.settings

        def every(interval: float) -> set[float]:
            count = math.floor(self.end_s / interval + 1e-9)
            return {round(n * interval, 9) for n in range(count + 1)}

        return every(s.slice_interval_s), every(s.volume_interval_s) | {self.end_s}

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
        scanner = self.settings.imaging == "scanner"
        slice_times, volume_times = self.image_times() if scanner else (set(), set())
        snapshot_set = {float(t) for t in self.plan.outputs.snapshot_times_s if 0 <= t <= self.end_s}
        for t in sorted(update_set | change_set | slice_times | volume_times | snapshot_set):
            self.simulation.advance_to(t)
            if t in snapshot_set:
                self.snapshots[t] = self.simulation.temperature_c
            messages: list[Message] = []
            if scanner and t == 0.0:  # the baselines are taken before anything freezes
                messages += self.scanner_images(t, True, True)
            messages += self.state_messages(t) if t in change_set else []
            if t in update_set:
                n = update_index[t]
                with_image = not scanner and (n % self.settings.image_every == 0 or t == self.end_s)
                messages += self.update_messages(with_image)
            if scanner and t > 0.0 and (t in slice_times or t in volume_times):
                messages += self.scanner_images(t, t in slice_times, t in volume_times)
            if messages:
                yield t, messages

    def truth_result(self):
        """The truth run so far as a :class:`~CryoAblationLogic.physics.simulation.SimulationResult`
        on the plan's grid (the snapshots at the plan's snapshot times reached)."""
        return self.simulation.result(dict(self.snapshots), wall_s=0.0)

    def write_truth(self, out_dir) -> Path:
        """The truth run as a result folder (``summary.json``, ``temperature_final.nrrd``,
        ``min_temperature.nrrd``, snapshots) on the plan's grid, and its case beside it
        (``case.cryo.json``: the perturbed properties and placement)."""
        out = write_result_folder(self.truth_result(), out_dir, self.truth)
        save_case(self.truth, Path(out) / "case.cryo.json", labelmap_filename="labels.nrrd")
        summary_path = Path(out) / "summary.json"
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        s = self.settings
        summary["truth"] = {
            "seed": s.seed,
            "property_spread": s.property_spread,
            "insertion_error_mm": s.insertion_error_mm,
            "insertion_error_deg": s.insertion_error_deg,
            "probes": [
                {"name": p.name, "tip_mm": list(p.tip_mm), "entry_mm": list(p.entry_mm)}
                for p in self.truth.probes
            ],
        }
        summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return Path(out)


def volume_grid(plan_grid: Grid, spacing_mm: float) -> Grid:
    """The 3-D MR volume's grid: the plan grid's extent at ``spacing_mm``."""
    extent = (np.asarray(plan_grid.size) - 1) * np.asarray(plan_grid.spacing_mm)
    size = tuple(math.floor(e / spacing_mm + 1e-9) + 1 for e in extent)
    return Grid(plan_grid.origin_mm, (float(spacing_mm),) * 3, size)  # type: ignore[arg-type]


def mr_image_message(image, device_name: str) -> ImageMessage:
    """An IMAGE message (int16, RAS) of an :class:`~CryoAblationLogic.io.mr_synthesis.MRImage`
    with its true geometry (a slice's third axis is its normal × thickness)."""
    matrix = np.asarray(image.ijk_to_ras, dtype=np.float64)
    voxels = np.clip(np.rint(image.array), 0, 32767).astype(np.int16)
    centre = (matrix @ np.append((np.asarray(voxels.shape) - 1) / 2.0, 1.0))[:3]
    return ImageMessage(voxels, matrix[:3, :3].copy(), centre, device_name=device_name)


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
            for reply in procedure.answer(message) if message is not None else []:
                reply.timestamp_raw = stamp  # the state as of now (a state query)
                sent += endpoint.send(reply, stamp=False) > 0
    truth = ", ".join(
        f"{level:g} °C: {ml:.2f} ml" for level, ml in procedure.simulation.isotherm_volumes_ml().items()
    )
    log(
        f"procedure served: {procedure.end_s:g} s in {time.monotonic() - start_wall:.1f} s wall, "
        f"{sent} messages; the truth's ice volumes {truth}"
    )
    time.sleep(linger_s)
    return sent
