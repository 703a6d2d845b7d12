"""Warnings by clinical severity: each the outcome of one rule, with the value and the threshold.

The rules, highest severity first (:mod:`.findings` defines the severities):

1. ``lethal_isotherm_reaches_structure`` (critical): a lethal isotherm (−20 °C, −40 °C) reaches a
   critical structure (its lowest temperature is at or below the level).
2. ``ice_edge_reaches_structure`` (critical): the 0 °C ice edge reaches a critical structure.
3. ``ice_edge_within_margin`` (high): the ice edge stays outside the structure but closer than the
   structure type's safety margin (bowel 10 mm, nerve 5 mm, …, :data:`DEFAULT_STRUCTURE_MARGINS_MM`).
4. ``target_not_covered`` (medium, for each isotherm): part of the target stays warmer than the
   level; for the lethal isotherm this is reported as rule 5 instead.
5. ``lethal_margin_short`` (medium; high when part of the target stays warmer): the −40 °C zone
   does not cover the target grown by the ablative margin (5 mm): its minimum margin is less.
6. ``ice_edge_margin_short`` (medium): the ice edge lies closer than 5 mm to the target.
7. Placement notes (note): from :mod:`.placement`.

All thresholds are settings of :class:`SafetyRules`; the defaults and the reasons for them are in
``docs/metrics-format.md``. Research defaults, not clinical guidance: the team sets its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from CryoAblationLogic.analysis.coverage import PlanMetrics
from CryoAblationLogic.analysis.findings import PlanWarning, by_severity
from CryoAblationLogic.core.errors import InputError

# Distance (mm) the 0 °C ice edge should keep from a critical structure of each type. Bowel and
# the skin are the usual reasons to hydro-dissect or warm (≥ 10 mm); nerves, ureter and cord as
# named by the structure type; any other critical structure takes "other".
DEFAULT_STRUCTURE_MARGINS_MM: dict[str, float] = {
    "bowel": 10.0,
    "skin": 10.0,
    "cord": 10.0,
    "nerve": 5.0,
    "ureter": 5.0,
    "vessel": 5.0,
    "other": 5.0,
}

# Words in a structure's name that give its type when the case does not say (lower case).
TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "bowel": ("bowel", "colon", "duoden", "intestin", "jejun", "ileum", "rectum", "stomach"),
    "skin": ("skin",),
    "cord": ("cord",),
    "nerve": ("nerve", "plexus", "genitofemoral"),
    "ureter": ("ureter",),
    "vessel": ("vessel", "artery", "vein", "aorta", "cava"),
}


@dataclass(frozen=True)
class SafetyRules:
    """Thresholds of the safety rules (°C and mm)."""

    ice_edge_c: float = 0.0
    lethal_isotherms_c: tuple[float, ...] = (-20.0, -40.0)
    lethal_isotherm_c: float = -40.0  # the one that must cover the target with its margin
    ablative_margin_mm: float = 5.0  # around the target, for the lethal isotherm
    ice_margin_mm: float = 5.0  # ice edge beyond the target
    structure_margins_mm: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_STRUCTURE_MARGINS_MM)
    )

    def margin_for(self, structure_type: str) -> float:
        margins = self.structure_margins_mm
        return float(margins.get(structure_type, margins.get("other", DEFAULT_STRUCTURE_MARGINS_MM["other"])))

    def to_dict(self) -> dict[str, object]:
        return {
            "ice_edge_c": self.ice_edge_c,
            "lethal_isotherms_c": list(self.lethal_isotherms_c),
            "lethal_isotherm_c": self.lethal_isotherm_c,
            "ablative_margin_mm": self.ablative_margin_mm,
            "ice_margin_mm": self.ice_margin_mm,
            "structure_margins_mm": dict(self.structure_margins_mm),
        }


def rules_from_dict(data: object, key: str = "safety_rules") -> SafetyRules:
    """Rules from a JSON object with any of :class:`SafetyRules`' keys; ``structure_margins_mm``
    is merged into the defaults (so a file may name only the types it changes)."""
    if not isinstance(data, Mapping):
        raise InputError(key, "must be a JSON object")
    known = set(SafetyRules.__dataclass_fields__)
    for name in data:
        if name not in known:
            raise InputError(f"{key}.{name}", f"unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, object] = {}
    for name in ("ice_edge_c", "lethal_isotherm_c"):
        if name in data:
            values[name] = _number(data[name], f"{key}.{name}")
    for name in ("ablative_margin_mm", "ice_margin_mm"):
        if name in data:
            values[name] = _number(data[name], f"{key}.{name}", minimum=0.0)
    if "lethal_isotherms_c" in data:
        levels = data["lethal_isotherms_c"]
        if not isinstance(levels, list):
            raise InputError(f"{key}.lethal_isotherms_c", "must be a list of temperatures (°C)")
        values["lethal_isotherms_c"] = tuple(
            _number(level, f"{key}.lethal_isotherms_c[{n}]") for n, level in enumerate(levels)
        )
    if "structure_margins_mm" in data:
        margins = data["structure_margins_mm"]
        if not isinstance(margins, Mapping):
            raise InputError(f"{key}.structure_margins_mm", "must map structure types to margins (mm)")
        merged = dict(DEFAULT_STRUCTURE_MARGINS_MM)
        for name, value in margins.items():
            merged[str(name)] = _number(value, f"{key}.structure_margins_mm.{name}", minimum=0.0)
        values["structure_margins_mm"] = merged
    return SafetyRules(**values)


def load_rules(path: str | Path) -> SafetyRules:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "safety rules file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(str(path), f"not valid JSON: {error}") from error
    return rules_from_dict(data, key=path.name)


def structure_type(name: str, declared: str | None = None) -> str:
    """The type of a critical structure: as the case declares it, else from words in its name."""
    if declared:
        return declared.lower()
    lowered = name.lower()
    for kind, words in TYPE_WORDS.items():
        if any(word in lowered for word in words):
            return kind
    return "other"


def safety_warnings(
    metrics: PlanMetrics,
    rules: SafetyRules | None = None,
    *,
    structure_types: Mapping[str, str] | None = None,
    placement: Sequence[PlanWarning] = (),
) -> list[PlanWarning]:
    """All warnings of a plan, highest severity first.

    ``metrics`` come from :func:`.coverage.isotherm_metrics` (on the minimum-temperature map), with
    the critical structures measured against the ice edge ``rules.ice_edge_c``; ``structure_types``
    maps a structure's name to its type (else :func:`structure_type` guesses from the name);
    ``placement`` are the notes of :func:`.placement.placement_notes`.
    """
    rules = rules or SafetyRules()
    types = dict(structure_types or {})
    warnings: list[PlanWarning] = []
    for structure in metrics.critical_structures:
        name = structure.name
        lowest = structure.lowest_temperature_c
        for level in sorted(rules.lethal_isotherms_c):  # the coldest first: the gravest
            if lowest <= level:
                warnings.append(
                    PlanWarning(
                        "critical",
                        "lethal_isotherm_reaches_structure",
                        name,
                        lowest,
                        level,
                        "°C",
                        f"{name} reaches {lowest:.1f} °C: the {level:g} °C isotherm reaches it",
                    )
                )
                break
        distance = structure.distance_to_ice_edge_mm
        margin = rules.margin_for(structure_type(name, types.get(name)))
        if structure.reached_by_ice:
            depth = "" if distance is None else f" ({-distance:.1f} mm into it)"
            warnings.append(
                PlanWarning(
                    "critical",
                    "ice_edge_reaches_structure",
                    name,
                    distance,
                    0.0,
                    "mm",
                    f"The {rules.ice_edge_c:g} °C ice edge reaches {name}{depth}; "
                    f"lowest temperature {lowest:.1f} °C",
                )
            )
        elif distance is not None and distance < margin:
            warnings.append(
                PlanWarning(
                    "high",
                    "ice_edge_within_margin",
                    name,
                    distance,
                    margin,
                    "mm",
                    f"{name} ends {distance:.1f} mm from the {rules.ice_edge_c:g} °C isotherm, "
                    f"within its {margin:g} mm safety margin",
                )
            )
    for item in metrics.isotherms:
        level = item.level_c
        lethal = math.isclose(level, rules.lethal_isotherm_c)
        edge = math.isclose(level, rules.ice_edge_c)
        if item.min_margin_mm is None and item.ice_volume_ml == 0.0:
            warnings.append(
                PlanWarning(
                    "medium",
                    "target_not_covered",
                    "target",
                    0.0,
                    100.0,
                    "%",
                    f"The field never reaches {level:g} °C: the target is not covered at that level",
                )
            )
        elif lethal and item.min_margin_mm is not None and item.min_margin_mm < rules.ablative_margin_mm:
            # Part of the target stays warmer where the surface dips inside it or, within the
            # surface's half-voxel accuracy, where some of its volume does: both are the graver case.
            missed = item.min_margin_mm < 0 or item.target_coverage_percent < 100.0
            coverage = (
                f" ({percent_text(item.target_coverage_percent)} % of the target covered)" if missed else ""
            )
            warnings.append(
                PlanWarning(
                    "high" if missed else "medium",  # missing tumour is worse
                    "lethal_margin_short",
                    "target",
                    item.min_margin_mm,
                    rules.ablative_margin_mm,
                    "mm",
                    f"The {level:g} °C margin around the target is {item.min_margin_mm:.1f} mm, "
                    f"less than {rules.ablative_margin_mm:g} mm{coverage}",
                )
            )
        elif item.min_margin_mm is not None and item.min_margin_mm < 0:
            warnings.append(
                PlanWarning(
                    "medium",
                    "target_not_covered",
                    "target",
                    item.target_coverage_percent,
                    100.0,
                    "%",
                    f"The {level:g} °C isotherm does not cover the target: "
                    f"{percent_text(item.target_coverage_percent)} % covered, "
                    f"misses by up to {-item.min_margin_mm:.1f} mm",
                )
            )
        elif edge and item.min_margin_mm is not None and item.min_margin_mm < rules.ice_margin_mm:
            warnings.append(
                PlanWarning(
                    "medium",
                    "ice_edge_margin_short",
                    "target",
                    item.min_margin_mm,
                    rules.ice_margin_mm,
                    "mm",
                    f"The {level:g} °C ice margin around the target is {item.min_margin_mm:.1f} mm, "
                    f"less than {rules.ice_margin_mm:g} mm",
                )
            )
    warnings.extend(placement)
    return by_severity(warnings)


def percent_text(value: float) -> str:
    """A percentage to 0.1 that never reads 100.0 short of 100 or 0.0 above 0: a target 99.99 %
    covered is not covered, and "100.0 %" beside a warning that it is not would contradict it."""
    if 99.95 <= value < 100.0:
        return "> 99.9"
    if 0.0 < value < 0.05:
        return "< 0.1"
    return f"{value:.1f}"


def _number(value: object, key: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(key, "must be a finite number")
    if minimum is not None and value < minimum:
        raise InputError(key, f"must be ≥ {minimum:g}")
    return float(value)
