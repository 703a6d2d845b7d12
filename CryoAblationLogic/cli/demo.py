"""``cryoablation demo --out DIR``: the built-in renal phantom case, written and simulated.

Steps, each a small function so that more outputs (a Slicer scene, a report) can be added:
build the case from the phantom (a region of interest around the tumour and the probes), write it
as ``case.cryo.json`` + ``labels.nrrd``, run it, write the result folder under ``DIR/result/``;
then put plan and result into a Slicer scene (``DIR/scene.mrb``, opens in Slicer) and write the
HTML report (``DIR/report.html``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from CryoAblationLogic.cli.simulate import run_case
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.demo_case import write_demo_case

NAME = "demo"
HELP = "build the built-in renal-tumour phantom case, simulate it and write case and results to a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (case and result/)")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="grid spacing in mm (default 1.0)")


def run_demo_case(case_path: Path, result_dir: Path):
    """Load the written case back (as a user would) and simulate it into ``result_dir``."""

    case = load_case(case_path)
    return case, run_case(case, result_dir)


def write_scene_and_report(out: Path, case_path: Path, result, spacing_mm: float) -> tuple[Path, Path]:
    """The phantom scene with the plan and its result as ``out/scene.mrb``, and ``out/report.html``."""
    # the scene layer imports Slicer's MRML (slicer-core): loaded only by the commands that use it
    from CryoAblationLogic.scene.demo_scene import (
        write_demo_report,
        write_demo_scene,
    )

    demo, scene_path = write_demo_scene(out, case_path, result, spacing_mm)
    return scene_path, write_demo_report(out, demo, result)


def run(args: argparse.Namespace) -> int:

    if not 0.5 <= args.spacing_mm <= 4.0:
        raise InputError("--spacing-mm", "must lie between 0.5 and 4 mm")
    out: Path = args.out
    case_path = write_demo_case(out, args.spacing_mm)
    _, result = run_demo_case(case_path, out / "result")
    volumes = ", ".join(
        f"{level:g} °C: {volume:.1f} ml" for level, volume in result.isotherm_volumes_ml.items()
    )
    print(f"demo case written to {case_path}")
    print(f"simulated {result.simulated_s:g} s in {result.wall_s:.1f} s wall; ice volumes {volumes}")
    print(f"results written to {out / 'result'}/")
    scene_path, report_path = write_scene_and_report(out, case_path, result, args.spacing_mm)
    print(f"Slicer scene written to {scene_path}; report written to {report_path}")
    return 0
