"""One plan warning: how severe, which rule, about what, the value measured and the threshold.

Severities, highest first (the order every list of warnings is shown in):

- ``critical``: a critical structure is frozen, or reaches a lethal temperature;
- ``high``: the ice edge comes within a critical structure's safety margin;
- ``medium``: the lethal zone does not cover the target with its margin, or a protection measure
  warms the target or a probe's freezing segment;
- ``note``: probe placement notes (spacing, shafts, active segments outside the target).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "note")


@dataclass(frozen=True)
class PlanWarning:
    severity: str  # one of SEVERITIES
    rule: str  # the rule's identifier, e.g. "ice_edge_within_margin" (docs/metrics-format.md)
    structure: str  # the structure, the target or the probe(s) the warning is about
    value: float | None  # what was measured, in ``unit``
    threshold: float | None  # the rule's limit, in ``unit``
    unit: str  # "mm", "°C", "%"
    message: str  # one sentence for people

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def rank(self) -> int:
        """0 for the most severe."""
        return SEVERITIES.index(self.severity)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def by_severity(warnings: Iterable[PlanWarning]) -> list[PlanWarning]:
    """Highest severity first; the order within a severity is kept (stable sort)."""
    return sorted(warnings, key=lambda warning: warning.rank)


def warnings_table(warnings: Iterable[PlanWarning]) -> str:
    """A plain-text table of warnings (highest severity first) for the command line."""
    rows = [("Severity", "Rule", "Structure", "Value", "Threshold", "Finding")]
    for warning in by_severity(warnings):
        unit = f" {warning.unit}" if warning.unit else ""
        rows.append(
            (
                warning.severity,
                warning.rule,
                warning.structure,
                "—" if warning.value is None else f"{warning.value:.1f}{unit}",
                "—" if warning.threshold is None else f"{warning.threshold:g}{unit}",
                warning.message,
            )
        )
    if len(rows) == 1:
        return "No warnings."
    widths = [max(len(row[n]) for row in rows) for n in range(5)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
             for row in rows]  # fmt: skip
    return "\n".join(lines)
