"""Planning inputs: the image volume and the segmentation, each segment with a role and a material.

Segment tags (saved with the segmentation): ``CryoAblation.Role`` is one of ``target`` (the
tumour), ``critical`` (a structure to spare: bowel, ureter, nerve), ``vessel`` (a large vessel, a
heat sink) or ``organ`` (other tissue); ``CryoAblation.Material`` names a material of the library
(or of the plan's material overrides). Target and vessel segments default to ``tumor`` and
``blood``; the others need a material.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.vtkCommonCore import reference
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.scene.colors import ATTRIBUTE_PREFIX
from CryoAblationLogic.scene.volumes import add_volume_node, image_data_to_array, vtk_to_matrix

ROLE_TAG = ATTRIBUTE_PREFIX + "Role"
MATERIAL_TAG = ATTRIBUTE_PREFIX + "Material"
ROLES = ("organ", "critical", "target", "vessel")  # also the painting order: later roles win
DEFAULT_MATERIAL = {"target": "tumor", "vessel": "blood"}


@dataclass(frozen=True)
class SegmentInfo:
    segment_id: str
    name: str
    role: str
    material: str | None


def set_segment_role(segmentation_node, segment_id: str, role: str, material: str | None = None) -> None:
    if role not in ROLES:
        raise InputError(f"segment {segment_id}.role", f"must be one of {', '.join(ROLES)}, not {role!r}")
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise InputError(f"segment {segment_id}", f"not in segmentation {segmentation_node.GetName()!r}")
    segment.SetTag(ROLE_TAG, role)
    material = material or DEFAULT_MATERIAL.get(role)
    if material:
        segment.SetTag(MATERIAL_TAG, material)
    else:
        segment.RemoveTag(MATERIAL_TAG)


def clear_segment_role(segmentation_node, segment_id: str) -> None:
    """Leave a segment out of the plan: no role, no material."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise InputError(f"segment {segment_id}", f"not in segmentation {segmentation_node.GetName()!r}")
    segment.RemoveTag(ROLE_TAG)
    segment.RemoveTag(MATERIAL_TAG)


def segment_infos(segmentation_node) -> list[SegmentInfo]:
    """Segments that have a role, in segmentation order."""

    segmentation = segmentation_node.GetSegmentation()
    infos = []
    for segment_id in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(segment_id)
        role = reference("")
        if not segment.GetTag(ROLE_TAG, role):
            continue
        material = reference("")
        has_material = segment.GetTag(MATERIAL_TAG, material)
        infos.append(
            SegmentInfo(segment_id, segment.GetName(), str(role), str(material) if has_material else None)
        )
    return infos


def segments_with_role(segmentation_node, role: str) -> list[SegmentInfo]:
    return [info for info in segment_infos(segmentation_node) if info.role == role]


def add_segmentation_from_labels(
    scene,
    segmentation_logic,
    labels: np.ndarray,
    grid: Grid,
    label_info: dict[int, tuple[str, str, str]],
    *,
    name: str = "Anatomy",
    colors: dict[int, tuple[float, float, float]] | None = None,
):
    """A segmentation with one segment per label value of ``label_info``
    (``label → (segment name, material, role)``), tagged with role and material."""

    present = set(np.unique(labels).tolist()) - {0}
    unknown = present - set(label_info)
    if unknown:
        raise InputError("labels", f"label values {sorted(unknown)} have no segment name, material and role")
    label_node = add_volume_node(scene, f"{name} labels", labels, grid, label_map=True)
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(label_node)
    if not segmentation_logic.ImportLabelmapToSegmentationNode(label_node, segmentation_node):
        raise RuntimeError(f"could not import the label map into segmentation {name!r}")
    scene.RemoveNode(label_node)
    segmentation = segmentation_node.GetSegmentation()
    # The import names segments after the label map's colour table; rename by label value.
    for segment_id in list(segmentation.GetSegmentIDs()):
        segment = segmentation.GetSegment(segment_id)
        label = segment.GetLabelValue()
        if label not in label_info:
            continue
        segment_name, material, role = label_info[label]
        segment.SetName(segment_name)
        if colors and label in colors:
            segment.SetColor(*colors[label])
        set_segment_role(segmentation_node, segment_id, role, material)
    return segmentation_node


def segment_ras_bounds(segmentation_node, segment_id: str) -> np.ndarray | None:
    """``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` of a segment in world RAS mm (through the
    segmentation's linear parent transform, if any), ``None`` if empty.

    Segments imported from one label map share a single image; their own voxels (those with the
    segment's label value) give the bounds, not the shared image's extent.
    """
    local = _segment_local_bounds(segmentation_node, segment_id)
    parent = segmentation_node.GetParentTransformNode()
    if local is None or parent is None:
        return local
    matrix = vtkMatrix4x4()
    if not parent.GetMatrixTransformToWorld(matrix):
        raise InputError(
            f"segmentation {segmentation_node.GetName()!r}",
            "lies under a transform that is not linear: harden it (Transforms module) first",
        )
    corners = np.array([[x, y, z, 1.0] for x in local[:, 0] for y in local[:, 1] for z in local[:, 2]])
    world = (corners @ vtk_to_matrix(matrix).T)[:, :3]
    return np.array([world.min(axis=0), world.max(axis=0)])


def _segment_local_bounds(segmentation_node, segment_id: str) -> np.ndarray | None:

    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    labelmap = segment.GetRepresentation("Binary labelmap")
    if labelmap is not None and labelmap.GetPointData().GetScalars() is not None:
        array = image_data_to_array(labelmap)
        ijk = np.argwhere(array == segment.GetLabelValue())
        if ijk.size == 0:
            return None
        extent = labelmap.GetExtent()
        offset = np.array(extent[0::2])
        corners = np.array([ijk.min(axis=0) + offset, ijk.max(axis=0) + offset], dtype=float)
        matrix = vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(matrix)
        ras = np.c_[corners, np.ones(2)] @ vtk_to_matrix(matrix).T
        all_corners = np.array([[x, y, z] for x in ras[:, 0] for y in ras[:, 1] for z in ras[:, 2]])
        return np.array([all_corners.min(axis=0), all_corners.max(axis=0)])
    bounds = [0.0] * 6
    segment.GetBounds(bounds)
    lo = np.array(bounds[0::2])
    hi = np.array(bounds[1::2])
    if np.any(hi < lo):
        return None
    return np.array([lo, hi])
