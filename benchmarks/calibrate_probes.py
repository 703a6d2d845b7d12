"""Calibrate the cooling model of each catalog probe on ONE published data set (issues 3 and 13).

Every model is calibrated the same way, on a measured probe temperature, never on an ice-ball size:
only ``cooling.surface_htc_w_m2k`` (the coolant-side film coefficient) is fitted so that the probe
surface reaches −145 °C after a 9-min freeze at 100 % flow in 37 °C gel (E12, Cryobiology
2025;120:105274: argon probes in agar phantoms stabilise at −140 to −150 °C; docs/physics.md §2.2). The
coolant temperature (argon's boiling point), the flow exponent, the power limit and the geometry are
fixed a priori (probes.json ``calibrated_on.fixed_a_priori``). The set-up is modelled explicitly
(gel block, faces held at 37 °C), so the film coefficient does not absorb it. Ice-ball sizes (the
makers' charts, Littrup 2009, Shah 2016, Hinshaw 2010) are checks only (``checked_against``) and are
never used here.

Usage: ``python benchmarks/calibrate_probes.py [--write] [model ...]``; prints the fitted values
(and with ``--write`` stores them in Resources/probes.json). The values in probes.json are its output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from CryoAblationLogic.io.case_file import parse_case  # noqa: E402
from CryoAblationLogic.physics import probes as probe_module  # noqa: E402
from CryoAblationLogic.physics import simulation as simulation_module  # noqa: E402

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
    # The solver looks the catalog up through its own module's name (an earlier version of this
    # script patched only the probes module, which the solver never read).
    original = simulation_module.load_probe_catalog
    simulation_module.load_probe_catalog = lambda: {**catalog, model.name: patched}
    try:
        return simulation_module.simulate(case)
    finally:
        simulation_module.load_probe_catalog = original


TARGET_SURFACE_C = -145.0  # E12: −140 to −150 °C
TARGET_TIME_S = 540.0  # E12's 9-min freeze


def calibrate_surface(name: str) -> float:
    """Fixed point on h: the surface temperature after 9 min at 100 % in 37 °C gel must be −145 °C."""
    case = single_probe_case(name, "gel", 37.0, TARGET_TIME_S)
    model = probe_module.load_probe_catalog()[name]
    htc = model.cooling.surface_htc_w_m2k
    for iteration in range(8):
        result = with_htc(case, htc)
        history = result.probe_history["P"]
        surface = float(history["surface_c"][-1])
        power_per_m = float(history["power_w"][-1]) / (case.probes[0].active_length_mm * 1e-3)
        print(
            f"  {name} iteration {iteration}: h = {htc:.1f} W/m²/K → surface {surface:.2f} °C, "
            f"q' = {power_per_m:.1f} W/m",
            flush=True,
        )
        if abs(surface - TARGET_SURFACE_C) < 0.5:
            break
        if power_per_m >= 0.99 * model.cooling.max_power_w_per_m:
            raise SystemExit(f"{name}: the power limit binds; raise max_power_w_per_m (a priori) first")
        # The surface film carries q' from the surface to the coolant: h = q' / (2π r ΔT).
        r = 0.5e-3 * case.probes[0].diameter_mm
        htc = power_per_m / (2 * math.pi * r * (TARGET_SURFACE_C - model.cooling.coolant_temperature_c))
    return round(htc, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="store the fitted values in Resources/probes.json"
    )
    parser.add_argument("models", nargs="*", help="catalog models to calibrate (default: all)")
    args = parser.parse_args()
    names = args.models or list(probe_module.load_probe_catalog())
    fitted = {name: calibrate_surface(name) for name in names}
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
