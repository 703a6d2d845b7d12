"""Seeded synthetic procedures for validating the observed ice and its correction (issue 14).

Each procedure is the demo plan (``io/demo_case.py``, three probes, 10-8-10: freeze 0–600 s, thaw
600–1080 s, freeze 1080–1680 s) on a 2 mm grid whose "truth" run has tissue properties and probe
placement off the plan (``live/synthetic.perturbed_truth``), in three stated sets:

- ``VALIDATION``: properties ±30 % (perfusion ±60 %), insertion errors 2 mm / 3° (the issue's
  validation), seeds 1, 3–21; never used for tuning;
- ``TUNING``: the same sizes, seeds 2, 101–103: the only seeds the segmentation and the correction
  settings were chosen on;
- ``STRESS``: properties ±40 % (perfusion ±80 %), insertion errors 5 mm / 6°, seeds 201–220, chosen
  so that a good part of them has the plan's −40 °C surface 2 mm or more off at the end (on seeds
  201–210 the plan was 1.2–2.2 mm off, 4 of 10 at ≥ 2 mm — the only thing looked at before the run).
  It puts the issue's clause "corrected within 1.0 mm where the uncorrected is 2 mm or more off" to
  the test. Its real-time planes go through the probes as inserted (the operator places them on
  the confirmation scan): placed on the plan, a plane missed every shaft of seed 201 and the
  segmentation, which grows the void from the probes, found no ice in it (the first stress run,
  stopped after two seeds). The corrector is told the set's sizes as its prior
  (``correction_settings``): the stated prior a user sets (``CorrectionSettings``), not a
  correction beyond its prior.
- ``STRESS_TUNING``: the same sizes as ``STRESS`` (planes on the probes as inserted, the same
  prior), seeds 301–340: the seeds the correction's behaviour on plans 2 mm or more off was
  diagnosed and changed on. It was added after the stress run's misses were known (seeds 210 and
  213 corrected 1.02 and 2.91 mm off, from the table only: nothing inside those seeds, nor any
  other stress or validation seed, was looked at), so that the stress set stays a check. It
  began as 301–312; their four plans ≥ 2 mm off were all corrected within 0.88 mm, so it was
  extended to 340 (nine plans ≥ 2 mm off, four corrected 1.34–4.50 mm off) before anything was
  changed (``diagnose_stress.py``).

The scanner images the truth at ``IMAGE_TIMES_S``: the end of the first freeze (600 s), then
through the second freeze every 3 minutes and at its end (1200, 1380, 1560, 1680 s), each time a
3-D volume at 1.5 mm and the three real-time slices through the probe cluster (1.5 × 1.5 mm,
5 mm thick), each with its own breathing shift (up to 3 mm, mostly S–I) against a baseline at the
reference position, Rician noise at an SNR drawn in [10, 20]; odd seeds have the probes in the
baseline, even seeds a baseline taken before insertion (exclusion radius around the shafts). The
probes the segmentation is given are the true ones (the console reports their poses). A real
procedure gives slices every 10–30 s: five image times keep a seed's cost to about a minute and
still give forecasts issued 2–18 min before the events. ``slice_times_s`` adds slices at further
times (their own noise and breathing seeds, the five times' images unchanged): the scanner's
cadence, replayed on the tuning seeds by ``diagnose_cadence.py``.

Observed ice is compared with the truth's 0 °C zone: for a volume on the plan grid (after the
registration maps it into the plan frame, so registration errors count), for a slice in its own
plane against the truth at the tissue the slice actually imaged (motion across a slice's plane is
invisible in it; it is the scanner's cut, not a segmentation error).

**The forecast gate** (``FORECAST_LEAD_S``, ``FORECAST_MAX_S``): for each procedure and event (the
−40 °C zone covers the target plus 5 mm; the ice reaches each critical structure), the forecast
issued at least 2 minutes before the event — for an event that does not happen within the
protocol, at least 2 minutes before the protocol's end — is within 60 s of the truth's time.
Events that do not happen within the protocol count as happening at its end (1680 s): a forecast
of 1670 s for ice that never reaches the bowel is 10 s off, a forecast of "never" for ice that
reaches it at 1594 s is 86 s off; the operator's question is what happens before the freeze ends.
Why 2 minutes: it is the time an operator needs to act on a forecast (stop or shorten the freeze,
start warming or a protective measure) and to see it confirmed on the next real-time slices; a
forecast 15 minutes ahead, issued before the thaw, extrapolates through a thaw and a refreeze no
image has shown yet and is reported, not gated (every forecast issued at 600 s is printed). The
rule was set from this reasoning and then checked on the tuning seeds before any validation or
stress seed ran with these image times; it is not the rule that makes the validation pass (the
previous run's 600 s misses, seeds 4 and 20, were known). Near a threshold a point forecast flips
(ice that reaches a structure 30 s before the end, coverage that stops at 98 %): the forecast's
chance of the event (1 − ``p_never``) is reported against what happened, not gated.

**Near a threshold the gate reads where the quantity ends** (``NEAR_THRESHOLD``): when the truth's
coverage ends within 1 percentage point of the 99 % required, or a structure's lowest temperature
within 1 °C of 0 °C, the event's time is discontinuous in the field (tuning seed 103: the truth
ends at 98.9 % coverage, "never"; a field 0.1 mm colder covers 99 % during the first freeze), so
the gated forecast passes when its time is within 60 s or the truth's end value lies within the
forecast's own p10–p90 of it (the forecast said the outcome was on the edge). This second clause
was added after the tuning seeds showed seed 103, before any validation or stress seed ran with
these image times; the output counts how many gated forecasts pass by time alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics, zone_on_image
from CryoAblationLogic.analysis.ice_correction import CorrectionSettings
from CryoAblationLogic.analysis.ice_observation import IceSettings, ice_on_grid, observe_ice
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io import mr_synthesis as mr
from CryoAblationLogic.live.synthetic import SyntheticSettings, perturbed_truth, plan_case

PLAN_SPACING_MM = 2.0
LETHAL_C = -40.0
VOLUME_SPACING_MM = 1.5
IMAGE_TIMES_S = (600.0, 1200.0, 1380.0, 1560.0, 1680.0)  # end of the 1st freeze, through the 2nd
BREATHING_AMPLITUDE_MM = 3.0
EXTRA_SLICE_SEEDS = 10_000_000  # the extra slices' noise and breathing seeds start here
SNR_RANGE = (10.0, 20.0)


@dataclass(frozen=True)
class ProcedureSet:
    """Seeds and the size of the truth's departures from the plan (see the module docstring)."""

    name: str
    seeds: tuple[int, ...]
    property_spread: float  # conductivities within 1 ± this, perfusion within 1 ± twice this
    insertion_error_mm: float  # RMS tip displacement of each probe
    insertion_error_deg: float  # RMS shaft tilt
    # the real-time planes through the probes as inserted (seen on the confirmation scan), not as
    # planned: a plane placed on the plan misses shafts 5 mm / 6° off, and with them the ice seed
    planes_on_inserted: bool = False


# Seed 2 was a validation seed until its slices were inspected to fix the handling of shafts
# moving through the slice; it then joined the tuning seeds and seed 21 took its place.
TUNING = ProcedureSet("tuning", (2, 101, 102, 103), 0.3, 2.0, 3.0)
VALIDATION = ProcedureSet("validation", (1, *range(3, 22)), 0.3, 2.0, 3.0)  # 20 procedures
STRESS = ProcedureSet("stress", tuple(range(201, 221)), 0.4, 5.0, 6.0, planes_on_inserted=True)  # 20
# after the stress run's misses (210, 213) were known: where the correction of plans ≥ 2 mm off is tuned
STRESS_TUNING = replace(STRESS, name="stress-tuning", seeds=tuple(range(301, 341)))  # 40
SETS = {s.name: s for s in (TUNING, VALIDATION, STRESS, STRESS_TUNING)}
PROPERTY_SPREAD = VALIDATION.property_spread
INSERTION_ERROR_MM = VALIDATION.insertion_error_mm
INSERTION_ERROR_DEG = VALIDATION.insertion_error_deg
TUNING_SEEDS = TUNING.seeds
VALIDATION_SEEDS = VALIDATION.seeds
QUICK_SEEDS = (1, 4)  # the default test run (one with probes in the baseline, one without)
DICE_VOLUME_MIN = 0.90
DICE_SLICE_MIN = 0.85


@dataclass
class ImageRow:
    seed: int
    time_s: float
    kind: str  # "volume" or the slice's name
    snr: float
    probes_in_baseline: bool
    dice: float
    mean_surface_mm: float | None
    max_surface_mm: float | None
    truth_size: float  # ml (volume) or cm² (slice)
    registration_error_mm: float  # |registered − true| motion (in plane for slices)


@lru_cache(maxsize=1)
def plan():
    return plan_case(PLAN_SPACING_MM)


def truth_case(seed: int, procedure_set: ProcedureSet = VALIDATION):
    settings = SyntheticSettings(
        spacing_mm=PLAN_SPACING_MM,
        seed=seed,
        property_spread=procedure_set.property_spread,
        insertion_error_mm=procedure_set.insertion_error_mm,
        insertion_error_deg=procedure_set.insertion_error_deg,
    )
    return perturbed_truth(plan(), settings)


@dataclass
class TruthRun:
    """One solver run of a procedure's truth: its fields at the image times and, when run to the
    protocol's end, its minimum temperature and forecast events (the corrector's 30 s cadence)."""

    case: object
    fields: dict[float, np.ndarray]
    min_temperature: np.ndarray | None
    events: dict[str, float] | None  # event → time in s (inf: not within the protocol)
    # where each event's quantity ends: coverage of target + margin, a structure's lowest °C
    final_values: dict[str, float] | None = None


def forecast_times_s(case) -> np.ndarray:
    """The corrector's cadence (``IceCorrector.prepare``): events are found on it for every run."""
    from CryoAblationLogic.analysis.ice_correction import CorrectionSettings

    every = CorrectionSettings().snapshot_every_s
    return np.linspace(0.0, case.duration_s, max(1, math.ceil(case.duration_s / every - 1e-9)) + 1)


@lru_cache(maxsize=1)
def forecast_regions():
    from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, ForecastRegions

    return ForecastRegions.of(plan(), CorrectionSettings().target_margin_mm)


def run_case(case, image_times_s=(), to_end: bool = True) -> TruthRun:
    """One run of ``case`` stopping at the forecast cadence and the image times (the images'
    fields and the forecasts' series come from the same run; it used to be run twice)."""
    # numba kernels compile or load on first use
    from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, event_times
    from CryoAblationLogic.physics.simulation import Simulation

    cadence = forecast_times_s(case)
    until = case.duration_s if to_end else max(image_times_s)
    stops = sorted({float(t) for t in cadence if t <= until + 1e-9} | {float(t) for t in image_times_s})
    regions = forecast_regions()
    simulation = Simulation(case)
    fields, series = {}, []
    for t in stops:
        simulation.advance_to(t)
        if t in image_times_s:
            fields[t] = simulation.temperature_c
        if to_end:
            series.append(regions.series(simulation.min_temperature_c, LETHAL_C))
    if not to_end:
        return TruthRun(case, fields, None, None)
    on_cadence = np.isin(np.asarray(stops), cadence)
    events = event_times(
        np.asarray(stops)[on_cadence],
        np.asarray(series)[on_cadence],
        regions,
        CorrectionSettings().coverage_required,
    )
    final_values = {e: float(v) for e, v in zip(regions.events(), series[-1], strict=True)}
    return TruthRun(case, fields, simulation.min_temperature_c, events, final_values)


def all_times(times_s, slice_times_s=()) -> tuple[float, ...]:
    """The truth run's stops for images at ``times_s`` and slices also at ``slice_times_s``."""
    return tuple(sorted({float(t) for t in (*times_s, *slice_times_s)}))


@lru_cache(maxsize=2)
def truth_run(seed: int, procedure_set: ProcedureSet = VALIDATION, times_s=IMAGE_TIMES_S, to_end=True):
    return run_case(truth_case(seed, procedure_set), tuple(times_s), to_end)


def procedure_images(
    seed: int,
    settings: IceSettings | None = None,
    slices: bool = True,
    times_s=IMAGE_TIMES_S,
    procedure_set: ProcedureSet = VALIDATION,
    to_end: bool = True,
    slice_times_s=(),
):
    """Image the truth of procedure ``seed`` at each time and observe the ice: yields
    (time_s, name, observation, image, shift_mm, truth field, truth case, snr, probes_in_baseline).
    ``to_end``: run the truth to the protocol's end (for the correction's scores).
    ``slice_times_s``: further times at which only the real-time slices are taken."""
    extra = tuple(t for t in all_times(slice_times_s) if t not in set(times_s)) if slices else ()
    run = truth_run(seed, procedure_set, all_times(times_s, extra), to_end)
    truth, fields = run.case, run.fields
    grid = truth.grid
    rng = np.random.default_rng(seed + 7919)
    snr = float(rng.uniform(*SNR_RANGE))
    probes_in_baseline = seed % 2 == 1
    settings = replace(settings or IceSettings(), probes_in_baseline=probes_in_baseline)
    warm = np.full(grid.size, truth.initial_temperature_c)
    baseline_probes = truth.probes if probes_in_baseline else []
    volume_grid = Grid(
        grid.origin_mm,
        (VOLUME_SPACING_MM,) * 3,
        tuple(
            int((n - 1) * s // VOLUME_SPACING_MM) + 1 for n, s in zip(grid.size, grid.spacing_mm, strict=True)
        ),
    )
    # placed on the plan, as the operator does; on the probes as inserted where they are far off
    planes = mr.probe_cluster_planes(truth.probes if procedure_set.planes_on_inserted else plan().probes)
    baselines = {
        "volume": mr.render_volume(warm, grid, baseline_probes, grid=volume_grid, snr=snr, seed=seed * 10)
    }
    if slices:
        for n, plane in enumerate(planes):
            baselines[plane.name] = mr.render_slice(
                plane, warm, grid, baseline_probes, snr=snr, seed=seed * 10 + 1 + n
            )
    # the image times' seeds as before the extra slices existed; the extra slices' in a range apart
    numbered = [(t, seed * 1000 + i * 10) for i, t in enumerate(times_s)]
    numbered += [(t, EXTRA_SLICE_SEEDS + seed * 10_000 + 10 * i) for i, t in enumerate(extra)]
    for time_s, image_key in sorted(numbered):
        field = fields[time_s]
        for n, (name, baseline) in enumerate(baselines.items()):
            if name == "volume" and time_s in extra:
                continue
            shift = mr.breathing_shift(image_key + n, BREATHING_AMPLITUDE_MM)
            image_seed = image_key + 100 + n
            if name == "volume":
                image = mr.render_volume(
                    field, grid, truth.probes, grid=volume_grid, shift_mm=shift, snr=snr, seed=image_seed
                )
            else:
                plane = next(p for p in planes if p.name == name)
                image = mr.render_slice(
                    plane, field, grid, truth.probes, shift_mm=shift, snr=snr, seed=image_seed
                )
            observation = observe_ice(
                baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, truth.probes, settings
            )
            yield time_s, name, observation, image, shift, field, truth, snr, probes_in_baseline


def run_procedure(
    seed: int,
    settings: IceSettings | None = None,
    slices: bool = True,
    times_s=IMAGE_TIMES_S,
    on_image=None,
    procedure_set: ProcedureSet = VALIDATION,
    slice_times_s=(),
) -> list[ImageRow]:
    """Image the truth of procedure ``seed`` at each time, observe the ice, compare with the truth.
    ``on_image(time_s, name, observation)`` sees every observation (the correction's input); the
    truth runs to the protocol's end only then."""
    rows: list[ImageRow] = []
    to_end = on_image is not None
    images = procedure_images(seed, settings, slices, times_s, procedure_set, to_end, slice_times_s)
    for time_s, name, observation, image, shift, field, truth, snr, probes_in_baseline in images:
        if on_image is not None:
            on_image(time_s, name, observation)
        grid = truth.grid
        if name == "volume":
            observed = ice_on_grid(observation, grid).astype(bool)
            target = field <= 0.0
            spacing = grid.spacing_mm
            error = float(np.linalg.norm(observation.motion_mm - shift))
            size = float(np.count_nonzero(target)) * grid.voxel_volume_mm3 / 1000.0
        else:
            # The truth at the tissue the slice imaged: the body moved by +shift.
            imaged = np.eye(4)
            imaged[:3, 3] = -shift
            target = zone_on_image(field, grid, replace(observation, image_to_plan=imaged))
            observed = observation.label.astype(bool)
            spacing = observation.spacing_mm
            normal = image.ijk_to_ras[:3, 2] / np.linalg.norm(image.ijk_to_ras[:3, 2])
            in_plane = (observation.motion_mm - shift) - normal * ((observation.motion_mm - shift) @ normal)
            error = float(np.linalg.norm(in_plane))
            size = float(np.count_nonzero(target)) * float(np.prod(spacing[:2])) / 100.0
        metrics = overlap_metrics(observed, target, spacing)
        rows.append(
            ImageRow(
                seed=seed,
                time_s=time_s,
                kind=name,
                snr=snr,
                probes_in_baseline=probes_in_baseline,
                dice=float(metrics["dice"] or 0.0),
                mean_surface_mm=metrics["mean_surface_distance_mm"],
                max_surface_mm=metrics["max_surface_distance_mm"],
                truth_size=size,
                registration_error_mm=error,
            )
        )
    return rows


# --- the correction (ice_correction.py) -------------------------------------------------------
# Correction settings (CorrectionSettings defaults: ensemble seed, observation error, relaxation)
# were chosen on TUNING_SEEDS only, the ray's outer edge and the slices' edge error
# (slice_edge_sigma_mm) on STRESS_TUNING, the re-centring rule (recentre_generations,
# recentre_shift) on STRESS_TUNING's plans ≥ 2 mm off and TUNING, the unresolved ice's radius
# (unresolved_radius_mm) on TUNING at a scanner's cadence (docs/live-link.md); the tables report
# VALIDATION_SEEDS and STRESS seeds.
CORRECTION_MEMBERS = 48
MSD_CORRECTED_MAX_MM = 1.0  # corrected −40 °C surface, where the uncorrected is ≥ 2 mm off
MSD_UNCORRECTED_SELECT_MM = 2.0
FORECAST_MAX_S = 60.0
FORECAST_LEAD_S = 120.0  # the gated forecast: the last one issued at least this long before the event
COVERAGE_REQUIRED = CorrectionSettings().coverage_required  # the coverage event's threshold (99 %)
# Near the threshold an event's time flips between "at t" and "never" (see the module docstring):
# 1 percentage point of the 2312 voxels of target + 5 mm (a layer under 0.1 mm on its surface);
# 1 °C of a structure's lowest temperature (about 0.25 mm of tissue at the ice edge's ~4 °C/mm).
NEAR_THRESHOLD = {"coverage": 0.01, "lowest_c": 1.0}
LEAD_BINS_S = (0.0, 120.0, 300.0, 600.0, math.inf)  # the table of error against lead time
CHANCE_BINS = (0.0, 0.1, 0.5, 0.9, 1.0)  # the calibration table of the chance of an event


def with_settings(settings: CorrectionSettings, items) -> CorrectionSettings:
    """``settings`` with each ``KEY=VALUE`` of ``items`` set (a diagnostic's ``--setting``), the
    value of the type the setting has."""
    for item in items:
        key, value = item.split("=", 1)
        settings = replace(settings, **{key: type(getattr(settings, key))(value)})
    return settings


def correction_settings(procedure_set: ProcedureSet = VALIDATION, members: int = CORRECTION_MEMBERS):
    """The corrector's prior as the set states it: insertion errors and property spreads of the
    set's truths (for VALIDATION and TUNING these are the ``CorrectionSettings`` defaults)."""
    from CryoAblationLogic.analysis.ice_correction import CorrectionSettings

    return CorrectionSettings(
        members=members,
        insertion_error_mm=procedure_set.insertion_error_mm,
        insertion_error_deg=procedure_set.insertion_error_deg,
        conductivity_spread=procedure_set.property_spread,
        perfusion_spread=2 * procedure_set.property_spread,
    )


def scaled_run(case, cooling: dict[str, float], times_s) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """A run of ``case`` with these cooling scales (the ensemble's members' solver): the 0 °C zone
    at each of ``times_s`` (label maps on the plan grid) and the minimum temperature at its end."""
    # numba kernels compile or load on first use
    from CryoAblationLogic.physics.ensemble import ScaledCoolingSimulation

    simulation = ScaledCoolingSimulation(case, cooling)
    zones = {}
    for t in times_s:
        simulation.advance_to(t)
        zones[t] = (simulation.temperature_c <= 0.0).astype(np.uint8)
    simulation.advance_to(case.duration_s)
    return zones, simulation.min_temperature_c


@lru_cache(maxsize=2)
def _prepared(settings):
    from CryoAblationLogic.analysis.ice_correction import IceCorrector

    corrector = IceCorrector(plan(), settings)
    corrector.prepare()
    return corrector


def prepared_corrector(members: int = CORRECTION_MEMBERS, procedure_set: ProcedureSet = VALIDATION):
    """The plan's ensemble for the set's prior, run once and shared by all its procedures (keyed by
    the settings: calling with or without ``members`` used to prepare the same ensemble twice)."""
    return _prepared(correction_settings(procedure_set, members))


@lru_cache(maxsize=1)
def plan_run() -> TruthRun:
    """The uncorrected prediction: the plan's run, its minimum temperature and its events."""
    return run_case(plan())


@dataclass
class ForecastRow:
    """One forecast of one event, issued after the images at ``issued_s`` (times in s; inf:
    not within the protocol; errors censored at the protocol's end, see the module docstring)."""

    seed: int
    event: str
    issued_s: float
    truth_s: float
    plan_s: float
    p10: float
    p50: float
    p90: float
    chance: float  # 1 − p_never: the corrected forecast's chance that it happens within the protocol
    end_s: float
    # where the event's quantity ends (coverage share or lowest °C): truth, plan, corrected p10/p50/p90
    truth_value: float = math.nan
    plan_value: float = math.nan
    value_band: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    @property
    def lead_s(self) -> float:
        """Event time − issue time (the protocol's end for an event that does not happen)."""
        return min(self.truth_s, self.end_s) - self.issued_s

    def error_s(self, forecast: float) -> float:
        return abs(min(forecast, self.end_s) - min(self.truth_s, self.end_s))

    @property
    def error_corrected_s(self) -> float:
        return self.error_s(self.p50)

    @property
    def error_plan_s(self) -> float:
        return self.error_s(self.plan_s)

    def agrees(self, forecast: float) -> bool:
        """Both say it happens within the protocol, or both say it does not."""
        return math.isfinite(forecast) == math.isfinite(self.truth_s)

    @property
    def in_band(self) -> bool:
        return self.p10 - 1e-6 <= self.truth_s <= self.p90 + 1e-6 or (
            math.isinf(self.truth_s) and math.isinf(self.p90)
        )

    @property
    def near_threshold(self) -> bool:
        """The truth's quantity ends within ``NEAR_THRESHOLD`` of the event's threshold."""
        if self.event == "lethal_covers_target":
            return abs(self.truth_value - COVERAGE_REQUIRED) <= NEAR_THRESHOLD["coverage"]
        return abs(self.truth_value - 0.0) <= NEAR_THRESHOLD["lowest_c"]

    @property
    def value_in_band(self) -> bool:
        """The truth's end value lies within the forecast's p10–p90 of it."""
        return self.value_band[0] - 1e-9 <= self.truth_value <= self.value_band[2] + 1e-9

    @property
    def passes(self) -> bool:
        """The gate: within ``FORECAST_MAX_S``; near the threshold, the end value in the band."""
        if self.error_corrected_s <= FORECAST_MAX_S:
            return True
        return self.near_threshold and self.value_in_band


@dataclass
class CorrectionRow:
    seed: int
    msd_uncorrected_mm: float  # −40 °C surface at the end of the second freeze against the truth's
    msd_corrected_mm: float
    in_band: float  # fraction of the truth's −40 °C surface voxels whose truth lies in the p10–p90 band
    forecasts: list[ForecastRow]  # every event's forecast from every image time
    truth_events_s: dict[str, float]
    update_s_max: float
    parameters: dict
    truth_final_values: dict[str, float] | None = None  # where each event's quantity ends in the truth

    def issued_at(self, time_s: float) -> dict[str, ForecastRow]:
        return {f.event: f for f in self.forecasts if f.issued_s == time_s}

    def gated(self) -> dict[str, ForecastRow | None]:
        """Each event's gated forecast: the last issued at least ``FORECAST_LEAD_S`` before it
        (None: no image was taken that early, e.g. an event during the first freeze)."""
        out: dict[str, ForecastRow | None] = {}
        for event in self.truth_events_s:
            early = [f for f in self.forecasts if f.event == event and f.lead_s >= FORECAST_LEAD_S - 1e-6]
            out[event] = max(early, key=lambda f: f.issued_s) if early else None
        return out

    def forecasts_ok(self) -> bool:
        return all(f is None or f.passes for f in self.gated().values())


_END_KEY = {"lethal_covers_target": "coverage_at_end", "ice_reaches": "lowest_c_at_end"}


def _time(value) -> float:
    return math.inf if value is None else float(value)


class Correcting:
    """``on_image`` for :func:`run_procedure`: each image assimilated in order, starting from the
    shared plan's ensemble (reset), re-centred where its rule asks (``recentring_due``), in line,
    as a replay does (a live session prepares the next generation in its own process meanwhile).
    ``corrections``: one per image; ``recentred``: (time_s, posterior shift) of each re-centring."""

    def __init__(self, corrector):
        corrector.reset()
        self.corrector = corrector
        self.corrections: list = []
        self.recentred: list[tuple[float, float]] = []

    def __call__(self, time_s: float, name: str, observation) -> None:
        self.corrections.append(self.corrector.update(time_s, observation))
        if self.corrector.recentring_due():
            self.recentred.append((time_s, self.corrector.posterior_shift()))
            self.corrector = self.corrector.recentre_now()


def run_correction(
    seed: int,
    members: int = CORRECTION_MEMBERS,
    procedure_set: ProcedureSet = VALIDATION,
    slice_times_s=(),
) -> CorrectionRow:
    """The correction over procedure ``seed``: every image assimilated in order."""
    correcting = Correcting(prepared_corrector(members, procedure_set))
    run_procedure(seed, on_image=correcting, procedure_set=procedure_set, slice_times_s=slice_times_s)
    truth = truth_run(seed, procedure_set, all_times(IMAGE_TIMES_S, slice_times_s), True)  # the images' run
    return correction_row(seed, correcting.corrections, procedure_set, truth)


def correction_row(
    seed: int, corrections, procedure_set: ProcedureSet = VALIDATION, truth: TruthRun | None = None
) -> CorrectionRow:
    """Score the corrections of procedure ``seed``: the forecasts issued after the last image of
    each image time, the −40 °C surface after the last image, against the truth (``truth``: its
    run to the end, if already at hand)."""
    if truth is None:
        truth = truth_run(seed, procedure_set, IMAGE_TIMES_S, True)
    planned = plan_run()
    truth_min, truth_events = truth.min_temperature, truth.events
    final = corrections[-1]
    spacing = plan().grid.spacing_mm
    end = plan().duration_s
    truth_zone = truth_min <= LETHAL_C
    unc = overlap_metrics(planned.min_temperature <= LETHAL_C, truth_zone, spacing)[
        "mean_surface_distance_mm"
    ]
    cor = overlap_metrics(final.min_temperature[50.0] <= LETHAL_C, truth_zone, spacing)[
        "mean_surface_distance_mm"
    ]
    near = np.abs(truth_min - LETHAL_C) <= 5.0  # voxels near the truth's −40 °C surface
    in_band = (final.min_temperature[10.0][near] <= truth_min[near] + 1e-6) & (
        truth_min[near] <= final.min_temperature[90.0][near] + 1e-6
    )
    last_of_time = {c.time_s: c for c in corrections}  # the last image of each time
    forecasts = [
        ForecastRow(
            seed=seed,
            event=event,
            issued_s=time_s,
            truth_s=truth_events[event],
            plan_s=planned.events[event],
            p10=_time(f["p10"]),
            p50=_time(f["p50"]),
            p90=_time(f["p90"]),
            chance=1.0 - f["p_never"],
            end_s=end,
            truth_value=truth.final_values[event],
            plan_value=planned.final_values[event],
            value_band=tuple(f[_END_KEY[event.split(":")[0]]][f"p{q:g}"] for q in (10, 50, 90)),
        )
        for time_s, correction in sorted(last_of_time.items())
        for event, f in correction.forecasts.items()
    ]
    return CorrectionRow(
        seed=seed,
        msd_uncorrected_mm=float(unc),
        msd_corrected_mm=float(cor),
        in_band=float(in_band.mean()) if in_band.size else 1.0,
        forecasts=forecasts,
        truth_events_s=truth_events,
        update_s_max=max(c.update_s for c in corrections),
        parameters=final.parameters,
        truth_final_values=truth.final_values,
    )
