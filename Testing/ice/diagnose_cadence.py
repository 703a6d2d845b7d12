"""The correction at a scanner's own cadence (issue 14), on the tuning seeds only (``--set tuning``
or ``stress-tuning``; never the validation or stress seeds: they check).

The validation images a procedure five times (``procedures.IMAGE_TIMES_S``); a scanner sends the
three real-time slices every 10–30 s and the live monitor assimilates every one. This replays a
procedure with the slices also every ``--every`` s from ``--from`` to ``--until`` s (the volumes at
the validation's times) and prints, per seed, the corrected −40 °C mean surface distance from the
truth's at the end (mm), the share of the truth's −40 °C surface within the p10–p90 band, the
gated forecasts that miss and the re-centrings. The truth's run and the images' segmentation do
not depend on the corrector: they are kept (``--cache DIR``) and the corrector's settings
(``--setting KEY=VALUE``) replay them in seconds.

    python Testing/ice/diagnose_cadence.py [--set tuning|stress-tuning] [--every S] [--from S]
        [--until S] [--cache DIR] [--setting KEY=VALUE ...] [SEED ...]
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

SETS = {"tuning": pr.TUNING, "stress-tuning": pr.STRESS_TUNING}  # never the checking sets


def recorded(seed: int, procedure_set, every_s: float, cache: Path) -> dict:
    """The seed's observations with slices every ``every_s`` s from then to the protocol's end,
    and its truth's run without its fields (what the scores read)."""
    path = cache / f"{procedure_set.name}-{seed}-every-{every_s:g}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    extra = slice_times(every_s)
    seen = []
    keep = lambda t, n, o: seen.append((t, n, o))  # noqa: E731
    pr.run_procedure(seed, on_image=keep, procedure_set=procedure_set, slice_times_s=extra)
    run = pr.truth_run(seed, procedure_set, pr.all_times(pr.IMAGE_TIMES_S, extra), True)
    record = {"images": seen, "truth": replace(run, fields={})}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(record))
    return record


def slice_times(every_s: float) -> tuple[float, ...]:
    if every_s <= 0:
        return ()
    end = pr.plan().duration_s
    return tuple(float(t) for t in np.arange(every_s, end + 1e-6, every_s))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=list(SETS), default="tuning")
    parser.add_argument("--every", type=float, default=20.0, help="s between a plane's slices (0: none)")
    parser.add_argument("--from", dest="start", type=float, default=0.0, help="first extra slice time, s")
    parser.add_argument("--until", type=float, default=np.inf, help="last extra slice time, s")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cryo-cadence"))
    parser.add_argument("--setting", action="append", default=[], help="KEY=VALUE of CorrectionSettings")
    parser.add_argument("seeds", nargs="*", type=int)
    args = parser.parse_args(argv)
    procedure_set = SETS[args.set]
    settings = pr.correction_settings(procedure_set)
    settings = pr.with_settings(settings, args.setting)
    corrector = pr._prepared(settings)
    print(f"slices every {args.every:g} s from {args.start:g} to {args.until:g} s; {settings}", flush=True)
    scores = []
    for seed in args.seeds or list(procedure_set.seeds):
        start = time.perf_counter()
        record = recorded(seed, procedure_set, args.every, args.cache)
        correcting = pr.Correcting(corrector)
        for t, name, observation in record["images"]:
            if t in pr.IMAGE_TIMES_S or args.start <= t <= args.until:
                correcting(t, name, observation)
        truth = record["truth"]
        row = pr.correction_row(seed, correcting.corrections, procedure_set, truth)
        misses = [e for e, f in row.gated().items() if f is not None and not f.passes]
        print(
            f"{seed}: −40 °C plan {row.msd_uncorrected_mm:.2f} mm, corrected {row.msd_corrected_mm:.2f} mm; "
            f"band {row.in_band:.2f}; images {len(correcting.corrections)}; re-centred "
            f"{len(correcting.recentred)}; missed {', '.join(misses) or 'none'} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        scores.append((row.msd_corrected_mm, row.in_band, len(misses)))
    msd, band, missed = np.array(scores).T
    print(
        f"corrected −40 °C median {np.median(msd):.2f} mm, max {msd.max():.2f} mm; band median "
        f"{np.median(band):.2f}, min {band.min():.2f}; gated forecasts missed {int(missed.sum())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
