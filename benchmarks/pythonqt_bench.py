"""The module's Simulate and preview with a free main thread and with a Slicer-like one (issue 16).

In Slicer the main thread idles in C with the GIL held and runs Python only in the module's
100 ms timer (``PythonQtIdle``, in CryoAblation/Testing/Python). The module runs the solver in
worker processes; for comparison the same full run is also timed in a worker *thread*, which is
what the module did before and what starves under PythonQt.

    python benchmarks/pythonqt_bench.py [--spacing MM] [--thread-timeout S] [--json PATH]

Figures: Simulate (start → results in the scene) and the preview's probe move → overlay, each as
the panel's timer sees them (polled every 100 ms, the granularity of Slicer's timer) with a free
main thread (``time.sleep``, releases the GIL) and with the Slicer-like one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe as describe_machine  # benchmarks/ is the script folder, on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CryoAblation" / "Testing" / "Python"))
from PythonQtIdle import PythonQtIdle

from CryoAblationLogic.scene import probes, workflow
from CryoAblationLogic.scene.app import create_scene_app
from CryoAblationLogic.scene.planning import PlanningSession

PREVIEW_LIMIT_S = 0.3  # probe move → overlay, the solver's share (the timer's 100 ms slots aside)


class FreeMainThread(PythonQtIdle):
    def idle(self, seconds: float) -> None:
        time.sleep(seconds)


def planning_session(spacing_mm: float) -> PlanningSession:
    app = create_scene_app()
    session = PlanningSession(app.scene, segmentations_logic=app.segmentations_logic)
    session.load_sample_phantom(with_probes=True)
    session.set_grid_spacing_mm(spacing_mm)
    session._app = app  # keep the scene's application logic alive with the session
    return session


def time_simulate(session: PlanningSession, main_thread: PythonQtIdle, timeout_s: float) -> float:
    session.start_simulation()
    try:
        return main_thread.run(session.poll_simulation, lambda: not session.simulation_running(), timeout_s)
    finally:
        session.cancel_simulation()


def time_simulate_in_a_thread(session: PlanningSession, main_thread: PythonQtIdle, timeout_s: float) -> float:
    job = workflow.SimulationJob(session.scene, session.parameters, catalog=session.probe_catalog())
    job.start()
    try:
        return main_thread.run(lambda: None, lambda: not job.running, timeout_s)
    except TimeoutError:
        return float("inf")
    finally:
        job.cancel()
        job.wait(60.0)


def time_preview_moves(session: PlanningSession, main_thread: PythonQtIdle, moves: int) -> list[float]:
    session.set_preview_enabled(True)
    preview = session.preview
    main_thread.run(session.process_preview, lambda: preview.last_applied_generation > 0, 300.0)
    probe = session.probe_nodes()[0]
    tip, entry = probes.probe_tip_entry(probe)
    latencies = []
    for move in range(moves):
        shown = preview.last_applied_generation
        shift = np.array([0.5 * (move + 1), 0.0, 0.0])
        probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + shift).tolist())
        probe.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, (entry + shift).tolist())
        main_thread.run(session.process_preview, lambda: preview.last_applied_generation > shown, 120.0)  # noqa: B023
        latencies.append(preview.last_latency_s)
    session.set_preview_enabled(False)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=2.0, help="full run's grid spacing, mm")
    parser.add_argument("--moves", type=int, default=3, help="probe moves timed per variant")
    parser.add_argument(
        "--thread-timeout", type=float, default=60.0, help="give up on the thread run after S"
    )
    parser.add_argument("--json", type=Path, help="also write the figures and machine to this file")
    args = parser.parse_args(argv)
    print(f"Simulate and preview, free and Slicer-like main thread, on {describe_machine()}")
    session = planning_session(args.spacing)
    figures: dict[str, float] = {}
    try:
        for label, main_thread in (("free", FreeMainThread()), ("pythonqt", PythonQtIdle())):
            figures[f"simulate_{args.spacing:g}mm_process_{label}"] = time_simulate(
                session, main_thread, 600.0
            )
            latencies = time_preview_moves(session, main_thread, args.moves)
            figures[f"preview_move_to_overlay_process_{label}"] = min(latencies)
        for label, main_thread in (("free", FreeMainThread()), ("pythonqt", PythonQtIdle())):
            figures[f"simulate_{args.spacing:g}mm_thread_{label}"] = time_simulate_in_a_thread(
                session, main_thread, args.thread_timeout
            )
    finally:
        session.stop_background_work()
    for name, seconds in figures.items():
        shown = (
            f">{args.thread_timeout:g} s (did not finish)" if seconds == float("inf") else f"{seconds:8.3f} s"
        )
        print(f"{name:45s} {shown}")
    over = [n for n, s in figures.items() if n.startswith("preview_") and s > PREVIEW_LIMIT_S + 0.2]
    if args.json is not None:
        figures_json = {n: (None if s == float("inf") else s) for n, s in figures.items()}
        report = {"machine": describe_machine(), "seconds": figures_json, "over_limit": over}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
