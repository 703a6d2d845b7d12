"""Analytic stand-ins shared by the MRML tests (imported by name: conftest puts this folder on
sys.path, as pytest's importlib mode does not)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from CryoAblationLogic.core.grid import Grid

# An analytic ice ball for tests that need a result but not the solver: a radial field that is
# -60 °C at the centre and rises linearly to 37 °C at radius R(t), which grows with time.
BALL_CENTER_MM = np.array([2.0, -3.0, 1.0])
BALL_MIN_C = -60.0
BODY_C = 37.0


def radial_field(grid: Grid, radius_mm: float, center=BALL_CENTER_MM) -> np.ndarray:
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    r = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2)
    return (BODY_C - (BODY_C - BALL_MIN_C) * np.clip(1.0 - r / radius_mm, 0.0, 1.0)).astype(np.float32)


def isotherm_radius(level_c: float, radius_mm: float) -> float:
    """Radius at which the radial field equals ``level_c``."""
    return radius_mm * (level_c - BALL_MIN_C) / (BODY_C - BALL_MIN_C)


@dataclass
class AnalyticResult:
    """What the solver's ``SimulationResult`` holds (docs/architecture.md), for a radial ice ball."""

    grid: Grid
    radius_of_time: dict[float, float]
    snapshots: dict = field(default_factory=dict)
    sensors: dict = field(default_factory=dict)
    ice_volume_history: dict = field(default_factory=dict)
    isotherm_volumes_ml: dict = field(default_factory=dict)
    energy_balance_error: float = 0.0
    wall_s: float = 0.0

    def __post_init__(self):
        times = sorted(self.radius_of_time)
        self.simulated_s = times[-1]
        self.snapshots = {t: radial_field(self.grid, self.radius_of_time[t]) for t in times[:-1]}
        self.temperature_final = radial_field(self.grid, self.radius_of_time[times[-1]])
        self.min_temperature = self.temperature_final.copy()
        t = np.array(times, dtype=float)
        for level in (0.0, -20.0, -40.0):
            volumes = [
                4 / 3 * np.pi * isotherm_radius(level, self.radius_of_time[s]) ** 3 / 1000 for s in times
            ]
            self.ice_volume_history[level] = (t, np.array(volumes))
            self.isotherm_volumes_ml[level] = volumes[-1]
        self.sensors = {
            "TC1": (t, np.array([BODY_C - 97 * max(0.0, 1 - 10.0 / self.radius_of_time[s]) for s in times])),
        }
