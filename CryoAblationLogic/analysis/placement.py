"""Probe placement checks: spacing between probes, shafts through structures, active segments
outside the target (placement notes, the lowest severity of the plan's warnings)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from CryoAblationLogic.analysis.findings import PlanWarning
from CryoAblationLogic.analysis.grid_geometry import _bounding_box, _grow_box, _mask, _maurer, _point
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import ProbeSpec

PROBE_SPACING_RANGE_MM = (10.0, 20.0)  # usual neighbour spacing (docs/physics.md §3, E2: best 15–20 mm)
ACTIVE_SEGMENT_TARGET_MARGIN_MM = 5.0


def probe_geometry(
    probe: object, catalog: Mapping[str, object] | None = None, key: str = "probe"
) -> ProbeSpec:
    """Read a probe record (mapping or object with name, tip_mm, entry_mm, and active_length_mm /
    tip_length_mm or a ``model`` found in ``catalog``) into the plan's :class:`~.plan.ProbeSpec`
    (``model`` empty and ``diameter_mm`` NaN where neither the record nor the catalog gives them)."""

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
    defaults = (("active_length_mm", None), ("tip_length_mm", 0.0), ("diameter_mm", math.nan))
    for field_name, default in defaults:
        value = get(probe, field_name)
        if value is None and model is not None:
            value = get(model, field_name)
        if value is None:
            value = default
        if value is None:
            raise InputError(f"{key}.{field_name}", "missing (and no catalog model gives it)")
        if field_name == "diameter_mm" and isinstance(value, float) and math.isnan(value):
            lengths[field_name] = value  # not known: only drawing uses it
            continue
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
    return ProbeSpec(
        name=name,
        model=model_name if isinstance(model_name, str) else "",
        tip_mm=tip,
        entry_mm=entry,
        diameter_mm=lengths["diameter_mm"],
        active_length_mm=lengths["active_length_mm"],
        tip_length_mm=lengths["tip_length_mm"],
    )


def probe_warnings(  # positional order: the scene layer and the module call it so
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
    """The messages of :func:`placement_notes` (same arguments)."""
    notes = placement_notes(
        probes,
        catalog,
        target_mask,
        critical_masks,
        vessel_masks,
        grid,
        spacing_range_mm=spacing_range_mm,
        target_margin_mm=target_margin_mm,
    )
    return [note.message for note in notes]


def placement_notes(
    probes: Sequence[object],
    catalog: Mapping[str, object] | None,
    target_mask: np.ndarray | None,
    critical_masks: Mapping[str, np.ndarray] | None,
    vessel_masks: Mapping[str, np.ndarray] | None,
    grid: Grid,
    *,
    spacing_range_mm: tuple[float, float] = PROBE_SPACING_RANGE_MM,
    target_margin_mm: float = ACTIVE_SEGMENT_TARGET_MARGIN_MM,
) -> list[PlanWarning]:
    """Placement notes (severity ``note``), each naming the probe(s):

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
    warnings: list[PlanWarning] = []

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
                        PlanWarning(
                            "note",
                            "probes_too_close",
                            f"{names[a]}, {names[b]}",
                            float(gaps[a, b]),
                            low,
                            "mm",
                            f"Probes {names[a]} and {names[b]} are {gaps[a, b]:.1f} mm apart, "
                            f"closer than the usual {low:g}–{high:g} mm",
                        )
                    )
        reported = set()
        for a in range(count):
            b = int(np.argmin(gaps[a]))
            pair = (min(a, b), max(a, b))
            if gaps[a, b] > high and pair not in reported:
                reported.add(pair)
                warnings.append(
                    PlanWarning(
                        "note",
                        "probes_too_far_apart",
                        f"{names[a]}, {names[b]}",
                        float(gaps[a, b]),
                        high,
                        "mm",
                        f"Probe {names[a]} is {gaps[a, b]:.1f} mm from its nearest neighbour {names[b]}, "
                        f"farther than the usual {low:g}–{high:g} mm (the ice may not merge)",
                    )
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
                        PlanWarning(
                            "note",
                            "shaft_crosses_structure",
                            f"{geometry.name}, {mask_name}",
                            float(inside.sum() * step),
                            0.0,
                            "mm",
                            f"Probe {geometry.name}: the shaft crosses {kind} '{mask_name}' "
                            f"({inside.sum() * step:.1f} mm of it, {near:.1f}–{far:.1f} mm from the tip)",
                        )
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
                    PlanWarning(
                        "note",
                        "active_segment_outside_target",
                        geometry.name,
                        outside_mm,
                        0.5 * min(grid.spacing_mm),
                        "mm",
                        f"Probe {geometry.name}: {outside_mm:.1f} mm of its {geometry.active_length_mm:g} mm "
                        f"active segment lies outside the target + {target_margin_mm:g} mm",
                    )
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
