"""Diagnosis of issue 14's correction where the plan is 2 mm or more off, on the stress-tuning
seeds only (``procedures.STRESS_TUNING``; never the stress or validation seeds: they check).

The expensive part of a procedure (the truth's run and the images' segmentation) does not depend
on the corrector, so it is done once per seed and kept (``--cache DIR``, pickles); the corrector
variants then replay the same observations in seconds. Prints, per seed, the plan's and the
corrected −40 °C mean surface distance from the truth's (mm) at the end of the second freeze, and
the true and the posterior cluster offset (mm).

``--forecasts``: for each critical structure, where the truth's ice comes nearest it (the
structure's coldest voxel in the truth's minimum field), after each 3-D volume: the observed and
the posterior's 0 °C edge along the volume's ray nearest that voxel's direction (mm from the
cluster centre, and the voxel's own distance), the posterior's minimum temperature there
(p10/p50/p90, °C) against the truth's, and the corrected forecast of the ice reaching the
structure (time p50, chance, lowest temperature at the end p10/p50/p90) against the truth's
time. It shows why a forecast of contact misses (issue 14, docs/live-link.md "Forecasts of
contact").

    python Testing/ice/diagnose_stress.py [--set stress-tuning|tuning] [--cache DIR]
        [--setting KEY=VALUE ...] [--forecasts] [SEED ...]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import procedures as pr  # noqa: E402

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics  # noqa: E402
from CryoAblationLogic.analysis.ice_correction import IceCorrector  # noqa: E402

SETS = {"stress-tuning": pr.STRESS_TUNING, "tuning": pr.TUNING}  # never the checking sets


def observations(seed: int, cache: Path, procedure_set: pr.ProcedureSet) -> dict:
    """The seed's observations in order, the truth's minimum field and its true probe tips (all the
    script reads; the truth's run is not repeated)."""
    path = cache / f"{procedure_set.name}-{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    seen = []
    pr.run_procedure(
        seed, on_image=lambda t, name, obs: seen.append((t, name, obs)), procedure_set=procedure_set
    )
    truth = pr.truth_run(seed, procedure_set)
    record = {
        "images": seen,
        "truth_min": truth.min_temperature,
        "truth_tips": [np.asarray(p.tip_mm) for p in truth.case.probes],
    }
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(record))
    return record


def msd(zone: np.ndarray, truth_min: np.ndarray) -> float:
    spacing = pr.plan().grid.spacing_mm
    return float(overlap_metrics(zone, truth_min <= pr.LETHAL_C, spacing)["mean_surface_distance_mm"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=list(SETS), default="stress-tuning")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cryo-stress-tuning"))
    parser.add_argument("--members", type=int, default=pr.CORRECTION_MEMBERS)
    parser.add_argument("--setting", action="append", default=[], help="KEY=VALUE of CorrectionSettings")
    parser.add_argument("--forecasts", action="store_true", help="the contact forecasts, see above")
    parser.add_argument("seeds", nargs="*", type=int)
    args = parser.parse_args(argv)
    procedure_set = SETS[args.set]
    seeds = args.seeds or list(procedure_set.seeds)
    settings = pr.correction_settings(procedure_set, args.members)
    settings = pr.with_settings(settings, args.setting)
    start = time.perf_counter()
    corrector = IceCorrector(pr.plan(), settings)
    corrector.prepare()
    print(f"ensemble of {settings.members}: {time.perf_counter() - start:.0f} s; {settings}", flush=True)
    plan_tips = np.array([p.tip_mm for p in pr.plan().probes])
    plan_zone = pr.plan_run().min_temperature <= pr.LETHAL_C
    print(f"{'seed':>4} {'plan':>6} {'corr':>6} {'true cluster offset':>22} {'posterior':>22} {'upd s':>6}")
    for seed in seeds:
        record = observations(seed, args.cache, procedure_set)
        correcting = pr.Correcting(corrector)  # re-centred in line, as the validation's run is
        nearest = coldest_voxels(record["truth_min"]) if args.forecasts else {}
        lines = []
        for t, name, obs in record["images"]:
            correcting(t, name, obs)
            if name == "volume":
                lines += contact_lines(correcting, t, nearest, record["truth_min"])
        corrections, current = correcting.corrections, correcting.corrector
        shifts = [f"{shift:.1f}@{t:g}" for t, shift in correcting.recentred]
        final = corrections[-1]
        true_offset = np.mean(np.array(record["truth_tips"]) - plan_tips, axis=0)
        post = [final.parameters[f"cluster_offset_{a}"]["mean"] for a in "RAS"]
        print(
            f"{seed:>4} {msd(plan_zone, record['truth_min']):6.2f} "
            f"{msd(final.min_temperature[50.0] <= pr.LETHAL_C, record['truth_min']):6.2f} "
            f"{np.array2string(true_offset, precision=1):>22} "
            f"{np.array2string(np.array(post), precision=1):>22} {max(c.update_s for c in corrections):6.2f}"
            f" {current.posterior_shift():4.1f} {' '.join(shifts)}",
            flush=True,
        )
        if args.forecasts:
            truth = pr.truth_run(seed, procedure_set)
            print("     " + tissue_scales(seed, procedure_set, corrections[-1].parameters))
            for structure in nearest:
                event = f"ice_reaches:{structure}"
                print(
                    f"     {structure}: truth reaches it at {_seconds(truth.events[event])}, its lowest "
                    f"{truth.final_values[event]:.1f} °C at the end"
                )
            print("\n".join(lines), flush=True)
    return 0


def _seconds(value) -> str:
    return "never" if value is None or not np.isfinite(value) else f"{value:.0f} s"


def tissue_scales(seed: int, procedure_set, parameters: dict) -> str:
    """Each material's conductivity and perfusion scale: the truth's against the posterior mean."""
    planned, truth = pr.plan().materials, pr.truth_case(seed, procedure_set).materials
    parts = []
    for material in sorted(truth):
        for kind, attribute in (("conductivity", "k_unfrozen"), ("perfusion", "perfusion")):
            key = f"{kind}_scale:{material}"
            if key in parameters and getattr(planned[material], attribute):
                true = getattr(truth[material], attribute) / getattr(planned[material], attribute)
                parts.append(f"{kind} {material} {true:.2f}/{parameters[key]['mean']:.2f}")
    return "truth/posterior scales: " + ", ".join(parts)


def coldest_voxels(truth_min: np.ndarray) -> dict[str, int]:
    """Each critical structure's coldest voxel in the truth's minimum field (flat index)."""
    regions = pr.forecast_regions()
    flat = truth_min.reshape(-1)
    return {name: int(idx[np.argmin(flat[idx])]) for name, idx in regions.structures.items()}


def contact_lines(correcting, time_s: float, nearest: dict[str, int], truth_min: np.ndarray) -> list[str]:
    """After a volume: observed and posterior edge towards each structure's coldest truth voxel,
    the posterior's minimum temperature there and the corrected contact forecast."""
    corrector, correction = correcting.corrector, correcting.corrections[-1]
    image = corrector.images[-1]
    grid = corrector.grid
    lines = []
    for structure, voxel in nearest.items():
        point = np.asarray(grid.origin_mm) + np.array(np.unravel_index(voxel, grid.size)) * np.asarray(
            grid.spacing_mm
        )
        towards = point - image.origin_mm
        reach = float(np.linalg.norm(towards))
        ray = int(np.argmax(image.directions @ (towards / reach)))
        predicted = corrector._member_edges(
            time_s, corrector._ray_points(image.origin_mm, image.directions[ray : ray + 1])
        )
        posterior = (corrector.coefficients.T @ predicted)[:, 0]
        at_voxel = np.percentile(corrector.posterior(corrector.min_fields[:, voxel]), [10, 50, 90])
        forecast = correction.forecasts[f"ice_reaches:{structure}"]
        lowest = forecast["lowest_c_at_end"]
        lines.append(
            f"     {time_s:6.0f} s gen {corrector.generation} {structure}: edge towards it (cos "
            f"{image.directions[ray] @ towards / reach:.3f}) observed {image.observed_mm[ray]:.1f} mm, "
            f"posterior {posterior.mean():.1f} [{np.percentile(posterior, 10):.1f}, "
            f"{np.percentile(posterior, 90):.1f}], voxel at {reach:.1f} mm; its minimum posterior "
            f"{at_voxel[1]:.1f} [{at_voxel[0]:.1f}, {at_voxel[2]:.1f}] °C, truth "
            f"{truth_min.reshape(-1)[voxel]:.1f} °C; forecast {_seconds(forecast['p50'])}, chance "
            f"{1 - forecast['p_never']:.2f}, lowest at the end {lowest['p50']:.1f} [{lowest['p10']:.1f}, "
            f"{lowest['p90']:.1f}] °C"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
