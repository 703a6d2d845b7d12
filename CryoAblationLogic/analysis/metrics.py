"""Plan metrics from a temperature field: isotherm coverage, margins and critical-structure safety.

Pure numpy, SimpleITK and VTK (no Slicer). Fields and masks are arrays indexed ``[i, j, k]`` on a
:class:`~.grid.Grid`; temperatures in °C, lengths in mm, volumes in ml.

Which field to pass: the minimum-temperature map (``SimulationResult.min_temperature``) gives the
lethal-dose view (every voxel at the coldest it has been); the current field gives the live ice.

Accuracy of the distances (margins, critical-structure distances):

- the isotherm is the surface where the field, linearly interpolated between voxel centres, equals
  the level (VTK flying edges), so its position is sub-voxel: exact where T is linear across a voxel;
- the distance from a point to it is taken to the nearest surface vertex, projected on the
  field-gradient normal there (point-to-tangent-plane), and bracketed by the vertex distance; the
  sign comes from the trilinearly interpolated field (cold side positive). On a 1 mm grid this is
  within 0.1 mm of the analytic distance for spherical isotherms of radius ≥ 8 mm (tested; about
  0.02 mm at 20 mm);
- target and critical-structure surfaces are the smoothed surfaces of their masks (the same
  discrete flying edges + windowed-sinc smoothing Slicer uses to display a segment), their vertices
  merged into area-weighted patches of 1.5 voxels, so the mask's own voxelisation dominates the
  error: about ±0.3 of the largest voxel spacing (0.25 mm on the minimum margin of a sphere on a
  1 mm grid, 0.6 mm with 2 mm slices; tested within half the largest spacing).

Speed: a SimpleITK signed Maurer distance map of the thresholded field gives every point a coarse
distance with a known bracket; only points whose bracket can change a result (the minimum margin,
the ≥ 5 mm surface bin, a structure's closest point) are measured exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkStaticPointLocator
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid

DEFAULT_LEVELS_C: tuple[float, ...] = (0.0, -20.0, -40.0)
ICE_EDGE_C = 0.0  # the visible ice edge (CT/MR), docs/physics.md §3.1
RECOMMENDED_ICE_MARGIN_MM = 5.0  # ice margin beyond the tumour in renal/hepatic cryoablation (§2.4)
QAM_MARGIN_MM = 5.0  # upper edge of the "covered with a thin margin" bin of the QAM histogram

# Column titles (with units) for the fields of the table rows, in table order.
ISOTHERM_COLUMNS: dict[str, str] = {
    "level_c": "Isotherm (°C)",
    "target_coverage_percent": "Target covered (%)",
    "min_margin_mm": "Min margin (mm)",
    "surface_not_covered_percent": "Surface not covered (%)",
    "surface_margin_0_to_5mm_percent": "Surface margin 0–5 mm (%)",
    "surface_margin_5mm_or_more_percent": "Surface margin ≥ 5 mm (%)",
    "ice_volume_ml": "Volume at or below (ml)",
}
CRITICAL_COLUMNS: dict[str, str] = {
    "name": "Structure",
    "lowest_temperature_c": "Lowest temperature (°C)",
    "distance_to_ice_edge_mm": "Distance to ice edge (mm)",
    "ice_edge_c": "Ice edge (°C)",
    "reached_by_ice": "Reached by ice",
}


@dataclass(frozen=True)
class IsothermMetrics:
    """Target coverage by one isotherm.

    ``min_margin_mm`` is the smallest signed distance from the target to the isotherm: positive when
    the isotherm lies outside the target everywhere (the thinnest margin), negative when part of the
    target stays warmer than the level (the depth by which the isotherm misses). ``None`` when the
    field never reaches the level (or is below it everywhere), so there is no isotherm to measure.
    The three ``surface_*`` fractions (QAM style) are area-weighted over the target surface and add
    up to 100.
    """

    level_c: float
    target_coverage_percent: float
    min_margin_mm: float | None
    surface_not_covered_percent: float
    surface_margin_0_to_5mm_percent: float
    surface_margin_5mm_or_more_percent: float
    ice_volume_ml: float

    def as_row(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class CriticalStructureMetrics:
    """A critical structure against the ice edge.

    ``distance_to_ice_edge_mm`` is positive when the ice stays away from the structure, 0 or
    negative when the ice reaches it (minus the depth it reaches into it); ``None`` without ice.
    """

    name: str
    lowest_temperature_c: float
    distance_to_ice_edge_mm: float | None
    ice_edge_c: float
    reached_by_ice: bool

    def as_row(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PlanMetrics:
    isotherms: tuple[IsothermMetrics, ...]
    critical_structures: tuple[CriticalStructureMetrics, ...]
    target_volume_ml: float
    warnings: tuple[str, ...]

    def isotherm(self, level_c: float) -> IsothermMetrics:
        for item in self.isotherms:
            if math.isclose(item.level_c, level_c, abs_tol=1e-9):
                return item
        raise KeyError(f"no metrics for the {level_c:g} °C isotherm")

    def critical(self, name: str) -> CriticalStructureMetrics:
        for item in self.critical_structures:
            if item.name == name:
                return item
        raise KeyError(f"no critical structure named {name!r}")

    def as_rows(self) -> list[dict[str, object]]:
        """One row per isotherm, keys as in :data:`ISOTHERM_COLUMNS` (table order)."""
        return [item.as_row() for item in self.isotherms]

    def critical_rows(self) -> list[dict[str, object]]:
        """One row per critical structure, keys as in :data:`CRITICAL_COLUMNS`."""
        return [item.as_row() for item in self.critical_structures]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: {"target_volume_ml", "isotherms": rows, "critical_structures": rows, "warnings"}."""
        return {
            "target_volume_ml": self.target_volume_ml,
            "isotherms": self.as_rows(),
            "critical_structures": self.critical_rows(),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------------
# Isotherm metrics


def isotherm_metrics(
    temperature_c: np.ndarray,
    grid: Grid,
    target_mask: np.ndarray,
    levels_c: Sequence[float] = DEFAULT_LEVELS_C,
    critical_masks: Mapping[str, np.ndarray] | None = None,
    *,
    ice_edge_c: float = ICE_EDGE_C,
    recommended_ice_margin_mm: float = RECOMMENDED_ICE_MARGIN_MM,
) -> PlanMetrics:
    """Coverage, margins and QAM histogram per isotherm level, and critical-structure safety.

    ``temperature_c`` is a field on ``grid`` (°C); ``target_mask`` and each of ``critical_masks``
    (name → mask) are boolean arrays of the same shape. Coverage is the volume fraction of the
    target at or below the level, with partial voxels at the isotherm counted by the fraction of the
    voxel on the cold side (from the local field gradient).
    """
    field = _field(temperature_c, grid, "temperature_c")
    target = _mask(target_mask, grid, "target_mask")
    if not target.any():
        raise InputError("target_mask", "is empty")
    levels = _levels(levels_c)
    critical = {
        name: _mask(mask, grid, f"critical_masks[{name!r}]") for name, mask in (critical_masks or {}).items()
    }
    if not np.isfinite(ice_edge_c):
        raise InputError("ice_edge_c", "must be finite")

    target_surface = _mask_surface(target, grid)
    target_volume_ml = float(target.sum()) * grid.voxel_volume_mm3 / 1000.0
    target_box = _bounding_box(target)
    coverage_fraction = _CoverageFraction(field, grid, target, target_box)

    surface_temperature = _trilinear(field, grid, target_surface.points)
    area = target_surface.areas / target_surface.areas.sum()

    # Critical structures are measured against the ice edge; only their parts near the ice matter
    # (see _near_ice), and the ice-edge distance map is shared with the target when it is a level.
    ice_edge = field <= ice_edge_c
    nearby = {name: _near_ice(mask, ice_edge, grid) for name, mask in critical.items()}
    structure_boxes = [_bounding_box(mask) for mask in nearby.values() if mask.any()]
    edge_distance = None

    isotherms = []
    warnings: list[str] = []
    for level in levels:
        ice = field <= level
        ice_volume_ml = float(np.count_nonzero(ice)) * grid.voxel_volume_mm3 / 1000.0
        shared = bool(critical) and math.isclose(level, ice_edge_c)
        boxes = [target_box, *structure_boxes] if shared else [target_box]
        distance = _IsothermDistance.build(field, grid, level, ice, boxes)
        if shared:
            edge_distance = distance
        cold_surface = surface_temperature <= level
        not_covered = 100.0 * float(area[~cold_surface].sum())
        thick = 0.0
        min_margin = None
        if distance is not None:
            margins = distance.decide(target_surface.points, surface_temperature, threshold_mm=QAM_MARGIN_MM)
            thick = 100.0 * float(area[cold_surface & (margins >= QAM_MARGIN_MM)].sum())
            min_margin = float(margins.min())
            # A warm pocket inside the target (a vessel's heat sink) can lie deeper than any surface point.
            pocket = distance.deepest_inside(target & ~ice, largest=False, bound=min_margin)
            if pocket is not None:
                min_margin = min(min_margin, pocket)
        item = IsothermMetrics(
            level_c=level,
            target_coverage_percent=100.0 * coverage_fraction(level),
            min_margin_mm=min_margin,
            surface_not_covered_percent=not_covered,
            surface_margin_0_to_5mm_percent=max(0.0, 100.0 - not_covered - thick),
            surface_margin_5mm_or_more_percent=thick,
            ice_volume_ml=ice_volume_ml,
        )
        isotherms.append(item)
        warnings.extend(_isotherm_warnings(item, ice_edge_c, recommended_ice_margin_mm))

    structures = []
    if critical:
        if edge_distance is None:
            edge_distance = _IsothermDistance.build(field, grid, ice_edge_c, ice_edge, structure_boxes)
        for name, mask in critical.items():
            item = _critical_metrics(
                name,
                mask,
                nearby[name],
                field=field,
                grid=grid,
                ice=ice_edge,
                distance=edge_distance,
                ice_edge_c=ice_edge_c,
            )
            structures.append(item)
            if item.reached_by_ice:
                depth = (
                    ""
                    if item.distance_to_ice_edge_mm is None
                    else f", {-item.distance_to_ice_edge_mm:.1f} mm deep"
                )
                warnings.append(
                    f"Ice ({ice_edge_c:g} °C) reaches critical structure '{name}': "
                    f"lowest temperature {item.lowest_temperature_c:.1f} °C{depth}"
                )
    return PlanMetrics(tuple(isotherms), tuple(structures), target_volume_ml, tuple(warnings))


def _isotherm_warnings(item: IsothermMetrics, ice_edge_c: float, recommended_margin_mm: float) -> list[str]:
    if item.min_margin_mm is None:
        if item.ice_volume_ml == 0.0:
            return [f"The field never reaches {item.level_c:g} °C: the target is not covered at that level"]
        return []
    if item.min_margin_mm < 0.0:
        return [
            f"The {item.level_c:g} °C isotherm does not cover the target: "
            f"{item.target_coverage_percent:.1f} % covered, misses by up to {-item.min_margin_mm:.1f} mm"
        ]
    if math.isclose(item.level_c, ice_edge_c) and item.min_margin_mm < recommended_margin_mm:
        return [
            f"Ice margin ({item.level_c:g} °C) around the target is {item.min_margin_mm:.1f} mm, "
            f"less than the usual {recommended_margin_mm:g} mm"
        ]
    return []


def _critical_metrics(
    name: str,
    mask: np.ndarray,
    nearby: np.ndarray,
    *,
    field: np.ndarray,
    grid: Grid,
    ice: np.ndarray,
    distance: _IsothermDistance | None,
    ice_edge_c: float,
) -> CriticalStructureMetrics:
    if not mask.any():
        raise InputError(f"critical_masks[{name!r}]", "is empty")
    lowest = float(field[mask].min())
    frozen = np.argwhere(mask & ice)
    reached = len(frozen) > 0
    if distance is None:
        value = None
    else:
        # Margins are positive on the cold side, so a structure's distance is minus the largest.
        deepest = -math.inf
        if nearby.any():
            deepest = _deepest_surface_point(nearby, field, grid, distance)
        if deepest < -NEAR_ICE_MM:  # nothing of it within reach near the ice: measure all of it
            deepest = _deepest_surface_point(mask, field, grid, distance)
        if reached:
            inside = distance.deepest_inside(mask & ice, largest=True, bound=deepest)
            if inside is not None:
                deepest = max(deepest, inside)
        value = -deepest
        if reached:
            value = min(value, 0.0)  # a frozen voxel centre touches the ice whatever its surface says
    return CriticalStructureMetrics(
        name=name,
        lowest_temperature_c=lowest,
        distance_to_ice_edge_mm=value,
        ice_edge_c=ice_edge_c,
        reached_by_ice=reached,
    )


NEAR_ICE_MM = 15.0


def _near_ice(mask: np.ndarray, ice: np.ndarray, grid: Grid) -> np.ndarray:
    """The part of a mask inside the ice's bounding box grown by NEAR_ICE_MM. Everything outside lies
    farther than NEAR_ICE_MM from the ice, so when the part inside comes closer than that, the
    structure's distance is the part's distance (a long bowel loop need not be meshed whole)."""
    if not ice.any():
        return np.zeros_like(mask)
    box = _grow_box(_bounding_box(ice), grid, NEAR_ICE_MM)
    part = np.zeros_like(mask)
    part[box] = mask[box]
    return part


def _deepest_surface_point(
    mask: np.ndarray, field: np.ndarray, grid: Grid, distance: _IsothermDistance
) -> float:
    surface = _mask_surface(mask, grid)
    temperature = _trilinear(field, grid, surface.points)
    return float(distance.decide(surface.points, temperature, largest=True).max())


# --------------------------------------------------------------------------------------------------
# Ice volume over time


def ice_volume_history(
    fields: Mapping[float, np.ndarray] | Iterable[tuple[float, np.ndarray]],
    grid: Grid,
    levels_c: Sequence[float] = DEFAULT_LEVELS_C,
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Volume (ml) at or below each level for a series of fields: {level: (t_s, ml)}, sorted by time.

    ``fields`` maps time (s) → field, or is an iterable of (time, field) pairs (a generator keeps
    only one field in memory at a time). Volumes count whole voxels, as the solver's
    ``isotherm_volumes_ml`` does.
    """
    levels = _levels(levels_c)
    items = fields.items() if isinstance(fields, Mapping) else fields
    times: list[float] = []
    volumes: list[list[float]] = []
    for index, (time_s, field) in enumerate(items):
        if not np.isfinite(time_s):
            raise InputError(f"fields[{index}]", "time must be finite")
        data = _field(field, grid, f"fields[{time_s:g} s]")
        times.append(float(time_s))
        volumes.append(
            [float(np.count_nonzero(data <= level)) * grid.voxel_volume_mm3 / 1000.0 for level in levels]
        )
    order = np.argsort(np.asarray(times), kind="stable")
    t = np.asarray(times, dtype=float)[order]
    v = np.asarray(volumes, dtype=float).reshape(len(times), len(levels))[order]
    return {level: (t.copy(), v[:, n].copy()) for n, level in enumerate(levels)}


# --------------------------------------------------------------------------------------------------
# Probe placement checks


@dataclass(frozen=True)
class ProbeGeometry:
    """A probe as the checks need it (RAS mm). The active segment starts ``tip_length_mm`` behind
    the tip and runs ``active_length_mm`` towards the entry point."""

    name: str
    tip_mm: tuple[float, float, float]
    entry_mm: tuple[float, float, float]
    active_length_mm: float
    tip_length_mm: float = 0.0

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from the tip towards the entry point."""
        vector = np.asarray(self.entry_mm) - np.asarray(self.tip_mm)
        return vector / np.linalg.norm(vector)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.asarray(self.entry_mm) - np.asarray(self.tip_mm)))

    def active_segment_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of the active segment: start nearer the tip."""
        tip = np.asarray(self.tip_mm, dtype=float)
        start = tip + self.direction * self.tip_length_mm
        return start, start + self.direction * self.active_length_mm


PROBE_SPACING_RANGE_MM = (10.0, 20.0)  # usual neighbour spacing (docs/physics.md §3, E2: best 15–20 mm)
ACTIVE_SEGMENT_TARGET_MARGIN_MM = 5.0


def probe_geometry(
    probe: object, catalog: Mapping[str, object] | None = None, key: str = "probe"
) -> ProbeGeometry:
    """Read a probe record (mapping or object with name, tip_mm, entry_mm, and active_length_mm /
    tip_length_mm or a ``model`` found in ``catalog``) into a :class:`ProbeGeometry`."""

    def get(obj: object, name: str):
        if isinstance(obj, Mapping):
            return obj.get(name)
        return getattr(obj, name, None)

    name = get(probe, "name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{key}.name", "must be a non-empty string")
    key = f"probes[{name!r}]"
    tip = _point(get(probe, "tip_mm"), f"{key}.tip_mm")
    entry = _point(get(probe, "entry_mm"), f"{key}.entry_mm")
    if np.linalg.norm(np.subtract(entry, tip)) == 0.0:
        raise InputError(f"{key}.entry_mm", "coincides with the tip")
    model_name = get(probe, "model")
    model = None
    if model_name is not None and catalog is not None:
        if model_name not in catalog:
            raise InputError(f"{key}.model", f"{model_name!r} is not in the probe catalog")
        model = catalog[model_name]
    lengths = {}
    for field_name, default in (("active_length_mm", None), ("tip_length_mm", 0.0)):
        value = get(probe, field_name)
        if value is None and model is not None:
            value = get(model, field_name)
        if value is None:
            value = default
        if value is None:
            raise InputError(f"{key}.{field_name}", "missing (and no catalog model gives it)")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not np.isfinite(value)
            or value < 0
        ):
            raise InputError(f"{key}.{field_name}", "must be a finite number ≥ 0")
        lengths[field_name] = float(value)
    if lengths["active_length_mm"] == 0.0:
        raise InputError(f"{key}.active_length_mm", "must be positive")
    return ProbeGeometry(name, tip, entry, lengths["active_length_mm"], lengths["tip_length_mm"])


def probe_warnings(  # the positional order is the agreed cross-area API (docs/architecture.md)
    probes: Sequence[object],
    catalog: Mapping[str, object] | None,
    target_mask: np.ndarray | None,
    critical_masks: Mapping[str, np.ndarray] | None,
    vessel_masks: Mapping[str, np.ndarray] | None,
    grid: Grid,
    *,
    spacing_range_mm: tuple[float, float] = PROBE_SPACING_RANGE_MM,
    target_margin_mm: float = ACTIVE_SEGMENT_TARGET_MARGIN_MM,
) -> list[str]:
    """Placement warnings, each naming the probe(s):

    - neighbouring probes closer than ``spacing_range_mm[0]`` (any pair) or farther than
      ``spacing_range_mm[1]`` (each probe and its nearest neighbour), measured as the shortest
      distance between their active segments;
    - a shaft (entry to tip) crossing a critical structure or a vessel: the centre line sampled
      every quarter voxel against the masks (nearest voxel); the probe's diameter is not added;
    - an active segment partly outside the target grown by ``target_margin_mm`` (distance from the
      target's voxel centres, SimpleITK Maurer map), when more than half a voxel of it is outside.
    """
    geometries = [probe_geometry(probe, catalog, key=f"probes[{n}]") for n, probe in enumerate(probes)]
    names = [g.name for g in geometries]
    if len(set(names)) != len(names):
        raise InputError("probes", "probe names must be unique")
    low, high = spacing_range_mm
    if not (0 <= low < high):
        raise InputError("spacing_range_mm", "must be (low, high) with 0 ≤ low < high")
    step = 0.25 * min(grid.spacing_mm)
    warnings: list[str] = []

    # Spacing between neighbouring probes.
    count = len(geometries)
    if count > 1:
        gaps = np.full((count, count), np.inf)
        for a in range(count):
            for b in range(a + 1, count):
                gaps[a, b] = gaps[b, a] = _segment_distance(
                    *geometries[a].active_segment_mm(), *geometries[b].active_segment_mm()
                )
        for a in range(count):
            for b in range(a + 1, count):
                if gaps[a, b] < low:
                    warnings.append(
                        f"Probes {names[a]} and {names[b]} are {gaps[a, b]:.1f} mm apart, "
                        f"closer than the usual {low:g}–{high:g} mm"
                    )
        reported = set()
        for a in range(count):
            b = int(np.argmin(gaps[a]))
            pair = (min(a, b), max(a, b))
            if gaps[a, b] > high and pair not in reported:
                reported.add(pair)
                warnings.append(
                    f"Probe {names[a]} is {gaps[a, b]:.1f} mm from its nearest neighbour {names[b]}, "
                    f"farther than the usual {low:g}–{high:g} mm (the ice may not merge)"
                )

    # Shafts through critical structures and vessels.
    for kind, masks in (("critical structure", critical_masks), ("vessel", vessel_masks)):
        for mask_name, mask in (masks or {}).items():
            data = _mask(mask, grid, f"{kind} mask {mask_name!r}")
            for geometry in geometries:
                samples = _sample_segment(np.asarray(geometry.tip_mm), np.asarray(geometry.entry_mm), step)
                inside = _nearest_lookup(data, grid, samples)
                if inside.any():
                    along = np.linalg.norm(samples - np.asarray(geometry.tip_mm), axis=1)
                    near, far = along[inside].min(), along[inside].max()
                    warnings.append(
                        f"Probe {geometry.name}: the shaft crosses {kind} '{mask_name}' "
                        f"({inside.sum() * step:.1f} mm of it, {near:.1f}–{far:.1f} mm from the tip)"
                    )

    # Active segments leaving the target.
    if target_mask is not None:
        target = _mask(target_mask, grid, "target_mask")
        if not target.any():
            raise InputError("target_mask", "is empty")
        if not np.isfinite(target_margin_mm) or target_margin_mm < 0:
            raise InputError("target_margin_mm", "must be a finite number ≥ 0")
        box = _grow_box(_bounding_box(target), grid, target_margin_mm + 2.0 * max(grid.spacing_mm))
        outside_distance = _maurer(target[box], grid, inside_is_positive=False)
        box_origin = np.array([s.start for s in box])
        for geometry in geometries:
            start, end = geometry.active_segment_mm()
            samples = _sample_segment(start, end, step)
            ijk = np.rint(grid.ras_to_index(samples)).astype(int) - box_origin
            in_box = np.all((ijk >= 0) & (ijk < outside_distance.shape), axis=1)
            distance = np.full(len(samples), np.inf)
            distance[in_box] = outside_distance[tuple(ijk[in_box].T)]
            outside = distance > target_margin_mm
            outside_mm = float(outside.mean()) * geometry.active_length_mm
            if outside_mm > 0.5 * min(grid.spacing_mm):
                warnings.append(
                    f"Probe {geometry.name}: {outside_mm:.1f} mm of its {geometry.active_length_mm:g} mm "
                    f"active segment lies outside the target + {target_margin_mm:g} mm"
                )
    return warnings


def _segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Shortest distance between segments p0–p1 and q0–q1 (closest points, clamped parameters)."""
    u, v, w = p1 - p0, q1 - q0, p0 - q0
    a, b, c, d, e = u @ u, u @ v, v @ v, u @ w, v @ w
    denominator = a * c - b * b
    s = 0.0 if denominator < 1e-12 * a * c else float(np.clip((b * e - c * d) / denominator, 0.0, 1.0))
    t = float(np.clip((b * s + e) / c, 0.0, 1.0))
    s = float(np.clip((b * t - d) / a, 0.0, 1.0))
    best = float(np.linalg.norm(w + s * u - t * v))
    # The clamped closed form can miss an end-point pair in degenerate (parallel) cases: check them.
    for point, (start, end) in ((p0, (q0, q1)), (p1, (q0, q1)), (q0, (p0, p1)), (q1, (p0, p1))):
        best = min(best, _point_segment_distance(point, start, end))
    return best


def _point_segment_distance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    direction = end - start
    t = float(np.clip((point - start) @ direction / (direction @ direction), 0.0, 1.0))
    return float(np.linalg.norm(point - (start + t * direction)))


def _sample_segment(start: np.ndarray, end: np.ndarray, step_mm: float) -> np.ndarray:
    """Points at the centres of ``n`` equal pieces of the segment, each at most ``step_mm`` long."""
    length = float(np.linalg.norm(end - start))
    count = max(1, math.ceil(length / step_mm))
    t = (np.arange(count) + 0.5) / count
    return start + t[:, None] * (end - start)


def _nearest_lookup(mask: np.ndarray, grid: Grid, points: np.ndarray) -> np.ndarray:
    ijk = np.rint(grid.ras_to_index(points)).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.asarray(grid.size)), axis=1)
    result = np.zeros(len(points), dtype=bool)
    result[inside] = mask[tuple(ijk[inside].T)]
    return result


# --------------------------------------------------------------------------------------------------
# Geometry helpers


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


class _CoverageFraction:
    """Cold-side volume fraction of the target, counting partial voxels at the isotherm.

    A voxel whose centre lies at signed distance ``s = (T − level)/|∇T|`` from a planar isotherm
    has ``clip(1/2 − s/w, 0, 1)`` of its volume on the cold side, with ``w = Σ|n_i|·h_i`` its extent
    along the normal n (exact for isotherms parallel to a voxel face, a close linear fit otherwise).
    """

    def __init__(self, field: np.ndarray, grid: Grid, target: np.ndarray, target_box: tuple[slice, ...]):
        box = _union_boxes([target_box], grid.size, pad=1)
        crop = field[box].astype(np.float64)
        spacing = np.asarray(grid.spacing_mm)
        gradient = np.stack(np.gradient(crop, *spacing), axis=-1)
        inner = tuple(
            slice(t.start - b.start, t.stop - b.start) for t, b in zip(target_box, box, strict=True)
        )
        in_target = target[target_box]
        self.values = crop[inner][in_target]
        gradient = gradient[inner][in_target]
        magnitude = np.linalg.norm(gradient, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            extent = np.abs(gradient / magnitude[:, None]) @ spacing
            self.ramp_c = magnitude * extent  # temperature change across the voxel along the gradient
        self.ramp_c[~np.isfinite(self.ramp_c)] = 0.0
        self.count = len(self.values)

    def __call__(self, level: float) -> float:
        below = self.values <= level
        fraction = below.astype(float)
        graded = self.ramp_c > 0
        fraction[graded] = np.clip(0.5 - (self.values[graded] - level) / self.ramp_c[graded], 0.0, 1.0)
        return float(fraction.sum() / self.count)


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
    ijk = grid.ras_to_index(np.asarray(points, dtype=float).reshape(-1, 3))
    upper = np.asarray(field.shape) - 1
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


def masks_by_role(
    labels: np.ndarray, label_info: Mapping[int, tuple[str, str, str]]
) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks from a label map, grouped by role: {role: {segment name: mask}}.

    ``label_info`` maps label → (segment name, material, role), as :data:`.phantom.LABELS`; roles
    are e.g. "target", "critical", "vessel", "organ". Labels absent from the map give empty masks.
    """
    array = np.asarray(labels)
    groups: dict[str, dict[str, np.ndarray]] = {}
    for label, (name, _material, role) in label_info.items():
        groups.setdefault(role, {})[name] = array == label
    return groups
