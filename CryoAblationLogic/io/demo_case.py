"""The built-in demo case: the renal-tumour phantom cut to a region around the tumour and the
probes, with three 17 G probes, the 10-8-10 protocol and three sensors. ``cryoablation demo`` runs
it; the scanner simulator uses it as the plan of its synthetic procedures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import DEFAULT_ISOTHERMS_C
from CryoAblationLogic.io import phantom as ph
from CryoAblationLogic.io.case_file import parse_case, save_case

ROI_MARGIN_MM = 20.0  # around the tumour and the probes' active segments
DEMO_ISOTHERMS_C = list(DEFAULT_ISOTHERMS_C)
DEMO_SNAPSHOTS_S = [600.0, 1080.0, 1680.0]


def region_of_interest(grid, probes: list[dict], tumor_center, tumor_radius: float, margin_mm: float):
    """Index bounds [lo, hi) of a box holding the tumour and the probes' distal parts plus a margin."""
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
        # the roles of the labels, so that the metrics and the record know target and structures
        "structures": full.case_structures(
            {label: "bowel" for label, (name, _, _) in full.label_info.items() if name == "Bowel"}
        ),
    }
    return data, labels


def write_demo_case(out: Path, spacing_mm: float = 1.0) -> Path:
    """Write ``case.cryo.json`` and ``labels.nrrd`` into ``out``; return the case file path."""
    data, labels = build_demo_case(spacing_mm)
    case = parse_case(data, arrays={"labels.nrrd": labels})
    return save_case(case, out / "case.cryo.json", labelmap_filename="labels.nrrd")
