"""Freeze-thaw protocols as the module panel edits them: presets and table rows ↔ case-format steps.

A preset name is the minutes of freeze, passive thaw and freeze, e.g. ``"10-8-10"`` (the usual
renal double freeze) or ``"10-5-10"``. The panel shows one row per step: action, thaw mode, minutes,
flow %, probes ("all" or names separated by commas). Steps are the case-format ``protocol`` entries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from CryoAblationLogic.core.errors import InputError

# The whole run (s): one day, as each step (the case format's bound on a step's duration_s). A day
# at the smallest step the solver takes for held temperatures (0.25 s) is 345 600 steps: long but finite.
MAX_RUN_S = 86_400.0

PRESETS = ("10-8-10", "10-5-10")
ACTIONS = ("freeze", "thaw", "off")
THAW_MODES = ("passive", "active")
ALL_PROBES = "all"


@dataclass(frozen=True)
class StepRow:
    """One protocol step as the panel's table shows it (minutes, not seconds)."""

    action: str
    mode: str  # thaw mode; "" for freeze and off
    minutes: float
    flow_percent: float | None  # freeze only
    probes: str  # "all" or "P1, P2"


def preset_protocol(name: str, probes: str | Sequence[str] = ALL_PROBES) -> list[dict]:
    """Freeze, passive thaw, freeze, with the minutes the name gives (``"10-8-10"``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*", name)
    if not match:
        raise InputError("protocol preset", f"{name!r} is not freeze-thaw-freeze minutes such as 10-8-10")
    freeze_1, thaw, freeze_2 = (float(v) for v in match.groups())
    for value in (freeze_1, thaw, freeze_2):
        if value <= 0:
            raise InputError("protocol preset", f"{name!r}: every phase must last more than 0 minutes")
    probes_value = probes if isinstance(probes, str) else list(probes)
    return [
        {"action": "freeze", "duration_s": freeze_1 * 60.0, "probes": probes_value, "flow_percent": 100},
        {"action": "thaw", "mode": "passive", "duration_s": thaw * 60.0, "probes": probes_value},
        {"action": "freeze", "duration_s": freeze_2 * 60.0, "probes": probes_value, "flow_percent": 100},
    ]


def step_to_row(step: dict) -> StepRow:
    probes = step.get("probes", ALL_PROBES)
    return StepRow(
        action=step["action"],
        mode=step.get("mode", "passive") if step["action"] == "thaw" else "",
        minutes=float(step["duration_s"]) / 60.0,
        flow_percent=float(step.get("flow_percent", 100)) if step["action"] == "freeze" else None,
        probes=probes if isinstance(probes, str) else ", ".join(probes),
    )


def row_to_step(row: StepRow, index: int, probe_names: Sequence[str] | None = None) -> dict:
    """A case-format step from a table row; bad cells raise InputError naming the row and column."""
    key = f"protocol step {index + 1}"
    action = row.action.strip().lower()
    if action not in ACTIONS:
        raise InputError(f"{key}.action", f"must be one of {', '.join(ACTIONS)}, not {row.action!r}")
    if not (math.isfinite(row.minutes) and row.minutes > 0):
        raise InputError(f"{key}.minutes", f"must be a positive number of minutes, not {row.minutes!r}")
    if row.minutes * 60.0 > MAX_RUN_S:
        raise InputError(
            f"{key}.minutes", f"{row.minutes:g} min is longer than a run may last (one day, 1440 min)"
        )
    step: dict = {"action": action, "duration_s": round(row.minutes * 60.0, 6)}
    if action == "thaw":
        mode = (row.mode or "passive").strip().lower()
        if mode not in THAW_MODES:
            raise InputError(f"{key}.mode", f"must be passive or active, not {row.mode!r}")
        step["mode"] = mode
    step["probes"] = _probes(row.probes, f"{key}.probes", probe_names)
    if action == "freeze":
        flow = 100.0 if row.flow_percent is None else float(row.flow_percent)
        if not (math.isfinite(flow) and 0 < flow <= 100):
            raise InputError(f"{key}.flow_percent", f"must be in (0, 100], not {row.flow_percent!r}")
        step["flow_percent"] = flow
    return step


def rows_to_protocol(rows: Sequence[StepRow], probe_names: Sequence[str] | None = None) -> list[dict]:
    if not rows:
        raise InputError("protocol", "needs at least one step")
    steps = [row_to_step(row, index, probe_names) for index, row in enumerate(rows)]
    total_s = total_duration_s(steps)
    if total_s > MAX_RUN_S:
        raise InputError(
            "protocol",
            f"the steps last {total_s / 60.0:g} min in all; a run lasts at most one day (1440 min)",
        )
    return steps


def total_duration_s(protocol: Sequence[dict]) -> float:
    return float(sum(step["duration_s"] for step in protocol))


def _probes(text: str, key: str, probe_names: Sequence[str] | None) -> str | list[str]:
    text = (text or ALL_PROBES).strip()
    if text.lower() == ALL_PROBES:
        return ALL_PROBES
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError(key, "name at least one probe, or 'all'")
    if probe_names is not None:
        unknown = [name for name in names if name not in probe_names]
        if unknown:
            raise InputError(key, f"no probe named {', '.join(unknown)} in the plan")
    return names


def snapshot_times_within(times_s: Sequence[float], protocol: Sequence[dict]) -> list[float]:
    """The snapshot times that still fall inside a (changed) protocol; later ones are dropped,
    since a case may not ask for the field after its end."""
    end = total_duration_s(protocol)
    return [float(t) for t in times_s if 0 < float(t) <= end + 1e-9]
