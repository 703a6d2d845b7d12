"""Validation table of the observed ice (issue 14): 20 seeded synthetic procedures, observed ice
against the truth's 0 °C zone (Dice ≥ 0.90 on 3-D volumes, ≥ 0.85 on slices), then the correction
(``analysis/ice_correction.py``): the −40 °C surface at the end of the second freeze, uncorrected
and corrected, against the truth's (≤ 1.0 mm where the uncorrected is ≥ 2 mm off) and the
forecasts issued after the first freeze (within 60 s). Exit status 1 when any falls short.
See ``procedures.py`` for the set-up; expect ~15 minutes on 2 cores.

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
    correction_rows: list[pr.CorrectionRow] = []
    failures = 0
    start = time.perf_counter()
    pr.prepared_corrector()
    print(
        f"correction ensemble: {pr.CORRECTION_MEMBERS} members, {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    for seed in seeds:
        start = time.perf_counter()
        corrector = pr.prepared_corrector()
        corrector.reset()
        corrections = []
        these = pr.run_procedure(
            seed, on_image=lambda t, name, obs, out=corrections, c=corrector: out.append(c.update(t, obs))
        )
        correction_rows.append(pr.correction_row(seed, corrections))
        last = correction_rows[-1]
        print(
            f"     correction: −40 °C MSD plan {last.msd_uncorrected_mm:.2f} mm, corrected "
            f"{last.msd_corrected_mm:.2f} mm; forecast errors (s) {last.forecast_errors_s}",
            flush=True,
        )
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
    failures += correction_table(correction_rows)
    print("PASS" if not failures else f"FAIL: {failures} procedure(s) below the limits")
    return 1 if failures else 0


def _seconds(value) -> str:
    return "miss" if value is None else f"{value:.0f}"


def correction_table(rows: list[pr.CorrectionRow]) -> int:
    """Print the correction's table and distributions; return the number of procedures short."""
    print(
        f"\nCorrection (ensemble of {pr.CORRECTION_MEMBERS}, settings chosen on tuning seeds "
        f"{list(pr.TUNING_SEEDS)}): −40 °C surface at {pr.IMAGE_TIMES_S[-1]:g} s vs the truth's "
        f"(mean surface distance), forecasts issued after the images at {pr.IMAGE_TIMES_S[0]:g} s"
    )
    events = sorted({k for r in rows for k in r.truth_events_s})
    print(
        f"{'seed':>4} {'MSD plan':>9} {'MSD corr':>9} {'in band':>8} "
        + " ".join(f"{'truth ' + e:>28} {'err plan':>8} {'err corr':>8}" for e in events)
        + f" {'upd s':>6}  verdict"
    )
    failures = 0
    for r in rows:
        selected = r.msd_uncorrected_mm >= pr.MSD_UNCORRECTED_SELECT_MM
        msd_ok = (not selected) or r.msd_corrected_mm <= pr.MSD_CORRECTED_MAX_MM
        forecast_ok = all(e is not None and e <= pr.FORECAST_MAX_S for e in r.forecast_errors_s.values())
        failures += not (msd_ok and forecast_ok)
        truth = {k: ("never" if not np.isfinite(v) else f"{v:.0f} s") for k, v in r.truth_events_s.items()}
        print(
            f"{r.seed:>4} {r.msd_uncorrected_mm:9.2f} {r.msd_corrected_mm:9.2f} {r.in_band:8.2f} "
            + " ".join(
                f"{truth[e]:>28} {_seconds(r.uncorrected_errors_s.get(e)):>8} "
                f"{_seconds(r.forecast_errors_s.get(e)):>8}"
                for e in events
            )
            + f" {r.update_s_max:6.2f}  {'PASS' if msd_ok and forecast_ok else 'FAIL'}"
            + ("" if selected else " (plan < 2 mm off: MSD not judged)"),
            flush=True,
        )
    for label, values in (
        ("uncorrected", [r.msd_uncorrected_mm for r in rows]),
        ("corrected", [r.msd_corrected_mm for r in rows]),
    ):
        v = np.array(values)
        print(
            f"−40 °C MSD {label:<12} median {np.median(v):.2f} mm, p90 {np.percentile(v, 90):.2f} mm, "
            f"max {v.max():.2f} mm; ≥ 2 mm: {int(np.sum(v >= 2.0))} of {len(v)}"
        )
    for e in events:
        errors = [r.forecast_errors_s.get(e) for r in rows]
        finite = [x for x in errors if x is not None]
        print(
            f"forecast {e}: {len(finite)} of {len(errors)} agree on whether it happens; error max "
            f"{max(finite):.0f} s, median {np.median(finite):.0f} s (limit {pr.FORECAST_MAX_S:g} s)"
            if finite
            else f"forecast {e}: none agree"
        )
    print(
        "band: truth within p10–p90 near its −40 °C surface, median "
        f"{np.median([r.in_band for r in rows]):.2f}"
    )
    return failures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
