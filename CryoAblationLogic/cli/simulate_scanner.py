"""``cryoablation simulate-scanner``: serve a synthetic cryoablation procedure over OpenIGTLink.

MR images of the demo phantom with the ice as a signal void, probe poses with insertion errors,
console freeze/thaw events and sensor temperatures, from a "truth" solver run with perturbed tissue
properties (see ``CryoAblationLogic/live/synthetic.py``). Listens on ``--port`` (a monitor connects
with ``--host/--port``) or connects to a listening monitor with ``--connect HOST:PORT``.
"""

from __future__ import annotations

import argparse

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.transport import Client, Server
from CryoAblationLogic.live.synthetic import SyntheticProcedure, SyntheticSettings, serve

NAME = "simulate-scanner"
HELP = (
    "serve a synthetic procedure (MR images, probe poses, freeze/thaw events, temperatures) over OpenIGTLink"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=18944, help="port to listen on (default 18944)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--connect", metavar="HOST:PORT", help="connect to a listening monitor instead")
    parser.add_argument(
        "--acceleration",
        type=float,
        default=1.0,
        help="procedure seconds per wall second (60: 28 min in 28 s)",
    )
    parser.add_argument(
        "--spacing-mm", type=float, default=3.0, help="grid spacing of the truth run (default 3)"
    )
    parser.add_argument(
        "--protocol-scale", type=float, default=1.0, help="scale the 10-8-10 min demo protocol (0.1: 168 s)"
    )
    parser.add_argument(
        "--lead-in-s",
        type=float,
        default=20.0,
        help="procedure s with the probes placed, before the first freeze",
    )
    parser.add_argument("--update-interval-s", type=float, default=0.5, help="wall s between console updates")
    parser.add_argument("--image-every", type=int, default=2, help="an MR image every n-th update")
    parser.add_argument("--seed", type=int, default=7, help="seed of the property and placement errors")
    parser.add_argument("--wait-s", type=float, default=60.0, help="how long to wait for a peer (s)")


def run(args: argparse.Namespace) -> int:

    settings = SyntheticSettings(
        spacing_mm=args.spacing_mm,
        protocol_scale=args.protocol_scale,
        lead_in_s=args.lead_in_s,
        acceleration=args.acceleration,
        update_interval_s=args.update_interval_s,
        image_every=args.image_every,
        seed=args.seed,
    )
    settings.check()
    if args.connect:
        host, _, port = args.connect.rpartition(":")
        if not host or not port.isdigit():
            raise InputError("--connect", f"{args.connect!r} is not HOST:PORT")
        endpoint = Client(host, int(port))
        where = f"connecting to {args.connect}"
    else:
        endpoint = Server(args.port, args.host)
        where = f"listening on {args.host}:{args.port}"
    procedure = SyntheticProcedure(settings)
    endpoint.start()
    print(
        f"simulate-scanner: {procedure.end_s:g} s procedure ×{settings.acceleration:g}, {where}", flush=True
    )
    try:
        serve(procedure, endpoint, wait_s=args.wait_s, log=lambda text: print(text, flush=True))
    finally:
        endpoint.stop()
    return 0
