"""``cryoablation simulate-scanner``: serve a synthetic cryoablation procedure over OpenIGTLink.

MR images of the demo phantom with the ice as a signal void (by default as a scanner shows it: three
real-time slices through the probe cluster every ``--slice-interval-s``, a 3-D volume every
``--volume-interval-s``, a baseline of each before the first freeze, Rician noise at ``--snr``,
probe voids, breathing-like shifts), probe poses with insertion errors, console freeze/thaw events
and sensor temperatures, from a "truth" solver run with perturbed tissue properties and placement
(``--property-spread``, ``--insertion-error-mm``, ``--insertion-error-deg``; see
``CryoAblationLogic/live/synthetic.py``). ``--truth-out DIR`` writes the truth run as a result
folder on the plan's grid when the procedure has been served. Listens on ``--port`` (a monitor
connects with ``--host/--port``) or connects to a listening monitor with ``--connect HOST:PORT``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.transport import Client, Server
from CryoAblationLogic.live.synthetic import IMAGING, SyntheticProcedure, SyntheticSettings, serve

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
        "--protocol-scale",
        type=float,
        default=1.0,
        help="scale the 10-8-10 min demo protocol (0.1: 168 s of protocol, after the --lead-in-s)",
    )
    parser.add_argument(
        "--lead-in-s",
        type=float,
        default=20.0,
        help="procedure s with the probes placed, before the first freeze",
    )
    parser.add_argument("--update-interval-s", type=float, default=0.5, help="wall s between console updates")
    parser.add_argument(
        "--image-every", type=int, default=2, help="--imaging phantom: an MR image every n-th update"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the property and placement errors")
    defaults = SyntheticSettings()
    parser.add_argument(
        "--imaging",
        choices=IMAGING,
        default=defaults.imaging,
        help="scanner: real-time slices and volumes as an MR scanner gives them (default); "
        "phantom: the noise-free phantom volume with every --image-every-th update (the old behaviour)",
    )
    parser.add_argument(
        "--property-spread",
        type=float,
        default=defaults.property_spread,
        help="tissue conductivity within 1 ± this, perfusion within 1 ± twice this "
        f"(default {defaults.property_spread:g})",
    )
    parser.add_argument(
        "--insertion-error-mm",
        type=float,
        default=defaults.insertion_error_mm,
        help=f"RMS probe tip placement error, mm (default {defaults.insertion_error_mm:g})",
    )
    parser.add_argument(
        "--insertion-error-deg",
        type=float,
        default=defaults.insertion_error_deg,
        help=f"RMS probe shaft tilt, degrees (default {defaults.insertion_error_deg:g})",
    )
    parser.add_argument(
        "--slice-interval-s",
        type=float,
        default=defaults.slice_interval_s,
        help=f"procedure s between the real-time slices (default {defaults.slice_interval_s:g})",
    )
    parser.add_argument(
        "--volume-interval-s",
        type=float,
        default=defaults.volume_interval_s,
        help=f"procedure s between the 3-D volumes (default {defaults.volume_interval_s:g})",
    )
    parser.add_argument(
        "--volume-spacing-mm",
        type=float,
        default=defaults.volume_spacing_mm,
        help=f"voxel size of the 3-D volumes (default {defaults.volume_spacing_mm:g})",
    )
    parser.add_argument(
        "--snr",
        type=float,
        default=defaults.snr,
        help=f"signal-to-noise ratio of the images (default {defaults.snr:g})",
    )
    parser.add_argument(
        "--breathing-mm",
        type=float,
        default=defaults.breathing_mm,
        help=f"amplitude of the breathing-like shift of each image, mm (default {defaults.breathing_mm:g})",
    )
    parser.add_argument(
        "--truth-out",
        type=Path,
        metavar="DIR",
        help="write the truth run (summary.json, temperature_final.nrrd, min_temperature.nrrd, "
        "snapshots, case.cryo.json) there as a result folder on the plan's grid",
    )
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
        imaging=args.imaging,
        property_spread=args.property_spread,
        insertion_error_mm=args.insertion_error_mm,
        insertion_error_deg=args.insertion_error_deg,
        slice_interval_s=args.slice_interval_s,
        volume_interval_s=args.volume_interval_s,
        volume_spacing_mm=args.volume_spacing_mm,
        snr=args.snr,
        breathing_mm=args.breathing_mm,
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
    if args.truth_out is not None:
        procedure.write_truth(args.truth_out)
        print(f"truth written to {args.truth_out}/ (the plan's grid)", flush=True)
    return 0
