"""Plan → simulate → results in the scene: the steps the Slicer module's Apply button runs.

:func:`simulate_scene` reads the scene into a case and runs the solver (with progress and
cancel); :func:`show_plan_result` puts the result, the plan metrics and the probe warnings into the
scene. :class:`SimulationJob` runs the first in a worker thread so the interface stays live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CryoAblationLogic.analysis import metrics as plan_metrics
from CryoAblationLogic.analysis.safety import structure_type
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import parse_sources
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.case_io import LABELMAP_KEY, SceneCase, build_case
from CryoAblationLogic.scene.colors import level_label
from CryoAblationLogic.scene.probes import is_placed
from CryoAblationLogic.scene.results import RESULT_FOLDER, ResultNodes, levels_of, show_result
from CryoAblationLogic.scene.tables import Column, get_or_create, put_in_folder, set_table_columns


def playback_times(case_data: dict, interval_s: float) -> list[float]:
    """Times of the playback frames: every ``interval_s`` through the protocol, the protocol's
    step boundaries, and the case's own snapshot times."""
    if not (interval_s > 0):
        raise ValueError("playback interval must be positive")
    end = float(sum(float(step["duration_s"]) for step in case_data["protocol"]))
    times = set(np.arange(interval_s, end + 1e-9, interval_s).round(6).tolist())
    boundary = 0.0
    for step in case_data["protocol"]:
        boundary += float(step["duration_s"])
        times.add(round(boundary, 6))
    times.update(
        float(t) for t in case_data.get("outputs", {}).get("snapshot_times_s", []) if 0 < float(t) <= end
    )
    return sorted(times)


def _solver_simulate(case, progress, cancel, snapshot_times_s):
    from CryoAblationLogic.physics.simulation import simulate  # numba: imported once it is known to be there

    return simulate(case, progress=progress, cancel=cancel, snapshot_times_s=snapshot_times_s)


def simulate_scene(
    scene,
    parameters: P.ParameterNode | None = None,
    *,
    progress: Callable[[float, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    run_simulation: Callable[..., Any] | None = None,
) -> tuple[SceneCase, Any]:
    """Build the case from the scene and simulate it; returns ``(scene_case, SimulationResult)``."""
    parameters = parameters or P.get_parameter_node(scene)
    scene_case = build_case(scene, parameters)
    case = scene_case.parse()
    times = playback_times(scene_case.data, parameters.settings().playback_interval_s)
    result = (run_simulation or _solver_simulate)(case, progress, cancel, times)
    return scene_case, result


@dataclass
class PlanResult:
    nodes: ResultNodes
    metrics: Any  # metrics.PlanMetrics
    warnings: list[str]  # every warning's sentence, highest severity first (placement notes last)
    probe_warnings: list[str]
    metrics_table: Any
    critical_table: Any
    warnings_table: Any
    findings: list = field(default_factory=list)  # the same warnings as analysis PlanWarning values


@dataclass
class FinishedRun:
    """A finished simulation: the ``Case`` simulated and its ``SimulationResult`` together, with
    the :class:`PlanResult` the scene shows (what the report is written from)."""

    case: Any
    result: Any
    plan: PlanResult


def structure_masks(
    scene_case: SceneCase,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(target, {critical name: mask}, {vessel name: mask})`` on the case grid; the target is the
    union of every segment whose role is target (masks by role come from the analysis layer)."""
    labels = scene_case.arrays.get(LABELMAP_KEY)
    if labels is None:
        return None, {}, {}
    label_info = {label: (i.name, i.material, i.role) for label, i in scene_case.label_segments.items()}
    by_role = plan_metrics.masks_by_role(labels, label_info)
    target = None
    for mask in by_role.get("target", {}).values():
        target = mask if target is None else (target | mask)
    return target, by_role.get("critical", {}), by_role.get("vessel", {})


def placement_warnings(
    scene, parameters: P.ParameterNode, catalog: Mapping[str, Any], labels_cache: dict | None = None
) -> list[str]:
    """Probe placement warnings (spacing, shafts through critical structures or vessels, active
    zones outside the target) on the preview grid, before any simulation; empty until the plan has
    placed probes, an image and a segmentation."""
    placed = [node for node in parameters.probes() if is_placed(node)]
    if not placed or parameters.get(P.INPUT_SEGMENTATION) is None or parameters.get(P.INPUT_VOLUME) is None:
        return []
    scene_case = build_case(
        scene, parameters, spacing_mm=parameters.settings().preview_spacing_mm, labels_cache=labels_cache
    )
    target, critical, vessels = structure_masks(scene_case)
    if target is None:
        return []
    return plan_metrics.probe_warnings(
        scene_case.parse().probes, catalog, target, critical, vessels, scene_case.grid
    )


def show_plan_result(
    scene,
    parameters: P.ParameterNode | None,
    scene_case: SceneCase,
    result,
    catalog: Mapping[str, Any] | None = None,
) -> PlanResult:
    """Result nodes, metrics tables and warnings for a finished simulation (main thread)."""
    parameters = parameters or P.get_parameter_node(scene)
    nodes = show_result(scene, parameters, result)
    levels = [level for level, _ in levels_of(parameters)]
    target, critical, vessels = structure_masks(scene_case)
    if target is None or not target.any():
        raise ValueError("the plan has no target segment on the simulation grid; metrics need one")
    # The coldest each voxel has been: the lethal-dose view of coverage and margins.
    computed = plan_metrics.isotherm_metrics(result.min_temperature, result.grid, target, levels, critical)
    if catalog is None:
        catalog = load_probe_catalog()
    notes = plan_metrics.placement_notes(
        scene_case.data["probes"], catalog, target, critical, vessels, result.grid
    )
    probe_warnings = [note.message for note in notes]
    if scene_case.data.get("sources"):  # the protection measures, as the case the solver ran holds them
        notes += plan_metrics.protection_notes(
            parse_sources(scene_case.data["sources"], scene_case.grid),
            scene_case.data["probes"],
            catalog,
            target,
            scene_case.arrays.get(LABELMAP_KEY),
            result.grid,
            {label: segment.name for label, segment in scene_case.label_segments.items()},
        )
    # The safety rules by clinical severity (the same as the report and metrics.json), with the
    # placement notes computed once above: each critical segment's type (bowel, nerve, …) is read
    # from its name, which sets its safety margin.
    findings = plan_metrics.safety_warnings(
        computed, structure_types={name: structure_type(name) for name in critical}, placement=notes
    )
    warnings = [finding.message for finding in findings]
    parameters.update_settings(run_warnings=warnings)  # kept as values (saved with the scene)
    metrics_table, critical_table, warnings_table = show_metrics(scene, parameters, computed, findings)
    return PlanResult(
        nodes, computed, warnings, probe_warnings, metrics_table, critical_table, warnings_table, findings
    )


def show_metrics(scene, parameters: P.ParameterNode, computed, findings: list) -> tuple[Any, Any, Any]:
    """Plan metrics (``metrics.PlanMetrics``) and warnings (``PlanWarning``, highest severity first)
    into their table nodes: ``(per-isotherm metrics, critical structures, warnings)``."""
    metrics_table = _metrics_table(scene, parameters, computed, plan_metrics.ISOTHERM_COLUMNS)
    critical_table = _critical_table(scene, parameters, computed, plan_metrics.CRITICAL_COLUMNS)
    warnings_table = get_or_create(scene, "vtkMRMLTableNode", "Plan warnings", parameters, P.WARNINGS_TABLE)
    rows = [finding.to_dict() for finding in findings]
    set_table_columns(
        warnings_table,
        [
            Column(title, [_cell(row[key]) for row in rows])
            for key, title in plan_metrics.WARNING_COLUMNS.items()
        ],
    )
    put_in_folder(scene, RESULT_FOLDER, [metrics_table, critical_table, warnings_table])
    return metrics_table, critical_table, warnings_table


def _cell(value) -> str:
    """A warnings-table cell: numbers to 0.1, a missing value empty."""
    if value is None:
        return ""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _metrics_table(scene, parameters, computed, titles: Mapping[str, str]):
    table = get_or_create(scene, "vtkMRMLTableNode", "Plan metrics", parameters, P.METRICS_TABLE)
    rows = computed.as_rows()
    columns = [Column("Isotherm", [level_label(row["level_c"]) for row in rows])]
    for key, title in titles.items():
        if key == "level_c":
            continue
        columns.append(Column(title, [row[key] for row in rows]))
    set_table_columns(table, columns)
    table.SetAttribute("CryoAblation.TargetVolumeMl", f"{computed.target_volume_ml:.3f}")
    return table


def _critical_table(scene, parameters, computed, titles: Mapping[str, str]):
    table = get_or_create(scene, "vtkMRMLTableNode", "Critical structures", parameters, P.CRITICAL_TABLE)
    rows = computed.critical_rows()
    columns = []
    for key, title in titles.items():
        values = [row[key] for row in rows]
        if key == "reached_by_ice":
            values = ["yes" if value else "no" for value in values]
        columns.append(Column(title, values))
    set_table_columns(table, columns)
    return table


class SimulationJob:
    """The full simulation in the background, with progress and cancel: in a
    :class:`~CryoAblationLogic.scene.solver_process.SolverProcess` when one is given (what the
    Slicer module does: a thread would starve under PythonQt), else in a worker thread.

    Main thread: :meth:`start`, then call :meth:`poll` now and then (a timer in Slicer); it returns
    the :class:`PlanResult` once, when the run has finished and its result has been put into the
    scene. :attr:`progress` and :attr:`simulated_s` tell how far it got; :meth:`cancel` stops it at
    the next time step (the solver raises ``SimulationCancelled``, reported in :attr:`error`).
    """

    def __init__(
        self,
        scene,
        parameters: P.ParameterNode | None = None,
        *,
        run_simulation=None,
        catalog=None,
        solver=None,
    ):
        self.scene = scene
        self.parameters = parameters or P.get_parameter_node(scene)
        self.run_simulation = run_simulation or _solver_simulate
        self.catalog = catalog
        self.solver = solver
        self.progress = 0.0
        self.simulated_s = 0.0
        self.error: BaseException | None = None
        self.cancelled = False  # the run ended because cancel() was called
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._scene_case: SceneCase | None = None
        self._case = None
        self._result = None
        self._applied = False

    def start(self) -> None:
        scene_case = build_case(self.scene, self.parameters)  # reads MRML: main thread
        target, _, _ = structure_masks(scene_case)
        if target is None or not target.any():  # refused now, not after the whole run
            raise InputError(
                "target",
                "the plan has no target segment on the simulation grid: give the tumour's segment the "
                "role target (Inputs); coverage and margins are measured on it",
            )
        self._scene_case = scene_case
        case = self._case = scene_case.parse()
        times = playback_times(self._scene_case.data, self.parameters.settings().playback_interval_s)
        if self.solver is not None:
            self.solver.submit("simulate", case, snapshot_times_s=times)
            return
        self._thread = threading.Thread(
            target=self._work, args=(case, times), name="CryoAblation run", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        if self.solver is not None:
            self.solver.cancel()

    @property
    def running(self) -> bool:
        if self.solver is not None:
            self._take_reply()
            return self._scene_case is not None and not self._done.is_set()
        return self._thread is not None and not self._done.is_set()

    def _take_reply(self) -> None:
        if self._done.is_set():
            return
        self.progress, self.simulated_s = self.solver.progress
        reply = self.solver.poll()
        if reply is None:
            return
        if reply.error is not None:
            self._fail(reply.error)
        else:
            self._result = reply.result
            self.progress, self.simulated_s = 1.0, float(reply.result.simulated_s)
        self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        if self.solver is None:
            return self._done.wait(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.running:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def poll(self) -> FinishedRun | None:
        if self.solver is not None:
            self._take_reply()
        if not self._done.is_set() or self._applied or self.error is not None:
            return None
        self._applied = True
        plan = show_plan_result(self.scene, self.parameters, self._scene_case, self._result, self.catalog)
        return FinishedRun(self._case, self._result, plan)

    def _on_progress(self, fraction: float, time_s: float) -> None:
        self.progress = float(fraction)
        self.simulated_s = float(time_s)

    def _work(self, case, times) -> None:
        try:
            self._result = self.run_simulation(case, self._on_progress, self._cancelled.is_set, times)
        except BaseException as error:  # reported to the main thread (cancel included)
            self._fail(error)
        finally:
            self._done.set()

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self.cancelled = type(error).__name__ == "SimulationCancelled"
