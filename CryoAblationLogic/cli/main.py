"""The ``cryoablation`` command: a thin front end over the package's subcommand modules.

Each subcommand lives in ``CryoAblationLogic/cli/<name>.py`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; the heavy imports (numba kernels, Slicer's MRML)
stay inside ``run`` so that ``cryoablation --help`` is quick (0.2 s: numpy).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from CryoAblationLogic.core.about import RESEARCH_USE_NOTE, __version__
from CryoAblationLogic.core.errors import InputError

# Order is the order shown by --help.
SUBCOMMAND_MODULES = (
    "demo",
    "simulate",
    "case_from_dicom",
    "phantom",
    "simulate_scanner",
    "monitor",
    "replay",
    "observe_ice",
    "ice_pictures",
)

EXIT_INPUT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryoablation",
        description="Plan and monitor image-guided cryoablation: ice-ball simulation, isotherms, "
        "coverage and margins. " + RESEARCH_USE_NOTE,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(f"{__package__}.{module_name}")
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except InputError as error:
        print(f"cryoablation {args.command}: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"cryoablation {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
