"""Plan metrics: the names the scene, the Slicer module and the benchmarks import, in one place.

The work is split by job:

- :mod:`.coverage` — isotherm coverage, margins and critical-structure distances (and their
  accuracy), ice volume over time;
- :mod:`.distances` — the signed distance to an isotherm;
- :mod:`.placement` — probe placement checks;
- :mod:`.safety` — the warnings by clinical severity, with their rules and thresholds;
- :mod:`.metrics_file` — ``metrics.json``;
- :mod:`.grid_geometry` — shared geometry on the grid.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from CryoAblationLogic.analysis.coverage import (
    CRITICAL_COLUMNS,
    DEFAULT_LEVELS_C,
    ICE_EDGE_C,
    ISOTHERM_COLUMNS,
    QAM_MARGIN_MM,
    RECOMMENDED_ICE_MARGIN_MM,
    CriticalStructureMetrics,
    IsothermMetrics,
    PlanMetrics,
    ice_volume_history,
    isotherm_metrics,
)
from CryoAblationLogic.analysis.findings import PlanWarning, by_severity
from CryoAblationLogic.analysis.placement import (
    ACTIVE_SEGMENT_TARGET_MARGIN_MM,
    PROBE_SPACING_RANGE_MM,
    placement_notes,
    probe_geometry,
    probe_warnings,
)
from CryoAblationLogic.analysis.protection_checks import protection_notes
from CryoAblationLogic.analysis.safety import SafetyRules, safety_warnings

__all__ = [
    "ACTIVE_SEGMENT_TARGET_MARGIN_MM",
    "CRITICAL_COLUMNS",
    "DEFAULT_LEVELS_C",
    "ICE_EDGE_C",
    "ISOTHERM_COLUMNS",
    "PROBE_SPACING_RANGE_MM",
    "QAM_MARGIN_MM",
    "RECOMMENDED_ICE_MARGIN_MM",
    "WARNING_COLUMNS",
    "CriticalStructureMetrics",
    "IsothermMetrics",
    "PlanMetrics",
    "PlanWarning",
    "SafetyRules",
    "by_severity",
    "case_structures",
    "ice_volume_history",
    "isotherm_metrics",
    "masks_by_role",
    "placement_notes",
    "plan_warnings",
    "probe_geometry",
    "probe_warnings",
    "protection_notes",
    "safety_warnings",
]


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


def case_structures(case) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """The masks of a case's ``structures`` by role ({role: {name: mask}}) and the declared type
    of each critical structure ({name: type}); empty without structures or a tissue map."""
    labels = getattr(case, "tissue_labels", None)
    groups: dict[str, dict[str, np.ndarray]] = {}
    types: dict[str, str] = {}
    if labels is None:
        return groups, types
    for structure in getattr(case, "structures", ()):
        groups.setdefault(structure.role, {})[structure.name] = labels == structure.label
        if structure.kind:
            types[structure.name] = structure.kind
    return groups, types


def plan_warnings(
    metrics: PlanMetrics,
    probes,
    catalog,
    target_mask: np.ndarray | None,
    critical_masks: Mapping[str, np.ndarray] | None,
    vessel_masks: Mapping[str, np.ndarray] | None,
    grid,
    *,
    rules: SafetyRules | None = None,
    structure_types: Mapping[str, str] | None = None,
    sources=(),
    labels: np.ndarray | None = None,
    region_names: Mapping[int, str] | None = None,
) -> list[PlanWarning]:
    """Every warning of a plan, highest severity first (:func:`.safety.safety_warnings` with the
    placement notes of the probes and the checks of its protection measures: ``sources``, the
    tissue ``labels`` their regions name, ``region_names`` the structures by label): what the
    panel, the record and ``metrics.json`` list. Each has ``severity``, ``rule``, ``structure``,
    ``value``, ``threshold``, ``unit`` and ``message``."""
    notes = (
        placement_notes(probes, catalog, target_mask, critical_masks, vessel_masks, grid) if probes else []
    )
    notes += protection_notes(sources, probes, catalog, target_mask, labels, grid, region_names)
    return safety_warnings(metrics, rules, structure_types=structure_types, placement=notes)


# Column titles of a warnings table (the panel's), in order, for rows of PlanWarning.to_dict().
WARNING_COLUMNS: dict[str, str] = {
    "severity": "Severity",
    "structure": "Structure",
    "message": "Warning",
    "value": "Value",
    "threshold": "Threshold",
    "unit": "Unit",
    "rule": "Rule",
}
