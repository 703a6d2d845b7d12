"""``cryoablation case-from-dicom``: a case file from a DICOM MR series and a DICOM SEG or RT
Structure Set of the target and the structures, with probes and protocol from a plan file.

The series gives the grid (cut to the target and the probes plus a margin, as the demo does) and
``image.nrrd`` for the record's pictures; each segment or ROI becomes a label of the tissue map
with its role (target, critical, vessel, organ) and material; the plan file (JSON) gives the keys
of a case file that DICOM does not hold: ``probes`` and ``protocol`` (required), and any of
``sensors``, ``outputs``, ``boundaries``, ``materials``, ``initial_temperature_c``, ``name``.
Then ``cryoablation simulate OUT/case.cryo.json --out OUT/result --image OUT/image.nrrd``.

Segments that are predicted ice (the isotherms of an earlier run's DICOM export, an RT treated
volume) are left out unless ``--role`` names them. Where segments overlap, an organ gives way to
what lies in it, a critical structure keeps its voxels, and within a role the smaller segment
wins (each overlap is printed). A target or critical structure left with no voxel on the case's
grid is an error that says what to change, before any simulation runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.case_file import parse_case, save_case
from CryoAblationLogic.io.volumes import write_nrrd
from CryoAblationLogic.physics.materials import load_material_library

NAME = "case-from-dicom"
HELP = "build a case file from a DICOM MR series and a DICOM SEG or RT Structure Set of target and structures"

PLAN_KEYS = {
    "probes", "protocol", "sensors", "outputs", "boundaries", "materials", "initial_temperature_c", "name",
}  # fmt: skip
TARGET_WORDS = ("tumor", "tumour", "lesion", "target", "gtv", "mass", "nodule")
VESSEL_WORDS = ("vessel", "artery", "vein", "aorta", "cava")
ORGAN_WORDS = ("kidney", "liver", "prostate", "lung", "fat", "muscle", "psoas", "body")
DEFAULT_MATERIAL_BY_ROLE = {"target": "tumor", "vessel": "blood"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mr", type=Path, required=True, help="folder holding the DICOM MR series")
    parser.add_argument("--series-uid", help="the series to use when the folder holds several")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seg", type=Path, help="DICOM SEG of target and structures on the series")
    source.add_argument("--rtstruct", type=Path, help="DICOM RT Structure Set of target and structures")
    parser.add_argument(
        "--plan",
        type=Path,
        required=True,
        help="JSON object with the case-file keys that DICOM does not hold (docs/case-format.md): "
        "probes and protocol, and optionally sensors, outputs, boundaries, materials, "
        "initial_temperature_c, name",
    )
    parser.add_argument(
        "--tissue", required=True, help="material of everything outside the structures, e.g. kidney"
    )
    parser.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="NAME=ROLE[:TYPE]",
        help="role of a segment (target, critical, vessel, organ) and, for a critical structure, its "
        "type (bowel, nerve, cord, ureter, skin); default: from words in its name, else critical",
    )
    parser.add_argument(
        "--material",
        action="append",
        default=[],
        metavar="NAME=MATERIAL",
        help="material of a segment; default: tumor for the target, blood for vessels, else --tissue",
    )
    parser.add_argument(
        "--margin-mm", type=float, default=20.0, help="grid margin around target and probes (default 20)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for case.cryo.json, labels.nrrd, image.nrrd"
    )


def run(args: argparse.Namespace) -> int:
    # DICOM libraries: loaded only when DICOM is asked for
    from CryoAblationLogic.io.dicom_import import predicted_regions, read_mr_series, read_structures

    plan = _read_plan(args.plan)
    roles = _pairs(args.role, "--role")
    materials = _pairs(args.material, "--material")
    _check_materials(args.tissue, materials, plan)
    image, grid, series_uid = read_mr_series(args.mr, args.series_uid)
    source = args.seg or args.rtstruct
    masks = read_structures(source, grid)
    masks = {name: mask for name, mask in masks.items() if mask.any()}
    if not masks:
        raise InputError(str(source), "holds no segment with any voxel on the series")
    for name in [*roles, *materials]:
        if name not in masks:
            names = ", ".join(masks)
            raise InputError("--role/--material", f"no segment named {name!r} (segments: {names})")
    # Predicted ice (the isotherms of an earlier run's DICOM export) is not anatomy to plan around.
    predicted = sorted(name for name in predicted_regions(source) if name in masks and name not in roles)
    if predicted:
        print(f"not used: {', '.join(predicted)} (predicted ice, not anatomy; --role NAME=ROLE uses one)")
        masks = {name: mask for name, mask in masks.items() if name not in predicted}
    if len(masks) > 255:  # the tissue map is one byte per voxel, 0 the surrounding tissue
        raise InputError(str(source), f"holds {len(masks)} segments; a case takes at most 255")
    structures = []
    label_materials = {"0": args.tissue}
    for label, name in enumerate(masks, start=1):
        role, _, kind = roles.get(name, _guess_role(name)).partition(":")
        if role not in ("target", "critical", "vessel", "organ"):
            raise InputError(f"--role {name}", f"role {role!r} is not target, critical, vessel or organ")
        label_materials[str(label)] = materials.get(name, DEFAULT_MATERIAL_BY_ROLE.get(role, args.tissue))
        structures.append({"label": label, "name": name, "role": role, **({"type": kind} if kind else {})})
    if not any(s["role"] == "target" for s in structures):
        raise InputError("--role", "no segment is the target (name one with --role NAME=target)")
    labels = _paint(masks, structures)
    lo, hi = _region(grid, labels, structures, plan["probes"], args.margin_mm)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    size = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    present = set(np.unique(labels[crop]).tolist())
    outside = [s for s in structures if s["label"] not in present]
    for structure in outside:
        if structure["role"] in ("target", "critical"):
            raise InputError(
                f"segment {structure['name']!r}",
                f"({structure['role']}) lies outside the case's grid (the target and the probes' "
                f"distal 40 mm ± {args.margin_mm:g} mm): raise --margin-mm to take it in",
            )
        print(f"not used: {structure['name']!r} ({structure['role']}) lies outside the case's grid")
    structures = [s for s in structures if s["label"] in present]
    label_materials = {k: v for k, v in label_materials.items() if k == "0" or int(k) in present}
    sub_grid = Grid(tuple(float(v) for v in grid.index_to_ras(lo)), grid.spacing_mm, size)
    data = {
        "format": "cryoablation-case/1",
        "name": plan.get("name", f"case from DICOM series {series_uid}"),
        "grid": sub_grid.to_dict(),
        "tissue_map": {"labelmap": "labels.nrrd", "labels": label_materials},
        "structures": structures,
        **{key: value for key, value in plan.items() if key != "name"},
    }
    case = parse_case(data, arrays={"labels.nrrd": labels[crop]})
    case_path = save_case(case, args.out / "case.cryo.json", labelmap_filename="labels.nrrd")
    image_path = write_nrrd(args.out / "image.nrrd", image[crop].astype(np.float32), sub_grid)
    named = ", ".join(f"{s['name']}: {s['role']}" for s in structures)
    print(f"case written to {case_path} ({named})")
    print(f"image written to {image_path}")
    print(f"next: cryoablation simulate {case_path} --out {args.out / 'result'} --image {image_path}")
    return 0


def _paint(masks: dict[str, np.ndarray], structures: list[dict]) -> np.ndarray:
    """The tissue map's labels where segments overlap: an organ gives way to a vessel, the target
    or a critical structure lying in it, and a critical structure keeps its voxels against the
    target (its distance to the ice is what must not be lost); within a role the smaller segment
    (the more specific one) wins. Prints the overlaps; a segment left with no voxel is an error."""
    rank = {"organ": 0, "vessel": 1, "target": 2, "critical": 3}
    sizes = {name: int(mask.sum()) for name, mask in masks.items()}
    order = sorted(structures, key=lambda s: (rank[s["role"]], -sizes[s["name"]]))
    labels = np.zeros(next(iter(masks.values())).shape, dtype=np.uint8)
    names = {s["label"]: s["name"] for s in structures}
    for structure in order:
        mask = masks[structure["name"]]
        covered = labels[mask]
        for other, count in zip(*np.unique(covered[covered > 0], return_counts=True), strict=True):
            print(f"overlap: {count} voxels of {names[int(other)]!r} are given to {structure['name']!r}")
        labels[mask] = structure["label"]
    for structure in structures:
        if not np.any(labels == structure["label"]):
            raise InputError(
                f"segment {structure['name']!r}",
                "lies wholly within segments that take its voxels (see the overlaps above); "
                "name its role with --role or leave it out of the segmentation",
            )
    return labels


def _read_plan(path: Path) -> dict:
    if not path.is_file():
        raise InputError(str(path), "plan file not found")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(str(path), f"not valid JSON: {error}") from error
    if not isinstance(plan, dict):
        raise InputError(str(path), "must be a JSON object")
    for key in plan:
        if key not in PLAN_KEYS:
            known = ", ".join(sorted(PLAN_KEYS))
            raise InputError(f"{path.name}: {key}", f"unknown key (a plan gives: {known})")
    for key in ("probes", "protocol"):
        if key not in plan:
            raise InputError(f"{path.name}: {key}", "missing")
    return plan


def _check_materials(tissue: str, materials: dict[str, str], plan: dict) -> None:
    """--tissue and each --material name a material of the library or of the plan's ``materials``
    (checked before the DICOM files are read)."""
    own = plan.get("materials")
    known = set(load_material_library()) | (set(own) if isinstance(own, dict) else set())
    for option, name in [("--tissue", tissue), *((f"--material {k}", v) for k, v in materials.items())]:
        if name not in known:
            raise InputError(option, f"unknown material {name!r} (known: {', '.join(sorted(known))})")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(option, f"{item!r} must be NAME=VALUE")
        pairs[name] = value
    return pairs


def _guess_role(name: str) -> str:
    lowered = name.lower()
    for role, words in (("target", TARGET_WORDS), ("vessel", VESSEL_WORDS), ("organ", ORGAN_WORDS)):
        if any(word in lowered for word in words):
            return role
    return "critical"


def _region(grid: Grid, labels: np.ndarray, structures: list[dict], probes: list, margin_mm: float):
    """Index bounds [lo, hi) of the target and the probes' distal 40 mm, grown by ``margin_mm``."""
    if not np.isfinite(margin_mm) or margin_mm < 0:
        raise InputError("--margin-mm", "must be a finite number ≥ 0")
    target_labels = [s["label"] for s in structures if s["role"] == "target"]
    ijk = np.argwhere(np.isin(labels, target_labels))
    points = [grid.index_to_ras(ijk.min(axis=0)), grid.index_to_ras(ijk.max(axis=0))]
    for index, probe in enumerate(probes):
        try:
            tip = np.asarray(probe["tip_mm"], dtype=float)
            entry = np.asarray(probe["entry_mm"], dtype=float)
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"probes[{index}]", "needs tip_mm and entry_mm (RAS mm)") from error
        direction = (entry - tip) / max(float(np.linalg.norm(entry - tip)), 1e-9)
        points += [tip, tip + 40.0 * direction]  # the freezing part of a probe lies near its tip
    low = np.min(points, axis=0) - margin_mm
    high = np.max(points, axis=0) + margin_mm
    lo = np.clip(np.floor(grid.ras_to_index(low)).astype(int), 0, np.asarray(grid.size) - 1)
    hi = np.clip(np.ceil(grid.ras_to_index(high)).astype(int) + 1, 1, np.asarray(grid.size))
    return lo, hi
