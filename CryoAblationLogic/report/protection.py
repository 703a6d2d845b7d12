"""Thermal protection in the record: each planned measure (a warm catheter, a warm-fluid region,
skin warming: the case's ``warm_line`` and ``warm_region`` sources) with where it is and how it is
warmed, and beside it every critical structure near it with the lowest temperature it reached.

"Near" is within :data:`NEAR_MM` of the measure: for a catheter, from its wall (the distance of the
structure's voxel centres to the catheter's axis, less its radius); for a region, from its voxel
centres (SimpleITK's Maurer distance). Distances are therefore exact to about half a voxel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.core.coordinates import distances_to_segment
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import WarmLineSource, WarmRegionSource, protection_names, warming_text

NEAR_MM = 20.0  # a structure this close is one the measure is meant to spare (or may fail to)

MEASURES = {"warm_line": "Warm catheter", "warm_fluid": "Warm-fluid region", "skin_warming": "Skin warming"}


@dataclass(frozen=True)
class NearbyStructure:
    name: str
    distance_mm: float  # from the measure (catheter wall, region voxels) to the structure's voxels
    lowest_temperature_c: float

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "distance_mm": round(self.distance_mm, 2),
            "lowest_temperature_c": round(self.lowest_temperature_c, 2),
        }


@dataclass(frozen=True)
class ProtectionSummary:
    """One measure as the record and ``metrics.json`` state it."""

    type: str  # the case format's source type: warm_line or warm_region
    measure: str  # Warm catheter, Warm-fluid region, Skin warming
    name: str
    where: str
    temperature_c: float | None
    power_w_per_ml: float | None
    nearby: tuple[NearbyStructure, ...]
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # for the pictures

    @property
    def warming_text(self) -> str:
        return warming_text(self.temperature_c, self.power_w_per_ml)

    def to_dict(self) -> dict:
        data: dict = {"type": self.type, "measure": self.measure, "name": self.name, "where": self.where}
        if self.temperature_c is not None:
            data["temperature_c"] = self.temperature_c
        if self.power_w_per_ml is not None:
            data["power_w_per_ml"] = self.power_w_per_ml
        data["critical_structures_nearby"] = [item.to_dict() for item in self.nearby]
        return data


def protection_summaries(
    case,
    min_temperature: np.ndarray,
    grid: Grid,
    critical: Mapping[str, np.ndarray],
    near_mm: float = NEAR_MM,
) -> list[ProtectionSummary]:
    """The case's measures, in the order of its ``sources``, each with the critical structures (name
    → mask on ``grid``) within ``near_mm`` of it and the lowest temperature each reached."""
    summaries = []
    lowest = np.asarray(min_temperature)
    structure_names = {structure.label: structure.name for structure in getattr(case, "structures", ())}
    for source, name in zip(case.sources, protection_names(case.sources, structure_names), strict=True):
        if isinstance(source, WarmLineSource):
            start = ", ".join(f"{v:.1f}" for v in source.start_mm)
            end = ", ".join(f"{v:.1f}" for v in source.end_mm)
            where = f"from ({start}) to ({end}) RAS mm, Ø {source.diameter_mm:g} mm"
            distances = {
                label: _distance_to_line(mask, grid, source) for label, mask in critical.items() if mask.any()
            }
            kind, measure = "warm_line", MEASURES["warm_line"]
            mask = _line_mask(grid, source)
        elif isinstance(source, WarmRegionSource):
            material = case.label_materials.get(source.label, "?")
            region_name = structure_names.get(source.label)
            where = f"tissue-map label {source.label} ({region_name + ', ' if region_name else ''}{material})"
            region = _region_mask(case, source.label, grid)
            distances = (
                {}
                if region is None
                else {
                    label: _distance_to_region(mask, region, grid)
                    for label, mask in critical.items()
                    if mask.any()
                }
            )
            kind, measure = "warm_region", MEASURES[source.purpose or "warm_fluid"]
            mask = region
        else:
            continue
        nearby = tuple(
            NearbyStructure(label, distance, float(lowest[critical[label]].min()))
            for label, distance in sorted(distances.items(), key=lambda item: item[1])
            if distance <= near_mm
        )
        summaries.append(
            ProtectionSummary(
                kind, measure, name, where, source.temperature_c,
                getattr(source, "power_w_per_ml", None), nearby, mask,
            )
        )  # fmt: skip
    return summaries


def _voxel_points(mask: np.ndarray, grid: Grid) -> np.ndarray:
    return grid.index_to_ras(np.argwhere(mask).astype(float))


def _distance_to_line(mask: np.ndarray, grid: Grid, source: WarmLineSource) -> float:
    """From the catheter's wall to the nearest voxel centre of ``mask`` (0 where it lies inside)."""
    points = _voxel_points(mask, grid)
    to_axis = distances_to_segment(
        points, np.asarray(source.start_mm, float), np.asarray(source.end_mm, float)
    )
    return float(max(0.0, to_axis.min() - 0.5 * source.diameter_mm))


def _line_mask(grid: Grid, source: WarmLineSource) -> np.ndarray:
    """The voxels whose centres lie inside the catheter, or, for one thinner than a voxel, those
    within half a voxel of its axis (so that it shows in the pictures)."""
    start, end = np.asarray(source.start_mm, float), np.asarray(source.end_mm, float)
    radius = max(0.5 * source.diameter_mm, 0.5 * max(grid.spacing_mm))
    size = np.asarray(grid.size)
    lo = np.clip(np.floor(grid.ras_to_index(np.minimum(start, end) - radius)).astype(int), 0, size)
    hi = np.clip(np.ceil(grid.ras_to_index(np.maximum(start, end) + radius)).astype(int) + 1, 0, size)
    mask = np.zeros(grid.size, dtype=bool)
    if np.any(hi <= lo):
        return mask
    x, y, z = np.meshgrid(*[grid.axis_mm(a)[lo[a] : hi[a]] for a in range(3)], indexing="ij")
    centres = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    inside = distances_to_segment(centres, start, end).reshape(x.shape) <= radius
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = inside
    return mask


def _region_mask(case, label: int, grid: Grid) -> np.ndarray | None:
    labels = getattr(case, "tissue_labels", None)
    if labels is None or tuple(labels.shape) != tuple(grid.size):
        return None  # a record on another grid than the case's: no distances
    mask = labels == label
    return mask if mask.any() else None


def _distance_to_region(mask: np.ndarray, region: np.ndarray, grid: Grid) -> float:
    """From the region's voxel centres to the nearest voxel centre of ``mask`` (0 where they overlap)."""
    if np.any(mask & region):
        return 0.0
    image = sitk.GetImageFromArray(np.ascontiguousarray(region.transpose(2, 1, 0), dtype=np.uint8))
    image.SetSpacing([float(s) for s in grid.spacing_mm])
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    ).transpose(2, 1, 0)
    # Maurer's distance is to the region's boundary voxel centres: add nothing, the boundary voxels
    # belong to the region.
    return float(max(0.0, distance[mask].min()))
