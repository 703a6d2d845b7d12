"""The lethal zone corrected from the ice that the MR images show (issue 14).

**Method: an ensemble of solver runs and an ensemble-transform Kalman update per image.**
Before the first freeze, :meth:`IceCorrector.prepare` runs ``members`` solver runs of the case
(``physics/ensemble.ScaledCoolingSimulation``, the plan grid, the planned protocol) whose
parameters are drawn from the priors below, and keeps each member's temperature at a fixed
cadence near the probes, its final and minimum temperature fields and its forecast series.
Each image then costs no solver run: the observed ice is measured as its outer edge's distance from
the probe cluster along fixed rays (in 3-D for a volume, in the image's plane for a slice), the same
distances are read off each member's 0 °C zone at the image's time, and a deterministic
ensemble-transform Kalman filter (ETKF, Hunt et al. 2007, Physica D 230:112) updates the
combination of members that the posterior is. The posterior members are linear combinations of
the prior members, so the update is an N×N matrix (N members) whatever the grid, the corrected
fields are those combinations of the stored fields, and the cost of an image does not grow with
the number of images before it (measured in ``benchmarks/correction_bench.py``).
Why this and not a fit by repeated solver runs: one run of the demo plan is about 1 s on 2
cores, so no optimiser fits in the 1 s budget per image; why not importance weights: with some
20 uncertain quantities the weights of 48 members collapse onto one or two after a few images,
while the Kalman transform interpolates between members.

**Parameters and priors** (drawn with ``seed``; never fitted to the validation seeds):

- per-probe effective cooling: log-normal scale, σ = ``cooling_sigma`` (0.15). The catalog
  (``Resources/probes.json``) calibrates its argon probes to surface temperatures of −120 to
  −170 °C at 100 % flow, about ±15 % of heat extraction around its calibrated value;
- per-material conductivity (frozen and unfrozen together) within 1 ± ``conductivity_spread``
  (0.3) and perfusion within 1 ± ``perfusion_spread`` (0.6), uniform: the material library marks
  its values as literature values, most "unverified", from databases (IT'IS) whose inter-subject
  spread is of this order, perfusion varying most;
- each probe's placement: tip displaced by ``insertion_error_mm`` (2 mm RMS) and its shaft tilted
  by ``insertion_error_deg`` (3° RMS), the insertion accuracy of issue 14. The probe-cluster
  offset reported is the mean tip displacement of the posterior members.

These are the same kinds and sizes of perturbation as the synthetic procedures of
``Testing/ice/procedures.py``: the validation shows how the method does when the prior is right,
not how it does when the prior is wrong.

**Assumptions, visible in every :class:`Correction`:**

- the members follow the planned protocol (the case's ``protocol``). When the console departs
  from it (:meth:`IceCorrector.console_state`), the correction says so in ``departures`` and
  ``valid`` turns False: the members no longer describe what is frozen, so the ensemble must be
  prepared again for the new protocol; nothing is silently re-timed;
- the case's probes are the plan (``placement="planned"``, the insertion prior above) or the
  poses the console reported (``placement="reported"``: the tracking prior
  ``tracking_error_mm``/``_deg``, and only the kinds of ``reported_assimilates`` update the
  ensemble; ``live/late_correction.py`` says why); every correction names them (``placement``);
- observations lie in the plan frame through their ``image_to_plan`` (registration);
- rays start at the centre of the planned probes' freezing segments; a ray leaving the image
  in its last ice (before the outer edge) is not used.

All times are procedure seconds from the start of the case's protocol, distances mm, temperatures °C.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.analysis.ice_observation import IceObservation, _distance_to
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid

ICE_EDGE_C = 0.0
LETHAL_C = -40.0
PERCENTILES = (10.0, 50.0, 90.0)
PLACEMENTS = ("planned", "reported")  # what the case's probe poses are (IceCorrector placement)
WATCHED_PER_STRUCTURE = 256  # voxels of each critical structure the forecasts read (its coldest)


# numpy's BLAS, found once. The update's matrix products (48 × 48 by 48 × voxels) run on one BLAS
# thread: on 2 cores shared with other programs, two spinning BLAS threads made an update 4 times
# slower (correction_bench), and one thread gives the same bits on every machine (the split of a
# product over threads changes its rounding), so a replay elsewhere reproduces the correction.
@functools.cache
def _threadpools():
    """threadpoolctl's controller, made on first use. threadpoolctl is imported here, not with the
    module: Slicer does not bundle it (it comes with numba on first use, requirements.txt), and the
    module's panel imports this module before anything can be installed."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """A context in which numpy's BLAS runs one thread."""
    return _threadpools().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class CorrectionSettings:
    """Ensemble, priors and update; tuned on the tuning seeds of ``Testing/ice/procedures.py``."""

    members: int = 48
    seed: int = 1
    snapshot_every_s: float = 30.0  # member fields are kept at this cadence, linear in time between
    cooling_sigma: float = 0.15  # log-normal σ of each probe's cooling scale
    conductivity_spread: float = 0.3
    perfusion_spread: float = 0.6
    insertion_error_mm: float = 2.0
    insertion_error_deg: float = 3.0
    ray_length_mm: float = 40.0
    ray_step_mm: float = 0.5
    volume_rays: int = 48
    slice_rays: int = 24
    edge_sigma_mm: float = 2.0  # observation error of one ray's edge distance (segmentation + model)
    # A slice's edge error (its rays in its plane): motion across its plane is unseen in it (the
    # breathing shifts, up to 3 mm, mostly S–I) and its 5 mm slab averages the edge: about three
    # times a volume's (seed-7 live run: slice edges 1.8–2.3 mm mean |error| against the truth's,
    # volumes 0.35–0.8 mm), so a slice weighs a ninth of a volume. Weighed as a volume, the slices
    # pulled the ensemble of plans 5 mm off astray (stress-tuning seeds 301–340, the 9 plans
    # ≥ 2 mm off: corrected −40 °C within 1.0 mm on 7, worst 1.40 mm; twice the volume's error:
    # 8, worst 1.02 mm; three times: 9, worst 0.97 mm; volumes only: 8, worst 1.20 mm).
    slice_edge_sigma_mm: float = 6.0
    # Ice within this distance of a freezing segment is not resolved in the images: the shaft's
    # own void and, where the baseline was taken before insertion, the undecided zone around each
    # shaft (IceSettings.exclusion_radius_mm, 4 mm, plus partial volume) hide it, so early in a
    # freeze the images show no ice where there is some. A ray on which neither the observed edge
    # nor most posterior members' edges show ice beyond it is not assimilated. Without this a
    # scanner's slices of the first minutes (every 20 s) read as "the probes freeze less" (tuning
    # seeds 2, 101–103 at that cadence: band 0.60 → 0.77, −40 °C 0.26 → 0.20 mm; docs/live-link.md).
    unresolved_radius_mm: float = 6.0
    independent_rays: float = 12.0  # neighbouring rays see the same error: an image counts as this many
    relaxation: float = 0.8  # relaxation to prior spread (Whitaker & Hamill 2012): keeps the band honest
    target_margin_mm: float = 5.0  # the −40 °C zone must cover the target plus this margin
    coverage_required: float = 0.99  # fraction of target-plus-margin voxels (voxelised surface)
    lethal_c: float = LETHAL_C
    # a console state is a departure only if the plan has it nowhere within this many seconds:
    # the console's messages come at its own update cadence, a little before or after a step's edge
    departure_tolerance_s: float = 30.0
    # The placement prior of an ensemble drawn around the poses the console (its tracking) reported
    # (``IceCorrector(..., placement="reported")``): the tracking's accuracy, not the insertion's.
    # Drawn around the plan with the insertion prior, the ensemble re-fitted from the images tip
    # offsets the live prediction had already taken in (seed-7 live run: −40 °C 0.66 mm off the
    # truth corrected, 0.26 mm predicted; Testing/ice/diagnose_reported_poses.py).
    tracking_error_mm: float = 0.5
    tracking_error_deg: float = 1.0
    # The image kinds an ensemble drawn around reported poses learns from. With the placement
    # known, what is left to fit (cooling, tissue) moves the edge by fractions of a millimetre,
    # below what a 2-D slice resolves: motion across its plane is unseen and its 5 mm slab averages
    # the edge (seed-7 live run: slice edges 1.8–2.3 mm mean |error| against the truth's with
    # biases of ±1 mm lasting minutes, volumes 0.35–0.8 mm; corrected −40 °C 0.48 mm from all
    # images, 0.10 mm from the volumes, 0.26 mm predicted). Slices are still observed and
    # compared; the harness's unknown placement (mm-size offsets) keeps learning from them.
    reported_assimilates: tuple[str, ...] = ("volume",)
    # Re-centring (an iterative ensemble smoother): a linear combination of members cannot reach
    # a truth in the tail of the prior that the members cover (stress-tuning seeds: single probes
    # 8–9 mm off). After a 3-D volume taken once the first freeze has ended, when the posterior
    # mean has moved more than ``recentre_shift`` prior standard deviations on any parameter, a
    # new ensemble is drawn around the posterior mean (placement spread: the placement prior;
    # cooling and tissue: ``recentre_inflation`` × the posterior's spread, at most the prior's),
    # run, and every image kept so far assimilated into it again; at most ``recentre_generations``
    # times (0: never, the plan's ensemble throughout). :meth:`IceCorrector.recentred`.
    recentre_generations: int = 2
    recentre_shift: float = 1.0
    recentre_inflation: float = 1.0
    recentre_volumes: int = 1  # volumes assimilated since the first freeze ended, at least

    def check(self) -> None:
        if not (isinstance(self.members, int) and 8 <= self.members <= 512):
            raise InputError("members", f"must be an integer in [8, 512], got {self.members!r}")
        positive = (
            "snapshot_every_s",
            "ray_length_mm",
            "ray_step_mm",
            "edge_sigma_mm",
            "slice_edge_sigma_mm",
            "independent_rays",
        )
        for key in positive:
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(key, f"must be a positive number, got {value!r}")
        keys = (
            "cooling_sigma",
            "conductivity_spread",
            "insertion_error_mm",
            "insertion_error_deg",
            "tracking_error_mm",
            "tracking_error_deg",
        )
        for key in (*keys, "departure_tolerance_s", "unresolved_radius_mm"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(key, f"must be a number ≥ 0, got {value!r}")
        if not 0 <= self.perfusion_spread < 1:
            raise InputError("perfusion_spread", "must lie in [0, 1)")
        if not 0 <= self.conductivity_spread < 1:
            raise InputError("conductivity_spread", "must lie in [0, 1)")
        if not 0 <= self.relaxation <= 1:
            raise InputError("relaxation", "must lie in [0, 1]")
        if not 0 < self.coverage_required <= 1:
            raise InputError("coverage_required", "must lie in (0, 1]")
        if not set(self.reported_assimilates) <= {"volume", "slice"}:
            raise InputError(
                "reported_assimilates", f"kinds are 'volume' and 'slice', got {self.reported_assimilates!r}"
            )
        if not (isinstance(self.recentre_volumes, int) and self.recentre_volumes >= 1):
            raise InputError("recentre_volumes", f"must be an integer ≥ 1, got {self.recentre_volumes!r}")
        if not (isinstance(self.recentre_generations, int) and 0 <= self.recentre_generations <= 8):
            raise InputError(
                "recentre_generations", f"must be an integer in [0, 8], got {self.recentre_generations!r}"
            )
        for key in ("recentre_shift", "recentre_inflation"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(key, f"must be a number ≥ 0, got {value!r}")
        if self.volume_rays < 6 or self.slice_rays < 4:
            raise InputError("rays", "need at least 6 rays in 3-D and 4 in a slice")


@dataclass
class Correction:
    """The corrected prediction after the image at ``time_s``.

    ``parameters``: name → {mean, p10, p90, unit, prior_mean}; ``min_temperature``: 10 / 50 / 90 →
    array on the plan grid (°C; p10 is the cold side); ``isotherm_volumes_ml``: level → {p10, p50,
    p90} (ml; p10/p90 of the band fields, so the p10 volume is the larger); ``forecasts``: event →
    {p10, p50, p90} in s (None: not within the protocol), ``p_never``, and where the event's
    quantity ends: ``coverage_at_end`` (share of target + margin at ≤ −40 °C) or ``lowest_c_at_end``
    (the structure's lowest °C), each {p10, p50, p90}; ``metrics``: observed
    against predicted along the rays, before (plan members' mean) and after this update.
    """

    time_s: float
    images: int
    parameters: dict
    min_temperature: dict[float, np.ndarray]
    temperature_final: np.ndarray
    isotherm_volumes_ml: dict
    forecasts: dict
    metrics: dict
    departures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    update_s: float = 0.0
    # the probe poses the ensemble was drawn around (IceCorrector.placement_summary)
    placement: dict = field(default_factory=dict)
    # which ensemble answered (IceCorrector.ensemble_summary): generation 0 is the one drawn
    # around the placement, each re-centring (Recentring) the next
    ensemble: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.departures

    def to_dict(self) -> dict:
        return {
            "time_s": self.time_s,
            "images": self.images,
            "valid": self.valid,
            "parameters": self.parameters,
            "isotherm_volumes_ml": {f"{k:g}": v for k, v in self.isotherm_volumes_ml.items()},
            "forecasts": self.forecasts,
            "metrics": self.metrics,
            "departures": list(self.departures),
            "notes": list(self.notes),
            "update_s": round(self.update_s, 4),
            "placement": self.placement,
            "ensemble": self.ensemble,
        }


# --- geometry -------------------------------------------------------------------------------


def _fibonacci_directions(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _trilinear(shape, ijk: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Corners and weights of trilinear interpolation at fractional indices ``ijk`` (…×3) in an
    array of ``shape``: eight flat (C-order) indices and eight weights, each shaped like ``ijk``
    without its last axis, and whether each point lies within the half-voxel border. Axes of size
    1 are taken as the plane itself. Computed once per ray set, they serve every member's field."""
    size = np.asarray(shape)
    pts = np.asarray(ijk, float)
    inside = np.all((pts >= -0.5) & (pts <= size - 0.5), axis=-1)
    pts = np.clip(pts, 0, size - 1)
    lo = np.minimum(np.floor(pts).astype(np.int64), np.maximum(size - 2, 0))
    frac = np.where(size > 1, pts - lo, 0.0)
    hi = np.minimum(lo + 1, size - 1)
    corners, weights = [], []
    for corner in range(8):
        bits = [(corner >> a) & 1 for a in range(3)]
        idx = tuple(np.where(bits[a], hi[..., a], lo[..., a]) for a in range(3))
        corners.append(np.ravel_multi_index(idx, tuple(int(n) for n in shape)))
        weight = np.ones(pts.shape[:-1])
        for a in range(3):
            weight = weight * (frac[..., a] if bits[a] else 1.0 - frac[..., a])
        weights.append(weight)
    return corners, weights, inside


def _interpolate(values: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """Σ weight × corner value, corner by corner in a fixed order (float64)."""
    out = np.zeros(np.broadcast_shapes(values[0].shape, weights[0].shape))
    for value, weight in zip(values, weights, strict=True):
        out += weight * value
    return out


def _sample(array: np.ndarray, ijk: np.ndarray, outside: float) -> np.ndarray:
    """Trilinear interpolation of ``array`` at fractional indices ``ijk`` (…×3); axes of size 1
    are taken as the plane itself; points beyond the half-voxel border get ``outside``."""
    corners, weights, inside = _trilinear(array.shape, ijk)
    flat = array.reshape(-1)
    return np.where(inside, _interpolate([flat[c] for c in corners], weights), outside)


def _edge_distance(inside_value: np.ndarray, step_mm: float) -> np.ndarray:
    """Distance along each ray (last axis: samples from the origin) to the ice's OUTER edge: the
    last sample where ``inside_value`` (> 0 inside the ice) drops to ≤ 0, linear between samples;
    0 where no sample is inside; the ray's length where it ends inside. NaN where the ray leaves
    the image (NaN samples) in its last ice, or starts outside the image with no ice on it.

    Why the last crossing, not the first: before the probes' ice balls merge, and wherever a
    probe lies millimetres off the plan, a ray from the planned cluster centre crosses thawed gaps
    between them, and its first crossing jumps by centimetres with a small change of placement
    or time; no combination of members follows such jumps (stress-tuning seeds 301–340, plans
    5 mm / 6° off: the −40 °C surface of seed 334 corrected 4.50 mm from the truth's with the
    first crossing, 3.49 uncorrected). The outer surface moves smoothly with every parameter, and
    it is what the margin to the structures is about. Where the ice is one ball around the
    origin both are the same crossing."""
    v = inside_value
    n = v.shape[-1]
    ice = v > 0  # NaN is not ice
    any_ice = ice.any(axis=-1)
    last = n - 1 - np.argmax(ice[..., ::-1], axis=-1)  # the last ice sample (0 where none)
    after = np.minimum(last + 1, n - 1)
    inside = np.take_along_axis(v, last[..., None], axis=-1)[..., 0]
    outside = np.take_along_axis(v, after[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(last < n - 1, inside / (inside - outside), 0.0)
    dist = (last + np.clip(frac, 0, 1)) * step_mm
    dist = np.where((last < n - 1) & np.isnan(outside), np.nan, dist)
    return np.where(any_ice, dist, np.where(np.isnan(v[..., 0]), np.nan, 0.0))


def _distance_outside(mask: np.ndarray, spacing_mm) -> np.ndarray:
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing_mm])
    dist = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(dist).transpose(2, 1, 0)


def percentiles_of_sorted(ordered: np.ndarray, percentiles) -> np.ndarray:
    """``np.percentile(a, percentiles, axis=0)`` (its default "linear" method) of the array whose
    sort along axis 0 is ``ordered``, with numpy's own arithmetic: the same values bit for bit."""
    n = ordered.shape[0]
    out = []
    for q in percentiles:
        virtual = (n - 1) * (np.float64(q) / 100.0)
        lo = math.floor(virtual)
        gamma = virtual - lo
        below, above = ordered[lo], ordered[min(lo + 1, n - 1)]
        diff = above - below
        out.append(above - diff * (1 - gamma) if gamma >= 0.5 else below + diff * gamma)
    return np.stack(out)


def median_of_sorted(ordered: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=0)`` of the array whose sort along axis 0 is ``ordered`` (bit for bit)."""
    n = ordered.shape[0]
    half = n // 2
    return ordered[half] if n % 2 else np.mean(ordered[half - 1 : half + 1], axis=0)


# --- forecasts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastRegions:
    """Voxels the forecasts look at: the target plus margin, and each critical structure."""

    target: np.ndarray | None  # flat indices of target + margin
    structures: dict[str, np.ndarray]  # name → flat indices

    @staticmethod
    def of(case, margin_mm: float) -> ForecastRegions:
        labels = case.tissue_labels
        if labels is None:
            return ForecastRegions(None, {})
        target = None
        targets = [s.label for s in case.structures if s.role == "target"]
        if targets:
            mask = np.isin(labels, targets)
            if mask.any():
                near = _distance_outside(mask, case.grid.spacing_mm) <= margin_mm
                target = np.flatnonzero(near | mask)
        structures = {
            s.name: np.flatnonzero(labels == s.label)
            for s in case.structures
            if s.role == "critical" and np.any(labels == s.label)
        }
        return ForecastRegions(target, structures)

    def series(self, min_field: np.ndarray, lethal_c: float) -> np.ndarray:
        """[coverage fraction of target+margin by ≤ lethal_c, min °C in each structure]."""
        flat = min_field.reshape(-1)
        values = [float(np.mean(flat[self.target] <= lethal_c)) if self.target is not None else 0.0]
        values += [float(flat[idx].min()) for idx in self.structures.values()]
        return np.asarray(values)

    def watched(self) -> np.ndarray:
        """Flat indices of the voxels the forecasts read: the target + margin, then each structure."""
        parts = ([self.target] if self.target is not None else []) + list(self.structures.values())
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def series_of(self, values: np.ndarray, lethal_c: float) -> np.ndarray:
        """``series`` of many minimum-temperature fields at once, each given at ``watched()``
        voxels (… × watched) → … × [coverage, min °C in each structure]."""
        n_target = 0 if self.target is None else self.target.size
        columns = [
            np.mean(values[..., :n_target] <= lethal_c, axis=-1)
            if self.target is not None
            else np.zeros(values.shape[:-1])
        ]
        offset = n_target
        for idx in self.structures.values():
            columns.append(values[..., offset : offset + idx.size].min(axis=-1))
            offset += idx.size
        return np.stack(columns, axis=-1)

    def coldest(self, min_fields: np.ndarray, per_structure: int) -> tuple[ForecastRegions, np.ndarray]:
        """These regions with each structure cut to its ``per_structure`` coldest voxels (by the
        members' mean minimum field, members × voxels), and the columns of ``watched()`` kept: a
        structure's lowest temperature lies where the ice comes nearest, not on its far side."""
        mean = min_fields.mean(axis=0)
        n_target = 0 if self.target is None else self.target.size
        columns = [np.arange(n_target)]
        offset = n_target
        structures = {}
        for name, idx in self.structures.items():
            order = np.sort(np.argsort(mean[idx], kind="stable")[:per_structure])
            structures[name] = idx[order]
            columns.append(offset + order)
            offset += idx.size
        return ForecastRegions(self.target, structures), np.concatenate(columns)

    def columns(self) -> list[int]:
        """The column of ``series`` that each of ``events()`` reads."""
        return ([0] if self.target is not None else []) + [1 + i for i in range(len(self.structures))]

    def events(self) -> list[str]:
        names = ["lethal_covers_target"] if self.target is not None else []
        return names + [f"ice_reaches:{name}" for name in self.structures]


def event_times(
    times_s: np.ndarray, series: np.ndarray, regions: ForecastRegions, coverage_required: float
) -> dict[str, float]:
    """Time of each forecast event from a series (time × quantity, as ``ForecastRegions.series``):
    when the coverage fraction reaches ``coverage_required`` and when each structure's minimum
    temperature reaches 0 °C, linear between samples; ``inf`` when it does not happen."""
    out: dict[str, float] = {}
    columns = []
    if regions.target is not None:
        columns.append(("lethal_covers_target", series[:, 0] - coverage_required))
    for n, name in enumerate(regions.structures, 1):
        columns.append((f"ice_reaches:{name}", ICE_EDGE_C - series[:, n]))
    for name, value in columns:
        hit = np.flatnonzero(value >= 0)
        if hit.size == 0:
            out[name] = math.inf
            continue
        k = int(hit[0])
        if k == 0:
            out[name] = float(times_s[0])
            continue
        a, b = value[k - 1], value[k]
        out[name] = float(times_s[k - 1] + (times_s[k] - times_s[k - 1]) * (-a) / (b - a))
    return out


# --- the corrector --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Image:
    """What is kept of an image: its rays (plan frame) and the observed edge along each, enough to
    assimilate it again into a re-centred ensemble without segmenting it again."""

    time_s: float
    kind: str
    rays: int
    origin_mm: np.ndarray  # 3
    directions: np.ndarray  # rays × 3, the rays that lie within the image
    observed_mm: np.ndarray  # rays: the observed ice's outer edge along each
    assimilated: bool


def _numbers(value, where: str, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float array of ``shape``, every element finite (a journal's note)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(where, f"must be numbers, shape {shape}") from None
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise InputError(where, f"must be finite numbers, shape {shape}, got {value!r}"[:300])
    return array


@dataclass(frozen=True)
class Recentring:
    """The centre and spread of a re-centred ensemble (generation ≥ 1), drawn around the posterior
    of the ensemble before it (:meth:`IceCorrector.recentred`). Per probe (the case's order): the
    cooling scale's centre and log-normal σ, the tip's shift from the case's pose (mm, RAS) and
    the shaft's tilt (added to the case's unit direction); per material (sorted names): the
    conductivity and perfusion scales' uniform windows (low, high), within the prior's support.
    ``images``/``time_s``: the images assimilated and the last one's time when it was asked for."""

    generation: int
    cooling: tuple[float, ...]
    cooling_sigma: tuple[float, ...]
    tip_shift_mm: tuple[tuple[float, float, float], ...]
    tilt: tuple[tuple[float, float, float], ...]
    conductivity: tuple[tuple[float, float], ...]
    perfusion: tuple[tuple[float, float], ...]
    images: int = 0
    time_s: float = 0.0

    def to_dict(self) -> dict:
        """Every float at full precision (JSON keeps a float's repr): a replay checks it bit for bit."""
        return {
            "generation": self.generation,
            "images": self.images,
            "time_s": float(self.time_s),
            "cooling": [float(v) for v in self.cooling],
            "cooling_sigma": [float(v) for v in self.cooling_sigma],
            "tip_shift_mm": [[float(v) for v in t] for t in self.tip_shift_mm],
            "tilt": [[float(v) for v in t] for t in self.tilt],
            "conductivity": [[float(v) for v in w] for w in self.conductivity],
            "perfusion": [[float(v) for v in w] for w in self.perfusion],
        }

    @staticmethod
    def from_dict(data, probes: int, materials: int, where: str) -> Recentring:
        """The re-centring a journal's note recorded; ``where``: the note (file:line) named in errors."""
        if not isinstance(data, dict):
            raise InputError(where, "centre must be an object")
        generation, images = data.get("generation"), data.get("images")
        for key, value in (("generation", generation), ("images", images)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if key == "generation" else 0)
            ):
                raise InputError(f"{where}: centre.{key}", f"must be a whole number, got {value!r}")

        def field_of(key, shape):
            return _numbers(data.get(key), f"{where}: centre.{key}", shape)

        return Recentring(
            generation=generation,
            images=images,
            time_s=float(field_of("time_s", ())),
            cooling=tuple(field_of("cooling", (probes,)).tolist()),
            cooling_sigma=tuple(field_of("cooling_sigma", (probes,)).tolist()),
            tip_shift_mm=tuple(tuple(t) for t in field_of("tip_shift_mm", (probes, 3)).tolist()),
            tilt=tuple(tuple(t) for t in field_of("tilt", (probes, 3)).tolist()),
            conductivity=tuple(tuple(w) for w in field_of("conductivity", (materials, 2)).tolist()),
            perfusion=tuple(tuple(w) for w in field_of("perfusion", (materials, 2)).tolist()),
        )


def _window(centre: float, half: float, low: float, high: float) -> tuple[float, float]:
    """A uniform draw's window: ``centre`` ± ``half``, moved to lie within the prior's support
    [low, high] (the whole support where it is narrower than the window)."""
    if 2 * half >= high - low:
        return low, high
    start = min(max(centre - half, low), high - 2 * half)
    return start, start + 2 * half


class IceCorrector:
    """Corrects the plan's prediction from the observed ice; see the module docstring.

    >>> corrector = IceCorrector(case, CorrectionSettings(members=48))
    >>> corrector.prepare()                       # once, before the freeze (~1–2 s per member)
    >>> correction = corrector.update(t, observation)  # after every image, < 1 s
    >>> write_corrected(correction, case, "out/corrected")  # io/corrected_folder.py
    """

    def __init__(
        self,
        case,
        settings: CorrectionSettings | None = None,
        placement: str = "planned",
        centre: Recentring | None = None,
    ):
        self.settings = settings or CorrectionSettings()
        self.settings.check()
        if placement not in PLACEMENTS:
            raise InputError("placement", f"must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
        # "planned": the case's probes are the plan, the placement prior the insertion accuracy;
        # "reported": they are the poses the console reported, the prior the tracking accuracy
        self.placement = placement
        if not case.probes:
            raise InputError("case.probes", "the correction needs at least one probe")
        if not case.protocol:
            raise InputError("case.protocol", "the correction needs the planned protocol")
        self.case = case
        self.grid: Grid = case.grid
        segments = [p.active_segment_mm() for p in case.probes]
        self.segments_mm = segments  # each probe's freezing segment (start, end), mm
        self.origin_mm = np.mean([0.5 * (a + b) for a, b in segments], axis=0)
        self.regions = ForecastRegions.of(case, self.settings.target_margin_mm)
        # None: drawn around the case's placement and the priors (generation 0); else re-centred
        self.centre = centre
        self.generation = 0 if centre is None else centre.generation
        self.reassimilated = 0  # images assimilated again when this re-centred ensemble was installed
        # the parameters' prior means the corrections report: the first generation's draw
        self.first_prior_mean: np.ndarray | None = None
        self.prepared = False
        self.reset()

    # --- prior ensemble ---------------------------------------------------------------------

    def placement_prior(self) -> tuple[float, float]:
        """(tip mm RMS, shaft tilt ° RMS) of the members' placement around the case's probes."""
        s = self.settings
        if self.placement == "reported":
            return s.tracking_error_mm, s.tracking_error_deg
        return s.insertion_error_mm, s.insertion_error_deg

    def placement_summary(self) -> dict:
        """The probe poses the ensemble is drawn around, where they came from, and the prior."""
        tip_mm, tilt_deg = self.placement_prior()
        return {
            "centre": self.placement,
            "tip_error_mm": tip_mm,
            "tilt_error_deg": tilt_deg,
            "probes": {
                p.name: {
                    "tip_mm": [round(float(v), 3) for v in p.tip_mm],
                    "entry_mm": [round(float(v), 3) for v in p.entry_mm],
                }
                for p in self.case.probes
            },
        }

    def moved_from_placement(self, probes) -> list[tuple[str, float, float]]:
        """(name, tip moved mm, shaft turned °) of each of ``probes`` (specs with ``name``,
        ``tip_mm``, ``entry_mm``) that lies beyond the placement prior from the pose the ensemble
        was drawn around: its members no longer describe where that probe is."""
        tip_mm, tilt_deg = self.placement_prior()
        centre = {p.name: p for p in self.case.probes}
        moved = []
        for probe in probes:
            spec = centre.get(probe.name)
            if spec is None:
                continue
            distance = float(np.linalg.norm(np.subtract(probe.tip_mm, spec.tip_mm)))
            cosine = float(np.clip(np.dot(probe.direction, spec.direction), -1.0, 1.0))
            turned = math.degrees(math.acos(cosine))
            if distance > tip_mm or turned > tilt_deg:
                moved.append((probe.name, distance, turned))
        return moved

    def _materials(self) -> list[str]:
        names = set(self.case.label_materials.values()) | ({self.case.tissue} if self.case.tissue else set())
        return sorted(n for n in names if n in self.case.materials)

    def draw_parameters(self) -> tuple[list[str], list[str], np.ndarray, list]:
        """The members' parameters (names, units, members × parameters) and their cases. The
        scales and tip offsets are from the case's values and poses, whichever the generation.
        Each member's shaft tilt (members × probes × 3, added to the case's unit direction) is
        kept in :attr:`tilt_values`."""
        s = self.settings
        n = s.members
        materials_list = self._materials()
        tip_mm, tilt_deg = self.placement_prior()
        names, units, columns = [], [], []
        shifts, axes = [], []
        if self.centre is None:
            rng = np.random.default_rng(s.seed)
            for _probe in self.case.probes:
                columns.append(np.exp(rng.normal(0.0, s.cooling_sigma, n)))
            for _ in materials_list:
                columns.append(rng.uniform(1 - s.conductivity_spread, 1 + s.conductivity_spread, n))
                columns.append(rng.uniform(1 - s.perfusion_spread, 1 + s.perfusion_spread, n))
            for probe in self.case.probes:
                shift = rng.normal(0.0, tip_mm / math.sqrt(3.0), (n, 3))
                tilt = np.tan(math.radians(tilt_deg)) * rng.normal(0.0, math.sqrt(0.5), (n, 3))
                shifts.append(shift)
                axes.append(probe.direction + tilt)
        else:
            # the same kinds of draw around the earlier posterior, from a stream of their own
            c = self.centre
            rng = np.random.default_rng([s.seed, c.generation])
            for p, _ in enumerate(self.case.probes):
                columns.append(c.cooling[p] * np.exp(rng.normal(0.0, c.cooling_sigma[p], n)))
            for j, _ in enumerate(materials_list):
                columns.append(rng.uniform(*c.conductivity[j], n))
                columns.append(rng.uniform(*c.perfusion[j], n))
            for p, probe in enumerate(self.case.probes):
                shift = np.asarray(c.tip_shift_mm[p]) + rng.normal(0.0, tip_mm / math.sqrt(3.0), (n, 3))
                tilt = np.tan(math.radians(tilt_deg)) * rng.normal(0.0, math.sqrt(0.5), (n, 3))
                centre_axis = probe.direction + np.asarray(c.tilt[p])
                shifts.append(shift)
                axes.append(centre_axis / np.linalg.norm(centre_axis) + tilt)
        for probe in self.case.probes:
            names.append(f"cooling_scale:{probe.name}")
            units.append("1")
        for material in materials_list:
            names += [f"conductivity_scale:{material}", f"perfusion_scale:{material}"]
            units += ["1", "1"]
        # the column order of the draw: cooling per probe, (conductivity, perfusion) per material
        for p, probe in enumerate(self.case.probes):
            for a, axis in enumerate("RAS"):
                names.append(f"tip_offset_{axis}:{probe.name}")
                units.append("mm")
                columns.append(shifts[p][:, a])
        mean_shift = np.mean(shifts, axis=0)
        for a, axis in enumerate("RAS"):
            names.append(f"cluster_offset_{axis}")
            units.append("mm")
            columns.append(mean_shift[:, a])
        values = np.stack(columns, axis=1)
        cases = []
        n_probes = len(self.case.probes)
        tilts = np.empty((n, n_probes, 3))
        for m in range(n):
            materials = dict(self.case.materials)
            for j, material in enumerate(materials_list):
                k = values[m, n_probes + 2 * j]
                w = values[m, n_probes + 2 * j + 1]
                base = materials[material]
                materials[material] = replace(
                    base,
                    k_unfrozen=base.k_unfrozen * k,
                    k_frozen=base.k_frozen * k,
                    perfusion=base.perfusion * w,
                )
            probes = []
            for p, spec in enumerate(self.case.probes):
                tip = np.asarray(spec.tip_mm) + shifts[p][m]
                axis = axes[p][m].copy()
                axis /= np.linalg.norm(axis)
                # the tilt t with axis ∝ direction + t, t ⟂ direction: what a re-centring averages
                tilts[m, p] = axis / float(axis @ spec.direction) - np.asarray(spec.direction)
                shaft = float(np.linalg.norm(np.subtract(spec.entry_mm, spec.tip_mm)))
                probes.append(
                    replace(spec, tip_mm=tuple(tip.tolist()), entry_mm=tuple((tip + axis * shaft).tolist()))
                )
            scales = {p.name: float(values[m, i]) for i, p in enumerate(self.case.probes)}
            cases.append((replace(self.case, materials=materials, probes=probes), scales))
        self.tilt_values = tilts
        return names, units, values, cases

    def prepare(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Run the ensemble (before the freeze). ``progress(done, total)`` after each member."""
        # numba kernels compile or load on first use
        from CryoAblationLogic.physics.ensemble import ScaledCoolingSimulation

        s = self.settings
        start = time.perf_counter()
        names, units, values, cases = self.draw_parameters()
        end = self.case.duration_s
        steps = max(1, math.ceil(end / s.snapshot_every_s - 1e-9))
        self.times_s = np.linspace(0.0, end, steps + 1)
        lo, hi = self._roi()
        self.roi = (lo, hi)
        n = s.members
        shape = tuple(int(h - low) for low, h in zip(lo, hi, strict=True))
        self.fields = np.empty((n, len(self.times_s), *shape), np.float16)
        voxels = self.grid.voxel_count
        self.min_fields = np.empty((n, voxels), np.float32)
        self.final_fields = np.empty((n, voxels), np.float32)
        self.series = np.empty((n, len(self.times_s), 1 + len(self.regions.structures)), np.float64)
        watch = self.regions.watched()
        self.watched_min = np.empty((n, len(self.times_s), watch.size), np.float32)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        for m, (member, scales) in enumerate(cases):
            sim = ScaledCoolingSimulation(member, scales)
            for k, t in enumerate(self.times_s):
                sim.advance_to(float(t))
                self.fields[m, k] = sim.temperature_c[box]
                self.series[m, k] = self.regions.series(sim.min_temperature_c, s.lethal_c)
                self.watched_min[m, k] = sim.min_temperature_c.reshape(-1)[watch]
            self.min_fields[m] = sim.min_temperature_c.reshape(-1)
            self.final_fields[m] = sim.temperature_c.reshape(-1)
            if progress is not None:
                progress(m + 1, n)
        # The forecasts read every voxel of the target + margin (coverage) and each structure's
        # coldest voxels: half the watched voxels of the demo plan, half an update's forecast cost.
        self.watch_regions, keep = self.regions.coldest(self.min_fields, WATCHED_PER_STRUCTURE)
        self.watched_min = np.ascontiguousarray(self.watched_min[:, :, keep])
        self.parameter_names, self.parameter_units, self.parameter_values = names, units, values
        if self.first_prior_mean is None:  # a re-centred generation keeps its first one's (recentred)
            self.first_prior_mean = np.array([values[:, j].mean() for j in range(values.shape[1])])
        self.prepare_s = time.perf_counter() - start
        self.prepared = True
        self.reset()

    def _roi(self) -> tuple[np.ndarray, np.ndarray]:
        """Index box holding every ray: the probes' freezing segments ± ray length (+ placement)."""
        s = self.settings
        reach = s.ray_length_mm + 3 * self.placement_prior()[0] + 2 * max(self.grid.spacing_mm)
        points = np.concatenate([np.stack(p.active_segment_mm()) for p in self.case.probes])
        points = np.concatenate([points, self.origin_mm[None]])
        lo_mm, hi_mm = points.min(axis=0) - reach, points.max(axis=0) + reach
        lo = np.floor(self.grid.ras_to_index(lo_mm)).astype(int)
        hi = np.ceil(self.grid.ras_to_index(hi_mm)).astype(int) + 1
        size = np.asarray(self.grid.size)
        return np.clip(np.minimum(lo, hi), 0, size), np.clip(np.maximum(lo, hi), 0, size)

    def reset(self) -> None:
        """Forget the images (the prepared ensemble stays): the posterior is the prior again."""
        n = self.settings.members
        self.coefficients = np.eye(n)  # posterior members as columns of prior-member weights
        self.images: list[_Image] = []
        self.last_time_s = -math.inf
        self.departures: list[str] = []

    # --- observations -----------------------------------------------------------------------

    def console_state(self, time_s: float, states: Mapping[str, tuple[str, float]]) -> list[str]:
        """Compare what the console reports (probe name → (action, flow %)) with the planned
        protocol at ``time_s``; departures are kept and reported in every later correction."""
        found = []
        for probe in self.case.probes:
            if probe.name not in states:
                continue
            action, flow = states[probe.name]
            tolerance = self.settings.departure_tolerance_s
            plans = [self._planned(probe.name, t) for t in (time_s, time_s - tolerance, time_s + tolerance)]
            planned, planned_flow = plans[0]
            same = any(action == a and (action != "freeze" or abs(flow - f) < 1.0) for a, f in plans)
            if not same:
                found.append(
                    f"{time_s:g} s: {probe.name} is {action}"
                    + (f" {flow:g} %" if action == "freeze" else "")
                    + f", the plan has {planned}"
                    + (f" {planned_flow:g} %" if planned == "freeze" else "")
                )
        unknown = sorted(set(states) - {p.name for p in self.case.probes})
        if unknown:
            raise InputError("states", f"no probe named {unknown[0]!r} in the plan")
        self.departures += found
        return found

    def _planned(self, name: str, time_s: float) -> tuple[str, float]:
        """(action, flow %) the plan has for probe ``name`` at ``time_s`` ("off" outside its steps)."""
        for step in self.case.protocol:
            if step.start_s <= time_s < step.end_s:
                if step.applies_to(name):
                    return step.action, step.flow_percent
                break
        return "off", 0.0

    def _rays(self, observation) -> tuple[np.ndarray, np.ndarray]:
        """Ray origin(s) and directions (plan frame) for this observation."""
        s = self.settings
        if observation.kind == "volume":
            return self.origin_mm, _fibonacci_directions(s.volume_rays)
        plane = observation.image_to_plan @ observation.ijk_to_ras
        u, v = plane[:3, 0], plane[:3, 1]
        u, v = u / np.linalg.norm(u), v - (v @ u) / (u @ u) * u
        v = v / np.linalg.norm(v)
        normal = np.cross(u, v)
        point = plane[:3, 3]
        origin = self.origin_mm - ((self.origin_mm - point) @ normal) * normal
        angles = np.arange(s.slice_rays) * 2 * math.pi / s.slice_rays
        return origin, np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v

    def _ray_points(self, origin, directions) -> np.ndarray:
        s = self.settings
        r = np.arange(0.0, s.ray_length_mm + 1e-9, s.ray_step_mm)
        return origin + directions[:, None, :] * r[None, :, None]  # rays × samples × 3

    def _observed_edges(self, observation, points: np.ndarray) -> np.ndarray:
        to_image = np.linalg.inv(observation.ijk_to_ras) @ np.linalg.inv(observation.image_to_plan)
        ijk = points @ to_image[:3, :3].T + to_image[:3, 3]
        label = observation.label.astype(np.float64)
        inside = _sample(label, ijk, math.nan) - 0.5
        return _edge_distance(inside, self.settings.ray_step_mm)

    def _member_edges(self, time_s: float, points: np.ndarray) -> np.ndarray:
        """Each member's 0 °C edge distance along the rays at ``time_s`` (members × rays): its
        stored fields linear in time between the two snapshots around it, trilinear in space.
        The corners and weights are found once for all members, and only the fields' values at
        the rays' corners are read (not whole fields), all members in one array operation."""
        k = int(np.clip(np.searchsorted(self.times_s, time_s, side="right") - 1, 0, len(self.times_s) - 2))
        t0, t1 = self.times_s[k], self.times_s[k + 1]
        w = float(np.clip((time_s - t0) / (t1 - t0), 0, 1))
        lo = self.roi[0]
        origin = np.asarray(self.grid.origin_mm)
        ijk = (points - origin) / np.asarray(self.grid.spacing_mm) - lo
        corners, weights, inside = _trilinear(self.fields.shape[2:], ijk)
        n = self.settings.members
        flat = self.fields.reshape(n, len(self.times_s), -1)  # a view: no copy of the fields
        before, after = flat[:, k], flat[:, k + 1]
        # The same float32 blend of the float16 snapshots as a whole-field blend would give.
        values = [
            (1 - w) * before[:, c].astype(np.float32) + w * after[:, c].astype(np.float32) for c in corners
        ]
        sampled = np.where(inside, _interpolate(values, weights), 37.0)
        return _edge_distance(ICE_EDGE_C - sampled, self.settings.ray_step_mm)

    def _as_observation(self, observation) -> IceObservation:
        if isinstance(observation, IceObservation):
            label = np.asarray(observation.label)
            if label.size == 0:
                raise InputError("observation.label", "is empty (no voxels)")
            matrix = np.asarray(observation.ijk_to_ras, float)
            moved = np.asarray(observation.image_to_plan, float)
            for key, m in (("ijk_to_ras", matrix), ("image_to_plan", moved)):
                if m.shape != (4, 4) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-9:
                    raise InputError(f"observation.{key}", "must be a finite, invertible 4×4 matrix")
            if label.ndim != 3:
                raise InputError(
                    "observation.label", f"must be a 3-D array [i, j, k], got shape {label.shape}"
                )
            if observation.kind not in ("volume", "slice"):
                raise InputError("observation.kind", f"must be 'volume' or 'slice', got {observation.kind!r}")
            if observation.kind == "slice" and label.shape[2] != 1:
                raise InputError(
                    "observation.label", f"a slice has one voxel across its plane, got {label.shape}"
                )
            return observation
        array = np.asarray(observation)
        if array.size == 0:
            raise InputError("observation", "is empty (no voxels)")
        if array.shape != tuple(self.grid.size):
            raise InputError(
                "observation", f"shape {array.shape} does not match the plan grid {tuple(self.grid.size)}"
            )
        return IceObservation(
            label=(array > 0).astype(np.uint8),
            ijk_to_ras=self.grid.ijk_to_ras_matrix(),
            kind="volume",
            image_to_plan=np.eye(4),
            noise_sigma=0.0,
            undecided_fraction=0.0,
        )

    # --- the update -------------------------------------------------------------------------

    def update(self, time_s: float, observation) -> Correction:
        """Assimilate one image (an :class:`IceObservation`, or a label map on the plan grid as
        :func:`ice_on_grid` gives) taken at procedure time ``time_s``; returns the correction."""
        if not self.prepared:
            raise InputError("corrector", "prepare() the ensemble before the first image")
        start = time.perf_counter()
        with _one_blas_thread():
            correction = self._update(time_s, observation)
        correction.update_s = time.perf_counter() - start
        return correction

    def _update(self, time_s, observation) -> Correction:
        """``update`` on one BLAS thread."""
        return self.correction(float(time_s), self._take(self._image_of(time_s, observation)))

    def keep(self, time_s: float, observation) -> None:
        """Measure an image (as :meth:`update` does) and keep it without assimilating: an ensemble
        still being prepared (this corrector need not be prepared) loses no image; the prepared
        one assimilates every kept image, in order, with :meth:`take_images` (the same posterior
        as updates one by one would reach)."""
        image = self._image_of(time_s, observation)
        self.images.append(image)
        self.last_time_s = image.time_s

    def _image_of(self, time_s, observation) -> _Image:
        """The image checked and measured: its rays and the observed ice's outer edge along each."""
        if not (isinstance(time_s, (int, float)) and math.isfinite(time_s)):
            raise InputError("time_s", f"must be a finite number of seconds, got {time_s!r}")
        if not 0 <= time_s <= self.case.duration_s + 1e-6:
            raise InputError(
                "time_s", f"{time_s:g} s lies outside the protocol (0..{self.case.duration_s:g} s)"
            )
        if time_s < self.last_time_s - 1e-6:
            raise InputError("time_s", f"{time_s:g} s is before the previous image ({self.last_time_s:g} s)")
        observation = self._as_observation(observation)
        origin, directions = self._rays(observation)
        observed = self._observed_edges(observation, self._ray_points(origin, directions))
        valid = np.isfinite(observed)
        if not valid.any():
            raise InputError(
                "observation", "no ray from the probe cluster lies within the image (wrong geometry or plane)"
            )
        image = _Image(
            time_s=float(time_s),
            kind=observation.kind,
            rays=int(valid.sum()),
            origin_mm=np.asarray(origin, float),
            directions=directions[valid],
            observed_mm=observed[valid],
            assimilated=self._assimilates(observation.kind),
        )
        return image

    def _assimilates(self, kind: str) -> bool:
        """Whether this ensemble learns from an image of ``kind`` (one of reported poses: from
        the kinds of ``reported_assimilates`` only)."""
        return self.placement != "reported" or kind in self.settings.reported_assimilates

    def _take(self, image: _Image) -> dict:
        """Assimilate a kept image (an image's first time, or again into a re-centred ensemble:
        the same arithmetic, so both give the same posterior); returns its metrics."""
        if image.assimilated != self._assimilates(image.kind):  # kept by another placement's corrector
            image = replace(image, assimilated=self._assimilates(image.kind))
        observed = image.observed_mm
        predicted = self._member_edges(image.time_s, self._ray_points(image.origin_mm, image.directions))
        before = self.coefficients.T @ predicted  # posterior members × rays
        resolved = self._resolved(image, before)
        if image.assimilated and resolved.any():
            s = self.settings
            edge_sigma = s.slice_edge_sigma_mm if image.kind == "slice" else s.edge_sigma_mm
            self._assimilate(observed[resolved], predicted[:, resolved], edge_sigma)
        after = self.coefficients.T @ predicted
        self.images.append(image)
        self.last_time_s = image.time_s
        metrics = {
            "kind": image.kind,
            "rays": image.rays,
            "plan_edge_error_mm": round(float(np.mean(np.abs(predicted.mean(axis=0) - observed))), 3),
            "before_edge_error_mm": round(float(np.mean(np.abs(before.mean(axis=0) - observed))), 3),
            "after_edge_error_mm": round(float(np.mean(np.abs(after.mean(axis=0) - observed))), 3),
        }
        if not image.assimilated:
            metrics["assimilated"] = False
        if not resolved.all():
            metrics["unresolved_rays"] = int((~resolved).sum())
        return metrics

    def _resolved(self, image: _Image, predicted_mm: np.ndarray) -> np.ndarray:
        """The rays on which the observed edge, or the edge of most posterior members
        (``predicted_mm``: members × rays), shows ice farther than ``unresolved_radius_mm`` from
        every freezing segment (see the setting). Most members, not their mean edge: early on a
        few members' ice reaches a ray that the others' does not, and a mean distance of a few
        millimetres would name a point where no member has ice."""
        radius = self.settings.unresolved_radius_mm
        if radius <= 0:
            return np.ones(image.observed_mm.shape, bool)

        def beyond(distance_mm: np.ndarray) -> np.ndarray:
            points = image.origin_mm + image.directions * distance_mm[..., None]
            far = _distance_to(points.reshape(-1, 3), self.segments_mm).reshape(distance_mm.shape)
            return (distance_mm > 0) & (far > radius)

        return beyond(image.observed_mm) | (beyond(predicted_mm).mean(axis=0) > 0.5)

    # --- re-centring ------------------------------------------------------------------------

    def first_freeze_end_s(self) -> float:
        """When the protocol's first freezing period ends (no probe freezing any longer), s."""
        spans = sorted((st.start_s, st.end_s) for st in self.case.protocol if st.action == "freeze")
        if not spans:
            return math.inf
        end = spans[0][1]
        for start, stop in spans[1:]:
            if start > end + 1e-6:
                break
            end = max(end, stop)
        return end

    def posterior_shift(self) -> float:
        """How far the posterior mean has moved from this ensemble's prior mean: the largest, over
        the parameters, of the move in units of the parameter's spread among the prior members."""
        prior = self.parameter_values
        spread = prior.std(axis=0, ddof=1)
        moved = np.abs(self.posterior(prior).mean(axis=0) - prior.mean(axis=0))
        usable = spread > 0
        return float(np.max(moved[usable] / spread[usable])) if usable.any() else 0.0

    def recentring_due(self) -> bool:
        """Whether the rule asks for a re-centring now, after the image just assimilated: a 3-D
        volume (the edge all round, not one plane) taken once the first freeze has ended (the ice
        has grown to show where each probe is and how it cools), the posterior moved by more than
        ``recentre_shift`` prior spreads, fewer than ``recentre_generations`` re-centrings so far."""
        s = self.settings
        if not self.prepared or self.generation >= s.recentre_generations or not self.images:
            return False
        last = self.images[-1]
        if last.kind != "volume" or not last.assimilated or self.departures:
            return False
        ended = self.first_freeze_end_s() - s.departure_tolerance_s
        volumes = [i for i in self.images if i.kind == "volume" and i.assimilated and i.time_s >= ended]
        if last.time_s < ended or len(volumes) < s.recentre_volumes:
            return False
        return self.posterior_shift() > s.recentre_shift

    def recentred(self) -> IceCorrector:
        """An unprepared corrector (the next generation) whose members are drawn around this
        posterior: its mean for every parameter and each probe's tilt; the placement prior's
        spread for the placement (the probes' pose is no better known than the insertion or the
        tracking says: a narrower draw would again leave a probe far off outside the members);
        ``recentre_inflation`` × the posterior's spread, at most the prior's, for the cooling and
        tissue scales, whose windows stay within the prior's support. :meth:`prepare` it, then
        :meth:`take_images` from this one."""
        s = self.settings
        values = self.posterior(self.parameter_values)
        mean, spread = values.mean(axis=0), values.std(axis=0, ddof=1)
        column = {name: j for j, name in enumerate(self.parameter_names)}
        probes = [p.name for p in self.case.probes]
        tilt = self.posterior(self.tilt_values).mean(axis=0)  # probes × 3
        inflation = s.recentre_inflation
        cooling, cooling_sigma, shifts = [], [], []
        bound = math.exp(4 * s.cooling_sigma)  # the centre stays within the prior's ± 4 σ
        for name in probes:
            j = column[f"cooling_scale:{name}"]
            centre = min(max(float(mean[j]), 1 / bound), bound)
            cooling.append(centre)
            cooling_sigma.append(min(s.cooling_sigma, inflation * float(spread[j]) / centre))
            shifts.append(tuple(float(mean[column[f"tip_offset_{a}:{name}"]]) for a in "RAS"))
        windows = {"conductivity": [], "perfusion": []}
        for material in self._materials():
            for kind, width in (("conductivity", s.conductivity_spread), ("perfusion", s.perfusion_spread)):
                j = column[f"{kind}_scale:{material}"]
                half = min(width, inflation * math.sqrt(3.0) * float(spread[j]))  # uniform: σ√3
                windows[kind].append(_window(float(mean[j]), half, 1 - width, 1 + width))
        centre = Recentring(
            generation=self.generation + 1,
            cooling=tuple(cooling),
            cooling_sigma=tuple(cooling_sigma),
            tip_shift_mm=tuple(shifts),
            tilt=tuple(tuple(float(v) for v in t) for t in tilt),
            conductivity=tuple(windows["conductivity"]),
            perfusion=tuple(windows["perfusion"]),
            images=len(self.images),
            time_s=float(self.last_time_s),
        )
        successor = IceCorrector(self.case, s, self.placement, centre=centre)
        successor.first_prior_mean = self.first_prior_mean
        return successor

    def take_images(self, previous: IceCorrector) -> None:
        """Assimilate every image ``previous`` kept, in order, into this prepared ensemble (a
        re-centred one; or the first one, of the images :meth:`keep` kept while it was prepared;
        ``previous`` may be this corrector), and take its departures: it then stands where
        ``previous`` stood, with the images' edges as observed (nothing is segmented again)."""
        if not self.prepared:
            raise InputError("corrector", "prepare() the ensemble before it takes the images")
        images, departures = list(previous.images), list(previous.departures)
        self.reset()
        with _one_blas_thread():
            for image in images:
                self._take(image)
        self.departures = departures
        self.reassimilated = len(images)

    def recentre_now(self, progress: Callable[[int, int], None] | None = None) -> IceCorrector:
        """The next generation prepared and given this one's images (what a replay and the
        validation do in one go; a live session prepares it in the ensemble's process)."""
        successor = self.recentred()
        successor.prepare(progress=progress)
        successor.take_images(self)
        return successor

    def ensemble_summary(self) -> dict:
        """Which ensemble this is: its generation, members, and for a re-centred one the images
        it was drawn after and re-assimilated, and its centre."""
        summary = {"generation": self.generation, "members": self.settings.members}
        if self.centre is not None:
            summary["drawn_after_images"] = self.centre.images
            summary["drawn_at_s"] = self.centre.time_s
            summary["images_reassimilated"] = self.reassimilated
            summary["centre"] = self.centre.to_dict()
        return summary

    def _assimilate(self, observed: np.ndarray, predicted: np.ndarray, edge_sigma_mm: float) -> None:
        """ETKF in the space of members, with relaxation to the prior spread (RTPS); one ray's
        edge error ``edge_sigma_mm`` (a volume's or a slice's)."""
        s = self.settings
        n = s.members
        a = self.coefficients
        y = predicted.T @ a  # rays × members, the current posterior's predicted edges
        mean_c = a.mean(axis=1)
        anomalies_c = (a - mean_c[:, None]) / math.sqrt(n - 1)
        y_mean = y.mean(axis=1)
        # Errors of neighbouring rays are correlated: each ray's variance is inflated so that an
        # image weighs as much as ``independent_rays`` independent ones (at most all of its rays).
        sigma = edge_sigma_mm * math.sqrt(max(1.0, observed.size / s.independent_rays))
        y_anom = (y - y_mean[:, None]) / math.sqrt(n - 1) / sigma
        innovation = (observed - y_mean) / sigma
        c = y_anom.T @ y_anom
        eigval, eigvec = np.linalg.eigh(c)
        eigval = np.clip(eigval, 0, None)
        weights_mean = eigvec @ ((eigvec.T @ (y_anom.T @ innovation)) / (1.0 + eigval))
        transform = eigvec @ np.diag(1.0 / np.sqrt(1.0 + eigval)) @ eigvec.T
        new_mean = mean_c + anomalies_c @ weights_mean
        new_anom = anomalies_c @ transform
        if s.relaxation > 0:
            # Scale posterior anomalies back towards the prior spread of each parameter and field.
            prior_spread = np.sqrt(np.sum(anomalies_c**2))
            post_spread = np.sqrt(np.sum(new_anom**2))
            if post_spread > 0:
                factor = s.relaxation * (prior_spread - post_spread) / post_spread + 1.0
                new_anom = new_anom * factor
        self.coefficients = new_mean[:, None] + math.sqrt(n - 1) * new_anom

    # --- outputs ----------------------------------------------------------------------------

    def posterior(self, values: np.ndarray) -> np.ndarray:
        """Posterior members of a per-member quantity (members × …)."""
        flat = np.asarray(values).reshape(self.settings.members, -1)
        return (self.coefficients.T @ flat).reshape((self.settings.members, *np.shape(values)[1:]))

    def correction(self, time_s: float, metrics: dict | None = None) -> Correction:
        """The corrected prediction from the current posterior (``update`` gives it after each image)."""
        with _one_blas_thread():
            return self._correction(time_s, metrics)

    def _correction(self, time_s: float, metrics: dict | None) -> Correction:
        s = self.settings
        params = self.posterior(self.parameter_values)
        parameters = {}
        for j, (name, unit) in enumerate(zip(self.parameter_names, self.parameter_units, strict=True)):
            p10, p90 = np.percentile(params[:, j], [10, 90])
            parameters[name] = {
                "mean": round(float(params[:, j].mean()), 4),
                "p10": round(float(p10), 4),
                "p90": round(float(p90), 4),
                "prior_mean": round(float(self.first_prior_mean[j]), 4),
                "unit": unit,
            }
        shape = tuple(self.grid.size)
        # One sort of the members per voxel serves the three percentiles (np.percentile partitions
        # a copy per call: most of an update's time before); the values are numpy's, bit for bit.
        bands = percentiles_of_sorted(np.sort(self.posterior(self.min_fields), axis=0), PERCENTILES)
        min_temperature = {q: bands[i].reshape(shape) for i, q in enumerate(PERCENTILES)}
        final = median_of_sorted(np.sort(self.posterior(self.final_fields), axis=0)).reshape(shape)
        voxel_ml = self.grid.voxel_volume_mm3 / 1000.0
        volumes = {
            level: {
                f"p{q:g}": round(float(np.count_nonzero(min_temperature[q] <= level)) * voxel_ml, 3)
                for q in PERCENTILES
            }
            for level in sorted({*self.case.outputs.isotherms_c, ICE_EDGE_C, -20.0, s.lethal_c}, reverse=True)
        }
        # Each posterior member's forecast quantities from its own minimum temperatures at the
        # watched voxels (the members' temperatures combined, as the band's fields are), not a
        # combination of the members' coverage fractions: the combination's weights may be negative,
        # and a combination of fractions that saturate near 1 went beyond 100 % (tuning seed 103:
        # a 104 % coverage at the end, reached "at 472 s", where the truth ends at 98.9 %).
        # float32 as the stored temperatures: 1e-5 °C of rounding, half the time of float64
        combined = self.coefficients.T.astype(np.float32) @ self.watched_min.reshape(s.members, -1)
        series = self.watch_regions.series_of(combined.reshape(self.watched_min.shape), s.lethal_c)
        member_events = [
            event_times(self.times_s, series[m], self.regions, s.coverage_required) for m in range(s.members)
        ]
        forecasts = {}
        # Where each event's quantity ends (coverage of target + margin; a structure's lowest °C):
        # near a threshold the event's time flips between "at t" and "never" with a small change
        # of the field, while this value shows how near the threshold the ice ends.
        at_end = series[:, -1, :]
        for column, name in zip(self.regions.columns(), self.regions.events(), strict=True):
            times = np.array([e[name] for e in member_events])
            finite = np.isfinite(times)
            q = np.percentile(np.where(finite, times, np.inf), PERCENTILES, method="inverted_cdf")
            ends = np.percentile(at_end[:, column], PERCENTILES)
            forecasts[name] = {
                **{
                    f"p{p:g}": (round(float(v), 1) if math.isfinite(v) else None)
                    for p, v in zip(PERCENTILES, q, strict=True)
                },
                "p_never": round(float(np.mean(~finite)), 3),
                ("coverage_at_end" if column == 0 else "lowest_c_at_end"): {
                    f"p{p:g}": round(float(v), 4 if column == 0 else 1)
                    for p, v in zip(PERCENTILES, ends, strict=True)
                },
            }
        notes = [
            "members follow the planned protocol; "
            + (
                "the console departed from it: this correction is not valid"
                if self.departures
                else "as planned"
            )
        ]
        if self.generation:
            notes.append(
                f"ensemble re-centred ({self.generation}) on the posterior after {self.centre.images} "
                f"images (at {self.centre.time_s:g} s); {self.reassimilated} images assimilated again"
            )
        if self.placement == "reported":
            tip_mm, tilt_deg = self.placement_prior()
            notes.append(
                f"members drawn around the probe poses the console reported ({tip_mm:g} mm / "
                f"{tilt_deg:g}° tracking prior); they learn from {', '.join(s.reported_assimilates) or 'no'}"
                " images only (the others are compared, not assimilated)"
            )
        return Correction(
            time_s=time_s,
            images=len(self.images),
            parameters=parameters,
            min_temperature=min_temperature,
            temperature_final=final,
            isotherm_volumes_ml=volumes,
            forecasts=forecasts,
            metrics=metrics or {},
            departures=list(self.departures),
            notes=notes,
            placement=self.placement_summary(),
            ensemble=self.ensemble_summary(),
        )
