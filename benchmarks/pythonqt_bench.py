"""The module's Simulate and preview with a free main thread and with a Slicer-like one (issue 16).

In Slicer the main thread idles in C with the GIL held and runs Python only in the module's
100 ms timer (``PythonQtIdle``, in CryoAblation/Testing/Python). The module runs the solver in
worker processes; for comparison the same full run is also timed in a worker *thread*, which is
what the module did before and what starves under PythonQt.

    python benchmarks/pythonqt_bench.py [--spacing MM] [--thread-timeout S] [--json PATH]

Figures: Simulate (start → results in the scene) and the preview's probe move → overlay (its first,
coarser answer; then the preview grid's), each as
the panel's timer sees them (polled every 100 ms, the granularity of Slicer's timer) with a free
main thread (``time.sleep``, releases the GIL) and with the Slicer-like one; the preview also with
the Slicer-like main thread while two busy processes load the machine, and the ratios of the
three. Live mode: the self-test's short live procedure (console and MR bridge on loopback in
their own process, the live session in its worker process), message arrival → overlay updated
(median and worst), free, Slicer-like, and Slicer-like under the same load. The preview is timed
with the module's own timer interval (100 ms, 20 ms while a move awaits its overlay).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe as describe_machine  # benchmarks/ is the script folder, on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CryoAblation" / "Testing" / "Python"))
import CryoAblationScenarios as scenarios
from PythonQtIdle import PythonQtIdle

from CryoAblationLogic.scene import probes, workflow
from CryoAblationLogic.scene.app import create_scene_app
from CryoAblationLogic.scene.planning import PlanningSession

PREVIEW_LIMIT_S = 0.3  # probe move → overlay (first and refined), median of the moves


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


def time_preview_moves(
    session: PlanningSession, main_thread: PythonQtIdle, moves: int
) -> tuple[list[float], list[float]]:
    """Probe move → first overlay (the worker's coarser first answer) and → the preview grid's
    overlay, per move."""
    session.set_preview_enabled(True)
    preview = session.preview

    # the module's timer: 100 ms, quicker while a move awaits its overlay (timer_interval_ms)
    def interval_s() -> float:
        return session.timer_interval_ms() / 1000.0

    main_thread.run(session.process_preview, lambda: preview.last_applied_generation > 0, 300.0, interval_s)
    main_thread.run(session.process_preview, lambda: preview.last_applied_final, 300.0, interval_s)
    probe = session.probe_nodes()[0]
    tip, entry = probes.probe_tip_entry(probe)
    first, refined = [], []
    for move in range(moves):
        shown = preview.last_applied_generation
        shift = np.array([0.5 * (move + 1), 0.0, 0.0])
        probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + shift).tolist())
        probe.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, (entry + shift).tolist())
        main_thread.run(
            session.process_preview,
            lambda: preview.last_applied_generation > shown,  # noqa: B023
            120.0,
            interval_s,
        )
        first.append(preview.last_latency_s)
        main_thread.run(session.process_preview, lambda: preview.last_applied_final, 120.0, interval_s)
        refined.append(preview.last_refined_latency_s)
    session.set_preview_enabled(False)
    return first, refined


def _busy() -> None:  # a process that keeps one core busy (the load)
    while True:
        pass


class MachineLoad:
    """``count`` busy processes while in the ``with`` block (a shared machine's other work)."""

    def __init__(self, count: int = 2):
        self.count = count
        self._processes: list = []

    def __enter__(self):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._processes = [context.Process(target=_busy, daemon=True) for _ in range(self.count)]
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc) -> None:
        for process in self._processes:
            process.terminate()
            process.join(5.0)


def time_live_updates(main_thread: PythonQtIdle, folder: Path, label: str) -> list[float]:
    """Message arrival → overlay updated, per overlay update of the short live procedure (its
    journal is ``live-<label>.jsonl``: one per variant, as an existing journal would be resumed)."""
    app = create_scene_app()
    parameters = scenarios.load_phantom(app.scene, app.segmentations_logic)
    scenarios.place_probes(app.scene, parameters)
    parameters.update_settings(grid_spacing_mm=4.0)
    journal = folder / f"live-{label}.jsonl"
    live = scenarios.run_short_live_procedure(
        app.scene, parameters, journal, timeout_s=300.0, main_thread=main_thread, peers_in_process=True
    )
    return live.overlay_latencies_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=2.0, help="full run's grid spacing, mm")
    parser.add_argument("--moves", type=int, default=5, help="probe moves timed per variant (median)")
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
            first, refined = time_preview_moves(session, main_thread, args.moves)
            figures[f"preview_move_to_overlay_process_{label}"] = float(np.median(first))
            figures[f"preview_move_to_refined_overlay_process_{label}"] = float(np.median(refined))
        with MachineLoad(2):
            first, refined = time_preview_moves(session, PythonQtIdle(), args.moves)
        figures["preview_move_to_overlay_process_pythonqt_loaded"] = float(np.median(first))
        figures["preview_move_to_refined_overlay_process_pythonqt_loaded"] = float(np.median(refined))
        quiet = figures["preview_move_to_overlay_process_free"]
        figures["ratio_preview_pythonqt_to_free"] = (
            figures["preview_move_to_overlay_process_pythonqt"] / quiet
        )
        figures["ratio_preview_loaded_to_free"] = (
            figures["preview_move_to_overlay_process_pythonqt_loaded"] / quiet
        )
        with tempfile.TemporaryDirectory() as folder:
            for label, main_thread in (("free", FreeMainThread()), ("pythonqt", PythonQtIdle())):
                latencies = sorted(time_live_updates(main_thread, Path(folder), label))
                figures[f"live_arrival_to_overlay_median_{label}"] = latencies[len(latencies) // 2]
                figures[f"live_arrival_to_overlay_max_{label}"] = latencies[-1]
            with MachineLoad(2):
                latencies = sorted(time_live_updates(PythonQtIdle(), Path(folder), "pythonqt_loaded"))
            figures["live_arrival_to_overlay_median_pythonqt_loaded"] = latencies[len(latencies) // 2]
            figures["live_arrival_to_overlay_max_pythonqt_loaded"] = latencies[-1]
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
        if name.startswith("ratio_"):
            shown = f"{seconds:8.2f} ×"
        print(f"{name:45s} {shown}")
    over = [n for n, s in figures.items() if n.startswith("preview_move_to_") and s > PREVIEW_LIMIT_S]
    print(f"preview goal: probe move → overlay ≤ {PREVIEW_LIMIT_S:g} s; over it: {over or 'none'}")
    if args.json is not None:
        figures_json = {n: (None if s == float("inf") else s) for n, s in figures.items()}
        report = {"machine": describe_machine(), "seconds": figures_json, "over_limit": over}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
