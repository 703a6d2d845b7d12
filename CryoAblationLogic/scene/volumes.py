"""Fields on a :class:`~CryoAblationLogic.core.grid.Grid` ↔ Slicer volume nodes, and resampling.

A volume node keeps its voxels in a ``vtkImageData`` (origin 0, spacing 1) and its placement in
the IJK→RAS matrix; a grid field is a numpy array ``[i, j, k]`` along R, A, S. VTK stores voxels
with i varying fastest, which is numpy's Fortran order of ``[i, j, k]`` — the C order of
``[k, j, i]``, the order SimpleITK uses too. Images of any orientation are brought onto a grid by
SimpleITK resampling in LPS, the space ITK works in.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from CryoAblationLogic.core.coordinates import RAS_TO_LPS_MATRIX
from CryoAblationLogic.core.grid import Grid


def round_mm(value: float) -> float:
    """Millimetres to a nanometre: drops the float noise that LPS↔RAS round trips of a saved
    volume's geometry leave, so that a reloaded image gives exactly the same grid."""
    return round(float(value), 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def field_to_image_data(field: np.ndarray):
    """A ``vtkImageData`` (origin 0, spacing 1) holding a copy of ``field`` ``[i, j, k]``."""

    field = np.asarray(field)
    image = vtkImageData()
    image.SetDimensions(*field.shape)
    flat = np.ascontiguousarray(field.transpose(2, 1, 0)).ravel()
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def image_data_to_array(image) -> np.ndarray:
    """A view of a ``vtkImageData``'s scalars as a numpy array ``[i, j, k]``."""

    dims = image.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return flat.reshape(dims[2], dims[1], dims[0]).transpose(2, 1, 0)


def matrix_to_vtk(matrix: np.ndarray):
    vtk_matrix = vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            vtk_matrix.SetElement(row, column, float(matrix[row, column]))
    return vtk_matrix


def vtk_to_matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return vtk_to_matrix(matrix)


def set_volume_field(volume_node, field: np.ndarray, grid: Grid) -> None:
    """Put ``field`` (``[i, j, k]`` on ``grid``) into a volume node, placed at the grid's RAS position."""
    field = np.asarray(field)
    if field.shape != tuple(grid.size):
        raise ValueError(f"field shape {field.shape} does not match grid size {grid.size}")
    volume_node.SetIJKToRASMatrix(matrix_to_vtk(grid.ijk_to_ras_matrix()))
    volume_node.SetAndObserveImageData(field_to_image_data(field))


def add_volume_node(scene, name: str, field: np.ndarray, grid: Grid, label_map: bool = False):
    """A new scalar (or label map) volume node holding ``field``, with display and storage nodes."""
    class_name = "vtkMRMLLabelMapVolumeNode" if label_map else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, scene.GenerateUniqueName(name))
    set_volume_field(node, field, grid)
    node.CreateDefaultDisplayNodes()
    node.CreateDefaultStorageNode()
    return node


def volume_grid(volume_node) -> Grid | None:
    """The volume's grid if its axes run along +R, +A, +S (no flips, no rotation), else ``None``."""
    matrix = ijk_to_ras(volume_node)
    image = volume_node.GetImageData()
    if image is None:
        return None
    rotation = matrix[:3, :3]
    spacing = np.diag(rotation)
    if not np.allclose(rotation, np.diag(spacing), atol=1e-9) or np.any(spacing <= 0):
        return None
    return Grid(
        tuple(round_mm(v) for v in matrix[:3, 3]),
        tuple(round_mm(v) for v in spacing),
        tuple(int(n) for n in image.GetDimensions()),
    )


def volume_field(volume_node) -> tuple[np.ndarray, Grid]:
    """The volume's voxels ``[i, j, k]`` on a RAS-aligned grid (axis flips undone; copy).

    Rotated volumes have no such grid: resample them with :func:`resample_volume` instead.
    """
    image = volume_node.GetImageData()
    if image is None:
        raise ValueError(f"volume {volume_node.GetName()!r} holds no image data")
    matrix = ijk_to_ras(volume_node)
    rotation = matrix[:3, :3]
    spacing = np.linalg.norm(rotation, axis=0)
    signs = np.sign(np.diag(rotation))
    if not np.allclose(np.abs(rotation), np.diag(spacing), atol=1e-6 * spacing.max()):
        raise ValueError(f"volume {volume_node.GetName()!r} is rotated; resample it onto a grid")
    array = image_data_to_array(image)
    origin = matrix[:3, 3].copy()
    for axis in range(3):
        if signs[axis] < 0:
            origin[axis] -= spacing[axis] * (array.shape[axis] - 1)
            array = np.flip(array, axis=axis)
    grid = Grid(
        tuple(round_mm(v) for v in origin),
        tuple(round_mm(v) for v in spacing),
        tuple(int(n) for n in array.shape),
    )
    return np.array(array), grid


def volume_to_sitk(volume_node):
    """The volume as a SimpleITK image in LPS (any orientation), sharing no memory with the node."""

    image = volume_node.GetImageData()
    if image is None:
        raise ValueError(f"volume {volume_node.GetName()!r} holds no image data")
    dims = image.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    sitk_image = sitk.GetImageFromArray(flat.reshape(dims[2], dims[1], dims[0]))
    matrix = ijk_to_ras(volume_node)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    direction_lps = RAS_TO_LPS_MATRIX @ (matrix[:3, :3] / spacing)
    sitk_image.SetSpacing([float(s) for s in spacing])
    sitk_image.SetOrigin([float(v) for v in RAS_TO_LPS_MATRIX @ matrix[:3, 3]])
    sitk_image.SetDirection([float(v) for v in direction_lps.ravel()])
    return sitk_image


def grid_reference_image(grid: Grid):
    """An empty SimpleITK image (LPS) whose voxels are the grid's, for resampling onto the grid."""

    reference = sitk.Image([int(n) for n in grid.size], sitk.sitkUInt8)
    reference.SetSpacing([float(s) for s in grid.spacing_mm])
    reference.SetOrigin([float(v) for v in RAS_TO_LPS_MATRIX @ np.asarray(grid.origin_mm)])
    reference.SetDirection([float(v) for v in RAS_TO_LPS_MATRIX.ravel()])
    return reference


def resample_volume(
    volume_node, grid: Grid, label_map: bool = False, default_value: float = 0.0
) -> np.ndarray:
    """The volume sampled at the grid's voxel centres, ``[i, j, k]``.

    Label maps use nearest-neighbour interpolation (labels are never blended), images linear.
    Grid voxels outside the volume get ``default_value``. When the grid is the volume's own
    (RAS-aligned) grid the voxels are copied as they are.
    """

    own_grid = volume_grid(volume_node)
    if own_grid is not None and _same_grid(own_grid, grid):
        return np.array(image_data_to_array(volume_node.GetImageData()))
    source = volume_to_sitk(volume_node)
    interpolator = sitk.sitkNearestNeighbor if label_map else sitk.sitkLinear
    resampled = sitk.Resample(
        source,
        grid_reference_image(grid),
        sitk.Transform(),
        interpolator,
        float(default_value),
        source.GetPixelID(),
    )
    return np.ascontiguousarray(sitk.GetArrayViewFromImage(resampled).transpose(2, 1, 0))


def _same_grid(a: Grid, b: Grid) -> bool:
    return (
        tuple(a.size) == tuple(b.size)
        and np.allclose(a.origin_mm, b.origin_mm, atol=1e-6)
        and np.allclose(a.spacing_mm, b.spacing_mm, atol=1e-9)
    )


def ras_bounds(volume_node) -> np.ndarray:
    """``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` of the voxel centres, in RAS millimetres."""
    dims = np.asarray(volume_node.GetImageData().GetDimensions()) - 1
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0]) for j in (0, dims[1]) for k in (0, dims[2])])
    ras = corners @ ijk_to_ras(volume_node).T
    return np.round(np.array([ras[:, :3].min(axis=0), ras[:, :3].max(axis=0)]), 6) + 0.0
