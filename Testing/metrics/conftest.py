"""Analytic shapes on 1 mm grids for the metrics tests."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.core.grid import Grid

SLOPE_C_PER_MM = 3.0  # radial test field: T(r) = 3 °C/mm · (r − R0), so 0 °C at R0, −20 °C at R0 − 6.67 mm


def cube_grid(half_extent_mm: tuple[int, int, int], spacing_mm: float = 1.0) -> Grid:
    """A grid centred on the origin with voxel centres on whole millimetres."""
    size = tuple(int(2 * h / spacing_mm) + 1 for h in half_extent_mm)
    origin = tuple(-float(h) for h in half_extent_mm)
    return Grid(origin, (spacing_mm,) * 3, size)  # type: ignore[arg-type]


def coordinates(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")


def ball(grid: Grid, radius_mm: float, centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    x, y, z = coordinates(grid)
    return (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2 <= radius_mm**2


def radial_field(grid: Grid, ice_radius_mm: float, centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A spherical ice ball: T(r) = 3 °C/mm · (r − ice_radius_mm), float32 like the solver's fields."""
    x, y, z = coordinates(grid)
    r = np.sqrt((x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2)
    return (SLOPE_C_PER_MM * (r - ice_radius_mm)).astype(np.float32)


def radius_of_level(ice_radius_mm: float, level_c: float) -> float:
    return ice_radius_mm + level_c / SLOPE_C_PER_MM


class Shapes:
    """The helpers above, handed to tests as a fixture (conftest modules are not importable with
    pytest's importlib import mode)."""

    cube_grid = staticmethod(cube_grid)
    coordinates = staticmethod(coordinates)
    ball = staticmethod(ball)
    radial_field = staticmethod(radial_field)
    radius_of_level = staticmethod(radius_of_level)


@pytest.fixture(scope="session")
def shapes() -> type[Shapes]:
    return Shapes


@pytest.fixture(scope="session")
def grid_30mm() -> Grid:
    """61 × 61 × 61 voxels of 1 mm around the origin."""
    return cube_grid((30, 30, 30))
