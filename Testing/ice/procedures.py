"""Seeded synthetic procedures for validating the observed ice (issue 14).

Each procedure is the demo plan (``io/demo_case.py``, three probes, 10-8-10) on a 2 mm grid whose
"truth" run has tissue properties spread ±30 % and insertion errors of 2 mm / 3°
(``live/synthetic.perturbed_truth``). At the end of each freeze (600 s and 1680 s) the scanner
images it: a 3-D volume at 1.5 mm and the three real-time slices through the probe cluster
(1.5 × 1.5 mm, 5 mm thick), each with its own breathing shift (up to 3 mm, mostly S–I) against a
baseline at the reference position, Rician noise at an SNR drawn in [10, 20]; odd seeds have the
probes in the baseline, even seeds a baseline taken before insertion (exclusion radius around the
shafts). The probes the segmentation is given are the true ones (the console reports their poses).

Observed ice is compared with the truth's 0 °C zone: for a volume on the plan grid (after the
registration maps it into the plan frame, so registration errors count), for a slice in its own
plane against the truth at the tissue the slice actually imaged (motion across a slice's plane is
invisible in it; it is the scanner's cut, not a segmentation error).

Segmentation settings (``IceSettings``) were tuned on ``TUNING_SEEDS`` only; ``VALIDATION_SEEDS``
were never looked at while tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics, zone_on_image
from CryoAblationLogic.analysis.ice_observation import IceSettings, ice_on_grid, observe_ice
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io import mr_synthesis as mr
from CryoAblationLogic.live.synthetic import SyntheticSettings, perturbed_truth, plan_case

PLAN_SPACING_MM = 2.0
LETHAL_C = -40.0
VOLUME_SPACING_MM = 1.5
IMAGE_TIMES_S = (600.0, 1680.0)  # the end of each freeze
PROPERTY_SPREAD = 0.3
INSERTION_ERROR_MM = 2.0
INSERTION_ERROR_DEG = 3.0
BREATHING_AMPLITUDE_MM = 3.0
SNR_RANGE = (10.0, 20.0)
# Seed 2 was a validation seed until its slices were inspected to fix the handling of shafts
# moving through the slice; it then joined the tuning seeds and seed 21 took its place.
TUNING_SEEDS = (2, 101, 102, 103)
VALIDATION_SEEDS = (1, *range(3, 22))  # 20 procedures
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


def truth_case(seed: int):
    settings = SyntheticSettings(
        spacing_mm=PLAN_SPACING_MM,
        seed=seed,
        property_spread=PROPERTY_SPREAD,
        insertion_error_mm=INSERTION_ERROR_MM,
        insertion_error_deg=INSERTION_ERROR_DEG,
    )
    return perturbed_truth(plan(), settings)


def truth_fields(seed: int, times_s=IMAGE_TIMES_S) -> tuple[object, dict[float, np.ndarray]]:
    """The truth case and its temperature fields at ``times_s`` (the run stops at the last)."""
    # numba kernels compile or load on first use
    from CryoAblationLogic.physics.simulation import coarsen_case, simulate

    truth = truth_case(seed)
    if max(times_s) < truth.duration_s:
        truth = coarsen_case(truth, PLAN_SPACING_MM, duration_s=max(times_s))  # same grid, shorter run
    result = simulate(truth, snapshot_times_s=times_s)
    return truth, result.snapshots


def procedure_images(
    seed: int, settings: IceSettings | None = None, slices: bool = True, times_s=IMAGE_TIMES_S
):
    """Image the truth of procedure ``seed`` at each time and observe the ice: yields
    (time_s, name, observation, image, shift_mm, truth field, truth case, snr, probes_in_baseline)."""
    truth, fields = truth_fields(seed, times_s)
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
    planes = mr.probe_cluster_planes(plan().probes)  # placed on the plan, as the operator does
    baselines = {
        "volume": mr.render_volume(warm, grid, baseline_probes, grid=volume_grid, snr=snr, seed=seed * 10)
    }
    if slices:
        for n, plane in enumerate(planes):
            baselines[plane.name] = mr.render_slice(
                plane, warm, grid, baseline_probes, snr=snr, seed=seed * 10 + 1 + n
            )
    for t_index, time_s in enumerate(times_s):
        field = fields[time_s]
        for n, (name, baseline) in enumerate(baselines.items()):
            shift = mr.breathing_shift(seed * 1000 + t_index * 10 + n, BREATHING_AMPLITUDE_MM)
            image_seed = seed * 1000 + 100 + t_index * 10 + n
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
) -> list[ImageRow]:
    """Image the truth of procedure ``seed`` at each time, observe the ice, compare with the truth.
    ``on_image(time_s, name, observation)`` sees every observation (the correction's input)."""
    rows: list[ImageRow] = []
    for time_s, name, observation, image, shift, field, truth, snr, probes_in_baseline in procedure_images(
        seed, settings, slices, times_s
    ):
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
# were chosen on TUNING_SEEDS only; the table reports VALIDATION_SEEDS.
CORRECTION_MEMBERS = 48
MSD_CORRECTED_MAX_MM = 1.0  # corrected −40 °C surface, where the uncorrected is ≥ 2 mm off
MSD_UNCORRECTED_SELECT_MM = 2.0
FORECAST_MAX_S = 60.0


@lru_cache(maxsize=1)
def prepared_corrector(members: int = CORRECTION_MEMBERS):
    """The plan's ensemble, run once and shared by all procedures (they share the plan)."""
    from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, IceCorrector

    corrector = IceCorrector(plan(), CorrectionSettings(members=members))
    corrector.prepare()
    return corrector


@lru_cache(maxsize=2)
def plan_outcome(members: int = CORRECTION_MEMBERS):
    """The uncorrected prediction: the plan's run, its −40 °C min field and its event times."""
    corrector = prepared_corrector(members)
    return case_outcome(plan(), corrector)


def case_outcome(case, corrector) -> tuple[np.ndarray, dict[str, float]]:
    """Minimum temperature at the end of ``case`` and its forecast events (the corrector's cadence)."""
    # numba kernels compile or load on first use
    from CryoAblationLogic.analysis.ice_correction import event_times
    from CryoAblationLogic.physics.simulation import Simulation

    simulation = Simulation(case)
    series = []
    for t in corrector.times_s:
        simulation.advance_to(float(t))
        series.append(corrector.regions.series(simulation.min_temperature_c, corrector.settings.lethal_c))
    events = event_times(
        corrector.times_s, np.asarray(series), corrector.regions, corrector.settings.coverage_required
    )
    return simulation.min_temperature_c, events


@dataclass
class CorrectionRow:
    seed: int
    msd_uncorrected_mm: float  # −40 °C surface at the end of the second freeze against the truth's
    msd_corrected_mm: float
    in_band: float  # fraction of the truth's −40 °C surface voxels whose truth lies in the p10–p90 band
    forecast_errors_s: dict[str, float | None]  # forecast issued after the first freeze's images − truth
    uncorrected_errors_s: dict[str, float | None]
    truth_events_s: dict[str, float]
    update_s_max: float
    parameters: dict


def _event_error(forecast: float | None, truth: float) -> float | None:
    """|forecast − truth| in s; 0 when both say "never"; None (a miss) when only one does."""
    f = math.inf if forecast is None else forecast
    if math.isinf(f) and math.isinf(truth):
        return 0.0
    if math.isinf(f) or math.isinf(truth):
        return None
    return abs(f - truth)


def run_correction(seed: int, members: int = CORRECTION_MEMBERS) -> CorrectionRow:
    """The correction over procedure ``seed``: every image assimilated in order."""
    corrector = prepared_corrector(members)
    corrector.reset()
    corrections = []
    run_procedure(seed, on_image=lambda t, name, obs: corrections.append(corrector.update(t, obs)))
    return correction_row(seed, corrections, members)


def correction_row(seed: int, corrections, members: int = CORRECTION_MEMBERS) -> CorrectionRow:
    """Score the corrections of procedure ``seed``: the forecast issued after the last image of
    the first freeze, the −40 °C surface after the last image, against the truth."""
    corrector = prepared_corrector(members)
    truth_min, truth_events = case_outcome(truth_case(seed), corrector)
    plan_min, plan_events = plan_outcome(members)
    final = corrections[-1]
    first = [c for c in corrections if c.time_s <= IMAGE_TIMES_S[0]][-1]
    spacing = plan().grid.spacing_mm
    truth_zone = truth_min <= LETHAL_C
    unc = overlap_metrics(plan_min <= LETHAL_C, truth_zone, spacing)["mean_surface_distance_mm"]
    cor = overlap_metrics(final.min_temperature[50.0] <= LETHAL_C, truth_zone, spacing)[
        "mean_surface_distance_mm"
    ]
    near = np.abs(truth_min - LETHAL_C) <= 5.0  # voxels near the truth's −40 °C surface
    in_band = (final.min_temperature[10.0][near] <= truth_min[near] + 1e-6) & (
        truth_min[near] <= final.min_temperature[90.0][near] + 1e-6
    )
    return CorrectionRow(
        seed=seed,
        msd_uncorrected_mm=float(unc),
        msd_corrected_mm=float(cor),
        in_band=float(in_band.mean()) if in_band.size else 1.0,
        forecast_errors_s={k: _event_error(v["p50"], truth_events[k]) for k, v in first.forecasts.items()},
        uncorrected_errors_s={
            k: _event_error(None if math.isinf(v) else v, truth_events[k]) for k, v in plan_events.items()
        },
        truth_events_s=truth_events,
        update_s_max=max(c.update_s for c in corrections),
        parameters=final.parameters,
    )
