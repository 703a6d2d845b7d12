"""Observed ice with and without the slices' in-plane trace seeds (``analysis/ice_observation.py``,
step 4), through the first freeze, the thaw and the second freeze's start: one row per image with
its Dice against the truth both ways, flagged where they differ by more than 0.005.

Run on the tuning sets only, e.g. ``python Testing/ice/diagnose_slice_seeds.py tuning 2 101 102
103`` or ``… stress-tuning 301 302``. "Without" is the rule before: a void component had to come
within the seed radius of a freezing segment itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procedures import SETS, run_procedure

import CryoAblationLogic.analysis.ice_observation as observation
from CryoAblationLogic.io import mr_synthesis as mr

TIMES_S = (300.0, 600.0, 700.0, 850.0, 1000.0, 1080.0, 1140.0, 1200.0)
_TRACE = observation._trace_distance
# The shaft guard's reach (half the slices' thickness and the motion allowance): its traces stay in
# both runs; a seed's reach adds the seed radius.
_SHAFT_GUARD_REACH_MM = 0.5 * mr.SLICE_THICKNESS_MM + observation.IceSettings().motion_allowance_mm


def _without_trace_seeds(points, segments, ijk_to_ras, reach_mm):
    """The rule before: a seed's distance is the one to the segment itself."""
    if reach_mm > _SHAFT_GUARD_REACH_MM + 1e-6:
        return observation._distance_to(points, segments)
    return _TRACE(points, segments, ijk_to_ras, reach_mm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=["tuning", "stress-tuning"])
    parser.add_argument("seeds", nargs="+", type=int)
    args = parser.parse_args()
    procedure_set = SETS[args.set]
    for seed in args.seeds:
        rows = {}
        for name, trace in (("without", _without_trace_seeds), ("with", _TRACE)):
            observation._trace_distance = trace
            try:
                rows[name] = run_procedure(seed, times_s=TIMES_S, procedure_set=procedure_set)
            finally:
                observation._trace_distance = _TRACE
        for a, b in zip(rows["without"], rows["with"], strict=True):
            flag = "  <--" if abs(a.dice - b.dice) > 0.005 else ""
            print(
                f"{seed:4d} {a.time_s:6.0f} s {a.kind:9s} truth {a.truth_size:6.2f}  "
                f"Dice without {a.dice:.3f} with {b.dice:.3f}{flag}",
                flush=True,
            )


if __name__ == "__main__":
    main()
