"""Diagnosis of issue 14's live correction (the console reports the probes' poses): replay a
monitored procedure's journal with a corrector whose ensemble is drawn around a chosen placement,
and compare the predicted and corrected −40 °C zones with the truth's (mean surface distance, mm,
as ``report/ice_pictures.comparison_with_truth`` does).

    python Testing/ice/diagnose_reported_poses.py MONITOR_DIR TRUTH_DIR \
        [--centre planned|reported] [--placement-mm 0.5] [--placement-deg 1] [--members 48]

``--centre reported``: the ensemble is drawn around the probes as the monitor's session placed
them from the console's poses (``MONITOR_DIR/predicted/case.cryo.json``); ``planned``: around the
plan (what ``monitor --correct`` did before issue 14's pose fix). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics
from CryoAblationLogic.analysis.ice_correction import LETHAL_C, CorrectionSettings, IceCorrector
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.live.late_correction import replay_corrector
from CryoAblationLogic.live.runner import case_path_for, replay_procedure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("monitor", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument("--centre", choices=("planned", "reported"), default="reported")
    parser.add_argument("--placement-mm", type=float, default=0.5)
    parser.add_argument("--placement-deg", type=float, default=1.0)
    parser.add_argument("--members", type=int, default=CorrectionSettings.members)
    args = parser.parse_args()

    journal = args.monitor / "journal" / "procedure.jsonl"
    case = load_case(case_path_for(journal))
    if args.centre == "reported":
        placed = load_case(args.monitor / "predicted" / "case.cryo.json")
        case = replace(case, probes=list(placed.probes))
    settings = CorrectionSettings(
        members=args.members, insertion_error_mm=args.placement_mm, insertion_error_deg=args.placement_deg
    )
    start = time.perf_counter()
    corrector = IceCorrector(case, settings)
    corrector.prepare()
    prepared_s = time.perf_counter() - start
    session, _ = replay_procedure(journal, corrector=replay_corrector(journal, corrector))
    correction = session.ice.correction
    truth, grid = read_nrrd(args.truth / "min_temperature.nrrd")
    truth_lethal = np.asarray(truth) <= LETHAL_C
    spacing = grid.spacing_mm
    predicted = overlap_metrics(session.simulation.min_temperature_c <= LETHAL_C, truth_lethal, spacing)
    corrected = overlap_metrics(correction.min_temperature[50.0] <= LETHAL_C, truth_lethal, spacing)
    truth_case = load_case(args.truth / "case.cryo.json")
    offsets = {
        p.name: np.round(np.subtract(t.tip_mm, p.tip_mm), 2).tolist()
        for p, t in zip(case.probes, truth_case.probes, strict=True)
    }
    fitted = {
        name: [correction.parameters[f"tip_offset_{a}:{name}"]["mean"] for a in "RAS"] for name in offsets
    }
    print(
        json.dumps(
            {
                "centre": args.centre,
                "placement": [args.placement_mm, args.placement_deg],
                "members": args.members,
                "images": correction.images,
                "msd_predicted_mm": round(predicted["mean_surface_distance_mm"], 3),
                "msd_corrected_mm": round(corrected["mean_surface_distance_mm"], 3),
                "truth_tip_offset_from_ensemble_centre_mm": offsets,
                "fitted_tip_offset_mm": fitted,
                "scales": {
                    k: v["mean"]
                    for k, v in correction.parameters.items()
                    if not k.startswith(("tip", "cluster"))
                },
                "prepare_s": round(prepared_s, 1),
                "total_s": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
