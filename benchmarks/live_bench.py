"""Live mode speed, against issue 5's targets (needs slicer-core for the scene nodes).

- image_to_node: an IMAGE 256×256×30 int16 arriving (its encoded bytes written to a loopback
  socket) → our client (framing, CRC-64, decoding) → the live volume node updated in place
  (target ≤ 50 ms). Measured with and without the procedure journal (which writes each frame's
  voxels to NRRD on the network thread before handing it on); ``show_image`` alone is the scene's
  share. The consumer polls every 1 ms here; a GUI timer adds up to its period.
- event_to_overlay: a freeze/thaw event → the overlay (temperature volume and isotherm
  segmentation) reflecting it (target ≤ 1 s), on the demo case after a 2-minute freeze. The
  solver can only show an event once the procedure clock has passed it, i.e. when the console's
  next message arrives (every 0.5 s for the simulated console); what is timed here is the work from
  the event message to the refreshed overlay, given the console message one update interval later:
  feed both, advance the solver one update interval, recontour, update the nodes.

    python benchmarks/live_bench.py [--repeat 20] [--spacing 2 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time

import numpy as np
from machine import describe as describe_machine  # benchmarks/ is the script folder, on sys.path

from CryoAblationLogic.igtl.codec import encode
from CryoAblationLogic.igtl.messages import (
    ImageMessage,
    NdArrayMessage,
    StatusMessage,
    timestamp_from_seconds,
)
from CryoAblationLogic.live.journal import Journal
from CryoAblationLogic.live.link import Endpoint, LiveLink
from CryoAblationLogic.live.mode import LiveSession
from CryoAblationLogic.live.runner import LIVE_COALESCED
from CryoAblationLogic.live.synthetic import plan_case
from CryoAblationLogic.scene import volumes
from CryoAblationLogic.scene.app import create_scene_app
from CryoAblationLogic.scene.live_link import ClientSource, LiveScene, LiveSceneDriver

SHAPE = (256, 256, 30)
ORIGIN_S = 1_800_000_000.0


def _stats(samples_s: list[float]) -> dict:
    ms = np.array(samples_s) * 1000.0
    return {
        "median_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "n": len(ms),
    }


def _frame(marker: int) -> ImageMessage:
    rng = np.random.default_rng(marker)
    voxels = rng.integers(0, 3000, size=SHAPE, dtype=np.int16)
    voxels[0, 0, 0] = marker
    return ImageMessage.from_volume(voxels, (-128.0, -128.0, -45.0), (1.0, 1.0, 3.0), device_name="MR Image")


def image_to_node(repeat: int, with_journal: bool) -> dict:
    """Encoded frames written to a loopback socket (the scanner's side, done beforehand) → our
    client → the live volume node; timed from the first byte written to the node updated."""
    app = create_scene_app()
    folder = tempfile.TemporaryDirectory()
    journal = Journal(folder.name, "bench") if with_journal else None
    session = LiveSession(plan_case(3.0))
    live = LiveScene(app.scene, session)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    link = LiveLink(
        journal, scanner=None, console=Endpoint("client", "127.0.0.1", port), coalesce=LIVE_COALESCED
    )
    monitor = LiveSceneDriver(live, [ClientSource(link)], silence_s=None)
    monitor.start()
    scanner, _ = listener.accept()
    frames = [encode(_frame(1000 + n)) for n in range(repeat + 2)]
    total, show = [], []
    try:
        for n, data in enumerate(frames):
            started = time.perf_counter()
            scanner.sendall(data)
            while True:
                monitor.step(follow_wall_clock=False)
                node = live.image_node
                if node is not None and volumes.image_data_to_array(node.GetImageData())[0, 0, 0] == 1000 + n:
                    break
                time.sleep(0.001)  # a GUI timer polls; a busy loop would starve the network thread
            if n >= 2:  # the first frames create the node and warm up
                total.append(time.perf_counter() - started)
                event_time = time.perf_counter()
                live.show_image(live.session.latest_image)
                show.append(time.perf_counter() - event_time)
    finally:
        monitor.stop()
        scanner.close()
        listener.close()
        if journal is not None:
            journal.close()
        folder.cleanup()
    return {"wire_to_node": _stats(total), "show_image_alone": _stats(show), "journal": with_journal}


def _stamped(message, t: float):
    message.timestamp_raw = timestamp_from_seconds(ORIGIN_S + t)
    return message


def event_to_overlay(spacing_mm: float, repeat: int, update_interval_s: float = 1.0) -> dict:
    app = create_scene_app()
    session = LiveSession(plan_case(spacing_mm), update_interval_s=update_interval_s)
    live = LiveScene(app.scene, session)
    probes = len(session.case.probes)
    temps = lambda t: _stamped(NdArrayMessage(np.full(probes, -100.0), device_name="ProbeTemps"), t)  # noqa: E731
    started = time.perf_counter()
    for n in range(probes):
        session.feed(_stamped(StatusMessage(1, 0, "", f"FREEZE {n + 1}", device_name="Cryo"), 0.0), ORIGIN_S)
    t = 0.0
    while t < 120.0:
        t += update_interval_s
        session.feed(temps(t), ORIGIN_S + t)
    live.refresh()
    warm_s = time.perf_counter() - started
    samples, overlay = [], []
    for index in range(repeat):
        action = "THAW {} ACTIVE" if index % 2 == 0 else "FREEZE {}"
        begun = time.perf_counter()
        for n in range(probes):
            session.feed(
                _stamped(StatusMessage(1, 0, "", action.format(n + 1), device_name="Cryo"), t), ORIGIN_S + t
            )
        t += update_interval_s
        session.feed(temps(t), ORIGIN_S + t)
        refresh_started = time.perf_counter()
        live.refresh_overlay()
        done = time.perf_counter()
        samples.append(done - begun)
        overlay.append(done - refresh_started)
    return {
        "spacing_mm": spacing_mm,
        "grid_size": list(session.case.grid.size),
        "update_interval_s": update_interval_s,
        "event_to_overlay": _stats(samples),
        "overlay_refresh_alone": _stats(overlay),
        "first_120_s_of_freezing_wall_s": round(warm_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--spacing", type=float, nargs="+", default=[3.0, 2.0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = {
        "machine": describe_machine(),
        "image_to_node": [image_to_node(args.repeat, False), image_to_node(args.repeat, True)],
        "event_to_overlay": [event_to_overlay(s, max(4, args.repeat // 4)) for s in args.spacing],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(figures, stream, indent=2)


if __name__ == "__main__":
    main()
