"""``metrics.json``: a plan's warnings, critical structures and isotherm coverage, for machines.

The layout is documented in ``docs/metrics-format.md`` (format ``cryoablation-metrics/1``);
keys may be added, the ones there keep their meaning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from CryoAblationLogic.analysis.coverage import PlanMetrics
from CryoAblationLogic.analysis.findings import PlanWarning, by_severity
from CryoAblationLogic.analysis.safety import SafetyRules, structure_type
from CryoAblationLogic.core.about import __version__

FORMAT = "cryoablation-metrics/1"
METRICS_NAME = "metrics.json"


def metrics_document(
    metrics: PlanMetrics,
    warnings: Sequence[PlanWarning],
    rules: SafetyRules,
    *,
    case_name: str | None = None,
    field: str = "min_temperature",
    structure_types: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The JSON-ready content of ``metrics.json``."""
    types = dict(structure_types or {})
    structures = []
    for item in metrics.critical_structures:
        kind = structure_type(item.name, types.get(item.name))
        structures.append(
            {
                "name": item.name,
                "type": kind,
                "lowest_temperature_c": _finite(item.lowest_temperature_c),
                "distance_to_0c_mm": _finite(item.distance_to_ice_edge_mm),
                "reached_by_ice": item.reached_by_ice,
                "safety_margin_mm": rules.margin_for(kind),
            }
        )
    isotherms = [
        {
            "level_c": item.level_c,
            "target_coverage_percent": _finite(item.target_coverage_percent),
            "min_margin_mm": _finite(item.min_margin_mm),
            "surface_not_covered_percent": _finite(item.surface_not_covered_percent),
            "surface_margin_0_to_5mm_percent": _finite(item.surface_margin_0_to_5mm_percent),
            "surface_margin_5mm_or_more_percent": _finite(item.surface_margin_5mm_or_more_percent),
            "volume_ml": _finite(item.ice_volume_ml),
        }
        for item in metrics.isotherms
    ]
    return {
        "format": FORMAT,
        "software_version": __version__,
        "case": case_name,
        "field": field,
        "target_volume_ml": _finite(metrics.target_volume_ml),
        "warnings": [
            {**warning.to_dict(), "value": _finite(warning.value), "threshold": _finite(warning.threshold)}
            for warning in by_severity(warnings)
        ],
        "critical_structures": structures,
        "isotherms": isotherms,
        "rules": rules.to_dict(),
    }


def write_metrics_file(out_dir: str | Path, document: Mapping[str, object]) -> Path:
    path = Path(out_dir) / METRICS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
