"""``cryoablation ice-pictures MONITOR_DIR [--truth TRUTH_DIR] [--time S] --out DIR``: one monitored
procedure in pictures (``report/ice_pictures.py``).

From what ``cryoablation monitor --out MONITOR_DIR`` wrote (and the truth result folder of
``simulate-scanner --truth-out``, on the plan's grid, when given): three slices through the probe
cluster at the image of ``--time`` (default: the last) with the MR image from the monitor's
journal, the observed ice, the predicted 0/−40 °C, the corrected −40 °C with its p10–p90 band and
the truth's 0/−40 °C; a chart over time; a table of the fitted parameters and forecasts.
``DIR/pictures.json`` names each file and what it shows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from CryoAblationLogic.core.errors import InputError

NAME = "ice-pictures"
HELP = "draw a monitored procedure: observed, predicted, corrected (and true) ice in slices and charts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "monitor_dir", type=Path, metavar="MONITOR_DIR", help="a `cryoablation monitor --out` folder"
    )
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="TRUTH_DIR",
        help="the truth result folder (simulate-scanner --truth-out)",
    )
    parser.add_argument(
        "--time", type=float, metavar="S", help="procedure time of the image to draw (s; default: the last)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs and pictures.json")
    parser.add_argument(
        "--dpi", type=int, default=200, help="resolution of the PNGs (default 200, as the record's pictures)"
    )


def run(args: argparse.Namespace) -> int:
    # matplotlib and VTK load with the report's pictures: only when pictures are drawn
    from CryoAblationLogic.report.ice_pictures import (
        choose_time,
        load_monitor_output,
        write_ice_pictures,
    )

    if not 50 <= args.dpi <= 600:
        raise InputError("--dpi", f"must lie in [50, 600], got {args.dpi}")
    output = load_monitor_output(args.monitor_dir)  # checked before the journal is read
    time_s = choose_time(output, args.time)
    mr_images = journal_images_at(output, time_s)
    index = write_ice_pictures(
        args.monitor_dir, args.out, truth_dir=args.truth, time_s=time_s, mr_images=mr_images, dpi=args.dpi
    )
    print(f"ice pictures of the image at {index['time_s']:g} s written to {args.out}/:")
    for entry in index["pictures"]:
        print(f"  {entry['file']}: {entry['description']}")
    comparison = index.get("comparison_with_truth")
    if comparison:
        for key, values in comparison.items():
            dice, msd = values.get("dice"), values.get("mean_surface_distance_mm")
            print(f"  {key}: Dice {_text(dice, 3)}, mean surface distance {_text(msd, 2)} mm")
    return 0


def _text(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def journal_images_at(output, time_s: float) -> list:
    """The MR images of ``time_s`` from the monitor's journal (``MONITOR_DIR/journal/``): the series'
    ``index`` counts the IMAGE messages before each. None there (or an unreadable journal): the
    pictures go without the MR image and say so."""
    # the journal reader is live mode's; the report layer below it takes the images as given
    from CryoAblationLogic.io.mr_synthesis import read_mr_image
    from CryoAblationLogic.live.journal import journal_file, read_journal
    from CryoAblationLogic.report.ice_pictures import PlacedImage

    path = output.folder / "journal" / "procedure.jsonl"
    if not path.is_file():
        print(f"ice-pictures: no journal at {path}: the slices are drawn without the MR image")
        return []
    try:
        contents = read_journal(path)
        records = contents.messages("IMAGE")
        images = []
        for row in output.rows_at(time_s):
            index = row.get("index")
            if not isinstance(index, int) or not 0 <= index < len(records):
                continue
            file = records[index].get("content", {}).get("file")
            if not file or records[index].get("device_name") != row.get("device"):
                continue
            image = read_mr_image(journal_file(contents.folder, file, "content.file"))
            images.append(PlacedImage(image.array, image.ijk_to_ras, row.get("device", "")))
        return images
    except InputError as error:
        print(f"ice-pictures: the journal's images cannot be read ({error}): drawn without the MR image")
        return []
