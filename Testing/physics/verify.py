"""Full-resolution verification and validation table (``make verify``).

Prints, for each check of docs/physics.md §7: case, expected, got, tolerance, pass. Exit status 1 when
any check fails. Grids are finer than in the default test run; expect several minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))


from measurement_cases import (  # noqa: E402
    isotherm_radius,
    isotherm_width_length,
    lethal_area_share,
    mid_plane,
    probe_array_run,
    probe_run,
    radial_profile,
    reach_beyond,
)
from verification_cases import line_sink, planar_neumann, steady_sphere  # noqa: E402

from CryoAblationLogic.io.case_file import parse_case  # noqa: E402
from CryoAblationLogic.physics.probes import load_probe_catalog  # noqa: E402
from CryoAblationLogic.physics.simulation import simulate  # noqa: E402

ROWS: list[tuple[str, str, str, str, str]] = []  # ..., verdict: PASS, FAIL or REPORT


def check(case: str, expected: float | str, got: float, tolerance: str, ok: bool | None) -> None:
    """A row of the table; ``ok`` None marks a row reported beside a published statement."""
    expected_text = f"{expected:.3f}" if isinstance(expected, float) else str(expected)
    verdict = "REPORT" if ok is None else "PASS" if ok else "FAIL"
    ROWS.append((case, expected_text, f"{got:.3f}", tolerance, verdict))
    print(
        f"  {case:<52} expected {expected_text:>9}  got {got:9.3f}  tol {tolerance:<10} {verdict}", flush=True
    )


def tc1() -> None:
    result = planar_neumann(spacing_mm=0.25)
    x, exact = result["front_mm"][600.0], result["exact_mm"][600.0]
    check("TC-1 front X(600 s), 0.25 mm [mm]", exact, x, "±0.5 mm", abs(x - exact) <= 0.5)
    x60, exact60 = result["front_mm"][60.0], result["exact_mm"][60.0]
    # docs/physics.md gives no tolerance at 60 s (the front is 8.6 mm, early steps are short): ±5 %.
    check("TC-1 front X(60 s), 0.25 mm [mm]", exact60, x60, "±5 %", abs(x60 - exact60) <= 0.05 * exact60)
    t5, exact_t5 = result["T5_c"][600.0], result["T5_exact_c"][600.0]
    check("TC-1 T(5 mm, 600 s) [°C]", float(exact_t5), t5, "±1.5 °C", abs(t5 - exact_t5) <= 1.5)
    second = planar_neumann(spacing_mm=0.25, latent=3.0e8, times=(600.0,))
    x, exact = second["front_mm"][600.0], second["exact_mm"][600.0]
    check("TC-1 L = 300 MJ/m³: X(600 s) [mm]", exact, x, "±2 %", abs(x - exact) <= 0.02 * exact)


def grid_convergence() -> None:
    errors = []
    for spacing in (2.0, 1.0, 0.5, 0.25):
        result = planar_neumann(spacing_mm=spacing, times=(600.0,))
        exact = result["exact_mm"][600.0]
        errors.append(abs(result["front_mm"][600.0] - exact))
    # With the sub-voxel front the 2 and 1 mm fronts lie within a tenth of a voxel of Neumann's, so
    # the error falls with the spacing from 1 mm on only (the voxel front's fell at order 1 from
    # 1.8 mm at 2 mm).
    falling = all(a > b for a, b in itertools.pairwise(errors[1:]))
    order = float(np.polyfit(np.log([2.0, 1.0, 0.5, 0.25]), np.log(errors), 1)[0])
    check(
        "Grid convergence TC-1: largest front error, 2 to 0.25 mm [mm]", f"< {0.006 * exact:.2f}",
        max(errors), "0.6 % of the front, falls from 1 mm", falling and max(errors) < 0.006 * exact,
    )  # fmt: skip
    report("Grid convergence TC-1: order of the front error, 2 to 0.25 mm", "-", order, "reported")


def tc6() -> None:
    errors, balances = [], []
    for d_t in (7.0, 2.0, 0.5, 0.1):
        result = planar_neumann(spacing_mm=0.25, d_t=d_t, times=(600.0,))
        exact = result["exact_mm"][600.0]
        errors.append(abs(result["front_mm"][600.0] - exact) / exact)
        balances.append(result["energy_balance_error"])
        check(f"TC-6 mushy ΔT = {d_t:g} K: front error [%]", "-", 100 * errors[-1], "monotone", True)
    check("TC-6 monotone convergence, error at 0.1 K [%]", "< 1", 100 * errors[-1], "< 1 %",
          errors == sorted(errors, reverse=True) and errors[-1] < 0.01)  # fmt: skip
    check("TC-6 energy balance, worst step size [-]", "< 0.01", max(balances), "< 1 %", max(balances) < 0.01)


def tc3() -> None:
    result = line_sink(spacing_mm=0.25, times=(600.0, 3600.0), half_width_mm=30.0, probe_r_mm=1.0)
    check(
        "TC-3 R(600 s) [mm]",
        6.137,
        result["radius_mm"][600.0],
        "±0.3 mm",
        abs(result["radius_mm"][600.0] - 6.137) <= 0.3,
    )
    check(
        "TC-3 R(3600 s) [mm]",
        15.032,
        result["radius_mm"][3600.0],
        "±0.5 mm",
        abs(result["radius_mm"][3600.0] - 15.032) <= 0.5,
    )
    check(
        "TC-3 T(1 mm, 600 s) [°C]",
        -7.19,
        result["T_probe_c"][600.0],
        "±1 °C",
        abs(result["T_probe_c"][600.0] + 7.19) <= 1.0,
    )
    check(
        "TC-3 slope of log R vs log t",
        0.5,
        result["log_slope"],
        "±0.02",
        abs(result["log_slope"] - 0.5) <= 0.02,
    )


def tc4() -> None:
    result = steady_sphere(spacing_mm=1.0, half_width_mm=60.0)
    ok = abs(result["radius_mm"] - result["exact_mm"]) <= 0.03 * result["exact_mm"]
    check("TC-4 steady sphere R₀ (1 mm, 60 mm box) [mm]", result["exact_mm"], result["radius_mm"], "±3 %", ok)


SURFACE_RANGE_C = (-170.0, -120.0)  # issue 13: argon, 100 % flow, body-temperature media


def report(case: str, expected: float | str, got: float, note: str) -> None:
    """A row that is reported beside a published statement or goal, not a pass/fail check."""
    check(case, expected, got, note, None)


def catalog(spacing: float) -> None:
    """Every catalog model alone in 37 °C gel for 10 min at 100 %: its surface temperature, and its
    ice ball against the maker's chart where one was found (probes.json ``checked_against``)."""
    volumes = {}
    for name, model in load_probe_catalog().items():
        case, result = probe_run(name, "gel", 37.0, 600.0, spacing_mm=spacing)
        surface = float(result.probe_history["P1"]["surface_c"][-1])
        lo, hi = SURFACE_RANGE_C
        check(f"{name}: surface T, 37 °C gel, 10 min, {spacing:g} mm [°C]", "-170..-120", surface,
              "range", lo <= surface <= hi)  # fmt: skip
        volumes[name] = result.isotherm_volumes_ml
        for entry in model.checked_against:
            for level, dims in entry.get("isotherms", {}).items():
                width, length = isotherm_width_length(case, result, float(level))
                for what, got in (("width", width), ("length", length)):
                    want = dims[f"{what}_mm"]
                    within = abs(got - want) <= 5.0
                    label = f"{name}: {level} °C {what} vs chart, {spacing:g} mm [mm]"
                    if entry.get("gate", False):
                        check(label + " (check)", float(want), got, "±5 mm", within)
                    else:
                        # A planning stand-in whose isotherm or freeze time is not stated (the maker's
                        # chart was not found): reported, with whether it falls within ±5 mm.
                        report(label + " (stand-in)", float(want), got, f"±5 mm: {'yes' if within else 'NO'}")
    for level in (0.0, -40.0):
        ratio = volumes["argon-2.4mm"][level] / volumes["argon-1.47mm"][level]
        check(f"2.4 mm / 17 G {level:g} °C volume, 37 °C gel, 10 min, {spacing:g} mm", "> 1", ratio, "> 1",
              ratio > 1.0)  # fmt: skip


def tc7(spacing: float) -> None:
    """Littrup 2009, single 2.4 mm probe in 39 °C agar, 15 min, in the set-up of the experiment as far
    as it is published (agar block at 39 °C, faces held at 39 °C; the container size is not given).

    The −30 °C diameter (12 mm) and lethal share (13 %) are reported, not checked: in the frozen zone
    the temperature follows the conduction (log) profile from the probe surface T_p to the 0 °C edge
    R, so a −30 °C radius r₃₀ = 6 mm around a 1.2 mm probe needs ln(R/a) = ln(r₃₀/a)/(1 − 30/|T_p|):
    R = 9.1 mm (share 43 %) at T_p = −145 °C and R ≤ 11 mm (share ≥ 30 %) anywhere in −120…−170 °C.
    A 13 % share with a 12 mm −30 °C diameter needs T_p ≈ −78 °C, the surface the former fit reached.
    """
    case, result = probe_run("argon-2.4mm", "gel", 39.0, 900.0, spacing_mm=spacing)
    r, temperature = radial_profile(case, result)
    r30, r0 = isotherm_radius(r, temperature, -30.0), isotherm_radius(r, temperature, 0.0)
    share = lethal_area_share(case, result)
    surface = float(result.probe_history["P1"]["surface_c"][-1])
    at = f"{spacing:g} mm"
    report(f"TC-7 2.4 mm probe surface T, 39 °C agar, {at} [°C]", "-", surface, "reported")
    report(f"TC-7 −30 °C diameter, {at} [mm] (Littrup: 12 ± 3)", 12.0, 2 * r30, "reported")
    report(f"TC-7 lethal share of ice area, {at} [%] (Littrup: 13 ± 5)", 13.0, 100 * share, "reported")
    check(
        f"TC-7 −30 °C front behind 0 °C edge, {at} [mm] (check)", "< 10", r0 - r30, "< 10 mm", r0 - r30 < 10
    )


def tc9(spacing: float) -> None:
    case, result = probe_run("argon-1.47mm", "gel", 37.0, 600.0, spacing_mm=spacing)
    r, temperature = radial_profile(case, result)
    r40, r0 = isotherm_radius(r, temperature, -40.0), isotherm_radius(r, temperature, 0.0)
    between = (r >= r40) & (r <= r0)
    fit = np.polyfit(r[between], temperature[between], 1)
    r2 = 1 - (temperature[between] - np.polyval(fit, r[between])).var() / temperature[between].var()
    check(f"TC-9 17 G −40 °C radius, {spacing:g} mm (check) [mm]", 10.0, r40, "±3 mm", abs(r40 - 10) <= 3)
    check(f"TC-9 0 °C edge beyond −40 °C, {spacing:g} mm (check) [mm]", 10.0, r0 - r40, "±3 mm",
          abs(r0 - r40 - 10) <= 3)  # fmt: skip
    check(f"TC-9 linearity between −40 and 0 °C, {spacing:g} mm, R²", "> 0.9", r2, "> 0.9", r2 > 0.9)
    # Revised TC-9 (docs/physics.md): reported beside Shah's statement "At distances further apart or with
    # lower duty cycle settings, ice balls either had a central core >−40°C or had an hourglass shape".
    for duty in (100.0, 50.0):
        case, result = probe_array_run(
            "argon-1.47mm", ((-12.5, 0.0), (12.5, 0.0)), flow_percent=duty, spacing_mm=spacing
        )
        mid = float(
            mid_plane(case, result)[tuple(np.rint(result.grid.ras_to_index([0, 0, 0]))[:2].astype(int))]
        )
        report(f"TC-9 2 needles 2.5 cm apart, {duty:g} % duty, {spacing:g} mm: midpoint T [°C]",
               "Shah: >-40 or hourglass",
               mid, "reported")  # fmt: skip


def tc11(spacing: float) -> None:
    for label, materials, want_warm in (
        (f"TC-11 kidney w_b 0.067/s, {spacing:g} mm: T(10 mm, 600 s) [°C]", None, True),
        (
            f"TC-11 kidney w_b 5e-4/s, {spacing:g} mm: T(10 mm) [°C] (must fail)",
            {"kidney": {"perfusion": 5e-4 * 3.8e6}},
            False,
        ),
    ):
        case, result = probe_run(
            "argon-1.47mm", "kidney", 37.0, 600.0, spacing_mm=spacing, materials=materials
        )
        r, temperature = radial_profile(case, result)
        value = float(np.interp(10.0, r, temperature))
        check(label, "> -20" if want_warm else "≤ -20", value, "−20 °C", (value > -20) == want_warm)


# Arrays of 2–4 needles at 1.5 cm (Shah 2016, E2; held-out data: not used for any calibration).
ARRAYS_1_5CM = {
    "2 needles": ((-7.5, 0.0), (7.5, 0.0)),
    "3 needles (triangle)": tuple(
        (
            round(15.0 / np.sqrt(3.0) * np.cos(np.deg2rad(a)), 4),
            round(15.0 / np.sqrt(3.0) * np.sin(np.deg2rad(a)), 4),
        )
        for a in (0.0, 120.0, 240.0)
    ),
    "4 needles (square)": ((-7.5, -7.5), (7.5, -7.5), (-7.5, 7.5), (7.5, 7.5)),
}


def arrays(spacing: float) -> None:
    for label, positions in ARRAYS_1_5CM.items():
        case, result = probe_array_run("argon-1.47mm", positions, spacing_mm=spacing)
        r40 = reach_beyond(case, result, -40.0)
        r0 = reach_beyond(case, result, 0.0)
        at = f"Array {label} 1.5 cm, {spacing:g} mm"
        check(f"{at}: −40 °C beyond outer needle [mm] (Shah 2016)", 10.0, r40, "±3 mm",
              abs(r40 - 10.0) <= 3.0)  # fmt: skip
        check(f"{at}: 0 °C beyond −40 °C [mm] (Shah 2016)", 10.0, r0 - r40, "±3 mm",
              abs(r0 - r40 - 10.0) <= 3.0)  # fmt: skip
    # Sprenkle 2010 (E11): in 25 °C gelatin, firing several probes at once left each probe's final
    # temperature unchanged (p > 0.7); 10 K is the scatter of the E12 plateau (−140 to −150 °C).
    # Sprenkle's abstract does not name the probe; the 17 G needle is the check, the 2.4 mm probe is
    # reported beside it (neighbours take load off each probe, so an array runs a little colder).
    for model, gate in (("argon-1.47mm", True), ("argon-2.4mm", False)):
        _, alone = probe_array_run(model, ((0.0, 0.0),), initial_c=25.0, spacing_mm=spacing)
        _, four = probe_array_run(
            model, ARRAYS_1_5CM["4 needles (square)"], initial_c=25.0, spacing_mm=spacing
        )
        single = float(alone.probe_history["P1"]["surface_c"][-1])
        spread = [float(h["surface_c"][-1]) - single for h in four.probe_history.values()]
        worst = max(spread, key=abs)
        label = f"Array 4 × {model} 1.5 cm, 25 °C gel, {spacing:g} mm: probe − alone [K] (Sprenkle)"
        if gate:
            check(label, "±10", worst, "±10 K", abs(worst) <= 10.0)
        else:
            report(label, "±10", worst, f"±10 K: {'yes' if abs(worst) <= 10.0 else 'NO'}")


def hinshaw(spacing: float) -> None:
    """Hinshaw et al., JVIR 2010: single 2.4 mm Endocare probes in in vivo porcine lung, 10-min double
    freeze (the thaw between is not given in the abstract: 5 min passive, the usual gel protocol),
    thermocouples at 5–25 mm; isotherm diameters at the end. Tolerance ±5 mm (about two of their SDs
    and the ±5 mm Endocare quotes for its gel charts in soft tissue)."""
    n = round(80.0 / spacing) + 1
    data = {
        "format": "cryoablation-case/1",
        "grid": {"origin_mm": [-40.0, -40.0, -40.0], "spacing_mm": spacing, "size": [n, n, n]},
        "initial_temperature_c": 37.0,
        "tissue": "lung-aerated",
        "probes": [{"name": "P1", "model": "argon-2.4mm", "tip_mm": [0, 0, -20.0], "entry_mm": [0, 0, 40.0]}],
        "protocol": [
            {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
            {"action": "thaw", "mode": "passive", "duration_s": 300, "probes": "all"},
            {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
        ],
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": []},
    }
    case = parse_case(data)
    result = simulate(case)
    r, temperature = radial_profile(case, result)
    for level, want in ((0.0, 31.0), (-20.0, 23.0), (-40.0, 18.0)):
        got = 2.0 * isotherm_radius(r, temperature, level)
        label = f"Hinshaw 2010 2.4 mm, lung in vivo, {spacing:g} mm: {level:g} °C diameter [mm] (check)"
        check(label, want, got, "±5 mm", abs(got - want) <= 5.0)


def grid_table() -> None:
    """The benchmark plan (benchmarks/cases.py) at 1 mm against 0.5 mm: isotherm volumes."""
    sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
    from cases import three_probe_kidney  # benchmarks/ is not a package: imported from its folder

    volumes = {}
    for spacing in (1.0, 0.5):
        volumes[spacing] = simulate(parse_case(three_probe_kidney(spacing))).isotherm_volumes_ml
    for level in (0.0, -20.0, -40.0):
        fine, coarse = volumes[0.5][level], volumes[1.0][level]
        diff = 100.0 * (coarse - fine) / fine
        label = f"Benchmark plan {level:g} °C: 1 mm {coarse:.2f} vs 0.5 mm {fine:.2f} ml [%]"
        # Issue 13's grid goal, judged since the sub-voxel front (the voxel front's 0 °C gap was −10 %).
        check(label, "±3", diff, "±3 %", abs(diff) <= 3.0)


MEASURED = {"catalog": catalog, "tc7": tc7, "tc9": tc9, "tc11": tc11, "arrays": arrays, "hinshaw": hinshaw}
ANALYTIC = {"tc1": tc1, "grid_convergence": grid_convergence, "tc6": tc6, "tc3": tc3, "tc4": tc4}
PARTS = [*ANALYTIC, *MEASURED, "grid_table"]
SPACINGS_MM = (1.0, 0.5)  # issue 13: every measured row must hold on both grids


def spacing_mm(text: str) -> float:
    """A grid spacing from the command line: a finite number of millimetres, 0.1 to 4."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of millimetres, got {text!r}") from None
    if not 0.1 <= value <= 4.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must lie within 0.1..4 mm, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", action="append", choices=PARTS,
        help="run only these parts (repeat the flag); default: all",
    )  # fmt: skip
    parser.add_argument(
        "--spacing", action="append", type=spacing_mm, metavar="MM",
        help=f"grid spacings of the measured checks (repeat the flag); default: {SPACINGS_MM}",
    )  # fmt: skip
    args = parser.parse_args(argv)
    chosen = set(args.part or PARTS)
    spacings = tuple(args.spacing or SPACINGS_MM)
    start = time.perf_counter()
    print("Verification (analytic) and validation (measured) checks, docs/physics.md §7")
    parts = [run for name, run in ANALYTIC.items() if name in chosen]
    # The measured checks on each grid, coarse first (every row must hold at both spacings).
    parts += [
        functools.partial(run, spacing)
        for spacing in spacings
        for name, run in MEASURED.items()
        if name in chosen
    ]
    if "grid_table" in chosen:
        parts.append(grid_table)
    for part in parts:
        part()
    print()
    header = ("case", "expected", "got", "tolerance", "pass")
    widths = [max(len(str(row[i])) for row in [header, *ROWS]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in ROWS:
        cells = list(row)
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)))
    failed = sum(row[4] == "FAIL" for row in ROWS)
    reported = sum(row[4] == "REPORT" for row in ROWS)
    passed = len(ROWS) - failed - reported
    print(f"\n{passed} passed, {failed} failed, {reported} reported ({time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
