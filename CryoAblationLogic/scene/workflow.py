"""Plan → simulate → results in the scene: the steps the Slicer module's Apply button runs.

:func:`simulate_scene` reads the scene into a case and runs the solver (with progress and
cancel); :func:`show_plan_result` puts the result, the plan metrics and the probe warnings into the
scene. :class:`SimulationJob` runs the first in a worker thread so the interface stays live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from CryoAblationLogic.analysis import metrics as plan_metrics
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.physics.simulation import simulate
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.case_io import SceneCase, build_case
from CryoAblationLogic.scene.colors import level_label
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
    warnings: list[str]  # the metrics' warnings, then the probe placement warnings
    probe_warnings: list[str]
    metrics_table: Any
    critical_table: Any
    warnings_table: Any


def structure_masks(
    scene_case: SceneCase,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(target, {critical name: mask}, {vessel name: mask})`` on the case grid."""
    labels = scene_case.arrays.get("labels")
    if labels is None:
        return None, {}, {}
    target = None
    critical: dict[str, np.ndarray] = {}
    vessels: dict[str, np.ndarray] = {}
    for label, info in scene_case.label_segments.items():
        mask = labels == label
        if info.role == "target":
            target = mask if target is None else (target | mask)
        elif info.role == "critical":
            critical[info.name] = mask
        elif info.role == "vessel":
            vessels[info.name] = mask
    return target, critical, vessels


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
    probe_warnings = plan_metrics.probe_warnings(
        scene_case.data["probes"], catalog, target, critical, vessels, result.grid
    )
    warnings = [*computed.warnings, *probe_warnings]
    metrics_table, critical_table, warnings_table = show_metrics(scene, parameters, computed, warnings)
    return PlanResult(
        nodes, computed, warnings, probe_warnings, metrics_table, critical_table, warnings_table
    )


def show_metrics(scene, parameters: P.ParameterNode, computed, warnings: list[str]) -> tuple[Any, Any, Any]:
    """Plan metrics (``metrics.PlanMetrics``) and warnings into their table nodes:
    ``(per-isotherm metrics, critical structures, warnings)``."""
    metrics_table = _metrics_table(scene, parameters, computed, plan_metrics.ISOTHERM_COLUMNS)
    critical_table = _critical_table(scene, parameters, computed, plan_metrics.CRITICAL_COLUMNS)
    warnings_table = get_or_create(scene, "vtkMRMLTableNode", "Plan warnings", parameters, P.WARNINGS_TABLE)
    set_table_columns(warnings_table, [Column("Warning", list(warnings) or ["none"])])
    put_in_folder(scene, RESULT_FOLDER, [metrics_table, critical_table, warnings_table])
    return metrics_table, critical_table, warnings_table


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
    """The full simulation in a worker thread, with progress and cancel.

    Main thread: :meth:`start`, then call :meth:`poll` now and then (a timer in Slicer); it returns
    the :class:`PlanResult` once, when the run has finished and its result has been put into the
    scene. :attr:`progress` and :attr:`simulated_s` tell how far it got; :meth:`cancel` stops it at
    the next time step (the solver raises ``SimulationCancelled``, reported in :attr:`error`).
    """

    def __init__(
        self, scene, parameters: P.ParameterNode | None = None, *, run_simulation=None, catalog=None
    ):
        self.scene = scene
        self.parameters = parameters or P.get_parameter_node(scene)
        self.run_simulation = run_simulation or _solver_simulate
        self.catalog = catalog
        self.progress = 0.0
        self.simulated_s = 0.0
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._scene_case: SceneCase | None = None
        self._result = None
        self._applied = False

    def start(self) -> None:
        self._scene_case = build_case(self.scene, self.parameters)  # reads MRML: main thread
        case = self._scene_case.parse()
        times = playback_times(self._scene_case.data, self.parameters.settings().playback_interval_s)
        self._thread = threading.Thread(
            target=self._work, args=(case, times), name="CryoAblation run", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def poll(self) -> PlanResult | None:
        if not self._done.is_set() or self._applied or self.error is not None:
            return None
        self._applied = True
        return show_plan_result(self.scene, self.parameters, self._scene_case, self._result, self.catalog)

    def _on_progress(self, fraction: float, time_s: float) -> None:
        self.progress = float(fraction)
        self.simulated_s = float(time_s)

    def _work(self, case, times) -> None:
        try:
            self._result = self.run_simulation(case, self._on_progress, self._cancelled.is_set, times)
        except BaseException as error:  # reported to the main thread (cancel included)
            self.error = error
        finally:
            self._done.set()
