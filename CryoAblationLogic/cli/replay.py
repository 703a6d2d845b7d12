"""``cryoablation replay JOURNAL --out DIR``: run a journaled procedure through live mode again.

Uses the case saved beside the journal and the session settings journaled by the monitor, feeds
every received message in journal order and writes the same outputs as ``monitor --out``
(``predicted/``, ``observed/``, ``summary.json``; no record): the isotherms and the observed ice
are the same as the monitor's, voxel for voxel. With ``--correct`` (and the monitor's
``--ensemble-members`` where the journal does not say it) the correction in ``corrected/`` is the
monitor's too: the ensemble is prepared on the probe poses the live one was drawn around.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from CryoAblationLogic.cli.monitor import add_correction_arguments, replay_correction_for
from CryoAblationLogic.core.progress import ProgressBar
from CryoAblationLogic.io.corrected_folder import write_corrected
from CryoAblationLogic.live.mode import write_live_outputs
from CryoAblationLogic.live.runner import replay_procedure

NAME = "replay"
HELP = "replay a procedure journal through live mode and write its results (the same isotherms)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "journal", type=Path, help="procedure journal (.jsonl) written by `cryoablation monitor`"
    )
    parser.add_argument("--out", type=Path, required=True, help="result folder")
    add_correction_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # the live session's corrector again: its ensemble drawn around the same poses (the journal's
    # notes), skipping the images it took before the ensemble was ready: the same correction
    corrector = replay_correction_for(args)  # None without --correct (its options checked)
    bars: list[ProgressBar] = []  # made at the first solver update, once the journal and case are read

    def on_update(session, update) -> None:
        if not bars:
            bars.append(ProgressBar(session.case.duration_s, "replaying", unit="s of the plan"))
        bars[0].update_to(update.time_s)

    try:
        session, truncated = replay_procedure(args.journal, on_update=on_update, corrector=corrector)
    finally:
        for bar in bars:
            bar.close()
    write_live_outputs(session, args.out, write_corrected=write_corrected)
    volumes = ", ".join(
        f"{lv:g} °C: {ml:.2f} ml" for lv, ml in session.simulation.isotherm_volumes_ml().items()
    )
    note = " (its last line was cut off by a crash and skipped)" if truncated else ""
    print(f"replayed {args.journal}{note}: {session.clock_s:.1f} s of procedure; ice volumes {volumes}")
    if session.ice is not None:
        print(f"observed ice: {session.ice.status_line()}")
    print(f"results written to {args.out}/")
    return 0
