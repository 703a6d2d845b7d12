"""Benchmark: plan metrics for a 30 mm target on a 1 mm grid (96 × 96 × 112 field).

Goal: ``isotherm_metrics`` (0, −20, −40 °C and one critical structure) in ≤ 0.2 s. Prints the wall
time (best and median of several runs after a warm-up) and the machine.

    .venv/bin/python benchmarks/metrics_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from machine import describe as describe_machine  # benchmarks/ is the script folder, on sys.path

from CryoAblationLogic.analysis.metrics import isotherm_metrics, probe_warnings
from CryoAblationLogic.core.grid import Grid

GOAL_S = 0.2


def three_probe_case():
    """Three parallel probes 15 mm apart around a 30 mm spherical target; the field is a smooth
    function of the distance to the nearest active segment (−140 °C on it, +12 °C/mm, ≤ 37 °C):
    ice (0 °C) ≈ 11.7 mm and −40 °C ≈ 8.3 mm from the probes."""
    grid = Grid((-47.5, -47.5, -55.5), (1.0, 1.0, 1.0), (96, 96, 112))
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    points = np.stack([x, y, z], axis=-1)
    distance = np.full(grid.size, np.inf)
    probes = []
    radius = 15.0 / np.sqrt(3.0)
    for index, angle in enumerate(np.deg2rad([90.0, 210.0, 330.0])):
        offset = np.array([radius * np.cos(angle), 0.0, radius * np.sin(angle)])
        tip = offset + np.array([0.0, 19.0, 0.0])
        start, end = tip - np.array([0.0, 4.0, 0.0]), tip - np.array([0.0, 34.0, 0.0])
        segment = end - start
        t = np.clip((points - start) @ segment / (segment @ segment), 0.0, 1.0)
        distance = np.minimum(distance, np.linalg.norm(points - (start + t[..., None] * segment), axis=-1))
        probes.append(
            {
                "name": f"P{index + 1}",
                "tip_mm": tip.tolist(),
                "entry_mm": (tip - np.array([0.0, 80.0, 0.0])).tolist(),
                "active_length_mm": 30.0,
                "tip_length_mm": 4.0,
            }
        )
    field = np.minimum(37.0, -140.0 + 12.0 * distance).astype(np.float32)
    target = x**2 + y**2 + z**2 <= 15.0**2
    bowel = (x + 30.0) ** 2 + (y - 20.0) ** 2 <= 10.0**2  # a tube along S–I beside the ice
    return grid, field, target, {"Bowel": bowel}, probes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    grid, field, target, critical, probes = three_probe_case()
    metrics = isotherm_metrics(field, grid, target, critical_masks=critical)  # warm-up (imports, caches)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        isotherm_metrics(field, grid, target, critical_masks=critical)
        times.append(time.perf_counter() - start)
    probe_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        probe_warnings(probes, None, target, critical, {}, grid)
        probe_times.append(time.perf_counter() - start)
    print(f"machine: {describe_machine()}")
    print(f"grid {grid.size}, target {metrics.target_volume_ml:.2f} ml, 0/-20/-40 °C, one critical structure")
    for item in metrics.isotherms:
        print(
            f"  {item.level_c:>5g} °C: covered {item.target_coverage_percent:5.1f} %, "
            f"min margin {item.min_margin_mm:6.2f} mm"
        )
    best, median = min(times), statistics.median(times)
    verdict = "meets" if best <= GOAL_S else "misses"
    goal = f"{verdict} the {GOAL_S:g} s goal"
    print(f"isotherm_metrics: best {best * 1e3:.0f} ms, median {median * 1e3:.0f} ms ({goal})")
    probe_best, probe_median = min(probe_times), statistics.median(probe_times)
    print(f"probe_warnings:   best {probe_best * 1e3:.0f} ms, median {probe_median * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
