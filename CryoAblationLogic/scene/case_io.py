"""Scene → case (``docs/case-format.md``) and case file → scene.

The case grid is the image volume's voxels, or — with ``roi_margin_mm`` — a box around the target
and the probes' active zones (clipped to the image), or the box of an ROI node referenced by the
parameter node. The tissue label map is the segmentation painted onto that grid (segments by role:
organ, then critical, target and vessel, later ones winning where they overlap), resampled with
SimpleITK (nearest neighbour, so labels are never blended). Voxels that no segment covers get the
plan's background material.

The label map NRRD written beside a case also carries, in Slicer's ``.seg.nrrd`` header keys
(``SegmentN_Name``, ``SegmentN_LabelValue``, ``SegmentN_Color``, ``SegmentN_Tags``), the name, colour,
role and material of each label, so that importing the case restores the segments as they were;
without them each label becomes a segment named after its material.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from slicer import vtkSlicerSegmentationsModuleLogic
from vtkmodules.vtkCommonCore import vtkStringArray
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.memory import available_memory_bytes
from CryoAblationLogic.io.case_file import load_case, parse_case
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene import protection
from CryoAblationLogic.scene.colors import (
    DEFAULT_ISOTHERM_LEVELS_C,
    create_isotherm_color_table,
    isotherm_levels,
)
from CryoAblationLogic.scene.inputs import (
    ROLES,
    SegmentInfo,
    add_segmentation_from_labels,
    segment_infos,
    segment_ras_bounds,
)
from CryoAblationLogic.scene.probes import add_probe, probe_case_entry, probe_group, probe_tip_entry
from CryoAblationLogic.scene.volumes import (
    add_volume_node,
    grid_reference_image,
    ras_bounds,
    resample_volume,
    round_mm,
    volume_grid,
    vtk_to_matrix,
)

CASE_FORMAT = "cryoablation-case/1"
LABELMAP_KEY = "labels"


@dataclass
class SceneCase:
    """A case built from the scene: the case-format dict and the arrays it names."""

    data: dict
    arrays: dict[str, np.ndarray]
    grid: Grid
    label_segments: dict[int, SegmentInfo]  # label value → the segment painted with it

    def parse(self):
        """The solver's validated :class:`Case` (raises :class:`InputError` naming the key)."""

        return parse_case(self.data, arrays=self.arrays)


# -- grid ------------------------------------------------------------------------------------
# Painting the whole image's tissue map: the label map, a segment's mask and its resampled copy at
# a time (bytes per voxel, with room; the solver's own need is checked when it runs).
PAINT_BYTES_PER_VOXEL = 16


def image_grid(volume, spacing_mm: float | None = None) -> Grid:
    """The grid over the whole image: its own voxels when it is RAS-aligned and no spacing is
    asked for, else its RAS bounding box sampled at ``spacing_mm`` (default: its finest spacing).
    Regions of interest are cut out of this grid, so every grid of a plan shares voxel centres."""
    if volume is None or volume.GetImageData() is None:
        raise InputError(P.INPUT_VOLUME, "no image volume is selected; it gives the simulation grid")
    own = volume_grid(volume)
    if spacing_mm is None and own is not None:
        return own
    spacing = round_mm(spacing_mm if spacing_mm is not None else min(volume.GetSpacing()))
    if not (spacing > 0 and math.isfinite(spacing)):
        raise InputError("grid_spacing_mm", "must be a positive length in mm")
    box = ras_bounds(volume)
    size = tuple(math.floor((box[1][a] - box[0][a]) / spacing + 1e-6) + 1 for a in range(3))
    voxels = math.prod(size)
    need, have = voxels * PAINT_BYTES_PER_VOXEL, available_memory_bytes()
    if need > 0.5 * have:  # refused before painting, not by the kernel or a MemoryError half-way
        raise InputError(
            "grid_spacing_mm",
            f"{spacing:g} mm over this image is {voxels:,} voxels, about {need / 1e9:.1f} GB to paint "
            f"its tissue map, more than the {0.5 * have / 1e9:.1f} GB this computer can spare: use a "
            "coarser spacing",
        )
    return Grid(tuple(float(v) for v in box[0]), (spacing,) * 3, size)  # type: ignore[arg-type]


def case_grid(
    scene,
    parameters: P.ParameterNode | None = None,
    spacing_mm: float | None = None,
    roi_margin_mm: float | None = None,
    cache: dict | None = None,
) -> tuple[Grid, tuple[slice, slice, slice]]:
    """The simulation grid and where it lies in :func:`image_grid` (index slices).

    The region is, in order of precedence: the ROI node the parameter node references, a box
    around the target and the probes' freezing zones grown by ``roi_margin_mm`` (default: the
    plan's setting), or the whole image.
    """
    parameters = parameters or P.get_parameter_node(scene)
    settings = parameters.settings()
    volume = parameters.get(P.INPUT_VOLUME)
    parent = image_grid(volume, spacing_mm if spacing_mm is not None else settings.grid_spacing_mm)
    margin = roi_margin_mm if roi_margin_mm is not None else settings.roi_margin_mm
    roi = parameters.get(P.ROI)
    if roi is not None:
        center = np.zeros(3)
        size = np.zeros(3)
        roi.GetCenterWorld(center)
        roi.GetSizeWorld(size)
        box = np.array([center - size / 2, center + size / 2])
    elif margin is not None:
        box = _target_and_probe_box(parameters, cache)
        box = np.array([box[0] - margin, box[1] + margin])
    else:
        full = tuple(slice(0, n) for n in parent.size)
        return parent, full  # type: ignore[return-value]
    low = np.floor(parent.ras_to_index(box[0]) + 1e-6).astype(int)
    high = np.ceil(parent.ras_to_index(box[1]) - 1e-6).astype(int)
    low = np.maximum(low, 0)
    high = np.minimum(high, np.asarray(parent.size) - 1)
    if np.any(high - low < 2):
        raise InputError(P.ROI, "the region of interest does not overlap the image")
    grid = Grid(
        tuple(round_mm(v) for v in parent.index_to_ras(low)),
        parent.spacing_mm,
        tuple(int(n) for n in high - low + 1),
    )  # type: ignore[arg-type]
    return grid, tuple(slice(int(a), int(b) + 1) for a, b in zip(low, high, strict=True))  # type: ignore[return-value]


def set_region_to_grid(scene, parameters: P.ParameterNode, grid: Grid):
    """Reference an ROI node whose box spans exactly the voxel centres of ``grid`` (for grids cut
    from the image grid, :func:`case_grid` then returns ``grid`` itself)."""
    roi = parameters.get(P.ROI)
    if roi is None:
        roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", scene.GenerateUniqueName("Simulation region"))
        parameters.set(P.ROI, roi)
    low = np.asarray(grid.origin_mm)
    high = low + np.asarray(grid.spacing_mm) * (np.asarray(grid.size) - 1)
    roi.SetCenterWorld(((low + high) / 2).tolist())
    roi.SetSizeWorld((high - low).tolist())
    return roi


def _segmentation_key(segmentation) -> tuple:
    """What the painted tissue map depends on in ``segmentation``: its geometry (the node's and
    the segmentation's modification times) and each segment's role and material. The roles and
    materials are segment tags, and a tag set in Slicer changes neither time (vtkSegment::SetTag
    modifies the segment only, and the segmentation does not pass that on as a modification)."""
    return (
        segmentation.GetID(),
        segmentation.GetMTime(),
        segmentation.GetSegmentation().GetMTime(),
        tuple(segment_infos(segmentation)),
        placement_key(segmentation),
    )


def placement_key(node) -> tuple:
    """Where ``node`` lies in the world: its parent transform's matrix to the world (for a
    transform that is not linear, its modification time). Editing a transform, as registration in
    the Transforms module does, changes neither the node's nor the transform node's time."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return ()
    matrix = vtkMatrix4x4()
    if parent.GetMatrixTransformToWorld(matrix):
        return tuple(vtk_to_matrix(matrix).ravel().tolist())
    return (parent.GetID(), parent.GetTransformToParent().GetMTime())


def _target_and_probe_box(parameters: P.ParameterNode, cache: dict | None = None) -> np.ndarray:
    points = []
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    if segmentation is not None:
        key = _segmentation_key(segmentation)
        if cache is not None and cache.get("target_bounds_key") == key:
            points.extend(cache["target_bounds"])
        else:
            target_points = []
            for info in segment_infos(segmentation):
                if info.role == "target":
                    bounds = segment_ras_bounds(segmentation, info.segment_id)
                    if bounds is not None:
                        target_points.extend(bounds)
            if cache is not None:
                cache.update(target_bounds_key=key, target_bounds=target_points)
            points.extend(target_points)
    for probe in parameters.probes():
        tip, entry = probe_tip_entry(probe)
        points.append(tip)
        # the freezing zone lies within a few centimetres of the tip
        points.append(
            tip + (entry - tip) / np.linalg.norm(entry - tip) * min(40.0, np.linalg.norm(entry - tip))
        )
    if not points:
        raise InputError("roi_margin_mm", "needs a target segment or probes to place the region of interest")
    points = np.asarray(points)
    return np.array([points.min(axis=0), points.max(axis=0)])


# -- tissue label map -------------------------------------------------------------------------
def tissue_labels(scene, segmentation_node, volume_node, grid: Grid):
    """``(labels [i, j, k] uint8, {label: SegmentInfo})`` of the role-tagged segments on ``grid``."""

    infos = segment_infos(segmentation_node)
    if not infos:
        raise InputError(P.INPUT_SEGMENTATION, "no segment has a role (target, critical, vessel, organ)")
    for info in infos:
        if not info.material:
            raise InputError(f"segment {info.name}.material", "no material is assigned to this segment")
    ordered = sorted(infos, key=lambda info: ROLES.index(info.role))
    if len(ordered) > 255:
        raise InputError(P.INPUT_SEGMENTATION, "more than 255 segments")
    ids = vtkStringArray()
    for info in ordered:
        ids.InsertNextValue(info.segment_id)
    label_node = scene.AddNewNodeByClass(
        "vtkMRMLLabelMapVolumeNode", "CryoAblation tissue labels (temporary)"
    )
    # The export also adds a "…_ColorTable" node for the temporary label map; it goes with it.
    tables_before = _node_ids(scene, "vtkMRMLColorTableNode")
    try:
        if not vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, label_node, volume_node
        ):
            raise RuntimeError("exporting the segments to a label map failed")
        labels = resample_volume(label_node, grid, label_map=True)
    finally:
        scene.RemoveNode(label_node)
        for node_id in _node_ids(scene, "vtkMRMLColorTableNode") - tables_before:
            scene.RemoveNode(scene.GetNodeByID(node_id))
    return labels.astype(np.uint8, copy=False), {index + 1: info for index, info in enumerate(ordered)}


def _node_ids(scene, class_name: str) -> set[str]:
    nodes = scene.GetNodesByClass(class_name)
    return {nodes.GetItemAsObject(i).GetID() for i in range(nodes.GetNumberOfItems())}


# -- scene → case ----------------------------------------------------------------------------
def build_case(
    scene,
    parameters: P.ParameterNode | None = None,
    spacing_mm: float | None = None,
    labels_cache: dict | None = None,
    roi_margin_mm: float | None = None,
) -> SceneCase:
    """The case the scene's plan describes (dict + label array, as ``parse_case`` takes them).

    ``spacing_mm`` and ``roi_margin_mm`` override the plan's settings (the live preview uses a
    coarse grid around the probes). ``labels_cache`` (any dict the caller keeps) holds the label
    map of the whole image while neither the segmentation nor the image changes, so that a probe
    move only cuts a new region out of it — the live preview rebuilds the case on every move.
    """
    parameters = parameters or P.get_parameter_node(scene)
    settings = parameters.settings()
    grid, region = case_grid(scene, parameters, spacing_mm, roi_margin_mm, labels_cache)
    data: dict = {
        "format": CASE_FORMAT,
        "grid": grid.to_dict(),
        "initial_temperature_c": settings.initial_temperature_c,
    }
    if settings.boundaries is not None:
        data["boundaries"] = settings.boundaries
    if settings.materials:
        data["materials"] = settings.materials
    arrays: dict[str, np.ndarray] = {}
    label_segments: dict[int, SegmentInfo] = {}
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    if segmentation is None:
        data["tissue"] = settings.background_material
    else:
        volume = parameters.get(P.INPUT_VOLUME)
        parent = image_grid(volume, spacing_mm if spacing_mm is not None else settings.grid_spacing_mm)
        key = (
            *_segmentation_key(segmentation),
            volume.GetID(),
            volume.GetMTime(),
            placement_key(volume),
            parent,
        )
        if labels_cache is not None and labels_cache.get("key") == key:
            labels, label_segments = labels_cache["value"]
        elif labels_cache is not None:
            # Paint the whole image once; regions of interest are then cut out of it.
            labels, label_segments = tissue_labels(scene, segmentation, volume, parent)
            labels_cache.update(key=key, value=(labels, label_segments))
        else:
            labels, label_segments = tissue_labels(scene, segmentation, volume, grid)
            region = (slice(None), slice(None), slice(None))
        arrays[LABELMAP_KEY] = np.ascontiguousarray(labels[region])
        label_materials = {"0": settings.background_material}
        label_materials.update({str(label): info.material for label, info in label_segments.items()})
        data["tissue_map"] = {"labelmap": LABELMAP_KEY, "labels": label_materials}
        # the target and the critical structures by name: the live ice warnings and the forecasts
        data["structures"] = [
            {"label": label, "name": info.name, "role": info.role}
            for label, info in sorted(label_segments.items())
            if info.role in ("target", "critical")
        ]
    probes = parameters.probes()
    data["probes"] = [probe_case_entry(probe) for probe in probes]
    data["sources"] = list(settings.sources) + protection.case_sources(
        parameters, grid, label_segments, arrays.get(LABELMAP_KEY)
    )
    data["protocol"] = expand_protocol_groups(settings.protocol, probes)
    data["sensors"] = sensor_entries(parameters)
    levels_node = parameters.get(P.ISOTHERM_LEVELS)
    levels = (
        [level for level, _ in isotherm_levels(levels_node)]
        if levels_node
        else list(DEFAULT_ISOTHERM_LEVELS_C)
    )
    data["outputs"] = {"isotherms_c": levels, "snapshot_times_s": list(settings.snapshot_times_s)}
    return SceneCase(data=data, arrays=arrays, grid=grid, label_segments=label_segments)


def expand_protocol_groups(protocol: list[dict], probes: list) -> list[dict]:
    """Protocol steps with group names (``CryoAblation.ProtocolGroup``) replaced by probe names."""
    names = [probe.GetName() for probe in probes]
    groups: dict[str, list[str]] = {}
    for probe in probes:
        groups.setdefault(probe_group(probe), []).append(probe.GetName())
    expanded = []
    for index, given_step in enumerate(protocol):
        step = dict(given_step)
        members = step.get("probes", "all")
        if isinstance(members, list):
            resolved: list[str] = []
            for member in members:
                if member in names:
                    resolved.append(member)
                elif member in groups:
                    resolved.extend(groups[member])
                else:
                    raise InputError(
                        f"protocol[{index}].probes", f"{member!r} is neither a probe nor a probe group"
                    )
            step["probes"] = list(dict.fromkeys(resolved))
        expanded.append(step)
    return expanded


def sensor_entries(parameters: P.ParameterNode) -> list[dict]:
    sensors = []
    for node in parameters.get_all(P.SENSORS):
        for index in range(node.GetNumberOfControlPoints()):
            position = np.zeros(3)
            node.GetNthControlPointPositionWorld(index, position)
            name = node.GetNthControlPointLabel(index) or f"{node.GetName()}-{index + 1}"
            sensors.append({"name": name, "position_mm": [round(float(v), 4) for v in position]})
    return sensors


# -- files -----------------------------------------------------------------------------------
def export_case(scene, path: str | Path, parameters: P.ParameterNode | None = None) -> Path:
    """Write the scene's plan as ``<name>.cryo.json`` and its label map ``<name>.labels.nrrd``."""
    path = Path(path)
    if not path.name.endswith(".cryo.json"):
        raise InputError(str(path), "a case file name must end in .cryo.json")
    scene_case = build_case(scene, parameters)
    scene_case.parse()  # refuse to write a case the solver would reject
    data = json.loads(json.dumps(scene_case.data))
    path.parent.mkdir(parents=True, exist_ok=True)
    if LABELMAP_KEY in scene_case.arrays:
        labelmap_name = path.name[: -len(".cryo.json")] + ".labels.nrrd"
        write_labelmap(
            path.parent / labelmap_name,
            scene_case.arrays[LABELMAP_KEY],
            scene_case.grid,
            scene_case.label_segments,
            parameters or P.get_parameter_node(scene),
        )
        data["tissue_map"]["labelmap"] = labelmap_name
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_labelmap(
    path: Path,
    labels: np.ndarray,
    grid: Grid,
    label_segments: dict[int, SegmentInfo],
    parameters: P.ParameterNode,
) -> None:

    reference = grid_reference_image(grid)
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
    image.CopyInformation(reference)
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    for number, (label, info) in enumerate(sorted(label_segments.items())):
        segment = segmentation.GetSegmentation().GetSegment(info.segment_id) if segmentation else None
        color = segment.GetColor() if segment is not None else (0.5, 0.5, 0.5)
        image.SetMetaData(f"Segment{number}_ID", info.segment_id)
        image.SetMetaData(f"Segment{number}_Name", info.name)
        image.SetMetaData(f"Segment{number}_LabelValue", str(label))
        image.SetMetaData(f"Segment{number}_Layer", "0")
        image.SetMetaData(f"Segment{number}_Color", " ".join(f"{c:.4f}" for c in color))
        image.SetMetaData(
            f"Segment{number}_Tags", f"CryoAblation.Role:{info.role}|CryoAblation.Material:{info.material}|"
        )
    sitk.WriteImage(image, str(path), True)


def read_labelmap_segments(path: Path) -> dict[int, tuple[str, str, str, tuple[float, float, float] | None]]:
    """``label → (name, material, role, colour)`` from a label map written by :func:`export_case`."""

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    keys = set(reader.GetMetaDataKeys())
    segments = {}
    number = 0
    while f"Segment{number}_LabelValue" in keys:
        tags = dict(
            item.split(":", 1)
            for item in reader.GetMetaData(f"Segment{number}_Tags").split("|")
            if ":" in item
        )
        color = tuple(float(c) for c in reader.GetMetaData(f"Segment{number}_Color").split())
        segments[int(reader.GetMetaData(f"Segment{number}_LabelValue"))] = (
            reader.GetMetaData(f"Segment{number}_Name"),
            tags.get("CryoAblation.Material", ""),
            tags.get("CryoAblation.Role", "organ"),
            color if len(color) == 3 else None,
        )
        number += 1
    return segments


# -- case file → scene -----------------------------------------------------------------------
def import_case(
    scene, path: str | Path, segmentations_logic=None, name: str | None = None
) -> P.ParameterNode:
    """Load a case file into the scene: grid volume, segmentation, probes, sensors and settings.

    The case is validated first (the solver's ``load_case``), so a bad file changes nothing. The
    imported probes and sensors replace those of the scene's plan (their nodes stay in the scene).
    """
    path = Path(path)
    load_case(path)  # validates everything, names the bad key
    data = json.loads(path.read_text(encoding="utf-8"))
    name = name or path.name.split(".")[0]
    grid = Grid.from_dict(data["grid"])
    parameters = P.get_parameter_node(scene)

    labels = None
    label_materials: dict[str, str] = {}
    if "tissue_map" in data:
        labelmap_path = path.parent / data["tissue_map"]["labelmap"]
        labels, label_grid = read_nrrd(labelmap_path)
        if label_grid.size != grid.size:
            raise InputError("tissue_map.labelmap", "label map grid differs from the case grid")
        if labels.min() < 0 or labels.max() > 255:
            raise InputError("tissue_map.labelmap", "label values must lie in 0..255 to become segments")
        labels = labels.astype(np.uint8)
        label_materials = dict(data["tissue_map"]["labels"])
    volume_field = labels if labels is not None else np.zeros(grid.size, dtype=np.uint8)
    volume = add_volume_node(scene, f"{name} grid", volume_field.astype(np.int16), grid)
    parameters.set(P.INPUT_VOLUME, volume)
    parameters.set(P.ROI, None)  # the imported volume is the case grid

    settings = P.PlanSettings()
    settings.initial_temperature_c = float(data.get("initial_temperature_c", 37.0))
    settings.boundaries = data.get("boundaries")
    settings.materials = data.get("materials", {})
    settings.protocol = data["protocol"]
    settings.snapshot_times_s = data.get("outputs", {}).get("snapshot_times_s", [])
    if labels is not None:
        stored = read_labelmap_segments(labelmap_path)
        present = set(np.unique(labels).tolist())
        settings.background_material = label_materials.get("0", settings.background_material)
        label_info = {}
        colors = {}
        for text, material in label_materials.items():
            label = int(text)
            if label == 0 or label not in present:
                continue
            segment_name, _stored_material, role, color = stored.get(label, (material, material, "", None))
            label_info[label] = (segment_name, material, role or _role_for_material(material))
            if color is not None:
                colors[label] = color
        segmentation = add_segmentation_from_labels(
            scene,
            segmentations_logic or vtkSlicerSegmentationsModuleLogic(),
            labels,
            grid,
            label_info,
            name=f"{name} anatomy",
            colors=colors,
        )
        parameters.set(P.INPUT_SEGMENTATION, segmentation)
    else:
        settings.background_material = data["tissue"]
    # Catheters and warmed regions become the panel's measures again (after the segmentation).
    settings.sources = protection.restore_from_case(scene, parameters, data.get("sources", []))
    parameters.set_settings(settings)

    for role in (P.PROBE, P.SENSORS):
        for node in parameters.get_all(role):
            parameters.remove(role, node)
    for entry in data.get("probes", []):
        probe = add_probe(
            scene,
            entry["name"],
            entry["tip_mm"],
            entry["entry_mm"],
            entry["model"],
            diameter_mm=entry.get("diameter_mm"),
            active_length_mm=entry.get("active_length_mm"),
        )
        parameters.add(P.PROBE, probe)
    if data.get("sensors"):
        sensors = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", scene.GenerateUniqueName("Sensors"))
        for sensor in data["sensors"]:
            sensors.AddControlPointWorld(list(map(float, sensor["position_mm"])), sensor["name"])
        parameters.add(P.SENSORS, sensors)
    levels = data.get("outputs", {}).get("isotherms_c") or list(DEFAULT_ISOTHERM_LEVELS_C)
    parameters.set(P.ISOTHERM_LEVELS, create_isotherm_color_table(scene, levels))
    return parameters


def _role_for_material(material: str) -> str:
    return {"tumor": "target", "blood": "vessel"}.get(material, "organ")
