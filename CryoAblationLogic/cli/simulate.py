"""``cryoablation simulate CASE.cryo.json --out DIR``: run a case file, write its result folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.result_folder import write_result_folder

NAME = "simulate"
HELP = "run an ice-ball simulation case file (*.cryo.json) and write its result folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", type=Path, help="case file (*.cryo.json)")
    parser.add_argument("--out", type=Path, required=True, help="result folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the output is not a terminal."""

    def __init__(self, stream=None, width: int = 40):
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = self.stream.isatty()
        self._last = -1

    def __call__(self, fraction: float, time_s: float) -> None:
        if not self.enabled:
            return
        filled = round(fraction * self.width)
        percent = int(fraction * 100)
        if percent == self._last:
            return
        self._last = percent
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {percent:3d}%  t = {time_s:7.1f} s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def run_case(case, out: Path, quiet: bool = False):
    from CryoAblationLogic.physics.simulation import simulate  # numba kernels compile or load on first use

    bar = ProgressBar()
    if quiet:
        bar.enabled = False
    try:
        result = simulate(case, progress=bar)
    finally:
        bar.close()
    write_result_folder(result, out, case)
    return result


def run(args: argparse.Namespace) -> int:

    case = load_case(args.case)
    result = run_case(case, args.out, args.quiet)
    volumes = ", ".join(
        f"{level:g} °C: {volume:.2f} ml" for level, volume in result.isotherm_volumes_ml.items()
    )
    print(
        f"simulated {result.simulated_s:g} s in {result.wall_s:.2f} s wall; isotherm volumes {volumes}; "
        f"energy balance error {result.energy_balance_error:.2e}"
    )
    print(f"results written to {args.out}/")
    return 0
