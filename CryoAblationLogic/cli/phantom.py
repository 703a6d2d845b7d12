"""``cryoablation phantom``: write the built-in synthetic phantom (image and labels) as NRRD files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.phantom import make_phantom
from CryoAblationLogic.io.volumes import write_nrrd

NAME = "phantom"
HELP = "write the built-in abdominal MR-like phantom (image, label map, label table) to a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="voxel size in mm (default 1.0)")


def run(args: argparse.Namespace) -> int:

    if not 0.25 <= args.spacing_mm <= 5.0:
        raise InputError("--spacing-mm", "must lie between 0.25 and 5 mm")
    phantom = make_phantom(args.spacing_mm)
    out = args.out
    write_nrrd(out / "phantom_image.nrrd", phantom.image, phantom.grid)
    write_nrrd(out / "phantom_labels.nrrd", phantom.labels, phantom.grid)
    table = {
        str(label): {"segment": name, "material": material, "role": role}
        for label, (name, material, role) in phantom.label_info.items()
    }
    (out / "phantom_labels.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    print(f"phantom written to {out}/ (grid {phantom.grid.size} at {args.spacing_mm} mm)")
    return 0
