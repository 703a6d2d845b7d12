"""Thermal protection against the plan: a measure placed where it defeats the ablation.

A warm catheter or a warm region is meant to spare a structure beside the ice. Placed in the target,
it holds part of the tumour above freezing; placed at a probe, it warms that probe's freezing
segment and the ice ball shrinks or never forms. Both can be typed by mistake (a catheter's end
mistyped, a pocket painted on the tumour's label) and the simulation would show only a small ice
ball without saying why, so each is named as a warning (severity ``medium``, the rank of a target
not covered, with the rules of docs/metrics-format.md):

- ``protection_in_target``: target voxels lie within a catheter (the distance of their centres to
  its axis at most its radius) or in a warm region's label;
- ``protection_at_probe``: a catheter's wall comes within :data:`PROBE_CLEARANCE_MM` of a probe's
  freezing segment (axis-to-axis distance less both radii), or a freezing segment runs through a
  warm region (sampled every quarter voxel, nearest voxel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from CryoAblationLogic.analysis.findings import PlanWarning
from CryoAblationLogic.analysis.placement import (
    _nearest_lookup,
    _sample_segment,
    _segment_distance,
    probe_geometry,
)
from CryoAblationLogic.core.coordinates import distances_to_segment
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import WarmLineSource, WarmRegionSource, protection_names, warming_text

# A catheter wall nearer a freezing segment than this warms the probe's own ice: a 17 G probe's
# ice is a few millimetres thick within the first minute.
PROBE_CLEARANCE_MM = 2.0


def protection_notes(
    sources: Sequence[object],
    probes: Sequence[object],
    catalog: Mapping[str, object] | None,
    target_mask: np.ndarray | None,
    labels: np.ndarray | None,
    grid: Grid,
    region_names: Mapping[int, str] | None = None,
) -> list[PlanWarning]:
    """The warnings of the case's protection measures (``sources``: its ``warm_line`` and
    ``warm_region`` entries; other sources are not protection and are passed over), each named as
    the record names it (``region_names``: a warm region's structure by label)."""
    geometries = [probe_geometry(probe, catalog, key=f"probes[{n}]") for n, probe in enumerate(probes)]
    voxel_ml = grid.voxel_volume_mm3 / 1000.0
    warnings: list[PlanWarning] = []
    for source, name in zip(sources, protection_names(sources, region_names), strict=True):
        if isinstance(source, WarmLineSource):
            start, end = np.asarray(source.start_mm, float), np.asarray(source.end_mm, float)
            radius = 0.5 * source.diameter_mm
            warming = warming_text(source.temperature_c, None)
            if target_mask is not None and target_mask.any():
                centres = grid.index_to_ras(np.argwhere(target_mask).astype(float))
                inside = int(np.count_nonzero(distances_to_segment(centres, start, end) <= radius))
                if inside:
                    warnings.append(_in_target(name, inside * voxel_ml, warming))
            for probe in geometries:
                tip, far = probe.active_segment_mm()
                probe_radius = 0.5 * probe.diameter_mm if np.isfinite(probe.diameter_mm) else 0.0
                gap = _segment_distance(start, end, np.asarray(tip), np.asarray(far)) - radius - probe_radius
                if gap < PROBE_CLEARANCE_MM:
                    where = "crosses" if gap <= 0 else f"passes {gap:.1f} mm from"
                    warnings.append(
                        PlanWarning(
                            "medium",
                            "protection_at_probe",
                            name,
                            round(max(gap, 0.0), 2),
                            PROBE_CLEARANCE_MM,
                            "mm",
                            f"{name} {where} {probe.name}'s freezing segment: it warms that probe's ice",
                        )
                    )
        elif isinstance(source, WarmRegionSource) and labels is not None:
            region = labels == source.label
            warming = warming_text(source.temperature_c, source.power_w_per_ml)
            if target_mask is not None:
                inside = int(np.count_nonzero(region & target_mask))
                if inside:
                    warnings.append(_in_target(name, inside * voxel_ml, warming))
            step = 0.25 * min(grid.spacing_mm)
            for probe in geometries:
                tip, far = probe.active_segment_mm()
                points = _sample_segment(np.asarray(tip, float), np.asarray(far, float), step)
                hits = _nearest_lookup(region, grid, points)
                if hits.any():
                    length = float(np.count_nonzero(hits)) * float(np.linalg.norm(far - tip)) / len(points)
                    warnings.append(
                        PlanWarning(
                            "medium",
                            "protection_at_probe",
                            name,
                            0.0,
                            PROBE_CLEARANCE_MM,
                            "mm",
                            f"{probe.name}'s freezing segment runs {length:.1f} mm through {name} "
                            f"({warming}): it warms that probe's ice",
                        )
                    )
    return warnings


def _in_target(name: str, volume_ml: float, warming: str) -> PlanWarning:
    return PlanWarning(
        "medium",
        "protection_in_target",
        name,
        round(volume_ml, 3),
        0.0,
        "ml",
        f"{name} takes in {volume_ml:.2f} ml of the target ({warming}): that tissue cannot freeze",
    )
