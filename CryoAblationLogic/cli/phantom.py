"""``cryoablation phantom``: write a built-in synthetic phantom (image and labels) as NRRD files:
the renal one (``--site renal``, the demo's), or the vertebral-body tumour by the spinal canal
(``--site spine``), which comes with a ready case file (``case.cryo.json``: its two-needle plan,
10-8-10, tumour, cord and nerve root) for ``cryoablation simulate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import parse_case, save_case
from CryoAblationLogic.io.phantom import make_phantom
from CryoAblationLogic.io.spine_phantom import build_spine_case, make_spine_phantom
from CryoAblationLogic.io.volumes import write_nrrd

NAME = "phantom"
HELP = "write a built-in MR-like phantom (renal, or spine with a ready case file) to a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="voxel size in mm (default 1.0)")
    parser.add_argument(
        "--site",
        choices=("renal", "spine"),
        default="renal",
        help="renal: the abdominal phantom of the demo (default); spine: a vertebral-body tumour by "
        "the spinal canal, cord and nerve root critical, with case.cryo.json",
    )


def run(args: argparse.Namespace) -> int:

    if not 0.25 <= args.spacing_mm <= 5.0:
        raise InputError("--spacing-mm", "must lie between 0.25 and 5 mm")
    phantom = make_spine_phantom(args.spacing_mm) if args.site == "spine" else make_phantom(args.spacing_mm)
    out = args.out
    write_nrrd(out / "phantom_image.nrrd", phantom.image, phantom.grid)
    write_nrrd(out / "phantom_labels.nrrd", phantom.labels, phantom.grid)
    table = {
        str(label): {"segment": name, "material": material, "role": role}
        for label, (name, material, role) in phantom.label_info.items()
    }
    (out / "phantom_labels.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    print(f"{args.site} phantom written to {out}/ (grid {phantom.grid.size} at {args.spacing_mm} mm)")
    if args.site == "spine":
        data, labels = build_spine_case(args.spacing_mm, phantom)
        case_path = save_case(parse_case(data, arrays={"labels.nrrd": labels}), out / "case.cryo.json")
        print(f"case written to {case_path}")
        image = out / "phantom_image.nrrd"
        print(f"next: cryoablation simulate {case_path} --out {out / 'result'} --image {image}")
    return 0
