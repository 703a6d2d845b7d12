"""Diagnosis of issue 14's correction where the plan is 2 mm or more off, on the stress-tuning
seeds only (``procedures.STRESS_TUNING``; never the stress or validation seeds: they check).

The expensive part of a procedure (the truth's run and the images' segmentation) does not depend
on the corrector, so it is done once per seed and kept (``--cache DIR``, pickles); the corrector
variants then replay the same observations in seconds. Prints, per seed, the plan's and the
corrected −40 °C mean surface distance from the truth's (mm) at the end of the second freeze, and
the true and the posterior cluster offset (mm).

    python Testing/ice/diagnose_stress.py [--cache DIR] [--variant NAME ...] [SEED ...]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from dataclasses import replace
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
    parser.add_argument("seeds", nargs="*", type=int)
    args = parser.parse_args(argv)
    procedure_set = SETS[args.set]
    seeds = args.seeds or list(procedure_set.seeds)
    settings = pr.correction_settings(procedure_set, args.members)
    for item in args.setting:
        key, value = item.split("=", 1)
        settings = replace(settings, **{key: type(getattr(settings, key))(value)})
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
        for t, name, obs in record["images"]:
            correcting(t, name, obs)
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
