"""Validation table of the observed ice (issue 14): 20 seeded synthetic procedures, observed ice
against the truth's 0 °C zone (Dice ≥ 0.90 on 3-D volumes, ≥ 0.85 on slices). Exit status 1 when
any image falls short. See ``procedures.py`` for the set-up; expect ~10 minutes on 2 cores.

    .venv/bin/python Testing/ice/verify_ice.py [SEED ...]
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import procedures as pr  # noqa: E402


def main(argv: list[str]) -> int:
    seeds = [int(a) for a in argv] or list(pr.VALIDATION_SEEDS)
    tuned = sorted(set(seeds) & set(pr.TUNING_SEEDS))
    print(
        f"Observed ice vs the truth's 0 °C zone: {len(seeds)} procedures, "
        f"demo plan on a {pr.PLAN_SPACING_MM:g} mm grid, properties ±{pr.PROPERTY_SPREAD:.0%}, "
        f"insertion {pr.INSERTION_ERROR_MM:g} mm / "
        f"{pr.INSERTION_ERROR_DEG:g}°, images at {', '.join(f'{t:g}' for t in pr.IMAGE_TIMES_S)} s, "
        f"breathing ≤ {pr.BREATHING_AMPLITUDE_MM:g} mm, SNR {pr.SNR_RANGE[0]:g}–{pr.SNR_RANGE[1]:g}"
    )
    print(
        f"segmentation tuned on seeds {list(pr.TUNING_SEEDS)}"
        + (f"; CAUTION: {tuned} are among them" if tuned else "")
    )
    print(f"{platform.processor() or platform.machine()}, {platform.python_version()}")
    header = (
        f"{'seed':>4} {'SNR':>5} {'probes':>9} {'Dice 3-D':>9} {'MSD 3-D':>8} {'reg 3-D':>8} "
        f"{'Dice slice':>10} {'MSD slice':>9} {'wall s':>7}  verdict"
    )
    print(header)
    rows: list[pr.ImageRow] = []
    failures = 0
    for seed in seeds:
        start = time.perf_counter()
        these = pr.run_procedure(seed)
        rows += these
        volumes = [r for r in these if r.kind == "volume"]
        slices = [r for r in these if r.kind != "volume"]
        ok = all(r.dice >= pr.DICE_VOLUME_MIN for r in volumes) and all(
            r.dice >= pr.DICE_SLICE_MIN for r in slices
        )
        failures += not ok
        print(
            f"{seed:>4} {these[0].snr:5.1f} {'in base' if these[0].probes_in_baseline else 'excluded':>9} "
            f"{min(r.dice for r in volumes):9.3f} {max(r.mean_surface_mm or 0 for r in volumes):8.2f} "
            f"{max(r.registration_error_mm for r in volumes):8.2f} {min(r.dice for r in slices):10.3f} "
            f"{max(r.mean_surface_mm or 0 for r in slices):9.2f} {time.perf_counter() - start:7.1f}  "
            f"{'PASS' if ok else 'FAIL'}",
            flush=True,
        )
    for label, subset, limit in (
        ("3-D volumes", [r for r in rows if r.kind == "volume"], pr.DICE_VOLUME_MIN),
        ("slices", [r for r in rows if r.kind != "volume"], pr.DICE_SLICE_MIN),
    ):
        dice = np.array([r.dice for r in subset])
        msd = np.array([r.mean_surface_mm for r in subset if r.mean_surface_mm is not None])
        print(
            f"{label:<12} n={len(subset):3d}  Dice min {dice.min():.3f}  p10 {np.percentile(dice, 10):.3f}  "
            f"median {np.median(dice):.3f}  (limit {limit:.2f});  mean surface distance median "
            f"{np.median(msd):.2f} mm, max {msd.max():.2f} mm"
        )
    print("PASS" if not failures else f"FAIL: {failures} procedure(s) below the limits")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
