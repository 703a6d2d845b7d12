"""``cryoablation observe-ice``: segment the ice in an MR image against its pre-freeze baseline and
compare it with a simulation's prediction.

    cryoablation observe-ice --baseline B.nrrd --image I.nrrd --result RESULT_DIR \\
        [--case CASE.cryo.json] [--time-s T] [--labels L.nrrd --critical Bowel=5 ... --margin-mm 5] \\
        --out DIR

writes ``DIR/ice.nrrd`` (label map, 1 = frozen, in the image's geometry), ``DIR/ice_on_plan_grid.nrrd``
(the same on the result's grid, in the plan frame) and ``DIR/comparison.json``, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from CryoAblationLogic.analysis.ice_comparison import DEFAULT_MARGIN_MM, compare_with_prediction
from CryoAblationLogic.analysis.ice_observation import IceSettings, ice_on_grid, observe_ice
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.mr_synthesis import MRImage, read_mr_image, write_mr_image
from CryoAblationLogic.io.volumes import read_nrrd, write_nrrd

NAME = "observe-ice"
HELP = (
    "segment the ice (signal void) in an MR volume or slice against its pre-freeze baseline and "
    "compare it with a simulation result: volume, Dice, surface distances, critical structures"
)
SEED_CORE_C = (
    -20.0
)  # without probes, the ice is seeded at the prediction's core (this cold, or half the coldest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline", type=Path, required=True, help="pre-freeze image of the same position (NRRD)"
    )
    parser.add_argument("--image", type=Path, required=True, help="the MR image during freezing (NRRD)")
    parser.add_argument("--result", type=Path, required=True, help="result folder of the prediction")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--time-s",
        type=float,
        help="compare with the result's snapshot at this time (default: the final field)",
    )
    parser.add_argument(
        "--case",
        type=Path,
        help="case file (*.cryo.json): its probes seed the ice, its label map is the default --labels",
    )
    parser.add_argument("--labels", type=Path, help="label map on the result's grid (NRRD)")
    parser.add_argument(
        "--critical",
        action="append",
        default=[],
        metavar="NAME=LABEL",
        help="a critical structure (repeatable)",
    )
    parser.add_argument(
        "--margin-mm",
        type=float,
        default=DEFAULT_MARGIN_MM,
        help="warn when the ice edge comes closer (default 5)",
    )
    parser.add_argument(
        "--probes-absent-in-baseline",
        action="store_true",
        help="the baseline was taken before the probes went in: exclude a radius around each shaft",
    )
    parser.add_argument(
        "--exclusion-radius-mm",
        type=float,
        default=IceSettings.exclusion_radius_mm,
        help="radius excluded around each shaft with --probes-absent-in-baseline (default 4)",
    )
    parser.add_argument("--no-registration", action="store_true", help="do not correct motion")


_OPTION_OF = {"baseline": "--baseline", "image": "--image", "probes": "--case", "labels": "--labels"}


def parse_critical(items: list[str]) -> dict[str, int]:
    critical: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError("--critical", f"expected NAME=LABEL, got {item!r}")
        try:
            label = int(value)
        except ValueError:
            raise InputError("--critical", f"label of {name!r} must be an integer, got {value!r}") from None
        if label <= 0:
            raise InputError("--critical", f"label of {name!r} must be a positive integer")
        critical[name.strip()] = label
    return critical


def prediction_field(result_dir: Path, time_s: float | None):
    """The predicted temperature (°C) and its grid from a result folder, final or at ``time_s``."""
    if not result_dir.is_dir():
        raise InputError("--result", f"not a folder: {result_dir}")
    if time_s is None:
        path = result_dir / "temperature_final.nrrd"
    else:
        if not math.isfinite(time_s) or time_s < 0:
            raise InputError("--time-s", f"must be a time in seconds ≥ 0, got {time_s}")
        try:
            summary = json.loads((result_dir / "summary.json").read_text(encoding="utf-8"))
            snapshots = summary.get("snapshots", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            raise InputError("--result", "summary.json is missing or not readable") from None
        match = [name for key, name in snapshots.items() if abs(float(key) - time_s) < 1e-6]
        if not match:
            raise InputError(
                "--time-s", f"no snapshot at {time_s:g} s; the result has {', '.join(snapshots) or 'none'}"
            )
        path = result_dir / match[0]
    if not path.is_file():
        raise InputError("--result", f"{path.name} is missing")
    try:
        return read_nrrd(path)
    except InputError as error:
        raise InputError("--result", error.reason) from None


def _same_grid(a, b) -> bool:
    return a.size == b.size and np.allclose(
        [*a.origin_mm, *a.spacing_mm], [*b.origin_mm, *b.spacing_mm], atol=1e-3
    )


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.margin_mm) and args.margin_mm >= 0):
        raise InputError("--margin-mm", f"must be a number of millimetres ≥ 0, got {args.margin_mm}")
    if not (math.isfinite(args.exclusion_radius_mm) and args.exclusion_radius_mm >= 0):
        raise InputError(
            "--exclusion-radius-mm", f"must be a number of millimetres ≥ 0, got {args.exclusion_radius_mm}"
        )
    critical = parse_critical(args.critical)
    baseline = read_mr_image(args.baseline, "--baseline")
    image = read_mr_image(args.image, "--image")
    temperature, grid = prediction_field(args.result, args.time_s)
    probes = []
    labels = None
    if args.case is not None:
        try:
            case = load_case(args.case)
        except InputError as error:
            raise InputError("--case", str(error)) from None
        probes = case.probes
        if case.tissue_labels is not None and _same_grid(case.grid, grid):
            labels = np.asarray(case.tissue_labels, np.int32)
    if args.labels is not None:
        try:
            label_field, label_grid = read_nrrd(args.labels)
        except InputError as error:
            raise InputError("--labels", error.reason) from None
        if not _same_grid(label_grid, grid):
            raise InputError("--labels", "must lie on the result's grid (same size, spacing and origin)")
        labels = np.rint(label_field).astype(np.int32)
    if critical and labels is None:
        raise InputError("--labels", "--critical needs a label map (--labels, or --case with a label map)")
    seed_points = None
    if not probes:
        coldest = float(np.min(temperature))
        if coldest > 0:
            raise InputError(
                "--case", "the prediction has no ice to seed from: give the case with its probes"
            )
        core = temperature <= max(SEED_CORE_C, coldest / 2.0)
        seed_points = np.array([grid.index_to_ras(v) for v in np.argwhere(core)])
    settings = IceSettings(
        register=not args.no_registration,
        probes_in_baseline=not args.probes_absent_in_baseline,
        exclusion_radius_mm=args.exclusion_radius_mm,
    )
    try:
        observation = observe_ice(
            baseline.array, baseline.ijk_to_ras, image.array, image.ijk_to_ras, probes, settings, seed_points
        )
    except InputError as error:
        raise InputError(_OPTION_OF.get(error.key, error.key), error.reason) from None
    comparison = compare_with_prediction(observation, temperature, grid, labels, critical, args.margin_mm)
    if seed_points is not None:
        comparison["notes"].append("no probes given (--case): the ice was seeded at the prediction's core")
    comparison["inputs"] = {
        "baseline": str(args.baseline),
        "image": str(args.image),
        "result": str(args.result),
        "time_s": args.time_s,
        "case": str(args.case) if args.case else None,
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_mr_image(
        out / "ice.nrrd", MRImage(observation.label, observation.ijk_to_ras, kind=observation.kind)
    )
    write_nrrd(out / "ice_on_plan_grid.nrrd", ice_on_grid(observation, grid), grid)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
    print(format_table(comparison))
    print(f"written to {out}/: ice.nrrd, ice_on_plan_grid.nrrd, comparison.json")
    return 0


def _mm(value) -> str:
    return "—" if value is None else f"{value:.1f} mm"


def format_table(comparison: dict) -> str:
    """A short text table of a comparison (what ``observe-ice`` prints)."""
    lines = [f"observed ice vs predicted 0 °C zone ({comparison['kind']}, on the {comparison['where']})"]
    if "volume_ml" in comparison:
        lines.append(
            f"  volume            {comparison['volume_ml']:8.2f} ml   "
            f"predicted {comparison['predicted_volume_ml']:.2f} ml"
        )
    else:
        lines.append(
            f"  area              {comparison['area_cm2']:8.2f} cm²  "
            f"predicted {comparison['predicted_area_cm2']:.2f} cm²"
        )
    dice = comparison["dice"]
    lines.append(f"  Dice              {'—' if dice is None else f'{dice:8.3f}'}")
    lines.append(
        f"  surface distance  mean {_mm(comparison['mean_surface_distance_mm'])}, "
        f"max {_mm(comparison['max_surface_distance_mm'])}"
    )
    motion = comparison["registration"]["motion_mm"]
    lines.append(f"  motion corrected  ({motion[0]:+.1f}, {motion[1]:+.1f}, {motion[2]:+.1f}) mm RAS")
    for name, entry in comparison["structures"].items():
        text = entry.get("note") or f"ice edge {_mm(entry['distance_mm'])} (margin {entry['margin_mm']:g} mm)"
        flag = "  WARNING" if entry.get("warning") else ""
        lines.append(f"  {name:<16}  {text}{flag}")
    for warning in comparison["warnings"]:
        lines.append(f"warning: {warning}")
    for note in comparison["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
