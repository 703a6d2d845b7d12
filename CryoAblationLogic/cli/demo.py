"""``cryoablation demo --out DIR``: the built-in renal phantom case, written, simulated, recorded.

Steps, each a small function: build the case from the phantom (a region of interest around the
tumour and the probes), write it as ``case.cryo.json`` + ``labels.nrrd``, run it (progress bar;
playback frames every minute, the results unchanged by them), write the result folder under
``DIR/result/``; put plan and result into a Slicer scene
(``DIR/scene.mrb``); then the warnings (printed, most severe first), ``DIR/metrics.json``, the
record ``DIR/report.html`` + ``DIR/report.pdf``, and ``DIR/dicom/`` (the phantom image as an MR
series, and a SEG, an RT Structure Set and two parametric maps referencing it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from CryoAblationLogic.cli.simulate import print_record_summary, run_case, write_case_record
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.demo_case import write_demo_case

NAME = "demo"
HELP = "build the built-in renal-tumour phantom case, simulate it and write case and results to a folder"
RECORD_TITLE = "CryoAblation demo: renal tumour phantom"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (case and result/)")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="grid spacing in mm (default 1.0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--playback-interval-s",
        type=float,
        default=60.0,
        help="time between the scene's playback frames (default 60 s; the results do not depend on it)",
    )


def run_demo_case(
    case_path: Path, result_dir: Path, quiet: bool = False, playback_interval_s: float | None = None
):
    """Load the written case back (as a user would) and simulate it into ``result_dir`` (with
    playback frames every ``playback_interval_s`` for the scene)."""

    case = load_case(case_path)
    result = run_case(
        case, result_dir, quiet, description="simulating the demo", frame_interval_s=playback_interval_s
    )
    return case, result


def write_scene_and_record(out: Path, case_path: Path, result, spacing_mm: float):
    """The phantom scene with the plan and its result as ``out/scene.mrb``; then metrics, record
    and DICOM export (:func:`.simulate.write_case_record`) with the phantom image on the result
    grid. Returns (scene path, ``ResultRecord``)."""
    # the scene layer imports Slicer's MRML (slicer-core): loaded only by the commands that use it
    from CryoAblationLogic.scene.demo_scene import write_demo_scene

    demo, scene_path = write_demo_scene(out, case_path, result, spacing_mm)
    case = load_case(case_path)
    record = write_case_record(out, case, result, demo.image_on_result_grid(), title=RECORD_TITLE, dicom=True)
    return scene_path, record


def write_scene_and_report(out: Path, case_path: Path, result, spacing_mm: float) -> tuple[Path, Path]:
    """As :func:`write_scene_and_record`; returns (scene path, ``report.html`` path)."""
    scene_path, record = write_scene_and_record(out, case_path, result, spacing_mm)
    return scene_path, record.files.html


def run(args: argparse.Namespace) -> int:

    if not 0.5 <= args.spacing_mm <= 4.0:
        raise InputError("--spacing-mm", "must lie between 0.5 and 4 mm")
    if not args.playback_interval_s > 0:
        raise InputError("--playback-interval-s", "must be a positive number of seconds")
    out: Path = args.out
    case_path = write_demo_case(out, args.spacing_mm)
    _, result = run_demo_case(case_path, out / "result", args.quiet, args.playback_interval_s)
    volumes = ", ".join(
        f"{level:g} °C: {volume:.1f} ml" for level, volume in result.isotherm_volumes_ml.items()
    )
    print(f"demo case written to {case_path}")
    print(f"simulated {result.simulated_s:g} s in {result.wall_s:.1f} s wall; ice volumes {volumes}")
    print(f"results written to {out / 'result'}/")
    scene_path, record = write_scene_and_record(out, case_path, result, args.spacing_mm)
    print(f"Slicer scene written to {scene_path}")
    print_record_summary(record)
    print(f"DICOM written to {out / 'dicom'}/ (MR series, SEG, RT Structure Set, parametric maps)")
    return 0
