"""Warnings by clinical severity: which rule fires for an analytic ice ball next to a structure,
with which value and threshold, in which order; the thresholds per structure type and their
configuration; metrics.json.

The field is the radial ice ball of conftest: T = 3 °C/mm · (r − R0), so the −40 °C isotherm lies
13.3 mm inside the 0 °C one. Distances are measured to within half a voxel (1 mm grid).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from CryoAblationLogic.analysis.findings import PlanWarning, by_severity, warnings_table
from CryoAblationLogic.analysis.metrics import isotherm_metrics
from CryoAblationLogic.analysis.metrics_file import FORMAT, metrics_document, write_metrics_file
from CryoAblationLogic.analysis.safety import (
    DEFAULT_STRUCTURE_MARGINS_MM,
    SafetyRules,
    load_rules,
    percent_text,
    rules_from_dict,
    safety_warnings,
    structure_type,
)
from CryoAblationLogic.core.errors import InputError

DISTANCE_TOL_MM = 0.5
TARGET_RADIUS_MM = 10.0


def plan(shapes, ice_radius_mm: float, structure_centre_y_mm: float, name: str = "Bowel"):
    grid = shapes.cube_grid((40, 40, 20))
    target = shapes.ball(grid, TARGET_RADIUS_MM)
    structure = shapes.ball(grid, 5.0, centre_mm=(0.0, structure_centre_y_mm, 0.0))
    field = shapes.radial_field(grid, ice_radius_mm)
    return isotherm_metrics(field, grid, target, (0.0, -20.0, -40.0), {name: structure})


def rules_of(warnings):
    return [(w.severity, w.rule, w.structure) for w in warnings]


def test_a_bowel_close_to_the_ice_edge_comes_first_then_the_short_lethal_margin(shapes):
    # 0 °C at 25 mm, the bowel's surface at 26 mm: 1 mm away; −40 °C at 11.7 mm: 1.7 mm margin
    warnings = safety_warnings(plan(shapes, 25.0, 31.0))
    assert rules_of(warnings) == [
        ("high", "ice_edge_within_margin", "Bowel"),
        ("medium", "lethal_margin_short", "target"),
    ]
    bowel, margin = warnings
    assert bowel.value == pytest.approx(1.0, abs=DISTANCE_TOL_MM) and bowel.threshold == 10.0
    assert bowel.unit == "mm" and "Bowel ends 1." in bowel.message and "0 °C isotherm" in bowel.message
    assert margin.value == pytest.approx(25.0 - 40.0 / 3.0 - TARGET_RADIUS_MM, abs=DISTANCE_TOL_MM)
    assert margin.threshold == 5.0


def test_ice_reaching_a_structure_is_critical_and_a_lethal_temperature_in_it_comes_first(shapes):
    frozen = safety_warnings(plan(shapes, 25.0, 27.0))  # bowel surface at 22 mm: −9 °C in it
    assert rules_of(frozen)[0] == ("critical", "ice_edge_reaches_structure", "Bowel")
    assert "lethal_isotherm_reaches_structure" not in [w.rule for w in frozen]
    deep = safety_warnings(plan(shapes, 25.0, 20.0))  # bowel surface at 15 mm: −30 °C in it
    assert rules_of(deep)[:2] == [
        ("critical", "lethal_isotherm_reaches_structure", "Bowel"),
        ("critical", "ice_edge_reaches_structure", "Bowel"),
    ]
    assert (
        deep[0].threshold == -20.0 and deep[0].value == pytest.approx(-30.0, abs=3.0) and deep[0].unit == "°C"
    )


def test_a_lethal_zone_missing_part_of_the_target_is_high(shapes):
    warnings = safety_warnings(plan(shapes, 20.0, 35.0))  # −40 °C at 6.7 mm inside a 10 mm target
    margin = next(w for w in warnings if w.rule == "lethal_margin_short")
    assert margin.severity == "high" and margin.value < 0 and "% of the target covered" in margin.message


def test_a_lethal_zone_that_leaves_any_of_the_target_warmer_is_high_even_with_a_positive_margin(shapes):
    # The margin is measured on the target's surface to half a voxel; the coverage counts its
    # volume. Where a sliver of the volume stays warmer the surface may still read a small positive
    # margin: the target is not covered, and the warning says so as it does for a negative margin.
    from dataclasses import replace

    metrics = plan(shapes, 25.0, 35.0)  # −40 °C at 11.7 mm: a 1.7 mm margin, all covered
    lethal = next(i for i in metrics.isotherms if i.level_c == -40.0)
    assert lethal.target_coverage_percent == 100.0 and lethal.min_margin_mm > 0
    sliver = replace(lethal, target_coverage_percent=99.987)
    nearly = replace(metrics, isotherms=[sliver if i is lethal else i for i in metrics.isotherms])
    margin = next(w for w in safety_warnings(nearly) if w.rule == "lethal_margin_short")
    assert margin.severity == "high" and margin.value > 0
    assert "(> 99.9 % of the target covered)" in margin.message  # never "100.0 %" short of 100


def test_percentages_never_round_to_the_whole_or_to_nothing():
    assert [percent_text(v) for v in (100.0, 99.987, 99.94, 0.0, 0.01, 12.34)] == [
        "100.0", "> 99.9", "99.9", "0.0", "< 0.1", "12.3",
    ]  # fmt: skip


def test_the_safety_margin_follows_the_structure_type(shapes):
    # 6 mm from the ice edge: inside a bowel's 10 mm, outside a ureter's 5 mm
    assert safety_warnings(plan(shapes, 25.0, 36.0, "Bowel"))[0].rule == "ice_edge_within_margin"
    ureter = safety_warnings(plan(shapes, 25.0, 36.0, "Left ureter"))
    assert "ice_edge_within_margin" not in [w.rule for w in ureter]
    # a declared type wins over the name
    typed = safety_warnings(plan(shapes, 25.0, 36.0, "Left ureter"), structure_types={"Left ureter": "bowel"})
    assert typed[0].rule == "ice_edge_within_margin" and typed[0].threshold == 10.0
    assert structure_type("Sigmoid colon") == "bowel" and structure_type("Spinal cord") == "cord"
    assert structure_type("Something") == "other"


def test_thresholds_are_configurable_and_bad_settings_name_their_key(tmp_path, shapes):
    rules = rules_from_dict({"structure_margins_mm": {"bowel": 0.5}, "ablative_margin_mm": 1.0})
    assert rules.margin_for("nerve") == DEFAULT_STRUCTURE_MARGINS_MM["nerve"]  # the others keep theirs
    assert safety_warnings(plan(shapes, 25.0, 31.0), rules) == []
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"lethal_isotherm_c": -30, "structure_margins_mm": {"nerve": 8}}))
    loaded = load_rules(path)
    assert loaded.lethal_isotherm_c == -30.0 and loaded.margin_for("nerve") == 8.0
    for data, key in (
        ({"margin": 3}, "safety_rules.margin"),
        ({"ice_margin_mm": -1}, "safety_rules.ice_margin_mm"),
        ({"structure_margins_mm": {"bowel": "far"}}, "safety_rules.structure_margins_mm.bowel"),
        ({"lethal_isotherms_c": [-20, None]}, "safety_rules.lethal_isotherms_c[1]"),
        ([], "safety_rules"),
    ):
        with pytest.raises(InputError) as raised:
            rules_from_dict(data)
        assert raised.value.key == key
    with pytest.raises(InputError, match="not found"):
        load_rules(tmp_path / "missing.json")


def test_warnings_sort_by_severity_keeping_their_order_within_one():
    def warning(severity, structure):
        return PlanWarning(severity, "rule", structure, 1.0, 2.0, "mm", "m")

    mixed = [warning("note", "a"), warning("critical", "b"), warning("note", "c"), warning("high", "d")]
    assert [w.structure for w in by_severity(mixed)] == ["b", "d", "a", "c"]
    with pytest.raises(ValueError, match="severity"):
        warning("urgent", "x")
    table = warnings_table(mixed).splitlines()
    assert table[0].split()[:3] == ["Severity", "Rule", "Structure"]
    assert [line.split()[0] for line in table[1:]] == ["critical", "high", "note", "note"]
    assert warnings_table([]) == "No warnings."


def test_metrics_file_holds_warnings_structures_and_isotherms(tmp_path, shapes):
    metrics = plan(shapes, 25.0, 31.0)
    rules = SafetyRules()
    warnings = safety_warnings(metrics, rules)
    document = metrics_document(metrics, warnings, rules, case_name="ball")
    path = write_metrics_file(tmp_path, document)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["case"] == "ball"
    assert [w["rule"] for w in data["warnings"]] == ["ice_edge_within_margin", "lethal_margin_short"]
    assert set(data["warnings"][0]) >= {"severity", "rule", "structure", "value", "threshold"}
    (bowel,) = data["critical_structures"]
    assert bowel["name"] == "Bowel" and bowel["type"] == "bowel" and bowel["safety_margin_mm"] == 10.0
    assert bowel["distance_to_0c_mm"] == pytest.approx(1.0, abs=DISTANCE_TOL_MM)
    assert bowel["lowest_temperature_c"] == pytest.approx(3.0, abs=1.5)  # 1 mm outside the 0 °C edge
    assert [item["level_c"] for item in data["isotherms"]] == [0.0, -20.0, -40.0]
    assert set(data["isotherms"][0]) >= {"target_coverage_percent", "min_margin_mm", "volume_ml"}


def test_metrics_file_writes_null_for_values_that_do_not_exist(shapes):
    grid = shapes.cube_grid((15, 15, 15))
    target = shapes.ball(grid, 5.0)
    warm = np.full(grid.size, 20.0, dtype=np.float32)  # no ice at all
    metrics = isotherm_metrics(warm, grid, target, (0.0,), {"Bowel": shapes.ball(grid, 3, (0, 10, 0))})
    document = metrics_document(metrics, safety_warnings(metrics), SafetyRules())
    text = json.dumps(document, allow_nan=False)  # no NaN or Infinity in the file
    data = json.loads(text)
    assert data["critical_structures"][0]["distance_to_0c_mm"] is None
    assert data["isotherms"][0]["min_margin_mm"] is None
    assert [w["rule"] for w in data["warnings"]] == ["target_not_covered"]


def test_plan_warnings_put_the_probe_placement_notes_last(shapes):
    from CryoAblationLogic.analysis.metrics import plan_warnings

    grid = shapes.cube_grid((40, 40, 20))
    target = shapes.ball(grid, TARGET_RADIUS_MM)
    bowel = shapes.ball(grid, 5.0, centre_mm=(0.0, 31.0, 0.0))
    metrics = isotherm_metrics(shapes.radial_field(grid, 25.0), grid, target, (0.0, -40.0), {"Bowel": bowel})
    probe = {
        "name": "P1",
        "tip_mm": [0.0, 0.0, -18.0],
        "entry_mm": [0.0, 0.0, 60.0],
        "active_length_mm": 30.0,
    }
    warnings = plan_warnings(metrics, [probe], None, target, {"Bowel": bowel}, {}, grid)
    assert [w.severity for w in warnings] == ["high", "medium", "note"]
    assert warnings[-1].rule == "active_segment_outside_target" and warnings[-1].structure == "P1"
