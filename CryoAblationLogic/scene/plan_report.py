"""The panel's "Export report": the record (HTML, PDF, metrics.json) of the scene's plan and its
last simulation.

The record (:func:`CryoAblationLogic.report.record.write_result_record`) needs the simulated fields and the
plan's masks and probes on the result's grid. They are read from the scene again, and refused if
the plan changed since the run (moved probes, another grid), so a report never pairs a result
with a plan it was not computed for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.report.record import write_result_record
from CryoAblationLogic.scene import case_io, volumes, workflow
from CryoAblationLogic.scene import parameters as P


@dataclass(frozen=True)
class SimulatedPlan:
    """A finished run: the ``Case`` simulated, its ``SimulationResult`` and the ``PlanResult``
    (metrics, warnings, nodes) the scene shows for it."""

    case: Any
    result: Any
    plan: Any


def write_plan_report(
    scene,
    parameters,
    run: SimulatedPlan,
    out_dir: str | Path,
    *,
    catalog: Any = None,
    title: str = "CryoAblation plan report",
) -> Path:
    """Write ``out_dir/report.html``, ``report.pdf`` and ``metrics.json`` for the run; returns the
    HTML's path."""
    case, result = run.case, run.result

    scene_case = case_io.build_case(scene, parameters)
    if scene_case.grid != result.grid:
        raise InputError("report", "the simulation grid changed since the last run; simulate again first")
    simulated = [probe.to_dict() for probe in case.probes]
    current = [probe.to_dict() for probe in scene_case.parse().probes]
    if simulated != current:
        raise InputError("report", "the probes changed since the last run; simulate again first")
    target, critical, vessels = workflow.structure_masks(scene_case)
    if target is None or not target.any():
        raise InputError("report", "the plan has no target segment on the simulation grid")
    image = volumes.resample_volume(parameters.get(P.INPUT_VOLUME), result.grid)
    record = write_result_record(
        out_dir,
        case,
        result,
        image,
        {"target": {"Target": target}, "critical": critical, "vessel": vessels},
        catalog=catalog,
        title=title,
    )
    return record.files.html
