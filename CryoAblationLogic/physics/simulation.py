"""The ice-ball simulation: build it from a :class:`~CryoAblationLogic.core.plan.Case`, advance it.

Scheme (see :mod:`.kernels`): implicit (backward-Euler) enthalpy steps of the Pennes bioheat
equation with phase change, solved by red-black nonlinear Gauss–Seidel sweeps, accelerated by
coarse-grid corrections (:mod:`.multigrid`), until neither a sweep nor a correction changes any
voxel by ``tolerance_c``. Voxels the freezing front crosses are part ice, part tissue (the sub-voxel
front, :func:`.kernels.front_cell`; ``sub_voxel_front=False`` gives the voxel front of before).
Being implicit, a step is stable at any size; the step is chosen for accuracy (``max_dt_s``, by
default proportional to the voxel size) and starts small whenever a probe changes state. The step
size and the tolerance are checked against runs with much smaller values in
Testing/physics/test_multigrid.py. Work is confined to an active box of voxels that have departed
from their basal (probe-free) state; outside it every voxel follows the analytic basal history of
its material (perfusion and metabolic heat only); the box grows as the cold spreads and shrinks as
it withdraws.

Results are deterministic for identical input: the sweep order and the reductions are fixed.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from CryoAblationLogic.core import memory
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import (
    Case,
    LineSinkSource,
    Outputs,
    ProtocolStep,
    SphereSource,
    WarmLineSource,
    WarmRegionSource,
)
from CryoAblationLogic.physics import kernels as kn
from CryoAblationLogic.physics import multigrid as mg
from CryoAblationLogic.physics.probe_coupling import (
    SPHERE_WELL_MAX_RADIUS_VOXELS,
    line_sink_deposit,
    probe_stencil,
    sphere_stencil,
    sphere_well_stencil,
)
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.physics.threads import use_threads

# 10 float32 fields (one the sub-voxel front's Pennes share), 3 float32 link conductances, material,
# fixed, coupled and front bytes, and the coarse grids (6 float64 arrays on 1/8 of the voxels, 1/7
# more for the coarser ones).
BYTES_PER_VOXEL = 63
RESULT_BYTES_PER_VOXEL = 8  # final and minimum temperature copies
# A voxel this far (K) from its basal temperature belongs to the active box. Outside the box the
# field is the basal one, so this is also the largest error of the far field; in unperfused tissue
# its long tail feeds the front, and 0.3 K already slowed the Neumann front by 0.2 % (TC-6).
BOX_TOLERANCE_C = 0.05
MAX_SWEEPS = 400
# The longest step with probes (s). A front that no longer locks onto voxels (the sub-voxel front)
# lags by backward Euler's first-order error: on the benchmark plan 24-s steps at 1 mm gave isotherm
# volumes 1.1-1.4 % below those of 1-s steps, 16-s steps 0.6-0.9 %.
MAX_STEP_S = 16.0
# A step is converged when neither a sweep nor a coarse correction moves any voxel by this much (K).
# On the benchmark plan the isotherm volumes are the same to 0.1 % for 0.1, 0.2 and 0.3 K
# (Testing/physics/test_multigrid.py holds 0.2 K to a 0.01 K run); 0.2 K takes 17 % less work
# than 0.1 K.
DEFAULT_TOLERANCE_C = 0.2
MAX_CORRECTIONS_PER_STEP = 20
# After a change of probe state the step starts at max_dt / FIRST_STEP_FRACTION and grows by
# STEP_GROWTH per step: the field changes fastest right after a probe starts or stops.
FIRST_STEP_FRACTION = 16.0
STEP_GROWTH = 1.5
# The shell around the box is set to the basal temperature again once that has drifted this much (K).
SHELL_REFRESH_C = 1e-3
BOX_SHRINK_VOXELS = 3  # the box shrinks once the departure has withdrawn this much beyond its margin
REGION_MARGIN_VOXELS = 2  # around the voxels that still move, converged together with them
LOCAL_MARGIN_VOXELS = 2  # around the voxels that still move within a region, swept alone
PARALLEL_MIN_VOXELS = 10_000  # smaller regions are swept by one thread (waking threads costs more)


# The domain faces: name → (axis, upper end).
FACES = {
    "x-": (0, False),
    "x+": (0, True),
    "y-": (1, False),
    "y+": (1, True),
    "z-": (2, False),
    "z+": (2, True),
}


class SimulationCancelled(Exception):
    """Raised by :func:`simulate` when ``cancel()`` returned True."""


@dataclass
class SimulationResult:
    grid: Grid
    temperature_final: np.ndarray
    min_temperature: np.ndarray
    snapshots: dict[float, np.ndarray]
    sensors: dict[str, tuple[np.ndarray, np.ndarray]]
    isotherm_volumes_ml: dict[float, float]
    ice_volume_history: dict[float, tuple[np.ndarray, np.ndarray]]
    energy_balance_error: float
    wall_s: float
    simulated_s: float
    probe_history: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    steps: int = 0
    sweeps: int = 0
    voxel_updates: int = 0
    coarse_corrections: int = 0


def available_memory_bytes() -> int:
    """MemAvailable, and inside a container the room under its cgroup limit (core.memory)."""
    return memory.available_memory_bytes()


def estimate_memory_bytes(grid: Grid, snapshots: int = 0) -> int:
    """Peak memory of a run on this grid (fields, result copies and snapshots)."""
    return grid.voxel_count * (BYTES_PER_VOXEL + RESULT_BYTES_PER_VOXEL + 4 * snapshots)


def check_memory(grid: Grid, snapshots: int = 0) -> None:
    need = estimate_memory_bytes(grid, snapshots)
    have = available_memory_bytes()
    if need > 0.8 * have:
        raise InputError(
            "grid.size",
            f"{grid.size} needs about {need / 1e9:.2f} GB of memory, more than the "
            f"{0.8 * have / 1e9:.2f} GB that can be used here; use a coarser spacing or a smaller region",
        )


def _has_held_temperatures(case: Case) -> bool:
    """A face or sphere held at another temperature than the start (analytic cases, docs/physics.md §7)."""

    t0 = case.initial_temperature_c
    held_faces = [bc.temperature_c for bc in case.boundaries.values() if bc.type == "fixed"]
    held_spheres = [s.temperature_c for s in case.sources if isinstance(s, SphereSource)]
    held_regions = [
        s.temperature_c
        for s in case.sources
        if isinstance(s, WarmRegionSource) and s.temperature_c is not None
    ]
    return any(abs(t - t0) > 1e-9 for t in held_faces + held_spheres + held_regions)


def default_max_dt_s(case: Case) -> float:
    """Accuracy-limited step, proportional to the voxel size.

    Probes take a bounded heat flux (surface coefficient, power cap), and 24 s per mm of voxel (at
    most ``MAX_STEP_S``, 16 s) keeps the isotherm volumes of the benchmark plan within 1 % (1 mm) and
    2 % (2 mm) of those of 1–2 s steps (Testing/physics/test_multigrid.py).
    A held face or sphere draws a flux that is unbounded at first: there the step is 4 s at 1 mm
    (at most 10 s), which keeps the Neumann front within 2 % (Testing/physics/test_verification.py).
    """
    spacing = min(case.grid.spacing_mm)
    if _has_held_temperatures(case):
        return float(min(10.0, max(0.25, 4.0 * spacing)))
    return float(min(MAX_STEP_S, max(0.25, 24.0 * spacing)))


@dataclass
class _ProbeRuntime:
    name: str
    model: object
    radius_m: float
    length_m: float
    stencil: object
    override: tuple | None = None  # (action, flow_percent, mode) set in live mode
    times: list = field(default_factory=list)
    power_w: list = field(default_factory=list)
    surface_c: list = field(default_factory=list)
    # coupling of the current step
    conductance: float = 0.0  # W/K per m of active length
    reference_c: float = 0.0
    tissue_resistance: float = 0.0  # m·K/W


class Simulation:
    """A running simulation of one case; see the module docstring for the scheme."""

    def __init__(
        self,
        case: Case,
        max_dt_s: float | None = None,
        tolerance_c: float = DEFAULT_TOLERANCE_C,
        omega: float = 1.0,
        snapshot_count: int = 0,
        coarse_correction: bool = True,
        sub_voxel_front: bool = True,
    ):
        use_threads()  # layer, wait policy and thread count for this machine's load (threads.py)
        check_memory(case.grid, snapshot_count)
        self.case = case
        self.grid = grid = case.grid
        self.time_s = 0.0
        self.end_time_s = case.duration_s
        self.max_dt_s = float(max_dt_s) if max_dt_s else default_max_dt_s(case)
        self.tolerance_c = tolerance_c
        self.omega = omega
        self.coarse_correction = coarse_correction
        self.sub_voxel_front = bool(sub_voxel_front)
        self._coarse = None  # multigrid.CoarseLevels of the region being converged
        self.corrections = 0
        self.size = np.asarray(grid.size, dtype=np.int64)
        spacing_m = np.asarray(grid.spacing_mm) * 1e-3
        self.inv_d2 = 1.0 / spacing_m**2
        self.voxel_m3 = float(np.prod(spacing_m))
        self._build_materials()
        self._build_fields()
        self._build_sources()
        self._build_probes()
        self._build_box()
        self.steps = 0
        self.sweeps = 0
        self.voxel_updates = 0
        self._energy_change = 0.0
        self._energy_in = 0.0
        self._energy_scale = 0.0
        self._last_states: tuple | None = None
        self._dt_current = self.max_dt_s
        self._dt_last = 0.0
        self._levels = np.asarray(case.outputs.isotherms_c, dtype=np.float64)
        self._history_t: list[float] = [0.0]
        self._history_counts: list[np.ndarray] = [self._full_counts()]
        self._sensor_t: list[float] = []
        self._sensor_values: dict[str, list[float]] = {s.name: [] for s in case.sensors}
        self._record_sensors()

    # --- setup ----------------------------------------------------------------------------

    def _build_materials(self) -> None:
        case = self.case
        if case.tissue is not None:
            names = [case.tissue]
            self.mat = np.zeros(self.grid.size, dtype=np.uint8)
        else:
            names = sorted(set(case.label_materials.values()))
            lookup = np.zeros(max(case.label_materials) + 1, dtype=np.uint8)
            for label, name in case.label_materials.items():
                lookup[label] = names.index(name)
            self.mat = lookup[case.tissue_labels]
        if len(names) > 255:
            raise InputError("tissue_map.labels", "at most 255 different materials")
        self.material_names = names
        props = np.zeros((len(names), kn.N_PROPS))
        for index, name in enumerate(names):
            m = case.materials[name]
            props[index] = (
                m.c_frozen,
                m.c_unfrozen,
                m.t_solidus_c,
                m.t_liquidus_c,
                m.enthalpy_at_liquidus(),
                m.k_frozen,
                m.k_unfrozen,
                m.k_frozen_exponent,
                m.perfusion,
                m.metabolic,
                m.blood_temperature_c,
            )
        self.props = props
        self._basal_t = np.zeros(len(names))
        self._basal_h = np.zeros(len(names))
        self._update_basal(0.0)
        end = self.end_time_s
        t0 = self.case.initial_temperature_c
        final = self._basal_at(end)
        self._basal_drifts = bool(np.any(np.abs(final - t0) > 1e-6))
        # Where materials drift apart (different metabolic/perfusion balance), their interfaces and
        # the fixed faces depart from the basal state by up to the spread; that alone must not grow
        # the box.
        self.box_tolerance_c = BOX_TOLERANCE_C + float(np.ptp(np.append(final, t0)))

    def _basal_at(self, t: float) -> np.ndarray:
        """Probe-free temperature of each material at time t (perfusion + metabolic heat only)."""
        t0 = self.case.initial_temperature_c
        out = np.full(len(self.material_names), t0)
        for index, p in enumerate(self.props):
            if t0 < p[kn.TL]:
                continue  # frozen start: no perfusion, no metabolism
            w, qm, c = p[kn.W], p[kn.QM], p[kn.CU]
            if w > 0:
                t_eq = p[kn.TB] + qm / w
                out[index] = t_eq + (t0 - t_eq) * math.exp(-w * t / c)
            else:
                out[index] = t0 + qm * t / c
        return out

    def _update_basal(self, t: float) -> None:
        self._basal_t[:] = self._basal_at(t)
        for index, p in enumerate(self.props):
            self._basal_h[index] = _enthalpy(self._basal_t[index], p)

    def _build_fields(self) -> None:
        grid, case = self.grid, self.case
        shape = grid.size
        self.T = np.full(shape, case.initial_temperature_c, dtype=np.float32)
        self.fixed = np.zeros(shape, dtype=np.uint8)
        for face, (axis, upper) in FACES.items():
            bc = case.boundaries[face]
            if bc.type != "fixed":
                continue
            index = [slice(None)] * 3
            index[axis] = -1 if upper else 0
            self.fixed[tuple(index)] = 1
            self.T[tuple(index)] = bc.temperature_c
        self.H = np.empty(shape, dtype=np.float32)
        self.Hold = np.zeros(shape, dtype=np.float32)
        self.kcell = np.zeros(shape, dtype=np.float32)
        self.link = np.zeros((3, *shape), dtype=np.float32)
        self.g = np.zeros(shape, dtype=np.float32)
        self.gT = np.zeros(shape, dtype=np.float32)
        self.q = np.zeros(shape, dtype=np.float32)
        self.front = np.zeros(shape, dtype=np.uint8)  # voxels of the sub-voxel front this step
        self.qf = np.zeros(shape, dtype=np.float32)  # their share of Pennes' terms (W/m³)
        # What the sweeps, the coarse corrections and the close of a step take for the front.
        self._front_args = (self.front, self.qf, self.inv_d2, self.sub_voxel_front)

    def _build_sources(self) -> None:

        grid = self.grid
        self._spheres = []
        self._sphere_wells = []
        self._warm_lines = []  # (source, ProbeStencil): catheters held at a temperature
        self._held_regions: list[np.ndarray] = []  # flat voxel indices of labelled regions held warm
        for index, source in enumerate(self.case.sources):
            if isinstance(source, SphereSource) and source.radius_mm < SPHERE_WELL_MAX_RADIUS_VOXELS * max(
                grid.spacing_mm
            ):
                # A ball of a few voxels has a staircase surface: couple it as a spherical well.
                self._sphere_wells.append(
                    (source, sphere_well_stencil(grid, source.center_mm, source.radius_mm))
                )
            elif isinstance(source, SphereSource):
                stencil = sphere_stencil(grid, source.center_mm, source.radius_mm)
                if not stencil.inside.any():
                    raise InputError(
                        f"sources[{index}].radius_mm",
                        f"no voxel centre lies inside the sphere (spacing {max(grid.spacing_mm):g} mm); "
                        "refine the grid or enlarge the sphere",
                    )
                self.fixed[stencil.inside] = 2
                self.T[stencil.inside] = source.temperature_c
                self._spheres.append((source, stencil))
            elif isinstance(source, LineSinkSource):
                flat, length_m = line_sink_deposit(grid, source.start_mm, source.end_mm)
                q_flat = self.q.reshape(-1)
                q_flat[flat] -= (source.power_w_per_m * length_m / self.voxel_m3).astype(np.float32)
            elif isinstance(source, WarmLineSource):
                self._build_warm_line(source)
            elif isinstance(source, WarmRegionSource):
                self._build_warm_region(index, source)
        kn.enthalpy_field(self.T, self.mat, self.props, self.H)
        self.Hprev = self.H.copy()
        self.Tmin = self.T.copy()

    def _build_warm_line(self, source: WarmLineSource) -> None:
        """A catheter held at a temperature. One at least a voxel thick is resolved: the voxels whose
        centres lie inside it are held, like a fixed face. A thinner one is coupled like a probe
        (the well model of .probe_coupling, with a kernel of two radii)."""
        grid = self.grid
        radius = 0.5 * source.diameter_mm
        start, end = np.asarray(source.start_mm, float), np.asarray(source.end_mm, float)
        if radius >= max(grid.spacing_mm):
            axis = end - start
            reach = radius + max(grid.spacing_mm)
            lo = np.clip(
                np.floor(grid.ras_to_index(np.minimum(start, end) - reach)).astype(int), 0, self.size
            )
            hi = np.clip(
                np.ceil(grid.ras_to_index(np.maximum(start, end) + reach)).astype(int) + 1, 0, self.size
            )
            x, y, z = np.meshgrid(*[grid.axis_mm(a)[lo[a] : hi[a]] for a in range(3)], indexing="ij")
            rel = np.stack([x, y, z], axis=-1) - start
            s = np.clip((rel @ axis) / (axis @ axis), 0.0, 1.0)
            distance = np.linalg.norm(rel - s[..., None] * axis, axis=-1)
            mask = np.zeros(grid.size, dtype=bool)
            mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = distance <= radius
            self.fixed[mask] = 1
            self.T[mask] = source.temperature_c
            self._held_regions.append(np.flatnonzero(mask))
            return
        stencil = probe_stencil(grid, start, end, radius, radius_factor=2.0)
        self._warm_lines.append((source, stencil))

    def _build_warm_region(self, index: int, source: WarmRegionSource) -> None:
        """A labelled region held at a temperature (its voxels become held, like a fixed face, and
        exchange heat with their neighbours through the ordinary links) or heated uniformly."""
        key = f"sources[{index}].label"
        if self.case.tissue_labels is None:
            raise InputError(key, "a warm region needs a tissue label map (tissue_map), not one tissue")
        mask = self.case.tissue_labels == source.label
        if not mask.any():
            raise InputError(key, f"no voxel of the tissue map has the label {source.label}")
        if source.temperature_c is not None:
            self.fixed[mask] = 1
            self.T[mask] = source.temperature_c
            self._held_regions.append(np.flatnonzero(mask))
        else:
            self.q[mask] += np.float32(source.power_w_per_ml * 1e6)  # W/ml → W/m³

    def _build_probes(self) -> None:

        catalog = load_probe_catalog()
        self._probes: list[_ProbeRuntime] = []
        for spec in self.case.probes:
            start, end = spec.active_segment_mm()
            stencil = probe_stencil(self.grid, start, end, 0.5 * spec.diameter_mm)
            self._probes.append(
                _ProbeRuntime(
                    name=spec.name,
                    model=catalog[spec.model],
                    radius_m=0.5e-3 * spec.diameter_mm,
                    length_m=spec.active_length_mm * 1e-3,
                    stencil=stencil,
                )
            )
        # In the order in which _update_coupling lists their conductances.
        parts = [p.stencil.flat_index for p in self._probes] + [s.flat_index for _, s in self._sphere_wells]
        parts += [s.flat_index for _, s in self._spheres] + [s.flat_index for _, s in self._warm_lines]
        if parts:
            self._coupling_index, self._coupling_inverse = np.unique(
                np.concatenate(parts), return_inverse=True
            )
        else:
            self._coupling_index = np.zeros(0, dtype=np.int64)
            self._coupling_inverse = np.zeros(0, dtype=np.int64)
        # Cells where g, gT or q may be non-zero (the sweeps read those fields there only).
        self.coupled = (self.q != 0).astype(np.uint8)
        self.coupled.reshape(-1)[self._coupling_index] = 1

    def _build_box(self) -> None:
        """Initial active box: around probes, sources and fixed faces colder or warmer than the start."""
        grid = self.grid
        margin = max(4, math.ceil(3.0 / min(grid.spacing_mm)))
        size = self.size
        lo = size.copy()
        hi = np.zeros(3, dtype=np.int64)

        def include(flat: np.ndarray) -> None:
            nonlocal lo, hi
            if flat.size == 0:
                return
            ijk = np.stack(np.unravel_index(flat, grid.size))
            lo = np.minimum(lo, ijk.min(axis=1) - margin)
            hi = np.maximum(hi, ijk.max(axis=1) + 1 + margin)

        for probe in self._probes:
            include(probe.stencil.flat_index)
        for _, stencil in self._sphere_wells:
            include(stencil.flat_index)
        for _, stencil in self._spheres:
            include(stencil.flat_index)
            include(np.flatnonzero(stencil.inside))
        include(np.flatnonzero(self.q))
        for _, stencil in self._warm_lines:
            include(stencil.flat_index)
        t0 = self.case.initial_temperature_c
        for flat in self._held_regions:
            if np.any(np.abs(self.T.reshape(-1)[flat] - t0) > 1e-9):
                include(flat)
        for face, (axis, upper) in FACES.items():
            bc = self.case.boundaries[face]
            if bc.type == "fixed" and abs(bc.temperature_c - self.case.initial_temperature_c) > 1e-9:
                face_lo = np.zeros(3, dtype=np.int64)
                face_hi = size.copy()
                if upper:
                    face_lo[axis] = size[axis] - 1 - margin
                else:
                    face_hi[axis] = margin + 1
                lo = np.minimum(lo, face_lo)
                hi = np.maximum(hi, face_hi)
        self.lo = np.clip(lo, 0, size).astype(np.int64)
        self.hi = np.clip(hi, 0, size).astype(np.int64)
        if np.any(self.hi <= self.lo):
            self.lo = np.zeros(3, dtype=np.int64)
            self.hi = np.zeros(3, dtype=np.int64)
        self._home_lo, self._home_hi = self.lo.copy(), self.hi.copy()
        self._held_flat = np.flatnonzero(self.fixed)  # fixed faces and sphere interiors
        self._shell_key: tuple | None = None  # the box and basal temperatures of the last shell refresh
        self._shell_basal = self._basal_t.copy()
        self._departure_rows = np.zeros((int(size[0]), int(size[1])))
        self._departure_columns = np.zeros((int(size[0]), int(size[2])))
        self._change = np.zeros(int(size[0]))
        self._bounds = np.zeros((int(size[0]), 2), dtype=np.int64)
        self._sums = np.zeros((int(size[0]), 6))
        self._counts = np.zeros((int(size[0]), max(len(self.case.outputs.isotherms_c), 1)), dtype=np.int64)

    # --- protocol and live control --------------------------------------------------------------

    def _protocol_state(self, name: str, t: float) -> tuple[str, float, str | None]:
        step: ProtocolStep
        for step in self.case.protocol:
            if step.start_s <= t < step.end_s:
                if step.applies_to(name):
                    return step.action, step.flow_percent, step.mode
                return "off", 0.0, None
        return "off", 0.0, None

    def probe_state(self, name: str, t: float | None = None) -> tuple[str, float, str | None]:
        """(action, flow_percent, thaw mode) of a probe at time t (default: now)."""
        t = self.time_s if t is None else t
        for probe in self._probes:
            if probe.name == name:
                if probe.override is not None:
                    return probe.override
                return self._protocol_state(name, t)
        raise InputError("probe", f"no probe named {name!r}")

    def set_probe_state(
        self, probe_name: str, action: str, flow_percent: float = 100, mode: str | None = None
    ) -> None:
        """Live mode: from now on this probe follows this state instead of the protocol."""
        if action not in ("freeze", "thaw", "off"):
            raise InputError("action", "must be 'freeze', 'thaw' or 'off'")
        if action == "freeze" and not 0 < flow_percent <= 100:
            raise InputError("flow_percent", "must lie in (0, 100]")
        if action == "thaw":
            mode = mode or "passive"
            if mode not in ("passive", "active"):
                raise InputError("mode", "must be 'passive' or 'active'")
        else:
            mode = None
        for probe in self._probes:
            if probe.name == probe_name:
                probe.override = (action, float(flow_percent) if action == "freeze" else 0.0, mode)
                return
        raise InputError("probe", f"no probe named {probe_name!r}")

    def _next_event(self, t: float) -> float:
        for step in self.case.protocol:
            if step.end_s > t + 1e-9:
                return step.end_s
        return math.inf

    # --- stepping -------------------------------------------------------------------------------

    def advance(self, dt_s: float, **kwargs) -> None:
        self.advance_to(self.time_s + dt_s, **kwargs)

    def advance_to(
        self,
        t_s: float,
        progress: Callable[[float, float], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        total_s: float | None = None,
    ) -> None:
        total = total_s or max(self.end_time_s, t_s)
        while self.time_s < t_s - 1e-9:
            if cancel is not None and cancel():
                raise SimulationCancelled(f"cancelled at t = {self.time_s:.1f} s")
            mid = self.time_s + 1e-6
            states = tuple(self.probe_state(p.name, mid) for p in self._probes)
            extrapolate = states == self._last_states and self._dt_last > 0
            if states != self._last_states:
                self._dt_current = self.max_dt_s / FIRST_STEP_FRACTION
                self._last_states = states
            dt = min(self._dt_current, t_s - self.time_s, self._next_event(self.time_s) - self.time_s)
            # Avoid a sliver of a step just before the next stop.
            remaining = min(t_s, self._next_event(self.time_s)) - self.time_s
            if remaining - dt < 0.25 * dt:
                dt = remaining
            self._step(dt, states, min(dt / self._dt_last, 2.0) if extrapolate else 0.0)
            self._dt_last = dt
            self._dt_current = min(self.max_dt_s, self._dt_current * STEP_GROWTH)
            if progress is not None:
                progress(min(self.time_s / total, 1.0) if total > 0 else 1.0, self.time_s)

    def _step(self, dt: float, states: tuple, ratio: float) -> None:
        t_new = self.time_s + dt
        if self._basal_drifts:
            self._update_basal(t_new)
            self._refresh_shell()
        lo, hi, size = self.lo, self.hi, self.size
        box_voxels = int(np.prod(hi - lo))
        big = box_voxels >= PARALLEL_MIN_VOXELS
        (kn.prepare_step if big else kn.prepare_step_serial)(
            self.T,
            self.H,
            self.Hold,
            self.Hprev,
            self.kcell,
            self.link,
            self.mat,
            self.fixed,
            self.front,
            self.qf,
            self.sub_voxel_front,
            self.props,
            lo,
            hi,
            size,
            self.inv_d2,
            ratio,
        )
        self._update_coupling(states)
        if box_voxels > 0:
            self._solve(dt)
            (kn.finish_step if big else kn.finish_step_serial)(
                self.T, self.H, self.Hold, self.Tmin, self.link, self.mat, self.fixed, self.coupled, self.g,
                self.gT, self.q, *self._front_args, self.props, lo, hi, size,
                dt, self._near_held_face(lo, hi), self._sums,
            )  # fmt: skip
            (kn.update_temperature if big else kn.update_temperature_serial)(
                self.T,
                self.H,
                self.Tmin,
                self.mat,
                self.fixed,
                self.props,
                lo,
                hi,
                self._levels,
                self._counts,
                self._basal_t,
                self._departure_rows,
                self._departure_columns,
            )
            sums = self._sums[lo[0] : hi[0]].sum(axis=0) * self.voxel_m3
            self._energy_change += sums[0]
            self._energy_in += dt * sums[1:].sum()
            self._energy_scale += dt * np.abs(sums[1:]).sum()
        self.steps += 1
        self.time_s = t_new
        self._record_probes(states)
        self._record_sensors()
        self._history_t.append(t_new)
        self._history_counts.append(self._box_counts())
        if box_voxels > 0:
            self._resize_box(dt)

    def _near_held_face(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Whether a fixed face lies in the box [lo, hi) or in the voxel layer around it (or a held
        region anywhere: its links carry heat into the box like a face's)."""
        if self._held_regions:
            return True
        for face, (axis, upper) in FACES.items():
            if self.case.boundaries[face].type != "fixed":
                continue
            if (hi[axis] >= self.size[axis] - 1) if upper else (lo[axis] <= 1):
                return True
        return False

    def _sweep(self, lo: np.ndarray, hi: np.ndarray, dt: float) -> tuple[float, np.ndarray, np.ndarray]:
        """One red-black sweep over [lo, hi): (largest change, bounds of the moving cells)."""
        voxels = int((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]))
        move = np.empty((2, 3), dtype=np.int64)
        largest = kn.full_sweep(
            voxels >= PARALLEL_MIN_VOXELS, self.T, self.H, self.Hold, self.link, self.mat, self.fixed,
            self.coupled, self.g, self.gT, self.q, *self._front_args, self.props,
            lo, hi, self.size, dt, self.omega,
            self.tolerance_c, self._change, self._bounds, move,
        )  # fmt: skip
        self.sweeps += 1
        self.voxel_updates += voxels
        move_lo, move_hi = move[0], move[1]
        return largest, move_lo, move_hi

    def _solve(self, dt: float) -> None:
        """Converge the step.

        A sweep of the whole box finds where the solution still moves; that region (plus a margin)
        is converged alone, with the rest held: coarse-grid corrections of the smooth error and
        nonlinear sweeps alternate until the last correction and the last sweep each moved no voxel
        by ``tolerance_c`` (on fine grids, sweeps alone shrink a smooth error so slowly that a small
        change per sweep does not mean a small error), then sweeps continue where it still moves.
        The step is converged when a sweep of the whole box moves no voxel by ``tolerance_c``.
        """
        lo, hi = self.lo, self.hi
        margin = REGION_MARGIN_VOXELS
        for _ in range(MAX_SWEEPS):
            largest, move_lo, move_hi = self._sweep(lo, hi, dt)
            if largest < self.tolerance_c:
                return
            region_lo = np.maximum(move_lo - margin, lo)
            region_hi = np.minimum(move_hi + margin, hi)
            self._converge_region(region_lo, region_hi, dt)

    def _converge_region(self, lo: np.ndarray, hi: np.ndarray, dt: float) -> None:
        """Converge the region [lo, hi) with the rest held (:func:`.multigrid.converge_region`)."""
        coarse = self._coarse_levels(lo, hi) if self.coarse_correction else mg.NO_COARSE_LEVELS
        # Whether a voxel of the region or its shell is held (the residual then reads the flags).
        shell_lo, shell_hi = np.maximum(lo - 1, 0), np.minimum(hi + 1, self.size)
        check_fixed = bool(
            self.fixed[shell_lo[0] : shell_hi[0], shell_lo[1] : shell_hi[1], shell_lo[2] : shell_hi[2]].any()
        )
        counts = np.zeros(3, dtype=np.int64)
        mg.converge_region(
            PARALLEL_MIN_VOXELS, self.T, self.H, self.Hold, self.link, self.mat, self.fixed, check_fixed,
            self.coupled, self.g, self.gT, self.q, *self._front_args, self.props,
            lo, hi, self.size, dt, self.omega,
            self.tolerance_c, self._change, self._bounds, *coarse.arrays, LOCAL_MARGIN_VOXELS, MAX_SWEEPS,
            MAX_CORRECTIONS_PER_STEP, counts,
        )  # fmt: skip
        self.sweeps += int(counts[0])
        self.voxel_updates += int(counts[1])
        self.corrections += int(counts[2])

    def _coarse_levels(self, lo: np.ndarray, hi: np.ndarray) -> mg.CoarseLevels:
        """The coarse grids laid out for a region of this shape (none for a region of a few voxels)."""
        shape = tuple(int(v) for v in hi - lo)
        if self._coarse is None:
            self._coarse = mg.CoarseLevels(shape)
        elif self._coarse.box_shape != shape:
            self._coarse.fit(shape)
        return self._coarse

    def _update_coupling(self, states: tuple) -> None:
        if self._coupling_index.size == 0:
            return
        t_flat = self.T.reshape(-1)
        k_flat = self.kcell.reshape(-1)
        g_parts, gt_parts = [], []
        for probe, (action, flow, mode) in zip(self._probes, states, strict=True):
            st = probe.stencil
            t_avg = float(st.weight @ t_flat[st.flat_index])
            k_avg = float(st.weight @ k_flat[st.flat_index])
            r_t = math.log(st.equivalent_radius_mm * 1e-3 / probe.radius_m) / (2.0 * math.pi * k_avg)
            probe.tissue_resistance = r_t
            conductance, reference = 0.0, t_avg
            model = probe.model
            if action == "freeze":
                f = flow / 100.0
                h = model.cooling.surface_htc_w_m2k * f**model.cooling.flow_exponent
                r_s = 1.0 / (2.0 * math.pi * probe.radius_m * h)
                cap = model.cooling.max_power_w_per_m * f
                demand = (t_avg - model.cooling.coolant_temperature_c) / (r_t + r_s)
                if demand <= cap:
                    conductance, reference = 1.0 / (r_t + r_s), model.cooling.coolant_temperature_c
                else:
                    conductance, reference = 1.0 / r_t, t_avg - cap * r_t
            elif action == "thaw" and mode == "active":
                r_s = 1.0 / (2.0 * math.pi * probe.radius_m * model.thaw.surface_htc_w_m2k)
                cap = model.thaw.max_power_w_per_m
                supply = (model.thaw.temperature_c - t_avg) / (r_t + r_s)
                if supply <= cap:
                    conductance, reference = 1.0 / (r_t + r_s), model.thaw.temperature_c
                else:
                    conductance, reference = 1.0 / r_t, t_avg + cap * r_t
            probe.conductance, probe.reference_c = conductance, reference
            g_cell = st.weight * (conductance * probe.length_m / self.voxel_m3)
            g_parts.append(g_cell)
            gt_parts.append(g_cell * reference)
        for source, stencil in self._sphere_wells:
            k_avg = float(stencil.weight @ k_flat[stencil.flat_index])
            resistance = (
                (1.0 / source.radius_mm - 1.0 / stencil.equivalent_radius_mm) * 1e3 / (4.0 * math.pi * k_avg)
            )
            g_cell = stencil.weight * (stencil.fraction_inside / resistance / self.voxel_m3)
            g_parts.append(g_cell)
            gt_parts.append(g_cell * source.temperature_c)
        for source, stencil in self._spheres:
            g_cell = k_flat[stencil.flat_index].astype(np.float64) * stencil.link_factor
            g_parts.append(g_cell)
            gt_parts.append(g_cell * source.temperature_c)
        for source, stencil in self._warm_lines:
            # The catheter wall at radius d/2 held: the tissue between it and the kernel-weighted grid
            # temperature is the same logarithmic resistance as a probe's.
            k_avg = float(stencil.weight @ k_flat[stencil.flat_index])
            radius_m = 0.5e-3 * source.diameter_mm
            r_t = math.log(stencil.equivalent_radius_mm * 1e-3 / radius_m) / (2.0 * math.pi * k_avg)
            g_cell = stencil.weight * (stencil.active_length_mm * 1e-3 / r_t / self.voxel_m3)
            g_parts.append(g_cell)
            gt_parts.append(g_cell * source.temperature_c)
        g_values = np.bincount(self._coupling_inverse, weights=np.concatenate(g_parts))
        gt_values = np.bincount(self._coupling_inverse, weights=np.concatenate(gt_parts))
        self.g.reshape(-1)[self._coupling_index] = g_values
        self.gT.reshape(-1)[self._coupling_index] = gt_values

    def _record_probes(self, states: tuple) -> None:
        t_flat = self.T.reshape(-1)
        for probe in self._probes:
            st = probe.stencil
            t_avg = float(st.weight @ t_flat[st.flat_index])
            power_per_m = probe.conductance * (t_avg - probe.reference_c)  # W/m taken from the tissue
            probe.times.append(self.time_s)
            probe.power_w.append(power_per_m * probe.length_m)
            if probe.conductance > 0:
                probe.surface_c.append(t_avg - power_per_m * probe.tissue_resistance)
            else:
                probe.surface_c.append(t_avg)  # no heat through the surface: it follows the tissue

    # --- active box -----------------------------------------------------------------------------

    def _inside_box(self, ijk) -> bool:
        return bool(np.all(np.asarray(ijk) >= self.lo) and np.all(np.asarray(ijk) < self.hi))

    def _refresh_shell(self) -> None:
        """Keep the one-voxel shell around the box at the basal temperature (it drifts): when the box
        has changed, or the basal temperature has moved by SHELL_REFRESH_C since the last refresh."""
        if np.any(self.hi <= self.lo):
            return
        key = (tuple(self.lo), tuple(self.hi))
        if key == self._shell_key and np.max(np.abs(self._basal_t - self._shell_basal)) < SHELL_REFRESH_C:
            return
        self._shell_key = key
        self._shell_basal = self._basal_t.copy()
        lo = np.maximum(self.lo - 1, 0)
        hi = np.minimum(self.hi + 1, self.size)
        for axis in range(3):
            for outer, inner in ((lo[axis], self.lo[axis]), (self.hi[axis], hi[axis])):
                if inner <= outer:
                    continue
                a, b = lo.copy(), hi.copy()
                a[axis], b[axis] = outer, inner
                self._fill_basal(a, b)

    def _resize_box(self, dt: float) -> None:
        """Fit the box to the voxels that depart from their basal course, with a margin.

        The margin is the diffusion length of one step in unfrozen tissue plus a voxel, so that the
        departure cannot reach the box's held surface within the next step; the box grows as soon
        as the departure comes closer than that, and shrinks (never below the box it started as, around
        the probes and sources) once it has withdrawn by a few more voxels, as when the ice thaws.
        """
        lo, hi = self.lo, self.hi
        pad = math.ceil(math.sqrt(2e-7 * dt) * 1e3 / min(self.grid.spacing_mm)) + 1
        rows = self._departure_rows[lo[0] : hi[0], lo[1] : hi[1]]
        profiles = (
            rows.max(axis=1),
            rows.max(axis=0),
            self._departure_columns[lo[0] : hi[0], lo[2] : hi[2]].max(axis=0),
        )
        new_lo, new_hi = lo.copy(), hi.copy()
        for axis, profile in enumerate(profiles):
            departed = np.flatnonzero(profile > self.box_tolerance_c)
            if departed.size:
                want_lo = max(0, int(lo[axis] + departed[0]) - pad)
                want_hi = min(int(self.size[axis]), int(lo[axis] + departed[-1]) + 1 + pad)
            else:
                want_lo, want_hi = int(self._home_hi[axis]), int(self._home_lo[axis])
            want_lo = min(want_lo, int(self._home_lo[axis]))
            want_hi = max(want_hi, int(self._home_hi[axis]))
            if want_lo < lo[axis] or want_lo >= lo[axis] + BOX_SHRINK_VOXELS:
                new_lo[axis] = want_lo
            if want_hi > hi[axis] or want_hi <= hi[axis] - BOX_SHRINK_VOXELS:
                new_hi[axis] = want_hi
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            return
        # Fill the slabs that join the box with the basal state (outside, they followed it); the
        # voxels that leave it keep their values, within the box tolerance of that state.
        for axis in range(3):
            for a_val, b_val in ((new_lo[axis], lo[axis]), (hi[axis], new_hi[axis])):
                if b_val <= a_val:
                    continue
                a, b = new_lo.copy(), new_hi.copy()
                a[axis], b[axis] = a_val, b_val
                self._fill_basal(a, b)
        self.lo, self.hi = new_lo, new_hi

    def _fill_basal(self, a, b) -> None:
        """Put the voxels of the slab [a, b) in their basal (probe-free) state."""
        (kn.fill_basal if np.prod(b - a) >= PARALLEL_MIN_VOXELS else kn.fill_basal_serial)(
            self.T,
            self.H,
            self.Hprev,
            self.Tmin,
            self.mat,
            self.fixed,
            self._basal_t,
            self._basal_h,
            a,
            b,
            True,
        )

    # --- reading --------------------------------------------------------------------------------

    def _box_counts(self) -> np.ndarray:
        lo, hi = self.lo, self.hi
        if self._levels.size == 0:
            return np.zeros(0, dtype=np.int64)
        if np.any(hi <= lo):
            return self._full_counts()
        counts = self._counts[lo[0] : hi[0], : self._levels.size].sum(axis=0)
        # Outside the box every voxel is at its basal temperature (or a fixed face at the start
        # temperature: faces at other temperatures lie in the box from the start).
        if np.any(self._levels >= min(self._basal_t.min(), self.case.initial_temperature_c)):
            return self._full_counts()
        return counts

    def _full_counts(self) -> np.ndarray:
        field_c = self.temperature_c
        return np.array([int(np.count_nonzero(field_c <= level)) for level in self._levels], dtype=np.int64)

    def _with_box_and_held(self, out: np.ndarray, source: np.ndarray) -> np.ndarray:
        """``out`` (the far-field values) with the box and the held voxels taken from ``source``."""
        lo, hi = self.lo, self.hi
        box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        out[box] = source[box]
        out.reshape(-1)[self._held_flat] = source.reshape(-1)[self._held_flat]
        return out

    @property
    def temperature_c(self) -> np.ndarray:
        """The current temperature field (°C, float32 copy)."""
        if not self._basal_drifts:
            return self.T.copy()
        return self._with_box_and_held(self._basal_t.astype(np.float32)[self.mat], self.T)

    @property
    def min_temperature_c(self) -> np.ndarray:
        """The lowest temperature each voxel has reached so far (°C, float32 copy)."""
        if not self._basal_drifts:
            return self.Tmin.copy()
        basal = np.minimum(self._basal_t, self.case.initial_temperature_c).astype(np.float32)
        return self._with_box_and_held(np.minimum(self.Tmin, basal[self.mat]), self.Tmin)

    def _value_at(self, ijk: tuple[int, int, int]) -> float:
        if self._basal_drifts and self.fixed[ijk] == 0 and not self._inside_box(ijk):
            return float(self._basal_t[self.mat[ijk]])
        return float(self.T[ijk])

    def temperature_at(self, position_mm) -> float:
        """Trilinear interpolation of the current temperature at a RAS point (mm)."""
        ijk = np.clip(self.grid.ras_to_index(position_mm), 0, self.size - 1)
        base = np.minimum(np.floor(ijk).astype(int), self.size - 2)
        frac = ijk - base
        value = 0.0
        for corner in range(8):
            offset = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
            w = float(np.prod(np.where(offset == 1, frac, 1.0 - frac)))
            if w > 0:
                value += w * self._value_at(tuple(int(v) for v in base + offset))
        return value

    def _record_sensors(self) -> None:
        if not self.case.sensors:
            return
        self._sensor_t.append(self.time_s)
        for sensor in self.case.sensors:
            self._sensor_values[sensor.name].append(self.temperature_at(sensor.position_mm))

    @property
    def sensor_history(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        t = np.asarray(self._sensor_t)
        return {name: (t.copy(), np.asarray(values)) for name, values in self._sensor_values.items()}

    @property
    def probe_history(self) -> dict[str, dict[str, np.ndarray]]:
        """Per probe: time (s), power taken from the tissue (W) and surface temperature (°C)."""
        return {
            p.name: {
                "t_s": np.asarray(p.times),
                "power_w": np.asarray(p.power_w),
                "surface_c": np.asarray(p.surface_c),
            }
            for p in self._probes
        }

    def energy_balance_error(self) -> float:
        """|Δ(total enthalpy) − ∫(probe + source + boundary + perfusion + metabolic heat)| / Σ|terms|."""
        if self._energy_scale <= 0:
            return 0.0
        return abs(self._energy_change - self._energy_in) / self._energy_scale

    def result(self, snapshots: dict[float, np.ndarray], wall_s: float) -> SimulationResult:
        """The run so far as a :class:`SimulationResult`, the current field as the final one
        (``simulate`` at its end, a live session or a synthetic truth at any time)."""
        final = self.temperature_c
        return SimulationResult(
            grid=self.grid,
            temperature_final=final,
            min_temperature=self.min_temperature_c,
            snapshots=snapshots,
            sensors=self.sensor_history,
            isotherm_volumes_ml=self.isotherm_volumes_ml(final),
            ice_volume_history=self.ice_volume_history(),
            energy_balance_error=self.energy_balance_error(),
            wall_s=wall_s,
            simulated_s=self.time_s,
            probe_history=self.probe_history,
            steps=self.steps,
            sweeps=self.sweeps,
            voxel_updates=self.voxel_updates,
            coarse_corrections=self.corrections,
        )

    def isotherm_volumes_ml(self, field_c: np.ndarray | None = None) -> dict[float, float]:
        """Volume (ml) at or below each output isotherm, of the current field (or of ``field_c``,
        a copy of it already made)."""
        field_c = self.temperature_c if field_c is None else field_c
        voxel_ml = self.grid.voxel_volume_mm3 / 1000.0
        return {float(level): float(np.count_nonzero(field_c <= level)) * voxel_ml for level in self._levels}

    def ice_volume_history(self) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        voxel_ml = self.grid.voxel_volume_mm3 / 1000.0
        t = np.asarray(self._history_t)
        counts = np.asarray(self._history_counts).reshape(len(self._history_t), -1)
        return {float(level): (t.copy(), counts[:, n] * voxel_ml) for n, level in enumerate(self._levels)}

    @property
    def box(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(int(v) for v in self.lo), tuple(int(v) for v in self.hi)


def _enthalpy(t: float, p: np.ndarray) -> float:
    if t <= p[kn.TS]:
        return p[kn.CF] * (t - p[kn.TS])
    if t >= p[kn.TL]:
        return p[kn.HL] + p[kn.CU] * (t - p[kn.TL])
    return p[kn.HL] * (t - p[kn.TS]) / (p[kn.TL] - p[kn.TS])


def simulate(
    case: Case,
    progress: Callable[[float, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    snapshot_times_s=None,
    **options,
) -> SimulationResult:
    """Run a case to its end; snapshots at ``snapshot_times_s`` (default: the case's outputs)."""
    start = _time.perf_counter()
    times = case.outputs.snapshot_times_s if snapshot_times_s is None else tuple(snapshot_times_s)
    times = sorted({float(t) for t in times})
    for t in times:
        if not 0 <= t <= case.duration_s + 1e-9:
            raise InputError(
                "outputs.snapshot_times_s", f"time {t:g} s lies outside the run (0..{case.duration_s:g} s)"
            )
    simulation = Simulation(case, snapshot_count=len(times), **options)
    snapshots: dict[float, np.ndarray] = {}
    for t in [*times, case.duration_s]:
        simulation.advance_to(t, progress=progress, cancel=cancel, total_s=case.duration_s)
        if t in times:
            snapshots[t] = simulation.temperature_c
    return simulation.result(snapshots, wall_s=_time.perf_counter() - start)


def coarsen_case(case: Case, spacing_mm: float, duration_s: float | None = None) -> Case:
    """The case on a coarser grid over the same extent (labels by nearest voxel), optionally shortened."""
    grid = case.grid
    extent = (np.asarray(grid.size) - 1) * np.asarray(grid.spacing_mm)
    size = tuple(int(max(3, math.floor(e / spacing_mm + 1e-9) + 1)) for e in extent)
    coarse = Grid(grid.origin_mm, (float(spacing_mm),) * 3, size)  # type: ignore[arg-type]
    labels = None
    if case.tissue_labels is not None:
        idx = [
            np.clip(
                np.rint((coarse.axis_mm(a) - grid.origin_mm[a]) / grid.spacing_mm[a]), 0, grid.size[a] - 1
            ).astype(int)
            for a in range(3)
        ]
        labels = case.tissue_labels[np.ix_(*idx)]
    protocol = list(case.protocol)
    if duration_s is not None:
        kept = []
        for step in protocol:
            if step.start_s >= duration_s:
                break
            kept.append(replace(step, duration_s=min(step.duration_s, duration_s - step.start_s)))
        protocol = kept
    end = protocol[-1].end_s

    outputs = Outputs(case.outputs.isotherms_c, tuple(t for t in case.outputs.snapshot_times_s if t <= end))
    sensors = [s for s in case.sensors if coarse.contains_ras(s.position_mm)]
    return replace(
        case, grid=coarse, tissue_labels=labels, protocol=protocol, outputs=outputs, sensors=sensors
    )


def preview(case: Case, spacing_mm: float = 2.0, duration_s: float = 600.0, **options) -> SimulationResult:
    """Fast coarse run of the first ``duration_s`` seconds (used while a probe is dragged).

    Steps of 7.5 s per mm of voxel, a looser tolerance (0.5 K) and sweeps alone (on a coarse grid
    they converge fast enough that coarse corrections cost more than they save): the isotherm
    volumes stay within 2 % of a run with 2-s steps and a 0.01 K tolerance on the same grid
    (Testing/physics/test_multigrid.py; 1.3–1.8 % on the benchmark plan). With the sub-voxel front
    the 2 mm preview's 0 °C ice ball of the benchmark plan is 28.1 ml where the 1 mm run's is
    29.7 ml (18.6 ml with the voxel front the solver had before).
    """
    coarse = coarsen_case(case, spacing_mm, min(duration_s, case.duration_s))
    options.setdefault("tolerance_c", 0.5)
    options.setdefault("max_dt_s", 7.5 * spacing_mm)
    options.setdefault("coarse_correction", False)
    return simulate(coarse, snapshot_times_s=(), **options)
