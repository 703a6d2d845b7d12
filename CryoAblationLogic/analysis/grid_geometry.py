"""Geometry on the grid shared by the metrics: smoothed mask surfaces, distance maps, trilinear
sampling, bounding boxes and the checks of the arrays the metrics are given (numpy, SimpleITK, VTK)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid


@dataclass(frozen=True)
class _Surface:
    points: np.ndarray  # (n, 3) RAS mm
    areas: np.ndarray  # (n,) mm², the area each vertex stands for (a third of its triangles')


def _mask_surface(mask: np.ndarray, grid: Grid) -> _Surface:
    """Smoothed closed surface of a mask, as Slicer makes a segment's closed-surface representation
    (discrete flying edges, then 20 windowed-sinc iterations with pass band 0.01)."""
    box = _bounding_box(mask)
    # One empty voxel all around closes the surface where the mask touches the grid's edge.
    crop = np.pad(mask[box].astype(np.uint8), 1)
    origin = grid.index_to_ras([s.start - 1 for s in box])
    image = _vtk_image(crop, origin, grid.spacing_mm)
    contour = vtkDiscreteFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, 1)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    smoother = vtkWindowedSincPolyDataFilter()
    smoother.SetInputConnection(contour.GetOutputPort())
    smoother.SetNumberOfIterations(20)
    smoother.SetPassBand(0.01)
    smoother.BoundarySmoothingOff()
    smoother.FeatureEdgeSmoothingOff()
    smoother.NonManifoldSmoothingOn()
    smoother.NormalizeCoordinatesOn()
    smoother.Update()
    polydata = smoother.GetOutput()
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)
    triangles = vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    a, b, c = (points[triangles[:, n]] for n in range(3))
    cross = np.cross(b - a, c - a)
    triangle_area = 0.5 * np.linalg.norm(cross, axis=1)
    corners = triangles.ravel()
    areas = np.bincount(corners, weights=np.repeat(triangle_area / 3.0, 3), minlength=len(points))
    normals = np.stack(
        [np.bincount(corners, weights=np.repeat(cross[:, k], 3), minlength=len(points)) for k in range(3)],
        axis=1,
    )
    used = areas > 0
    return _merge_vertices(points[used], areas[used], normals[used], bin_mm=1.5 * max(grid.spacing_mm))


def _merge_vertices(points: np.ndarray, areas: np.ndarray, normals: np.ndarray, bin_mm: float) -> _Surface:
    """Merge the vertices in each ``bin_mm`` cube that face the same way (dominant normal axis and
    sign) into their area-weighted centroid: about a third as many points to measure, and the
    centroids of a patch lie within ~b²/8R of the surface (0.02 mm for b = 1.5, R = 15 mm). The facing
    keeps the two sides of a thin structure apart."""
    axis = np.abs(normals).argmax(axis=1)
    facing = 2 * axis + (normals[np.arange(len(normals)), axis] > 0)
    cells = np.floor(points / bin_mm).astype(np.int64)
    cells -= cells.min(axis=0)
    extent = cells.max(axis=0) + 1
    keys = ((cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]) * 6 + facing
    _, group = np.unique(keys, return_inverse=True)
    total = np.bincount(group, weights=areas)
    centroid = np.stack([np.bincount(group, weights=areas * points[:, k]) for k in range(3)], axis=1)
    return _Surface(centroid / total[:, None], total)


def _vtk_image(array: np.ndarray, origin, spacing):
    image = vtkImageData()
    image.SetDimensions(*array.shape)
    image.SetOrigin(*(float(v) for v in origin))
    image.SetSpacing(*(float(v) for v in spacing))
    scalars = numpy_to_vtk(np.ravel(array, order="F"), deep=True)  # VTK runs x fastest
    image.GetPointData().SetScalars(scalars)
    return image


def _maurer(mask: np.ndarray, grid: Grid, inside_is_positive: bool) -> np.ndarray:
    """Signed Maurer distance (mm) to the mask's boundary voxel centres, indexed [i, j, k]."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0), dtype=np.uint8))
    image.SetSpacing([float(s) for s in grid.spacing_mm])
    maurer = sitk.SignedMaurerDistanceMapImageFilter()
    maurer.SetInsideIsPositive(inside_is_positive)
    maurer.SetSquaredDistance(False)
    maurer.SetUseImageSpacing(True)
    distance = maurer.Execute(image)
    return sitk.GetArrayFromImage(distance).transpose(2, 1, 0)


def _trilinear(field: np.ndarray, grid: Grid, points: np.ndarray) -> np.ndarray:
    """Field at RAS points by trilinear interpolation; points beyond the outer voxel centres take
    the value at the edge (surface points of masks touching the grid edge lie up to ½ voxel out)."""
    return trilinear_at_indices(field, grid.ras_to_index(np.asarray(points, dtype=float).reshape(-1, 3)))


def trilinear_at_indices(field: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """A 3-D array at continuous voxel indices (n, 3) by trilinear interpolation, indices beyond the
    outer voxel centres taking the value at the edge; an axis of one voxel (a 2-D slice) is constant."""
    ijk = np.asarray(ijk, dtype=float).reshape(-1, 3)
    upper = np.asarray(field.shape[:3]) - 1
    ijk = np.clip(ijk, 0, upper)
    base = np.minimum(np.floor(ijk).astype(int), np.maximum(upper - 1, 0))
    frac = ijk - base
    result = np.zeros(len(ijk))
    for corner in range(8):
        offset = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        index = np.minimum(base + offset, upper)
        weight = np.prod(np.where(offset, frac, 1.0 - frac), axis=1)
        result += weight * field[tuple(index.T)]
    return result


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _union_boxes(boxes: list[tuple[slice, ...]], size: Sequence[int], pad: int) -> tuple[slice, ...]:
    return tuple(
        slice(max(0, min(b[a].start for b in boxes) - pad), min(size[a], max(b[a].stop for b in boxes) + pad))
        for a in range(3)
    )


def _grow_box(box: tuple[slice, ...], grid: Grid, margin_mm: float) -> tuple[slice, ...]:
    return tuple(
        slice(
            max(0, box[a].start - math.ceil(margin_mm / grid.spacing_mm[a])),
            min(grid.size[a], box[a].stop + math.ceil(margin_mm / grid.spacing_mm[a])),
        )
        for a in range(3)
    )


def _field(field: np.ndarray, grid: Grid, key: str) -> np.ndarray:
    array = np.asarray(field)
    if array.shape != tuple(grid.size):
        raise InputError(key, f"has shape {array.shape}, the grid is {tuple(grid.size)}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise InputError(key, f"must be numeric, not {array.dtype}")
    if not np.isfinite(array).all():
        raise InputError(key, "contains NaN or infinite values")
    return array


def _mask(mask: np.ndarray, grid: Grid, key: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != tuple(grid.size):
        raise InputError(key, f"has shape {array.shape}, the grid is {tuple(grid.size)}")
    if array.dtype != bool:
        raise InputError(key, f"must be a boolean mask, not {array.dtype}")
    return array


def _levels(levels_c: Sequence[float]) -> list[float]:
    try:
        levels = [float(level) for level in levels_c]
    except (TypeError, ValueError) as error:
        raise InputError("levels_c", "must be a list of numbers (°C)") from error
    if not levels:
        raise InputError("levels_c", "is empty")
    if not all(np.isfinite(levels)):
        raise InputError("levels_c", "must be finite")
    if len(set(levels)) != len(levels):
        raise InputError("levels_c", "has repeated levels")
    return levels


def _point(value, key: str) -> tuple[float, float, float]:
    try:
        point = tuple(float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise InputError(key, "must be three numbers (RAS mm)") from error
    if len(point) != 3 or not all(np.isfinite(point)):
        raise InputError(key, "must be three finite numbers (RAS mm)")
    return point  # type: ignore[return-value]
