"""The panel's "Export report": the record (HTML, PDF, metrics.json) of the scene's plan and its
last simulation; and :func:`write_procedure_report`, the record and the scene of a monitored
procedure from its result folder (``cryoablation monitor`` calls it at its end).

The record (:func:`CryoAblationLogic.report.record.write_result_record`) needs the simulated fields and the
plan's masks and probes on the result's grid. They are read from the scene again, and refused if
the plan changed since the run (moved probes, another grid, segments or their roles and materials),
so a report never pairs a result with a plan it was not computed for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.report.procedure import write_procedure_report as report_procedure
from CryoAblationLogic.report.record import write_result_record
from CryoAblationLogic.scene import case_io, volumes, workflow
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app, save_scene_mrb
from CryoAblationLogic.scene.result_io import import_result_folder
from CryoAblationLogic.scene.results import show_result_views


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
    now = scene_case.parse()
    if [probe.to_dict() for probe in case.probes] != [probe.to_dict() for probe in now.probes]:
        raise InputError("report", "the probes changed since the last run; simulate again first")
    # the masks below are the scene's: the segments, their roles and materials must be the run's
    same_tissue = (
        case.label_materials == now.label_materials
        and case.structures == now.structures
        and (case.tissue_labels is None) == (now.tissue_labels is None)
        and (case.tissue_labels is None or np.array_equal(case.tissue_labels, now.tissue_labels))
    )
    if not same_tissue:
        raise InputError(
            "report",
            "the segments, their roles or materials changed since the last run; simulate again first",
        )
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


def write_procedure_report(
    result_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    image_path: str | Path | None = None,
    rules: Any = None,
    with_scene: bool = True,
) -> tuple[Any, Path | None]:
    """At the end of a monitored procedure: ``metrics.json``, ``report.html``, ``report.pdf`` and
    (``with_scene``) ``scene.mrb`` (the result with its playback, image under temperature) into
    ``out_dir`` (default: the result folder ``result_dir`` of ``live.mode.write_live_results``).
    ``image_path``: an NRRD on the case grid for the pictures and the scene's background.
    Returns (``ResultRecord`` or None when the case names no target, scene path or None)."""

    out = Path(out_dir or result_dir)
    image = image_node = None
    if image_path is not None:
        image, image_grid = read_nrrd(image_path)
    record = report_procedure(result_dir, out, image=image, rules=rules, catalog=load_probe_catalog())
    scene_path = None
    if with_scene:
        app = create_scene_app()
        parameters = P.get_parameter_node(app.scene)
        nodes = import_result_folder(app.scene, result_dir, parameters)
        if image is not None:
            image_node = volumes.add_volume_node(app.scene, "Image", image.astype(np.float32), image_grid)
        show_result_views(app.scene, image_node, nodes.temperature, chart=nodes.sensor_chart)
        scene_path = save_scene_mrb(app.scene, out / "scene.mrb")
    return record, scene_path
