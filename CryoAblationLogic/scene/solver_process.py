"""The solver in a worker process, out of the GUI's way.

Inside Slicer a Python thread runs only while the main thread runs Python: neither Slicer, CTK nor
PythonQt releases the GIL while Qt idles, and the numba kernels do not release it either. A solver
in a worker *thread* therefore crawls (the 2 mm benchmark plan, 0.24 s on its own, had not finished
after 120 s under a 100 ms Qt timer) and freezes the panel when it does run. So the full run and
the preview each run in a worker *process* (``multiprocessing`` with ``spawn``; in Slicer its
executable is ``PythonSlicer``), one job at a time per process, and the main thread only polls:

- requests and results travel over a ``Pipe`` (no feeder thread on the main side, unlike a
  ``multiprocessing.Queue``, whose feeder thread would starve as well);
- progress is two shared doubles (fraction, simulated seconds), cancel a shared event the solver
  checks between time steps.

Each process keeps its compiled kernels (numba's on-disk cache makes the start quick), and as the
two processes never share kernels, numba's threading layer never sees two parallel kernels of the
module at once.
"""

from __future__ import annotations

import multiprocessing
import pickle
from dataclasses import dataclass
from typing import Any


@dataclass
class SolverReply:
    job: int
    result: Any = None
    error: BaseException | None = None
    partial: bool = False  # a first answer of the job; its final reply follows
    cancelled: bool = False  # a preview's finer answer, cancelled (a newer position came)


class SolverFailed(RuntimeError):
    """An error of the worker process that could not be sent back as itself."""


def _serve(connection, progress, cancel) -> None:  # runs in the worker process
    from CryoAblationLogic.io.case_file import parse_case  # with the solver: the worker's imports
    from CryoAblationLogic.physics import simulation  # numba: compiled (or loaded) in the worker

    def on_progress(fraction: float, time_s: float) -> None:
        progress[0] = float(fraction)
        progress[1] = float(time_s)

    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        job, kind, case, options = request
        try:
            if kind == "simulate":
                result = simulation.simulate(
                    case,
                    progress=on_progress,
                    cancel=cancel.is_set,
                    snapshot_times_s=options["snapshot_times_s"],
                )
            elif kind == "preview_scene_case":  # the case-format dict and its arrays, parsed here
                data, arrays = case
                parsed = parse_case(data, arrays=arrays)
                first_mm = options.get("first_spacing_mm")
                if first_mm:  # a coarser first answer while the finer one computes
                    first = simulation.preview(parsed, spacing_mm=first_mm, duration_s=options["duration_s"])
                    connection.send(SolverReply(job, result=first, partial=True))
                result = simulation.preview(
                    parsed,
                    spacing_mm=options["spacing_mm"],
                    duration_s=options["duration_s"],
                    cancel=cancel.is_set,  # a newer probe position makes the finer answer moot
                )
            elif kind == "preview":
                result = simulation.preview(
                    case, spacing_mm=options["spacing_mm"], duration_s=options["duration_s"]
                )
            elif kind == "replay_journal":  # a live-mode journal through live mode again (its path)
                from CryoAblationLogic.live.runner import replay_for_panel

                result = replay_for_panel(case)
            else:
                raise ValueError(f"unknown solver job {kind!r}")
            reply = SolverReply(job, result=result)
        except simulation.SimulationCancelled as cancelled:
            # a preview's finer answer, overtaken: no error to show (a run's cancel is reported)
            reply = SolverReply(job, cancelled=True) if kind == "preview_scene_case" else None
            reply = reply or SolverReply(job, error=_sendable(cancelled))
        except Exception as error:
            reply = SolverReply(job, error=_sendable(error))
        connection.send(reply)


def _sendable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return SolverFailed(f"{type(error).__name__}: {error}")
    return error


class SolverProcess:
    """A worker process that runs solver jobs (``simulate``, ``preview``, ``preview_scene_case``: a
    case-format dict and its arrays, parsed in the worker; with ``first_spacing_mm`` a partial
    reply on that coarser grid comes first; ``replay_journal``: a live-mode journal's path, its
    ``ReplayedProcedure`` back) one at a time; the caller
    submits, then polls (never blocks) from its main thread."""

    def __init__(self, name: str = "CryoAblation solver", executable: str | None = None):
        context = multiprocessing.get_context("spawn")
        if executable:
            context.set_executable(executable)  # Slicer: PythonSlicer, not the Slicer application
        self._connection, child = context.Pipe()
        self._progress = context.Array("d", 2, lock=False)
        self._cancel = context.Event()
        self._process = context.Process(
            target=_serve, args=(child, self._progress, self._cancel), name=name, daemon=True
        )
        self._process.start()
        child.close()
        self._job = 0
        self.busy = False

    def submit(self, kind: str, case, **options) -> int:
        """Send a job; returns its number. One job at a time: a busy process refuses another."""
        if self.busy:
            raise RuntimeError("the solver process is busy with another job")
        if not self._process.is_alive():
            raise RuntimeError(f"the solver process has stopped (exit code {self._process.exitcode})")
        self._job += 1
        self._cancel.clear()
        self._progress[0] = self._progress[1] = 0.0
        self._connection.send((self._job, kind, case, options))
        self.busy = True
        return self._job

    def poll(self) -> SolverReply | None:
        """The finished job's reply, or None while it runs (never blocks for the computation)."""
        if not self.busy:
            return None
        if not self._connection.poll(0):
            if not self._process.is_alive():
                self.busy = False
                return SolverReply(self._job, error=SolverFailed("the solver process ended unexpectedly"))
            return None
        reply = self._connection.recv()
        self.busy = reply.partial  # after a first answer the job goes on
        return reply

    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def progress(self) -> tuple[float, float]:
        """``(fraction done, simulated time s)`` of the running ``simulate`` job."""
        return float(self._progress[0]), float(self._progress[1])

    def cancel(self) -> None:
        self._cancel.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._cancel.set()
        try:
            self._connection.send(None)
        except (OSError, ValueError):
            pass
        self._process.join(timeout_s if not self.busy else 0.5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout_s)
        self._connection.close()
        self.busy = False
