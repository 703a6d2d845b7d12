"""A protection measure placed where it defeats the ablation is named (analysis/protection_checks):
in the target, or at a probe's freezing segment. Geometry on a 1 mm grid, so volumes are counted
to the voxel (1 µl) and distances exact to the clearance's 2 mm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from CryoAblationLogic.analysis.protection_checks import PROBE_CLEARANCE_MM, protection_notes
from CryoAblationLogic.cli.main import main
from CryoAblationLogic.core.plan import protection_names
from CryoAblationLogic.io.case_file import parse_case, save_case
from CryoAblationLogic.report.protection import protection_summaries

TUMOUR, POCKET = 2, 3
# P1 along z at x = −5: its freezing segment runs from z = −12 + tip length up the shaft
PROBE = {"name": "P1", "model": "argon-1.47mm", "tip_mm": [-5.0, 0.0, -12.0], "entry_mm": [-5, 0, 60]}


def _case(shapes, sources):
    grid = shapes.cube_grid((30, 30, 30))
    labels = np.ones(grid.size, dtype=np.uint8)
    labels[shapes.ball(grid, 8.0)] = TUMOUR
    labels[shapes.ball(grid, 4.0, centre_mm=(18.0, 0.0, 0.0))] = POCKET  # a saline pocket beside it
    data = {
        "format": "cryoablation-case/1",
        "grid": grid.to_dict(),
        "tissue_map": {"labelmap": "labels.nrrd", "labels": {"1": "kidney", "2": "tumor", "3": "saline"}},
        "probes": [PROBE],
        "sources": sources,
        "protocol": [{"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100}],
        "structures": [{"label": TUMOUR, "name": "Tumor", "role": "target"}],
    }
    return parse_case(data, arrays={"labels.nrrd": labels})


def _notes(case):
    target = case.tissue_labels == TUMOUR
    return protection_notes(case.sources, case.probes, None, target, case.tissue_labels, case.grid)


def _line(x_mm, diameter_mm=6.0, y_mm=0.0):
    return {
        "type": "warm_line", "name": "Urethral warmer", "start_mm": [x_mm, y_mm, -25.0],
        "end_mm": [x_mm, y_mm, 25.0], "diameter_mm": diameter_mm, "temperature_c": 42.0,
    }  # fmt: skip


def test_a_catheter_beside_the_target_and_clear_of_the_probe_is_not_named(shapes):
    assert _notes(_case(shapes, [_line(20.0)])) == []


def test_a_catheter_through_the_target_is_named_with_the_volume_it_holds_warm(shapes):
    (note,) = [n for n in _notes(_case(shapes, [_line(6.0)])) if n.rule == "protection_in_target"]
    # the 3 mm radius around x = 6 cuts the 8 mm ball: a lens of some 0.3 ml, counted by voxel centres
    assert note.severity == "medium" and note.structure == "Urethral warmer" and 0.05 < note.value < 0.6
    assert "of the target (held at 42 °C): that tissue cannot freeze" in note.message


@pytest.mark.parametrize(
    ("x_mm", "expected"),
    [(-5.0, "crosses"), (-9.0, "passes 0.3 mm from"), (-11.0, None)],  # wall gaps −, 0.27, 2.27 mm
)
def test_a_catheter_at_a_probe_is_named_by_the_gap_from_its_wall(shapes, x_mm, expected):
    notes = [n for n in _notes(_case(shapes, [_line(x_mm, y_mm=0.0)])) if n.rule == "protection_at_probe"]
    if expected is None:
        assert notes == []
        return
    (note,) = notes
    assert note.message.startswith(f"Urethral warmer {expected} P1's freezing segment")
    assert note.threshold == PROBE_CLEARANCE_MM


def test_a_warm_region_on_the_target_or_around_a_probe_is_named(shapes):
    on_target = {"type": "warm_region", "name": "Saline pocket", "label": TUMOUR, "temperature_c": 40.0}
    rules = sorted(n.rule for n in _notes(_case(shapes, [on_target])))
    # the probe's freezing segment runs through the tumour, which is now the warm region
    assert rules == ["protection_at_probe", "protection_in_target"]
    beside = {"type": "warm_region", "name": "Saline pocket", "label": POCKET, "power_w_per_ml": 2.0}
    assert _notes(_case(shapes, [beside])) == []


def test_the_record_lists_a_catheter_at_a_probe_among_its_warnings(shapes, tmp_path, capsys):
    path = save_case(_case(shapes, [_line(-5.0)]), tmp_path / "case.cryo.json")
    assert main(["simulate", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert "Urethral warmer crosses P1's freezing segment" in capsys.readouterr().out
    warnings = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))["warnings"]
    assert {"protection_at_probe", "protection_in_target"} <= {w["rule"] for w in warnings}


def test_an_unnamed_measure_is_called_in_the_warnings_as_the_record_calls_it(shapes):
    beside = {"type": "warm_region", "label": POCKET, "temperature_c": 40.0}
    through = {k: v for k, v in _line(6.0).items() if k != "name"}
    case = _case(shapes, [beside, through])
    (note,) = _notes(case)
    # the record numbers catheters and regions each on their own: the first catheter is "1"
    assert note.structure == "Warm catheter 1"
    assert protection_names(case.sources, {POCKET: "Saline pocket"}) == ["Saline pocket", "Warm catheter 1"]
    record_names = [p.name for p in protection_summaries(case, np.zeros(case.grid.size), case.grid, {})]
    assert record_names == ["Warm region 1", "Warm catheter 1"]
