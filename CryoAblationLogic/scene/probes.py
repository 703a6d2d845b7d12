"""Cryoprobes as markups line nodes, with needle models that follow them.

A probe is a ``vtkMRMLMarkupsLineNode`` with two control points:

- control point 0 is the **tip** (the distal end, inside the patient);
- control point 1 is the **entry** point (any point on the shaft, usually where it enters the skin).

What makes it a probe of the plan is stored on the node, so a saved scene restores the plan:
``CryoAblation.Role`` = ``Probe``, ``CryoAblation.ProbeModel`` (a catalog model name),
``CryoAblation.ProtocolGroup`` (the group that protocol steps may name instead of probe names),
and optionally ``CryoAblation.DiameterMm`` / ``CryoAblation.ActiveLengthMm`` overriding the
catalog. The needle (shaft from tip to entry at the catalog diameter) and its active (freezing)
zone are model nodes referenced from the line node; :class:`NeedleFollower` rebuilds them whenever
a control point moves or a probe attribute changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from slicer import vtkMRMLMarkupsNode
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkTubeFilter
from vtkmodules.vtkFiltersSources import vtkLineSource

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.scene.colors import ATTRIBUTE_PREFIX
from CryoAblationLogic.scene.tables import put_in_folder

PROBE_HELP = (
    "Each cryoprobe is a line: its first point is the probe tip (inside the patient), its second "
    "point any point on the shaft, usually the skin entry. Drag either point to move the probe; the "
    "needle, its freezing zone and the isotherm preview follow."
)

TIP_INDEX = 0
ENTRY_INDEX = 1
ROLE_ATTRIBUTE = ATTRIBUTE_PREFIX + "Role"
PROBE_ROLE = "Probe"
MODEL_ATTRIBUTE = ATTRIBUTE_PREFIX + "ProbeModel"
GROUP_ATTRIBUTE = ATTRIBUTE_PREFIX + "ProtocolGroup"
DIAMETER_ATTRIBUTE = ATTRIBUTE_PREFIX + "DiameterMm"
ACTIVE_LENGTH_ATTRIBUTE = ATTRIBUTE_PREFIX + "ActiveLengthMm"
NEEDLE_REFERENCE = ATTRIBUTE_PREFIX + "Needle"
ACTIVE_ZONE_REFERENCE = ATTRIBUTE_PREFIX + "ActiveZone"
DEFAULT_GROUP = "all"
PLAN_FOLDER = "Cryoablation plan"

NEEDLE_RGB = (0.75, 0.75, 0.78)
ACTIVE_ZONE_RGB = (0.3, 0.7, 1.0)
ACTIVE_ZONE_DIAMETER_FACTOR = 1.3  # drawn a little thicker than the shaft so it shows


def default_catalog() -> Mapping[str, Any]:
    return load_probe_catalog()


def add_probe(
    scene,
    name: str,
    tip_mm: Sequence[float],
    entry_mm: Sequence[float],
    model: str,
    *,
    protocol_group: str = DEFAULT_GROUP,
    diameter_mm: float | None = None,
    active_length_mm: float | None = None,
):
    """A new probe line node (tip = control point 0, entry = control point 1)."""
    tip = np.asarray(tip_mm, dtype=float)
    entry = np.asarray(entry_mm, dtype=float)
    if (
        tip.shape != (3,)
        or entry.shape != (3,)
        or not (np.all(np.isfinite(tip)) and np.all(np.isfinite(entry)))
    ):
        raise InputError(f"probe {name}", "tip and entry must be three finite coordinates (mm)")
    if np.linalg.norm(entry - tip) < 1e-6:
        raise InputError(f"probe {name}", "tip and entry point coincide, the probe has no direction")
    node = new_probe(
        scene,
        name,
        model,
        protocol_group=protocol_group,
        diameter_mm=diameter_mm,
        active_length_mm=active_length_mm,
    )
    node.AddControlPointWorld(tip.tolist(), f"{name} tip")
    node.AddControlPointWorld(entry.tolist(), f"{name} entry")
    return node


def new_probe(
    scene,
    name: str,
    model: str,
    *,
    protocol_group: str = DEFAULT_GROUP,
    diameter_mm: float | None = None,
    active_length_mm: float | None = None,
):
    """A probe line node without points yet: the one path by which every probe is made (scripted
    with :func:`add_probe`, or placed by the user's clicks in the module, tip first)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
    node.SetAttribute(ROLE_ATTRIBUTE, PROBE_ROLE)
    set_probe_model(node, model, protocol_group, diameter_mm, active_length_mm)
    put_in_folder(scene, PLAN_FOLDER, [node])
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(*ACTIVE_ZONE_RGB)
        display.SetPropertiesLabelVisibility(False)
    return node


def next_probe_name(scene) -> str:
    """``P1``, ``P2``, …: the first name no probe of the scene has."""
    existing = {node.GetName() for node in probe_nodes(scene)}
    number = 1
    while f"P{number}" in existing:
        number += 1
    return f"P{number}"


def is_placed(line_node) -> bool:
    """Both points of the probe are placed. While the user places a point, Markups holds an extra
    point in *preview* state; only *defined* points count."""
    return line_node.GetNumberOfDefinedControlPoints() >= 2


def set_probe_model(
    line_node,
    model: str,
    protocol_group: str = DEFAULT_GROUP,
    diameter_mm: float | None = None,
    active_length_mm: float | None = None,
) -> None:
    line_node.SetAttribute(MODEL_ATTRIBUTE, model)
    line_node.SetAttribute(GROUP_ATTRIBUTE, protocol_group or DEFAULT_GROUP)
    for attribute, value in ((DIAMETER_ATTRIBUTE, diameter_mm), (ACTIVE_LENGTH_ATTRIBUTE, active_length_mm)):
        if value is None:
            line_node.RemoveAttribute(attribute)
        else:
            if not (np.isfinite(value) and value > 0):
                raise InputError(
                    f"probe {line_node.GetName()}.{attribute}", "must be a positive length in mm"
                )
            line_node.SetAttribute(attribute, f"{float(value):g}")


def is_probe(node) -> bool:
    return (
        node is not None
        and node.IsA("vtkMRMLMarkupsLineNode")
        and node.GetAttribute(ROLE_ATTRIBUTE) == PROBE_ROLE
    )


def probe_nodes(scene) -> list:
    """All probe line nodes of the scene, in the order they were added."""
    nodes = scene.GetNodesByClass("vtkMRMLMarkupsLineNode")
    return [
        nodes.GetItemAsObject(i)
        for i in range(nodes.GetNumberOfItems())
        if is_probe(nodes.GetItemAsObject(i))
    ]


def probe_tip_entry(line_node) -> tuple[np.ndarray, np.ndarray]:
    """Tip and entry point in world (RAS) millimetres, transforms applied."""
    if line_node.GetNumberOfControlPoints() < 2:
        raise InputError(f"probe {line_node.GetName()}", "needs two control points (tip, entry)")
    tip = np.zeros(3)
    entry = np.zeros(3)
    line_node.GetNthControlPointPositionWorld(TIP_INDEX, tip)
    line_node.GetNthControlPointPositionWorld(ENTRY_INDEX, entry)
    return tip, entry


def probe_case_entry(line_node) -> dict:
    """The probe as a case-format ``probes`` entry."""
    tip, entry = probe_tip_entry(line_node)
    model = line_node.GetAttribute(MODEL_ATTRIBUTE)
    if not model:
        raise InputError(f"probe {line_node.GetName()}", f"has no {MODEL_ATTRIBUTE} attribute")
    data: dict = {
        "name": line_node.GetName(),
        "model": model,
        "tip_mm": [round(float(v), 4) for v in tip],
        "entry_mm": [round(float(v), 4) for v in entry],
    }
    for key, attribute in (
        ("diameter_mm", DIAMETER_ATTRIBUTE),
        ("active_length_mm", ACTIVE_LENGTH_ATTRIBUTE),
    ):
        text = line_node.GetAttribute(attribute)
        if text:
            data[key] = float(text)
    return data


def probe_group(line_node) -> str:
    return line_node.GetAttribute(GROUP_ATTRIBUTE) or DEFAULT_GROUP


def probe_dimensions(line_node, catalog: Mapping[str, Any]) -> tuple[float, float, float]:
    """``(diameter_mm, active_length_mm, tip_length_mm)`` from the catalog and the node's overrides."""
    model_name = line_node.GetAttribute(MODEL_ATTRIBUTE)
    if model_name not in catalog:
        raise InputError(f"probe {line_node.GetName()}.model", f"unknown probe model {model_name!r}")
    model = catalog[model_name]
    diameter = float(line_node.GetAttribute(DIAMETER_ATTRIBUTE) or model.diameter_mm)
    active = float(line_node.GetAttribute(ACTIVE_LENGTH_ATTRIBUTE) or model.active_length_mm)
    tip_length = float(getattr(model, "tip_length_mm", 0.0) or 0.0)
    return diameter, active, tip_length


def needle_surfaces(line_node, catalog: Mapping[str, Any]):
    """``(needle, active_zone)`` tube surfaces (``vtkPolyData``, RAS) for a probe."""
    tip, entry = probe_tip_entry(line_node)
    diameter, active_length, tip_length = probe_dimensions(line_node, catalog)
    direction = (entry - tip) / np.linalg.norm(entry - tip)
    needle = _tube(tip, entry, 0.5 * diameter)
    zone_start = tip + direction * tip_length
    zone_end = zone_start + direction * active_length
    zone = _tube(zone_start, zone_end, 0.5 * diameter * ACTIVE_ZONE_DIAMETER_FACTOR)
    return needle, zone


def _tube(start: np.ndarray, end: np.ndarray, radius: float):
    line = vtkLineSource()
    line.SetPoint1(*start)
    line.SetPoint2(*end)
    tube = vtkTubeFilter()
    tube.SetInputConnection(line.GetOutputPort())
    tube.SetRadius(radius)
    tube.SetNumberOfSides(20)
    tube.CappingOn()
    tube.Update()
    surface = vtkPolyData()
    surface.ShallowCopy(tube.GetOutput())
    return surface


def update_needle_models(line_node, catalog: Mapping[str, Any]) -> tuple[Any, Any]:
    """Create or refresh the probe's needle and active-zone model nodes; return them."""
    scene = line_node.GetScene()
    needle_surface, zone_surface = needle_surfaces(line_node, catalog)
    models = []
    for reference, suffix, surface, rgb in (
        (NEEDLE_REFERENCE, "needle", needle_surface, NEEDLE_RGB),
        (ACTIVE_ZONE_REFERENCE, "active zone", zone_surface, ACTIVE_ZONE_RGB),
    ):
        model = line_node.GetNodeReference(reference)
        if model is None:
            model = scene.AddNewNodeByClass("vtkMRMLModelNode", f"{line_node.GetName()} {suffix}")
            model.CreateDefaultDisplayNodes()
            model.GetDisplayNode().SetColor(*rgb)
            model.SetAttribute(ROLE_ATTRIBUTE, "ProbeModel")
            model.SetHideFromEditors(False)
            line_node.SetNodeReferenceID(reference, model.GetID())
            put_in_folder(scene, PLAN_FOLDER, [model])
        model.SetAndObservePolyData(surface)
        models.append(model)
    return models[0], models[1]


def remove_probe(line_node) -> None:
    """Remove a probe and its needle models from the scene."""
    scene = line_node.GetScene()
    remove_needle_models(line_node)
    scene.RemoveNode(line_node)


def remove_needle_models(line_node) -> None:
    """Remove a probe's needle and active-zone models."""
    scene = line_node.GetScene()
    for reference in (NEEDLE_REFERENCE, ACTIVE_ZONE_REFERENCE):
        model = line_node.GetNodeReference(reference)
        if model is not None:
            scene.RemoveNode(model)


def orphan_models(scene) -> list:
    """Needle and active-zone models whose probe line is no longer in the scene."""
    owned = {
        line.GetNodeReferenceID(reference)
        for line in probe_nodes(scene)
        for reference in (NEEDLE_REFERENCE, ACTIVE_ZONE_REFERENCE)
    }
    # one pass over the scene (GetNthNodeByClass walks it again for every index): this runs in
    # each slot of the panel's timer
    nodes = scene.GetNodesByClass("vtkMRMLModelNode")
    models = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    return [m for m in models if m.GetAttribute(ROLE_ATTRIBUTE) == "ProbeModel" and m.GetID() not in owned]


class NeedleFollower:
    """Keeps every probe's needle models on its line while control points are dragged.

    Also calls ``on_probe_moved(line_node)`` after each update (the live preview hooks in there).
    Call :meth:`follow` for each new probe (or :meth:`follow_all` after a scene load) and
    :meth:`stop` when done.
    """

    def __init__(self, catalog: Mapping[str, Any], on_probe_moved: Callable[[Any], None] | None = None):
        self.catalog = catalog
        self.on_probe_moved = on_probe_moved
        self._observations: dict[str, tuple[Any, list[int]]] = {}

    def follow_all(self, scene) -> None:
        for node in probe_nodes(scene):
            self.follow(node)

    def follow(self, line_node) -> None:
        if line_node.GetID() in self._observations:
            return
        update_needle_models(line_node, self.catalog)
        tags = [
            line_node.AddObserver(event, self._on_modified)
            for event in (
                vtkMRMLMarkupsNode.PointModifiedEvent,
                vtkMRMLMarkupsNode.PointEndInteractionEvent,
                vtkMRMLMarkupsNode.TransformModifiedEvent,
            )
        ]
        self._observations[line_node.GetID()] = (line_node, tags)

    def lines(self) -> list:
        """The probe lines followed."""
        return [node for node, _tags in self._observations.values()]

    def unfollow(self, line_node) -> None:
        node, tags = self._observations.pop(line_node.GetID(), (None, []))
        for tag in tags:
            node.RemoveObserver(tag)

    def stop(self) -> None:
        for node, tags in self._observations.values():
            for tag in tags:
                node.RemoveObserver(tag)
        self._observations.clear()

    def _on_modified(self, line_node, _event) -> None:
        if not is_placed(line_node):
            return  # still being placed
        update_needle_models(line_node, self.catalog)
        if self.on_probe_moved is not None:
            self.on_probe_moved(line_node)
