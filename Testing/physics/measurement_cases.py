"""Single- and two-probe runs for the measurement checks (physics.md §7 [Experimental])."""

from __future__ import annotations

import numpy as np

from CryoAblationLogic.case import parse_case
from CryoAblationLogic.physics.simulation import simulate


def probe_run(
    model: str,
    tissue: str,
    initial_c: float,
    freeze_s: float,
    spacing_mm: float = 1.0,
    x_positions=(0.0,),
    half_width_mm: float = 30.0,
    materials: dict | None = None,
):
    """Probes along z (tips at z = −25 mm) at the given x; returns (case, result)."""
    n = round(2 * half_width_mm / spacing_mm) + 1
    nz = round(80.0 / spacing_mm) + 1
    data = {
        "format": "cryoablation-case/1",
        "grid": {
            "origin_mm": [-half_width_mm, -half_width_mm, -40.0],
            "spacing_mm": spacing_mm,
            "size": [n, n, nz],
        },
        "initial_temperature_c": initial_c,
        "tissue": tissue,
        "probes": [
            {"name": f"P{i + 1}", "model": model, "tip_mm": [x, 0.0, -25.0], "entry_mm": [x, 0.0, 40.0]}
            for i, x in enumerate(x_positions)
        ],
        "protocol": [{"action": "freeze", "duration_s": freeze_s, "probes": "all", "flow_percent": 100}],
        "outputs": {"isotherms_c": [0, -20, -30, -40], "snapshot_times_s": []},
    }
    if materials:
        data["materials"] = materials
    case = parse_case(data)
    return case, simulate(case)


def radial_profile(case, result, center_x: float = 0.0, direction: float = 1.0):
    """(r mm, T °C) along y from the probe axis, in the plane through the middle of the active segment."""
    start, end = case.probes[0].active_segment_mm()
    mid_z = 0.5 * (start[2] + end[2])
    grid = result.grid
    i, _, k = np.rint(grid.ras_to_index([center_x, 0.0, mid_z])).astype(int)
    j0 = int(np.rint(grid.ras_to_index([center_x, 0.0, mid_z])[1]))
    y = grid.axis_mm(1)
    if direction > 0:
        return y[j0:] - y[j0], result.temperature_final[i, j0:, k]
    return y[j0] - y[: j0 + 1][::-1], result.temperature_final[i, : j0 + 1, k][::-1]


def isotherm_radius(r: np.ndarray, temperature: np.ndarray, level: float) -> float:
    """Smallest r where the (rising) profile crosses ``level``, by linear interpolation."""
    above = np.nonzero(temperature > level)[0]
    if above.size == 0:
        return float(r[-1])
    n = int(above[0])
    if n == 0:
        return 0.0
    return float(
        r[n - 1] + (level - temperature[n - 1]) * (r[n] - r[n - 1]) / (temperature[n] - temperature[n - 1])
    )
