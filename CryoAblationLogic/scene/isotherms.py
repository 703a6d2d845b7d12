"""Isotherms as a segmentation: one segment per level, contoured from the temperature field.

The region at or below a level is bounded by the level's contour surface of the (trilinearly
interpolated) field, found with ``vtkFlyingEdges3D``. That surface becomes the segment's
closed-surface representation, which is the segmentation's source representation: slice views
draw its cut as a smooth outline and 3D views show the surface, with no staircase from voxel
thresholding. The field is padded with one layer of warm voxels so every surface closes, also where
the ice reaches the edge of the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from slicer import vtkSegmentation
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import reference, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkMassProperties

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.scene.colors import ATTRIBUTE_PREFIX, level_label

CLOSED_SURFACE = "Closed surface"
LEVEL_TAG = ATTRIBUTE_PREFIX + "IsothermLevelC"


def isotherm_segment_id(level_c: float) -> str:
    return f"isotherm_{level_c:g}"


def contour_isotherm(field: np.ndarray, grid: Grid, level_c: float):
    """Closed surface (``vtkPolyData``, RAS mm) around the region where ``field <= level_c``.

    Where no voxel reaches the level: no cells, and a single point at the grid origin — Slicer's
    segmentation storage skips polydata without points, so a saved scene would lose the level.
    """

    field = np.asarray(field, dtype=np.float32)
    if field.shape != tuple(grid.size):
        raise ValueError(f"field shape {field.shape} does not match grid size {grid.size}")
    if not np.any(field <= level_c):
        return _empty_surface(grid)
    warm = np.float32(max(float(field.max()), level_c) + 1.0)
    padded = np.pad(field, 1, mode="constant", constant_values=warm)
    image = vtkImageData()
    image.SetDimensions(*padded.shape)
    image.SetSpacing(*grid.spacing_mm)
    image.SetOrigin(*(np.asarray(grid.origin_mm) - np.asarray(grid.spacing_mm)))
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(padded.transpose(2, 1, 0)).ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    contour = vtkFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, float(level_c))
    contour.ComputeNormalsOn()
    contour.ComputeScalarsOff()
    contour.Update()
    surface = vtkPolyData()
    surface.ShallowCopy(contour.GetOutput())
    return surface


def _empty_surface(grid: Grid):
    points = vtkPoints()
    points.InsertNextPoint(*grid.origin_mm)
    surface = vtkPolyData()
    surface.SetPoints(points)
    return surface


def surface_volume_ml(surface) -> float:
    """Volume (ml) enclosed by a closed triangulated surface; 0 for an empty one."""
    if surface is None or surface.GetNumberOfCells() == 0:
        return 0.0

    mass = vtkMassProperties()
    mass.SetInputData(surface)
    mass.Update()
    return float(mass.GetVolume()) / 1000.0


def create_isotherm_segmentation(scene, name: str = "Isotherms"):
    """An empty segmentation whose source representation is the closed surface, shown as
    outlines in slice views and as semi-transparent surfaces in 3D."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.GetSegmentation().SetSourceRepresentationName(CLOSED_SURFACE)
    node.SetAttribute(ATTRIBUTE_PREFIX + "Role", "Isotherms")
    node.CreateDefaultDisplayNodes()
    style_isotherm_display(node)
    return node


def style_isotherm_display(segmentation_node) -> None:
    display = segmentation_node.GetDisplayNode()
    if display is None:
        segmentation_node.CreateDefaultDisplayNodes()
        display = segmentation_node.GetDisplayNode()
    display.SetPreferredDisplayRepresentationName2D(CLOSED_SURFACE)
    display.SetPreferredDisplayRepresentationName3D(CLOSED_SURFACE)
    display.SetVisibility2DFill(False)
    display.SetVisibility2DOutline(True)
    display.SetSliceIntersectionThickness(2)
    display.SetVisibility3D(True)
    display.SetOpacity3D(0.35)


def update_isotherm_segmentation(
    segmentation_node,
    field: np.ndarray,
    grid: Grid,
    levels: Sequence[tuple[float, tuple[float, float, float]]],
) -> dict[float, float]:
    """Make the segmentation hold one segment per level, contoured from ``field``.

    ``levels`` is ``[(level_c, rgb), ...]`` (see :func:`.colors.isotherm_levels`). Segments of
    levels no longer listed are removed; existing ones keep their ID and display settings and get
    the new surface. Returns ``{level_c: enclosed volume in ml}``.
    """

    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        segmentation.SetSourceRepresentationName(CLOSED_SURFACE)
    elif segmentation.GetSourceRepresentationName() != CLOSED_SURFACE:
        raise ValueError(f"segmentation {segmentation_node.GetName()!r} is not an isotherm segmentation")
    wanted = {isotherm_segment_id(level): (level, rgb) for level, rgb in levels}
    volumes: dict[float, float] = {}
    was_modifying = segmentation_node.StartModify()
    try:
        for segment_id in list(segmentation.GetSegmentIDs()):
            segment = segmentation.GetSegment(segment_id)
            if segment.HasTag(LEVEL_TAG) and segment_id not in wanted:
                segmentation.RemoveSegment(segment_id)
        for segment_id, (level, rgb) in wanted.items():
            surface = contour_isotherm(field, grid, level)
            volumes[level] = surface_volume_ml(surface)
            segment = segmentation.GetSegment(segment_id)
            if segment is None:
                segmentation_node.AddSegmentFromClosedSurfaceRepresentation(
                    surface, level_label(level), list(rgb), segment_id
                )
                segment = segmentation.GetSegment(segment_id)
            else:
                segment.RemoveAllRepresentations()
                segment.AddRepresentation(CLOSED_SURFACE, surface)
                segment.SetName(level_label(level))
                segment.SetColor(*rgb)
            segment.SetTag(LEVEL_TAG, f"{level:g}")
        segmentation.InvokeEvent(vtkSegmentation.SourceRepresentationModified)
    finally:
        segmentation_node.EndModify(was_modifying)
    return volumes


def isotherm_surface(segmentation_node, level_c: float):
    """The closed surface held for one level (``None`` if the level has no segment)."""
    segment = segmentation_node.GetSegmentation().GetSegment(isotherm_segment_id(level_c))
    return None if segment is None else segment.GetRepresentation(CLOSED_SURFACE)


def segmentation_levels(segmentation_node) -> list[float]:
    """Levels (°C) of the isotherm segments, in segment order."""
    segmentation = segmentation_node.GetSegmentation()
    levels = []
    for segment_id in segmentation.GetSegmentIDs():
        tag_found, value = _tag(segmentation.GetSegment(segment_id), LEVEL_TAG)
        if tag_found:
            levels.append(float(value))
    return levels


def _tag(segment, name: str) -> tuple[bool, str]:
    value = reference("")
    found = segment.GetTag(name, value)
    return bool(found), str(value)
