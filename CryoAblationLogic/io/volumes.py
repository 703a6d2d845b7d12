"""Read and write fields on a :class:`~.grid.Grid` as NRRD files the way Slicer writes volumes.

Slicer stores volumes in LPS space: a RAS-aligned grid is written with ``space directions``
(-sx,0,0) (0,-sy,0) (0,0,sz) and the origin's x and y negated, so the file loads in Slicer at the
case's coordinates. SimpleITK does the file format; this module only maps the geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid

_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def write_nrrd(path: str | Path, field: np.ndarray, grid: Grid, compress: bool = True) -> Path:
    import SimpleITK as sitk

    field = np.asarray(field)
    if field.shape != tuple(grid.size):
        raise ValueError(f"field shape {field.shape} does not match grid size {grid.size}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(field.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in grid.spacing_mm])
    image.SetOrigin([float(v) for v in np.asarray(grid.origin_mm) * _RAS_TO_LPS])
    image.SetDirection([-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), compress)
    return path


def read_nrrd(path: str | Path) -> tuple[np.ndarray, Grid]:
    """Read a volume whose axes are aligned with RAS (any sign); return the field and its grid.

    Axis flips are undone so that the returned grid has positive spacing along +R, +A, +S.
    Oblique volumes are refused: resample them first (the MRML adapters do this with SimpleITK).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(str(path), f"not a readable image: {error}") from error
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(str(path), "must be a 3-D scalar volume")
    direction = np.array(image.GetDirection()).reshape(3, 3) * _RAS_TO_LPS[:, None]  # LPS→RAS rows
    signs = np.diag(direction)
    if not np.allclose(np.abs(direction), np.eye(3), atol=1e-6):
        raise InputError(str(path), "volume axes are oblique; resample it onto a RAS-aligned grid first")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    spacing = np.array(image.GetSpacing())
    origin = np.array(image.GetOrigin()) * _RAS_TO_LPS
    size = np.array(array.shape)
    for axis in range(3):
        if signs[axis] < 0:  # axis runs against RAS: flip it and move the origin to the other end
            origin[axis] -= spacing[axis] * (size[axis] - 1)
            array = np.flip(array, axis=axis)
    grid = Grid(
        tuple(float(v) for v in origin),
        tuple(float(v) for v in spacing),
        tuple(int(n) for n in size),
    )
    return np.ascontiguousarray(array), grid
