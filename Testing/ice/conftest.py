"""Fixtures for the observed-ice tests: an analytic ice ball around one probe in the phantom's
tumour, on a 2 mm temperature grid, and the MR images of it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import ProbeSpec
from CryoAblationLogic.io import phantom as ph

sys.path.insert(0, str(Path(__file__).resolve().parent))  # procedures.py (import-mode=importlib)

BALL_CENTER_MM = np.asarray(ph.TUMOR_CENTER_MM)
BALL_RADIUS_MM = 12.0
SLOPE_C_PER_MM = 4.0  # T(r) = 4 °C/mm · (r − R), clipped to [−150, 37] °C


def ball_grid(spacing_mm: float = 2.0, half_extent_mm: float = 30.0) -> Grid:
    n = round(2 * half_extent_mm / spacing_mm) + 1
    origin = tuple(float(c - half_extent_mm) for c in BALL_CENTER_MM)
    return Grid(origin, (spacing_mm,) * 3, (n, n, n))  # type: ignore[arg-type]


def ball_field(grid: Grid, radius_mm: float = BALL_RADIUS_MM) -> np.ndarray:
    x, y, z = np.meshgrid(*(grid.axis_mm(a) for a in range(3)), indexing="ij")
    r = np.sqrt((x - BALL_CENTER_MM[0]) ** 2 + (y - BALL_CENTER_MM[1]) ** 2 + (z - BALL_CENTER_MM[2]) ** 2)
    return np.clip(SLOPE_C_PER_MM * (r - radius_mm), -150.0, 37.0)


def ball_probe() -> ProbeSpec:
    """One 17 G probe along A (posterior entry) whose active segment is centred on the ball."""
    tip = BALL_CENTER_MM + np.array([0.0, 18.0, 0.0])
    entry = tip - np.array([0.0, 80.0, 0.0])
    return ProbeSpec("P1", "argon-1.47mm", tuple(tip), tuple(entry), 1.47, 30.0, 3.0)


@pytest.fixture(scope="session")
def ball_case():
    grid = ball_grid()
    return grid, ball_field(grid), [ball_probe()]
