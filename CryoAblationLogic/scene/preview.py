"""The live preview while a probe is dragged, and the full simulation run in the background.

Threads never touch MRML: the main thread (Slicer's GUI thread, or the caller's) reads the scene
into a case, a worker thread computes, and the main thread applies the result when it calls
:meth:`LivePreview.process_pending` / :meth:`SimulationJob.poll` (in Slicer, from a ``QTimer``).

The preview is debounced: requests that arrive while the user is still moving are coalesced, and
the worker starts once the probes have been still for ``debounce_s`` — or, during a long drag, at
the latest ``max_latency_s`` after the first unhandled move, so the overlay keeps following. Only
the newest probe positions are ever computed; a result that a newer one has overtaken is dropped.
With a worker process (the module) the preview is throttled instead: the scene is read and the
newest positions sent at the first timer slot at which the process is free.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.case_io import SceneCase, build_case
from CryoAblationLogic.scene.isotherms import create_isotherm_segmentation, update_isotherm_segmentation
from CryoAblationLogic.scene.results import levels_of

PREVIEW_SEGMENTATION_NAME = "Isotherms (preview)"
FIRST_ANSWER_COARSENING = 2.0  # with a worker process: the first answer's grid spacing, × the preview's


def _solver_preview(case, spacing_mm: float, duration_s: float):
    from CryoAblationLogic.physics.simulation import preview  # numba: imported once it is known to be there

    return preview(case, spacing_mm=spacing_mm, duration_s=duration_s)


@dataclass
class _Request:
    generation: int
    scene_case: SceneCase | None  # None with a worker process: read from the scene when sent
    first_request_s: float
    last_request_s: float
    debounce_s: float
    spacing_mm: float
    duration_s: float


class LivePreview:
    """Debounced background preview of the isotherms for the current probe positions.

    ``run_preview(case, spacing_mm, duration_s)`` defaults to the solver's ``preview``; it
    receives the validated case on the preview grid and returns a ``SimulationResult``. With a
    ``solver`` (:class:`~CryoAblationLogic.scene.solver_process.SolverProcess`, what the Slicer
    module uses) there is no thread: :meth:`process_pending`, called from the main thread's timer,
    reads the newest positions from the scene, sends them to the worker process when it is free
    and takes its overlay back.
    """

    def __init__(
        self,
        scene,
        parameters: P.ParameterNode | None = None,
        *,
        run_preview: Callable[[Any, float, float], Any] | None = None,
        max_latency_s: float = 0.25,
        solver=None,
    ):
        self.scene = scene
        self.parameters = parameters or P.get_parameter_node(scene)
        self.run_preview = run_preview or _solver_preview
        self.max_latency_s = max_latency_s
        self.solver = solver
        self._in_flight: _Request | None = None  # the request the solver process is computing
        self.last_error: Exception | None = None
        self.last_applied_generation = 0
        self.last_latency_s: float | None = None  # request → overlay updated, of the last update
        self.last_refined_latency_s: float | None = None  # request → the preview grid's overlay
        self.last_applied_final = True  # False while a worker's first (coarser) answer is shown
        self._labels_cache: dict = {}
        self._condition = threading.Condition()
        self._pending: _Request | None = None
        self._busy = False
        self._generation = 0
        self._results: queue.Queue = queue.Queue()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- main thread ---------------------------------------------------------------------
    def request(self, *_ignored) -> None:
        """Note that the probes moved (connect to probe modified events; extra arguments ignored)."""
        if self.solver is not None:
            # Only noted: the case is read from the scene once, when it is sent (a drag moves the
            # tip and the entry in two events; reading the scene for each cost 20-50 ms a move).
            now = time.monotonic()
            self._generation += 1
            first = self._pending.first_request_s if self._pending is not None else now
            self._pending = _Request(self._generation, None, first, now, 0.0, 0.0, 0.0)
            return
        settings = self.parameters.settings()
        scene_case = self._scene_case(settings)
        now = time.monotonic()
        with self._condition:
            self._generation += 1
            first = self._pending.first_request_s if self._pending is not None else now
            self._pending = _Request(
                self._generation,
                scene_case,
                first,
                now,
                settings.preview_debounce_s,
                settings.preview_spacing_mm,
                settings.preview_duration_s,
            )
            self._condition.notify_all()
        if self.solver is None:
            self._ensure_thread()

    def process_pending(self) -> bool:
        """Apply the newest finished preview to the overlay; ``True`` if the overlay changed."""
        if self.solver is not None:
            self._pump_solver_process()
        newest = None
        while True:
            try:
                newest = self._results.get_nowait()
            except queue.Empty:
                break
        if newest is None:
            return False
        generation, requested_s, outcome, *final = newest
        final = final[0] if final else True  # a worker's first answer is followed by a final one
        if isinstance(outcome, Exception):
            self.last_error = outcome
            return False
        refines = generation == self.last_applied_generation and final and not self.last_applied_final
        if generation < self.last_applied_generation or (
            generation == self.last_applied_generation and not refines
        ):
            return False
        self.last_error = None
        segmentation = self.preview_segmentation()
        update_isotherm_segmentation(
            segmentation, outcome.temperature_final, outcome.grid, levels_of(self.parameters)
        )
        segmentation.GetDisplayNode().SetVisibility(True)  # hidden while a full result was shown
        latency = time.monotonic() - requested_s
        if not refines:
            self.last_latency_s = latency  # the first overlay of these positions
        if final:
            self.last_refined_latency_s = latency
        self.last_applied_generation = generation
        self.last_applied_final = final
        return True

    @property
    def awaiting_answer(self) -> bool:
        """True while a probe move waits for its overlay (noted, or computing in the worker)."""
        if self.solver is not None:
            return self._pending is not None or self._in_flight is not None
        with self._condition:
            return self._pending is not None or self._busy

    def _scene_case(self, settings) -> SceneCase:
        """The scene read into a case on the preview grid: a coarse grid around target and
        probes (unless the plan fixes its own region)."""
        margin = settings.roi_margin_mm
        if margin is None:
            margin = settings.preview_roi_margin_mm
        return build_case(
            self.scene,
            self.parameters,
            spacing_mm=settings.preview_spacing_mm,
            labels_cache=self._labels_cache,
            roi_margin_mm=margin,
        )

    def preview_segmentation(self):
        node = self.parameters.get(P.PREVIEW_SEGMENTATION)
        if node is None:
            node = create_isotherm_segmentation(self.scene, PREVIEW_SEGMENTATION_NAME)
            node.GetDisplayNode().SetOpacity3D(0.2)
            self.parameters.set(P.PREVIEW_SEGMENTATION, node)
        return node

    def _pump_solver_process(self) -> None:
        while self._in_flight is not None:
            reply = self.solver.poll()
            if reply is None:
                if self._pending is not None:
                    self.solver.cancel()  # the finer answer of an older position: not wanted now
                return
            request = self._in_flight
            if not reply.partial:
                self._in_flight = None
            if reply.cancelled:
                break  # overtaken by a newer position (its first answer is shown)
            outcome = reply.error if reply.error is not None else reply.result
            self._results.put((request.generation, request.first_request_s, outcome, not reply.partial))
        request = self._pending
        if request is None:
            return
        # No debounce here: the worker process computes the newest positions as soon as it is
        # free, and the moves made while it computes collapse into the next request (a 100 ms
        # timer slot already spaces the requests; waiting for a quiet moment cost a slot).
        self._pending = None
        try:
            settings = self.parameters.settings()
            scene_case = self._scene_case(settings)
            # parsed and checked in the worker: the schema check is 15-25 ms of the main thread
            self.solver.submit(
                "preview_scene_case",
                (scene_case.data, scene_case.arrays),
                spacing_mm=settings.preview_spacing_mm,
                duration_s=settings.preview_duration_s,
                # first on a grid twice as coarse (4-7x quicker), so the overlay follows the probe
                # at once, even on a busy machine; the preview grid's answer replaces it
                first_spacing_mm=FIRST_ANSWER_COARSENING * settings.preview_spacing_mm,
            )
        except Exception as error:  # shown to the user like a failed preview
            self._results.put((request.generation, request.first_request_s, error))
            return
        self._in_flight = request

    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until no request is pending or running (tests, benchmarks, the command line)."""
        if self.solver is not None:
            deadline = time.monotonic() + timeout_s
            while self._pending is not None or self._in_flight is not None:
                if time.monotonic() > deadline:
                    return False
                self._pump_solver_process()
                time.sleep(0.005)
            return True
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while self._pending is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # -- worker thread -------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopped = False
            self._thread = threading.Thread(target=self._work, name="CryoAblation preview", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                # Wait for a quiet moment (or the latency cap) before computing the newest positions.
                while self._pending is not None and not self._stopped:
                    now = time.monotonic()
                    quiet_at = self._pending.last_request_s + self._pending.debounce_s
                    cap_at = self._pending.first_request_s + self.max_latency_s
                    start_at = min(quiet_at, cap_at)
                    if now >= start_at:
                        break
                    self._condition.wait(start_at - now)
                if self._stopped or self._pending is None:
                    continue
                request, self._pending = self._pending, None
                self._busy = True
            try:
                case = request.scene_case.parse()
                outcome = self.run_preview(case, request.spacing_mm, request.duration_s)
            except Exception as error:  # reported to the main thread, shown to the user there
                outcome = error
            self._results.put((request.generation, request.first_request_s, outcome))
            with self._condition:
                self._busy = False
                self._condition.notify_all()
