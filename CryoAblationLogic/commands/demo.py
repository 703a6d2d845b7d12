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

NAME = "demo"
HELP = "build the built-in renal-tumour phantom case, simulate it and write case and results to a folder"

ROI_MARGIN_MM = 20.0  # around the tumour and the probes' active segments
DEMO_ISOTHERMS_C = [0.0, -20.0, -40.0]
DEMO_SNAPSHOTS_S = [600.0, 1080.0, 1680.0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (case and result/)")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="grid spacing in mm (default 1.0)")


def region_of_interest(grid, probes: list[dict], tumor_center, tumor_radius: float, margin_mm: float):
    """Index bounds [lo, hi) of a box holding the tumour and the probes' distal parts plus a margin."""
    import numpy as np

    points = [np.asarray(tumor_center) - tumor_radius, np.asarray(tumor_center) + tumor_radius]
    for probe in probes:
        tip = np.asarray(probe["tip_mm"], float)
        direction = np.asarray(probe["entry_mm"], float) - tip
        direction /= np.linalg.norm(direction)
        points += [tip, tip + direction * 40.0]  # the freezing part of a probe lies near its tip
    low = np.min(points, axis=0) - margin_mm
    high = np.max(points, axis=0) + margin_mm
    lo = np.clip(np.floor(grid.ras_to_index(low)).astype(int), 0, np.asarray(grid.size) - 1)
    hi = np.clip(np.ceil(grid.ras_to_index(high)).astype(int) + 1, 1, np.asarray(grid.size))
    return lo, hi


def build_demo_case(spacing_mm: float = 1.0):
    """The demo case as (case-file dict, label volume) on a region of interest of the phantom."""
    from .. import phantom as ph
    from ..grid import Grid

    full = ph.make_phantom(spacing_mm)
    probes = ph.demo_probe_plan()
    lo, hi = region_of_interest(full.grid, probes, ph.TUMOR_CENTER_MM, ph.TUMOR_RADIUS_MM, ROI_MARGIN_MM)
    labels = full.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy()
    origin = full.grid.index_to_ras(lo)
    grid = Grid(tuple(float(v) for v in origin), full.grid.spacing_mm, tuple(int(n) for n in labels.shape))
    center = ph.TUMOR_CENTER_MM
    sensors = [
        {"name": "TumorCenter", "position_mm": list(center)},
        {"name": "TumorEdgeLateral", "position_mm": [center[0] - ph.TUMOR_RADIUS_MM, center[1], center[2]]},
        {
            "name": "VesselWall",
            "position_mm": [
                ph.VESSEL_AXIS_XY_MM[0] - ph.VESSEL_RADIUS_MM,
                ph.VESSEL_AXIS_XY_MM[1],
                center[2],
            ],
        },
    ]
    sensors = [s for s in sensors if grid.contains_ras(s["position_mm"])]
    data = {
        "format": "cryoablation-case/1",
        "name": "demo: renal tumour phantom, three 17 G probes, 10-8-10",
        "grid": grid.to_dict(),
        "initial_temperature_c": 37.0,
        "tissue_map": {"labelmap": "labels.nrrd", "labels": full.material_map()},
        "probes": probes,
        "protocol": ph.demo_protocol(),
        "sensors": sensors,
        "outputs": {"isotherms_c": DEMO_ISOTHERMS_C, "snapshot_times_s": DEMO_SNAPSHOTS_S},
    }
    return data, labels


def write_demo_case(out: Path, spacing_mm: float = 1.0) -> Path:
    """Write ``case.cryo.json`` and ``labels.nrrd`` into ``out``; return the case file path."""
    from ..case import parse_case, save_case

    data, labels = build_demo_case(spacing_mm)
    case = parse_case(data, arrays={"labels.nrrd": labels})
    return save_case(case, out / "case.cryo.json", labelmap_filename="labels.nrrd")


def run_demo_case(case_path: Path, result_dir: Path):
    """Load the written case back (as a user would) and simulate it into ``result_dir``."""
    from ..case import load_case
    from .simulate import run_case

    case = load_case(case_path)
    return case, run_case(case, result_dir)


def write_scene_and_report(out: Path, case_path: Path, result, spacing_mm: float) -> tuple[Path, Path]:
    """The phantom scene with the plan and its result as ``out/scene.mrb``, and ``out/report.html``."""
    from ..mrml.demo_scene import write_demo_report, write_demo_scene  # heavy: slicer

    demo, scene_path = write_demo_scene(out, case_path, result, spacing_mm)
    return scene_path, write_demo_report(out, demo, result)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

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
