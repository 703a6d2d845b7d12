"""Calibrate the cooling model of each catalog probe on ONE published data set (issue 3).

Only ``cooling.surface_htc_w_m2k`` is fitted, for each probe on its own calibration data; the
coolant temperature (argon's boiling point), the power limit and the geometry are fixed a priori.
The check data named in ``Resources/probes.json`` (``checked_against``) are never used here.

- argon-1.47mm (17 G): E12 (Cryobiology 2025;120:105274): probe temperatures in agar phantoms
  stabilise at −140 to −150 °C → surface temperature −145 °C after a 9-min freeze in 37 °C gel.
- argon-2.4mm (13 G): E1 (Littrup et al., JVIR 2009): single 2.4 mm probe in 39 °C agar, 15 min:
  −30 °C isotherm diameter 12 mm (in the plane through the middle of the active segment).

Usage: ``python benchmarks/calibrate_probes.py [--write]``; prints the fitted values (and with
``--write`` stores them in Resources/probes.json). The values in probes.json are its output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from CryoAblationLogic.io.case_file import parse_case  # noqa: E402
from CryoAblationLogic.physics import probes as probe_module  # noqa: E402
from CryoAblationLogic.physics.simulation import simulate  # noqa: E402

SPACING_MM = 1.0


def single_probe_case(
    model: str, tissue: str, initial_c: float, freeze_s: float, half_width_mm: float = 30.0
):
    n = round(2 * half_width_mm / SPACING_MM) + 1
    nz = round(80.0 / SPACING_MM) + 1
    return parse_case(
        {
            "format": "cryoablation-case/1",
            "grid": {
                "origin_mm": [-half_width_mm, -half_width_mm, -40.0],
                "spacing_mm": SPACING_MM,
                "size": [n, n, nz],
            },
            "initial_temperature_c": initial_c,
            "boundaries": {"default": {"type": "fixed", "temperature_c": initial_c}},
            "tissue": tissue,
            "probes": [{"name": "P", "model": model, "tip_mm": [0, 0, -25.0], "entry_mm": [0, 0, 40.0]}],
            "protocol": [{"action": "freeze", "duration_s": freeze_s, "probes": "all", "flow_percent": 100}],
            "outputs": {"isotherms_c": [0, -20, -30, -40], "snapshot_times_s": []},
        }
    )


def with_htc(case, htc: float):
    """Run with a modified catalog entry (monkeypatching the loader keeps the case untouched)."""
    catalog = probe_module.load_probe_catalog()
    model = catalog[case.probes[0].model]
    patched = replace(model, cooling=replace(model.cooling, surface_htc_w_m2k=htc))
    original = probe_module.load_probe_catalog
    probe_module.load_probe_catalog = lambda: {**catalog, model.name: patched}
    try:
        return simulate(case)
    finally:
        probe_module.load_probe_catalog = original


def mid_plane_radius(result, case, level_c: float) -> float:
    """Radius (mm) of an isotherm in the plane through the middle of the active segment."""
    start, end = case.probes[0].active_segment_mm()
    mid = 0.5 * (start + end)
    grid = result.grid
    k = round(grid.ras_to_index(mid)[2])
    plane = result.temperature_final[:, :, k]
    x = grid.axis_mm(0)
    y = grid.axis_mm(1)
    radii = []
    c0 = round(grid.ras_to_index(mid)[0])
    c1 = round(grid.ras_to_index(mid)[1])
    for profile, axis in (
        (plane[c0:, c1], x[c0:]),
        (plane[c0::-1, c1], -x[c0::-1]),
        (plane[c0, c1:], y[c1:]),
        (plane[c0, c1::-1], -y[c1::-1]),
    ):
        above = np.nonzero(profile > level_c)[0]
        if above.size == 0 or above[0] == 0:
            radii.append(0.0 if above.size else float(abs(axis[-1])))
            continue
        n = int(above[0])
        r0, r1 = abs(axis[n - 1] - axis[0]), abs(axis[n] - axis[0])
        v0, v1 = profile[n - 1], profile[n]
        radii.append(float(r0 + (level_c - v0) * (r1 - r0) / (v1 - v0)))
    return float(np.mean(radii))


def calibrate_17g() -> float:
    """Fixed point on h: the surface temperature at 9 min must be −145 °C (E12)."""
    case = single_probe_case("argon-1.47mm", "gel", 37.0, 540.0)
    model = probe_module.load_probe_catalog()["argon-1.47mm"]
    target = -145.0
    htc = model.cooling.surface_htc_w_m2k
    for iteration in range(6):
        result = with_htc(case, htc)
        history = result.probe_history["P"]
        surface = float(history["surface_c"][-1])
        power_per_m = float(history["power_w"][-1]) / (case.probes[0].active_length_mm * 1e-3)
        print(
            f"  17G iteration {iteration}: h = {htc:.1f} W/m²/K → surface {surface:.2f} °C, "
            f"q' = {power_per_m:.1f} W/m"
        )
        if abs(surface - target) < 0.5:
            break
        # The surface film carries q' from the surface to the coolant: h = q' / (2π r ΔT).
        r = 0.5e-3 * case.probes[0].diameter_mm
        htc = power_per_m / (2 * math.pi * r * (target - model.cooling.coolant_temperature_c))
    return round(htc, 1)


def calibrate_24mm() -> float:
    """Secant on log h: −30 °C isotherm diameter 12 mm after 15 min in 39 °C gel (E1)."""
    case = single_probe_case("argon-2.4mm", "gel", 39.0, 900.0)
    target = 12.0
    points = []
    htc = probe_module.load_probe_catalog()["argon-2.4mm"].cooling.surface_htc_w_m2k
    for iteration in range(8):
        result = with_htc(case, htc)
        diameter = 2 * mid_plane_radius(result, case, -30.0)
        print(f"  2.4mm iteration {iteration}: h = {htc:.1f} W/m²/K → −30 °C diameter {diameter:.2f} mm")
        points.append((math.log(htc), diameter))
        if abs(diameter - target) < 0.1:
            break
        if len(points) == 1:
            htc *= 1.5 if diameter < target else 1 / 1.5
            continue
        (x0, y0), (x1, y1) = points[-2], points[-1]
        x_new = x1 + (target - y1) * (x1 - x0) / (y1 - y0) if y1 != y0 else x1 + 0.3
        htc = math.exp(min(max(x_new, x1 - 1.0), x1 + 1.0))
    return round(htc, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="store the fitted values in Resources/probes.json"
    )
    args = parser.parse_args()
    fitted = {"argon-1.47mm": calibrate_17g(), "argon-2.4mm": calibrate_24mm()}
    for name, htc in fitted.items():
        print(f"{name}: cooling.surface_htc_w_m2k = {htc}")
    if args.write:
        path = REPO / "Resources" / "probes.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, htc in fitted.items():
            data["probes"][name]["cooling"]["surface_htc_w_m2k"] = htc
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
