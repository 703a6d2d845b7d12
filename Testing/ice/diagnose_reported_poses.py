"""Diagnosis of issue 14's live correction (the console reports the probes' poses): replay a
monitored procedure's journal with a corrector whose ensemble is drawn around a chosen placement,
and compare the predicted and corrected −40 °C zones with the truth's (mean surface distance, mm,
as ``report/ice_pictures.comparison_with_truth`` does).

    python Testing/ice/diagnose_reported_poses.py MONITOR_DIR TRUTH_DIR \
        [--centre planned|reported] [--placement-mm MM] [--placement-deg DEG] [--members 48]
        [--images all|volume]

``--centre reported``: the ensemble is drawn around the probes as the monitor's session placed
them from the console's poses (``MONITOR_DIR/predicted/case.cryo.json``); ``planned``: around the
plan (what ``monitor --correct`` did before issue 14's pose fix). ``--images volume``: only the
3-D volumes reach the corrector; ``all``: every image is assimilated, slices too (also around the
reported poses, whose product setting ``reported_assimilates`` learns from volumes only). The
ensemble is ready before the first image (no image skipped). Prints one JSON line.

Seed-7 run of issue 14 (``cryoablation simulate-scanner --port P --acceleration 10 --spacing-mm 2
--lead-in-s 30 --seed 7 --property-spread 0.3 --insertion-error-mm 2 --insertion-error-deg 3
--truth-out truth`` beside ``cryoablation monitor --port P --out live --spacing-mm 2 --lead-in-s 30
--stop-on-disconnect --wall-clock-after 0 --update-interval-s 5 --no-record --correct``, run before
the fix; 48 members; mm of −40 °C mean surface distance from the truth's; predicted 0.263):
planned all 0.662, planned volume 0.236, reported all 0.477, reported volume 0.103.
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


class _Only:
    """Passes only images of ``kinds`` to the corrector; keeps its latest correction for the rest."""

    def __init__(self, corrector, kinds):
        self.corrector, self.kinds, self.latest = corrector, kinds, None

    def update(self, time_s, observation):
        if observation.kind in self.kinds:
            self.latest = self.corrector.update(time_s, observation)
        return self.latest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("monitor", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument("--centre", choices=("planned", "reported"), default="reported")
    # the placement prior; by default the product's for the centre (2 mm / 3° planned, 0.5 / 1 reported)
    parser.add_argument("--placement-mm", type=float)
    parser.add_argument("--placement-deg", type=float)
    parser.add_argument("--members", type=int, default=CorrectionSettings.members)
    parser.add_argument("--images", choices=("all", "volume"), default="all")
    args = parser.parse_args()

    journal = args.monitor / "journal" / "procedure.jsonl"
    case = load_case(case_path_for(journal))
    if args.centre == "reported":
        placed = load_case(args.monitor / "predicted" / "case.cryo.json")
        case = replace(case, probes=list(placed.probes))
    settings = CorrectionSettings(members=args.members, reported_assimilates=("volume", "slice"))
    mm = ("insertion_error_mm", "tracking_error_mm")[args.centre == "reported"]
    deg = ("insertion_error_deg", "tracking_error_deg")[args.centre == "reported"]
    if args.placement_mm is None:
        args.placement_mm = getattr(settings, mm)
    if args.placement_deg is None:
        args.placement_deg = getattr(settings, deg)
    settings = replace(settings, **{mm: args.placement_mm, deg: args.placement_deg})
    start = time.perf_counter()
    corrector = IceCorrector(case, settings, args.centre)
    corrector.prepare()
    prepared_s = time.perf_counter() - start
    kinds = ("volume",) if args.images == "volume" else ("volume", "slice")
    session, _ = replay_procedure(
        journal, corrector=_Only(replay_corrector(journal, corrector, skip=0), kinds)
    )
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
                "images_given": args.images,
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
