"""The regular grid a simulation runs on, in Slicer's RAS world coordinates (millimetres).

Voxel ``(i, j, k)`` lies at ``origin_mm + (i, j, k) * spacing_mm`` along x (R), y (A) and z (S):
the grid axes are the RAS axes, as in ``docs/case-format.md``. Fields on the grid are numpy arrays
indexed ``[i, j, k]``, so ``field.shape == grid.size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from CryoAblationLogic.core.errors import InputError


@dataclass(frozen=True)
class Grid:
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    size: tuple[int, int, int]

    @classmethod
    def from_dict(cls, data: dict, key: str = "grid") -> Grid:
        if not isinstance(data, dict):
            raise InputError(key, "must be an object with origin_mm, spacing_mm and size")
        unknown = set(data) - {"origin_mm", "spacing_mm", "size"}
        if unknown:
            raise InputError(f"{key}.{sorted(unknown)[0]}", "unknown key")
        for name in ("origin_mm", "spacing_mm", "size"):
            if name not in data:
                raise InputError(f"{key}.{name}", "missing")
        origin = _vector(data["origin_mm"], f"{key}.origin_mm")
        spacing_value = data["spacing_mm"]
        if isinstance(spacing_value, (int, float)) and not isinstance(spacing_value, bool):
            spacing = (float(spacing_value),) * 3
        else:
            spacing = _vector(spacing_value, f"{key}.spacing_mm")
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise InputError(f"{key}.spacing_mm", "must be positive and finite")
        size = data["size"]
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in size)
        ):
            raise InputError(f"{key}.size", "must be three integers")
        if min(size) < 3:
            raise InputError(f"{key}.size", "needs at least 3 voxels along every axis")
        return cls(origin, spacing, (int(size[0]), int(size[1]), int(size[2])))

    def to_dict(self) -> dict:
        return {
            "origin_mm": list(self.origin_mm),
            "spacing_mm": list(self.spacing_mm),
            "size": list(self.size),
        }

    @property
    def voxel_count(self) -> int:
        return int(np.prod(self.size, dtype=np.int64))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    def axis_mm(self, axis: int) -> np.ndarray:
        """Coordinates (mm) of the voxel centres along one axis (0 = x/R, 1 = y/A, 2 = z/S)."""
        return self.origin_mm[axis] + self.spacing_mm[axis] * np.arange(self.size[axis])

    def index_to_ras(self, ijk: Sequence[float]) -> np.ndarray:
        return np.asarray(self.origin_mm) + np.asarray(ijk, dtype=float) * np.asarray(self.spacing_mm)

    def ras_to_index(self, ras: Sequence[float]) -> np.ndarray:
        """Continuous voxel index of a RAS point (not rounded, may lie outside the grid)."""
        return (np.asarray(ras, dtype=float) - np.asarray(self.origin_mm)) / np.asarray(self.spacing_mm)

    def contains_ras(self, ras: Sequence[float]) -> bool:
        ijk = self.ras_to_index(ras)
        return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.asarray(self.size) - 0.5))

    def ijk_to_ras_matrix(self) -> np.ndarray:
        """4×4 IJK→RAS matrix, as Slicer's volume nodes hold it."""
        matrix = np.diag([*self.spacing_mm, 1.0])
        matrix[:3, 3] = self.origin_mm
        return matrix


def _vector(value, key: str) -> tuple[float, float, float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise InputError(key, "must be three numbers")
    vec = tuple(float(v) for v in value)
    if not all(np.isfinite(vec)):
        raise InputError(key, "must be finite")
    return vec  # type: ignore[return-value]
