"""Signed distance to an isotherm, sub-voxel where it decides a result (see :mod:`.metrics`)."""

from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkStaticPointLocator
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D

from CryoAblationLogic.analysis.grid_geometry import (
    _bounding_box,
    _maurer,
    _trilinear,
    _union_boxes,
    _vtk_image,
)
from CryoAblationLogic.core.grid import Grid


class _IsothermDistance:
    """Signed distance (mm) to one isotherm, positive on the cold side (T below the level)."""

    # Bracket of the exact distance around the coarse one, in voxel diagonals (see ``decide``).
    BRACKET_BELOW = 0.5
    BRACKET_ABOVE = 1.1

    def __init__(self, *, field, grid, level, box, coarse, vertices, normals, locator):
        self.field, self.grid, self.level = field, grid, level
        self.box, self.coarse = box, coarse
        self.vertices, self.normals, self.locator = vertices, normals, locator
        spacing = np.asarray(grid.spacing_mm)
        self.diagonal_mm = float(np.linalg.norm(spacing))
        # Farthest a point of the surface can be from its nearest vertex (vertices lie on voxel edges).
        self.vertex_gap_mm = 0.5 * self.diagonal_mm

    @classmethod
    def build(
        cls, field: np.ndarray, grid: Grid, level: float, ice: np.ndarray, boxes: list[tuple[slice, ...]]
    ) -> _IsothermDistance | None:
        """None when the grid holds no isotherm at this level (no ice, or ice everywhere)."""
        if not ice.any() or ice.all():
            return None
        # The whole isotherm lies in the ice's box grown by one voxel; the points asked about lie in
        # ``boxes``. Everything outside their union is left out, which keeps the maps small.
        box = _union_boxes([_bounding_box(ice), *boxes], grid.size, pad=1)
        crop_field = np.ascontiguousarray(field[box], dtype=np.float32)
        crop_ice = ice[box]
        coarse = _maurer(crop_ice, grid, inside_is_positive=True)
        origin = grid.index_to_ras([s.start for s in box])
        image = _vtk_image(crop_field, origin, grid.spacing_mm)
        contour = vtkFlyingEdges3D()
        contour.SetInputData(image)
        contour.SetValue(0, float(level))
        contour.ComputeNormalsOn()
        contour.ComputeScalarsOff()
        contour.Update()
        surface = contour.GetOutput()
        if surface.GetNumberOfPoints() == 0:
            return None
        vertices = vtk_to_numpy(surface.GetPoints().GetData()).astype(float)
        normals = vtk_to_numpy(surface.GetPointData().GetNormals()).astype(float)
        locator = vtkStaticPointLocator()
        locator.SetDataSet(surface)
        locator.BuildLocator()
        instance = cls(
            field=field,
            grid=grid,
            level=level,
            box=box,
            coarse=coarse,
            vertices=vertices,
            normals=normals,
            locator=locator,
        )
        instance._surface = surface  # the locator refers to it
        return instance

    def coarse_mm(self, points: np.ndarray) -> np.ndarray:
        """Maurer distance of the thresholded field, trilinearly interpolated (error ≤ a voxel diagonal)."""
        offset = np.array([s.start for s in self.box])
        sub_origin = self.grid.index_to_ras(offset)
        sub_grid = Grid(tuple(sub_origin), self.grid.spacing_mm, self.coarse.shape)
        return _trilinear(self.coarse, sub_grid, points)

    def exact_mm(self, points: np.ndarray, temperature_c: np.ndarray | None = None) -> np.ndarray:
        """Sub-voxel signed distance (see the module docstring); ``temperature_c`` is the field at
        the points when the caller has it already."""
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        find = self.locator.FindClosestPoint
        ids = np.fromiter((find(p) for p in points.tolist()), dtype=np.int64, count=len(points))
        offset = points - self.vertices[ids]
        vertex_distance = np.linalg.norm(offset, axis=1)
        plane_distance = np.abs(np.einsum("ij,ij->i", offset, self.normals[ids]))
        magnitude = np.clip(plane_distance, vertex_distance - self.vertex_gap_mm, vertex_distance)
        if temperature_c is None:
            temperature_c = _trilinear(self.field, self.grid, points)
        return np.where(temperature_c <= self.level, magnitude, -magnitude)

    def decide(
        self,
        points: np.ndarray,
        temperature_c: np.ndarray,
        *,
        largest: bool = False,
        threshold_mm: float | None = None,
    ) -> np.ndarray:
        """Signed distances, exact wherever they decide the extreme (the minimum, or the maximum with
        ``largest``) or, for points on the cold side, the comparison with ``threshold_mm``.

        Elsewhere the value is the middle of the bracket the coarse map gives. The bracket, exact ∈
        [coarse − ½·diagonal, coarse + 1.1·diagonal], holds with room to spare on analytic fields
        and a three-probe field (measured: −0.45·d to +0.98·d); Maurer distances reach boundary voxel
        centres, which lie on the cold side of the isotherm, hence the asymmetry.
        """
        coarse = self.coarse_mm(points)
        low = coarse - self.BRACKET_BELOW * self.diagonal_mm
        high = coarse + self.BRACKET_ABOVE * self.diagonal_mm
        values = 0.5 * (low + high)
        done = np.zeros(len(points), dtype=bool)

        def measure(which: np.ndarray) -> None:
            which = which & ~done
            if which.any():
                values[which] = self.exact_mm(points[which], temperature_c[which])
                done[which] = True

        # The extreme: measure the most promising points first; their best exact value bounds the
        # extreme, and only points whose bracket reaches past that bound need measuring.
        ranked = -high if largest else low
        first = np.zeros(len(points), dtype=bool)
        first[np.argsort(ranked, kind="stable")[: min(32, len(points))]] = True
        measure(first)
        if largest:
            measure(high > values[done].max())
        else:
            measure(low < values[done].min())
        if threshold_mm is not None:
            cold = temperature_c <= self.level
            measure(cold & (low < threshold_mm) & (high >= threshold_mm))
        return values

    def deepest_inside(self, region: np.ndarray, largest: bool, bound: float) -> float | None:
        """Extreme exact distance over voxel centres strictly inside ``region`` (all six neighbours in
        it) that can beat ``bound``, or None. Such an extreme sits at a local extreme of the distance
        (a ridge between cold parts, say), so only the coarse map's local extremes and their 26
        neighbours are measured exactly."""
        sub = region[self.box]
        if not sub.any():
            return None
        value = self.coarse if largest else -self.coarse
        # Only points whose bracket reaches past the bound can beat it.
        reach = self.BRACKET_BELOW if largest else self.BRACKET_ABOVE
        limit = (bound if largest else -bound) - reach * self.diagonal_mm
        padded_value = np.pad(value, 1, constant_values=-np.inf)
        padded_region = np.pad(sub, 1)
        candidate = sub & (value > limit)
        centre = (slice(1, -1),) * 3
        for axis in range(3):
            for step in (-1, 1):
                shifted = list(centre)
                shifted[axis] = slice(1 + step, padded_value.shape[axis] - 1 + step)
                candidate &= padded_region[tuple(shifted)] & (padded_value[tuple(shifted)] <= value)
        if not candidate.any():
            return None
        grown = np.pad(candidate, 1)
        near = np.zeros_like(sub)
        for offset in np.ndindex(3, 3, 3):
            near |= grown[tuple(slice(o, o + n) for o, n in zip(offset, sub.shape, strict=True))]
        ijk = np.argwhere(near & sub) + np.array([s.start for s in self.box])
        exact = self.exact_mm(self.grid.index_to_ras(ijk))
        return float(exact.max() if largest else exact.min())
