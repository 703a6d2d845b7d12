"""Single- and two-probe runs for the measurement checks (docs/physics.md §7 [Experimental])."""

from __future__ import annotations

import numpy as np

from CryoAblationLogic.io.case_file import parse_case
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


def axial_plane(case, result) -> np.ndarray:
    """T (°C) in the plane perpendicular to the probe (along z) through the middle of its active
    segment, linearly interpolated between the two nearest grid slices; indexed [i, j]."""
    start, end = case.probes[0].active_segment_mm()
    k = float(result.grid.ras_to_index([0.0, 0.0, 0.5 * (start[2] + end[2])])[2])
    k0 = min(int(np.floor(k)), result.grid.size[2] - 2)
    f = k - k0
    field = result.temperature_final
    return (1.0 - f) * field[:, :, k0] + f * field[:, :, k0 + 1]


def isotherm_area_mm2(plane: np.ndarray, spacing_mm: float, level: float, refine: int = 8) -> float:
    """Area (mm²) where a 2-D field is at or below ``level``: the field is interpolated bilinearly
    onto a grid ``refine`` times finer and the sub-pixels at or below the level are counted, as an
    area drawn on a CT image would be."""

    def finer(values: np.ndarray, axis: int) -> np.ndarray:
        n = values.shape[axis]
        position = np.arange((n - 1) * refine + 1) / refine
        lower = np.minimum(position.astype(int), n - 2)
        weight = position - lower
        shape = [1, 1]
        shape[axis] = -1
        weight = weight.reshape(shape)
        return (1.0 - weight) * np.take(values, lower, axis=axis) + weight * np.take(
            values, lower + 1, axis=axis
        )

    fine = finer(finer(np.asarray(plane, float), 0), 1)
    return float(np.count_nonzero(fine <= level)) * (spacing_mm / refine) ** 2


def lethal_area_share(case, result) -> float:
    """Lethal (−30 °C) share of the ice, as Littrup et al. 2009 (PMC2762356) measured it: "Diameters
    and surface areas of the −30°C lethal isotherm were assessed over time as percentages of the
    overall iceball". CT shows only the ice edge (docs/physics.md §3.1); the −30 °C isotherm came from
    "Thermocouples at 0.5, 1.0 and 1.5 cm intervals from [the] cryoprobes", i.e. radially, in a plane
    across the probe. Their areas scale as diameter²: "Surface areas and diameters of lethal ice made
    by 1.7mm cryoprobes were 71% and 84% of the 2.4 mm cryoprobes" (0.84² = 0.71), and the 1–4 probe
    results (1.2, 3.3, 4.1, 4.9 cm; 13, 46, 51, 56 %) read as (D₋₃₀/D₀)² put the −30 °C isotherm
    1.07, 0.79, 0.82, 0.80 cm inside the edge, matching "Lethal ice resides <1 cm behind the leading
    edge for nearly all probe configurations". So: area inside −30 °C over area inside 0 °C (the
    ice edge of docs/physics.md TC-7) in the plane across the probe through the middle of its active
    segment (where the −30 °C diameter is calibrated); not a ratio of 3-D isosurface areas."""
    plane = axial_plane(case, result)
    spacing = result.grid.spacing_mm[0]
    return isotherm_area_mm2(plane, spacing, -30.0) / isotherm_area_mm2(plane, spacing, 0.0)


def probe_array_run(
    model: str,
    positions_xy,
    initial_c: float = 37.0,
    freeze_s: float = 600.0,
    flow_percent: float = 100.0,
    spacing_mm: float = 1.0,
    half_width_mm: float = 40.0,
    tissue: str = "gel",
):
    """Parallel probes along z (tips at z = −25 mm) at the given (x, y), in a block of ``tissue`` whose
    faces are held at the starting temperature; returns (case, result)."""
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
            {"name": f"P{i + 1}", "model": model, "tip_mm": [x, y, -25.0], "entry_mm": [x, y, 40.0]}
            for i, (x, y) in enumerate(positions_xy)
        ],
        "protocol": [
            {"action": "freeze", "duration_s": freeze_s, "probes": "all", "flow_percent": flow_percent}
        ],
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": []},
    }
    case = parse_case(data)
    return case, simulate(case)


def mid_plane(case, result) -> np.ndarray:
    """T (°C) in the plane across the probes through the middle of the first probe's active segment."""
    return axial_plane(case, result)


def reach_beyond(case, result, level: float, direction=(1.0, 0.0)) -> float:
    """Distance (mm) from the outermost probe along ``direction`` (in the mid-plane, from the array's
    centroid) to where T first rises above ``level``."""
    plane = mid_plane(case, result)
    grid = result.grid
    tips = np.array([p.tip_mm[:2] for p in case.probes], float)
    centre = tips.mean(axis=0)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    outermost = float(max((tips - centre) @ d))
    step = grid.spacing_mm[0] / 4.0
    s = np.arange(0.0, grid.spacing_mm[0] * (grid.size[0] - 1) / 2.0, step)
    points = centre[None, :] + s[:, None] * d[None, :]
    fi = (points[:, 0] - grid.origin_mm[0]) / grid.spacing_mm[0]
    fj = (points[:, 1] - grid.origin_mm[1]) / grid.spacing_mm[1]
    inside = (fi >= 0) & (fj >= 0) & (fi <= grid.size[0] - 1.001) & (fj <= grid.size[1] - 1.001)
    fi, fj, s = fi[inside], fj[inside], s[inside]
    i0, j0 = np.floor(fi).astype(int), np.floor(fj).astype(int)
    a, b = fi - i0, fj - j0
    values = (
        (1 - a) * (1 - b) * plane[i0, j0]
        + a * (1 - b) * plane[i0 + 1, j0]
        + (1 - a) * b * plane[i0, j0 + 1]
        + a * b * plane[i0 + 1, j0 + 1]
    )
    beyond = s >= outermost
    return isotherm_radius(s[beyond] - outermost, values[beyond], level)


def isotherm_width_length(case, result, level: float) -> tuple[float, float]:
    """(width, length) in mm of the region at or below ``level`` in the plane y = 0 containing the
    (z-aligned) probe at x = 0: the widest extent across the probe and the extent along its axis,
    each interpolated linearly between voxels, as a maker's chart gives them."""
    grid = result.grid
    j = int(np.rint(grid.ras_to_index([0.0, 0.0, 0.0])[1]))
    plane = result.temperature_final[:, j, :]  # [i (x), k (z)]
    i0 = int(np.rint(grid.ras_to_index([0.0, 0.0, 0.0])[0]))
    x, z = grid.axis_mm(0), grid.axis_mm(2)
    width = 0.0
    for k in range(plane.shape[1]):
        if plane[i0, k] > level:
            continue
        right = isotherm_radius(x[i0:] - x[i0], plane[i0:, k], level)
        left = isotherm_radius(x[i0] - x[: i0 + 1][::-1], plane[: i0 + 1, k][::-1], level)
        width = max(width, right + left)
    column = plane[i0, :]
    cold = np.nonzero(column <= level)[0]
    if cold.size == 0:
        return width, 0.0
    lo, hi = int(cold[0]), int(cold[-1])
    up = isotherm_radius(z[hi:] - z[hi], column[hi:], level)
    down = isotherm_radius(z[lo] - z[: lo + 1][::-1], column[: lo + 1][::-1], level)
    return width, (z[hi] - z[lo]) + up + down
