"""``cryoablation monitor``: live mode from the command line.

Connects to a scanner/console (``--host H --port P``) and/or accepts them (``--listen PORT``),
journals every message (``--journal PATH``), runs the plan's simulation with the console's
freeze/thaw events on the procedure clock, segments the ice in every MR image against its
pre-freeze baseline and compares it with the prediction (``live/ice_tracking.py``), and writes
(``--out DIR``): ``DIR/predicted/`` (the result folder of docs/case-format.md, the plan following
the console, with the isotherm volumes over time and the sensor readings beside the prediction),
``DIR/observed/`` (``ice_final.nrrd`` on the plan grid and one label map per image),
``DIR/summary.json`` (the observed-vs-predicted series) and the procedure's record (metrics,
report, scene) in ``DIR``. ``--duration S``, Ctrl-C (SIGINT) and SIGTERM stop it cleanly, files
written.
The plan is ``--case FILE`` or, without it, the built-in demo case (``--spacing-mm``,
``--protocol-scale`` as given to ``simulate-scanner``). An existing journal is resumed.

It says what is wrong as it happens: a peer that cannot be reached is reported at once and
retried (a status line "waiting for console at HOST:PORT: connection refused"), a refused
connection or a dropped message is printed; and it exits with status 3 when no peer sent anything
before the end (``--wait`` makes waiting the whole ``--duration`` for nobody a normal end).
Where it listens, only ``--allow-peer`` addresses may connect (default: this machine).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from CryoAblationLogic.analysis.forecast_text import forecast_words
from CryoAblationLogic.analysis.ice_correction import CorrectionSettings
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.inbox import LinkEvent
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.corrected_folder import write_corrected
from CryoAblationLogic.live.late_correction import EnsemblePreparation, LiveCorrection
from CryoAblationLogic.live.link import Endpoint
from CryoAblationLogic.live.mode import write_live_outputs
from CryoAblationLogic.live.runner import prepare_replay_correction, start_monitor_run
from CryoAblationLogic.live.synthetic import plan_case

NAME = "monitor"
EXIT_NO_PEER = 3  # nothing answered before the end
HELP = "monitor a procedure live: journal, solver on the console's events, isotherm results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="host of the scanner/console to connect to")
    parser.add_argument("--port", type=int, help="port of the scanner/console to connect to")
    parser.add_argument("--listen", type=int, metavar="PORT", help="accept scanner/console connections here")
    parser.add_argument(
        "--listen-host",
        default="127.0.0.1",
        help="address to accept them on (default 127.0.0.1; 0.0.0.0: all)",
    )
    parser.add_argument(
        "--allow-peer",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="address, network (10.1.2.0/24) or host that may connect to --listen (repeatable; "
        "default: this machine only; '*': anyone)",
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="at the end, write only the result folder (no metrics.json, report or scene.mrb)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="waiting the whole --duration without a peer is a normal end (exit 0), not an error",
    )
    parser.add_argument(
        "--journal", type=Path, help="procedure journal (.jsonl; default DIR/journal/procedure.jsonl)"
    )
    parser.add_argument("--out", type=Path, required=True, help="result folder")
    parser.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    parser.add_argument(
        "--stop-on-disconnect",
        action="store_true",
        help="stop cleanly when the peer that connected goes away",
    )
    parser.add_argument(
        "--fsync", action="store_true", help="force every journal record to disk (power-cut safe)"
    )
    parser.add_argument("--compress-images", action="store_true", help="gzip the journal's image files")
    parser.add_argument("--case", type=Path, help="the plan (.cryo.json); default: the built-in demo case")
    parser.add_argument("--spacing-mm", type=float, default=3.0, help="demo case grid spacing (default 3)")
    parser.add_argument("--protocol-scale", type=float, default=1.0, help="demo case protocol scale")
    parser.add_argument(
        "--lead-in-s", type=float, default=20.0, help="demo case lead-in before the first freeze"
    )
    parser.add_argument(
        "--wall-clock-after",
        type=float,
        default=1.0,
        metavar="S",
        help="when the console is silent this long, the clock follows the wall clock (0: never)",
    )
    parser.add_argument(
        "--update-interval-s",
        type=float,
        default=1.0,
        help="procedure seconds between field updates (default 1)",
    )
    parser.add_argument(
        "--no-ice",
        action="store_true",
        help="do not segment the ice in the MR images (no DIR/observed/)",
    )
    add_correction_arguments(parser)


def add_correction_arguments(parser: argparse.ArgumentParser) -> None:
    """``--correct`` and ``--ensemble-members``: shared by ``monitor`` and ``replay``."""
    parser.add_argument(
        "--correct",
        action="store_true",
        help="correct the prediction from the observed ice (DIR/corrected/: the corrected result, "
        "its p10/p90 band, forecasts in DIR/summary.json); an ensemble of solver runs drawn around "
        "the probe poses the console reports, prepared in its own process beside the session "
        "(about 1 min for the demo plan on 2 cores; images that come before it is ready are kept and "
        "corrected from once it is)",
    )
    parser.add_argument(
        "--ensemble-members",
        type=int,
        default=CorrectionSettings.members,
        metavar="N",
        help=f"solver runs of the correction's ensemble (8-512, default {CorrectionSettings.members}; "
        "a replay must use the monitor's)",
    )


def _check_correction(args: argparse.Namespace) -> bool:
    """Whether ``--correct`` is asked for, its options checked."""
    if not args.correct:
        if args.ensemble_members != CorrectionSettings.members:
            raise InputError("--ensemble-members", "sizes the correction's ensemble: give it with --correct")
        return False
    if getattr(args, "no_ice", False):
        raise InputError("--correct", "corrects from the observed ice: drop --no-ice")
    if not 8 <= args.ensemble_members <= 512:
        raise InputError("--ensemble-members", f"must lie in [8, 512], got {args.ensemble_members}")
    return True


def live_correction_for(args: argparse.Namespace, case) -> LiveCorrection | None:
    """The live correction that ``--correct`` asks for (its ensemble's process started), or None."""
    if not _check_correction(args):
        return None
    return LiveCorrection(case, args.ensemble_members, EnsemblePreparation.start())


def replay_correction_for(args: argparse.Namespace):
    """The corrector of ``replay --correct``: prepared on the poses the live session's ensemble
    was drawn around, skipping and keeping the images it skipped and kept (its journal's notes),
    or None."""
    if not _check_correction(args):
        return None
    gated = prepare_replay_correction(
        args.journal, args.ensemble_members, log=lambda text: print(text, flush=True)
    )
    if gated is None:
        print("correction: the live session's ensemble was never ready: nothing to correct", flush=True)
    return gated


class _Stop:
    """SIGINT / SIGTERM ask the loop to stop (checked between solver updates)."""

    def __init__(self):
        self.reason = ""

    def __call__(self, signum, frame) -> None:
        self.reason = signal.Signals(signum).name


def run(args: argparse.Namespace) -> int:

    if args.port is None and args.listen is None:
        raise InputError("--port", "give --host/--port to connect, --listen PORT to accept, or both")
    if args.port is not None and not 0 < args.port <= 65535:
        raise InputError("--port", f"{args.port} is not a TCP port to connect to (1-65535)")
    if args.listen is not None and not 0 <= args.listen <= 65535:  # 0: any free port
        raise InputError("--listen", f"{args.listen} is not a TCP port (0-65535)")
    if not args.wall_clock_after >= 0:
        raise InputError("--wall-clock-after", "must be a number of seconds ≥ 0 (0: never)")
    if args.duration is not None and not args.duration > 0:
        raise InputError("--duration", "must be a positive number of seconds")
    journal_path = args.journal or args.out / "journal" / "procedure.jsonl"
    case = (
        load_case(args.case) if args.case else plan_case(args.spacing_mm, args.protocol_scale, args.lead_in_s)
    )
    scanner = (
        Endpoint("server", args.listen_host, args.listen, tuple(args.allow_peer))
        if args.listen is not None
        else None
    )
    console = Endpoint("client", args.host, args.port) if args.port is not None else None
    # its ensemble runs in a process of its own, drawn around the poses the console reports
    correction = live_correction_for(args, case)
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        monitor = start_monitor_run(
            case,
            journal_path,
            scanner,
            console,
            update_interval_s=args.update_interval_s,
            silence_s=args.wall_clock_after or None,
            fsync=args.fsync,
            compress_images=args.compress_images,
            track_ice=not args.no_ice,
            corrector=correction.gated if correction is not None else None,
        )
        if correction is not None:
            session = monitor.session
            correction.attach(monitor.journal, lambda: session.clock_s, session.planned_case)
            print(f"correction: preparing an ensemble of {args.ensemble_members} solver runs", flush=True)
        if monitor.resumed_messages:
            print(f"resumed {journal_path}: {monitor.resumed_messages} messages fed again", flush=True)
        print(f"monitor: journal {journal_path}", flush=True)
        start = time.monotonic()
        ever_connected = False
        last_report = start
        # the last link event said of each source: a link whose messages are still being fed is
        # not "still waiting" until its disconnection, queued behind them, has been said
        reported: dict[str, str] = {}
        while not stop.reason:
            if args.duration is not None and time.monotonic() - start >= args.duration:
                stop.reason = f"duration {args.duration:g} s"
                break
            fed = monitor.step()
            for line in correction.poll() if correction is not None else []:
                print(line, flush=True)
            for source, event in monitor.link_events:
                _report(source, event)
                if isinstance(event, LinkEvent):
                    reported[source] = event.kind
            monitor.link_events.clear()
            connected = any(link.connected for link in monitor.link.links.values())
            ever_connected |= connected
            if args.stop_on_disconnect and ever_connected and not connected and fed == 0:
                stop.reason = "peer disconnected"
                break
            if time.monotonic() - last_report > 5.0:
                last_report = time.monotonic()
                for line in still_waiting(monitor.link.links, reported):
                    print(line, flush=True)
                s = monitor.session
                print(
                    f"  procedure {s.clock_s:7.1f} s, solver {s.time_s:7.1f} s, "
                    f"{s.console_messages} console messages",
                    flush=True,
                )
                if s.ice is not None and s.ice.images:
                    print(f"  {s.ice.status_line()}", flush=True)
                if correction is not None and correction.state["phase"] == "preparing":
                    state = correction.state
                    print(
                        f"  correction: preparing the ensemble around the {state.get('placement')} "
                        f"probe poses, {state['done']}/{state['total']} solver runs",
                        flush=True,
                    )
                if correction is not None and correction.state.get("recentring"):
                    again = correction.state["recentring"]
                    print(
                        f"  correction: re-centring the ensemble ({again['generation']}), "
                        f"{again['done']}/{again['total']} solver runs",
                        flush=True,
                    )
            if fed == 0:
                time.sleep(0.02)
        monitor.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if correction is not None:
            correction.preparation.close()
    write_live_outputs(monitor.session, args.out, write_corrected=write_corrected)
    if not args.no_record:
        _write_record(args.out)
    s = monitor.session
    if s.ice is not None:
        print(f"observed ice: {s.ice.status_line()}")
        if s.ice.correction is not None:
            print(correction_line(s.ice.correction))
    volumes = ", ".join(f"{lv:g} °C: {ml:.2f} ml" for lv, ml in s.simulation.isotherm_volumes_ml().items())
    print(f"monitor stopped ({stop.reason}): {s.clock_s:.1f} s of procedure; ice volumes {volumes}")
    print(f"results written to {args.out}/, journal {journal_path}")
    answered = [source for source in monitor.link.links if monitor.link.received_on(source)]
    if not answered and not args.wait:
        waited = ", ".join(f"{source} at {_where(link)}" for source, link in monitor.link.links.items())
        print(f"cryoablation monitor: error: no peer sent anything ({waited})", file=sys.stderr)
        return EXIT_NO_PEER
    return 0


def correction_line(correction) -> str:
    """One line: the corrected −40 °C volume with its band, each forecast's median with its band
    (or, where the median does not see it, the chance that it happens all the same), its validity."""
    lines = [f"corrected after {correction.images} images (at {correction.time_s:.0f} s)"]
    generation = (getattr(correction, "ensemble", None) or {}).get("generation", 0)
    if generation:
        lines[0] += f", ensemble re-centred ({generation})"
    lethal = correction.isotherm_volumes_ml.get(-40.0)
    if lethal:
        lines.append(f"−40 °C {lethal['p50']:.1f} ml (p10–p90 {lethal['p90']:.1f}–{lethal['p10']:.1f})")
    for event, times in correction.forecasts.items():
        lines.append(f"{event} {forecast_words(times, lambda t: f'{t:.0f} s')}")
    if not correction.valid:
        lines.append("NOT VALID: " + "; ".join(correction.departures))
    return "; ".join(lines)


def _write_record(out: Path) -> None:
    """The procedure's record (of DIR/predicted/) in DIR: metrics.json, report.html/.pdf, scene.mrb."""
    # the scene layer imports Slicer's MRML (slicer-core): loaded only when a record is written
    from CryoAblationLogic.scene.plan_report import write_procedure_report

    record, scene_path = write_procedure_report(out / "predicted", out)
    if record is None:
        print(f"scene written to {scene_path} (the case names no target: no metrics or report)")
    else:
        print(f"record written to {out}/: metrics.json, report.html, report.pdf; scene {scene_path}")


def still_waiting(links: dict, reported: dict[str, str]) -> list[str]:
    """The status lines of the links not connected. A link whose last event said (``reported``,
    source → kind) is "connected" gets none: its disconnection is queued behind the messages still
    being fed, and "still waiting" before "disconnected" reads as if the peer never came."""
    lines = []
    for source, link in links.items():
        if link.connected or reported.get(source) == "connected":
            continue
        why = getattr(link, "last_failure", None)
        tries = getattr(link, "attempts_failed", 0)
        detail = f" ({tries} attempts, {why})" if why else ""
        lines.append(f"  still waiting for {source} at {_where(link)}{detail}")
    return lines


def _where(link) -> str:
    return f"{link.host}:{link.port}"


def _report(source: str, event) -> None:
    """One line per change of a link the user must know about (the loop stays quiet otherwise)."""
    if not isinstance(event, LinkEvent):
        return
    if event.kind == "unreachable":
        print(f"  waiting for {source} at {event.peer}: {event.detail} (retrying)", flush=True)
    elif event.kind == "connected":
        print(f"  {source} connected ({event.peer})", flush=True)
    elif event.kind == "disconnected":
        print(f"  {source} disconnected ({event.peer}: {event.detail})", flush=True)
    else:
        print(f"  {source}: {event.detail}", flush=True)
