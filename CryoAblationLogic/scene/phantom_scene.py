"""The built-in synthetic phantom as a planning scene (image, anatomy, probes, sensors, settings).

Used by ``cryoablation demo``, the Slicer sample data and the tests: the same plan that
:mod:`CryoAblationLogic.io.phantom` describes, placed as Slicer nodes.
"""

from __future__ import annotations

import numpy as np

from CryoAblationLogic.io import phantom as phantom_module
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.colors import create_isotherm_color_table
from CryoAblationLogic.scene.inputs import add_segmentation_from_labels
from CryoAblationLogic.scene.probes import add_probe
from CryoAblationLogic.scene.volumes import add_volume_node

SEGMENT_COLORS = {
    1: (0.93, 0.85, 0.55),  # fat
    2: (0.72, 0.38, 0.32),  # kidney
    3: (0.35, 0.85, 0.35),  # tumour
    4: (0.85, 0.1, 0.1),  # vessel
    5: (0.95, 0.6, 0.2),  # bowel
    6: (0.8, 0.45, 0.55),  # psoas
}


def sensor_positions() -> dict[str, list[float]]:
    """Two thermocouples: one at the tumour edge, one at the bowel wall facing it."""
    center = np.asarray(phantom_module.TUMOR_CENTER_MM)
    bowel = np.array([*phantom_module.BOWEL_AXIS_XY_MM, center[2]])
    towards_bowel = (bowel - center) / np.linalg.norm(bowel - center)
    edge = center + towards_bowel * phantom_module.TUMOR_RADIUS_MM
    wall = bowel - towards_bowel * phantom_module.BOWEL_RADIUS_MM
    return {"TC1": [round(float(v), 2) for v in edge], "TC2": [round(float(v), 2) for v in wall]}


def build_phantom_scene(
    scene, segmentations_logic, spacing_mm: float = 1.0, with_probes: bool = True
) -> P.ParameterNode:
    """Put the phantom and the demo plan into ``scene``; return the parameter node."""
    phantom = phantom_module.make_phantom(spacing_mm)
    parameters = P.get_parameter_node(scene)
    image = add_volume_node(scene, "Phantom T1", phantom.image, phantom.grid)
    parameters.set(P.INPUT_VOLUME, image)
    segmentation = add_segmentation_from_labels(
        scene,
        segmentations_logic,
        phantom.labels,
        phantom.grid,
        phantom.label_info,
        name="Phantom anatomy",
        colors=SEGMENT_COLORS,
    )
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(image)
    parameters.set(P.INPUT_SEGMENTATION, segmentation)
    if parameters.get(P.ISOTHERM_LEVELS) is None:  # the plan's own levels are kept
        parameters.set(P.ISOTHERM_LEVELS, create_isotherm_color_table(scene))
    if with_probes:
        for entry in phantom_module.demo_probe_plan():
            parameters.add(
                P.PROBE, add_probe(scene, entry["name"], entry["tip_mm"], entry["entry_mm"], entry["model"])
            )
    sensors = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Sensors")
    for name, position in sensor_positions().items():
        sensors.AddControlPointWorld(position, name)
    parameters.add(P.SENSORS, sensors)
    parameters.update_settings(
        protocol=phantom_module.demo_protocol(),
        background_material="fat",
        snapshot_times_s=[600.0, 1680.0],
    )
    return parameters
