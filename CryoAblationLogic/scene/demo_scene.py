"""The demo's Slicer scene: the phantom, the plan and a simulated result, saved as ``scene.mrb``.

``cryoablation demo`` simulates its case; :func:`build_demo_scene` puts the same plan and that
result into a scene built from the phantom (image, anatomy, probes, sensors), so the saved bundle
opens in Slicer with the image, the isotherm outlines, the playback and the metrics tables. The
record (HTML, PDF, metrics.json) is written by ``cryoablation demo`` from the same plan and result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import SceneApp, create_scene_app, save_scene_mrb
from CryoAblationLogic.scene.case_io import SceneCase, build_case, set_region_to_grid
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
from CryoAblationLogic.scene.results import show_result_views
from CryoAblationLogic.scene.volumes import resample_volume
from CryoAblationLogic.scene.workflow import PlanResult, show_plan_result


@dataclass
class DemoScene:
    app: SceneApp
    parameters: P.ParameterNode
    scene_case: SceneCase
    plan: PlanResult

    def image_on_result_grid(self) -> np.ndarray:
        """The phantom image sampled on the simulation grid (for report pictures)."""
        return resample_volume(self.parameters.get(P.INPUT_VOLUME), self.scene_case.grid)


def build_demo_scene(case_path: Path, result, spacing_mm: float, catalog=None) -> DemoScene:
    """The phantom scene with the plan of the case file at ``case_path`` and its ``result``."""
    data: dict[str, Any] = json.loads(Path(case_path).read_text(encoding="utf-8"))
    app = create_scene_app()
    scene = app.scene
    parameters = build_phantom_scene(scene, app.segmentations_logic, spacing_mm=spacing_mm)
    set_region_to_grid(scene, parameters, result.grid)
    sensors = parameters.get(P.SENSORS)
    sensors.RemoveAllControlPoints()
    for sensor in data.get("sensors", []):
        sensors.AddControlPointWorld([float(v) for v in sensor["position_mm"]], sensor["name"])
    parameters.update_settings(
        protocol=data["protocol"],
        snapshot_times_s=data.get("outputs", {}).get("snapshot_times_s", []),
        initial_temperature_c=float(data.get("initial_temperature_c", 37.0)),
        boundaries=data.get("boundaries"),
        materials=data.get("materials", {}),
    )
    scene_case = build_case(scene, parameters)
    if scene_case.grid != result.grid:
        raise ValueError(f"the scene's grid {scene_case.grid} differs from the simulated one {result.grid}")
    plan = show_plan_result(scene, parameters, scene_case, result, catalog)
    show_result_views(
        scene, parameters.get(P.INPUT_VOLUME), plan.nodes.temperature, chart=plan.nodes.sensor_chart
    )
    for probe in parameters.probes():  # the probe's name beside it in every view
        display = probe.GetDisplayNode()
        if display is not None:
            display.SetPropertiesLabelVisibility(True)
    return DemoScene(app, parameters, scene_case, plan)


def write_demo_scene(out_dir: Path, case_path: Path, result, spacing_mm: float) -> tuple[DemoScene, Path]:
    demo = build_demo_scene(case_path, result, spacing_mm)
    path = save_scene_mrb(demo.app.scene, Path(out_dir) / "scene.mrb")
    return demo, path
