"""Protocol presets and the panel's protocol table rows ↔ case-format steps."""

from __future__ import annotations

import pytest

from CryoAblationLogic.core import protocols
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.protocols import StepRow
from CryoAblationLogic.io import phantom


def test_10_8_10_preset_is_the_usual_double_freeze():
    assert protocols.preset_protocol("10-8-10") == phantom.demo_protocol()
    assert protocols.total_duration_s(protocols.preset_protocol("10-8-10")) == 1680.0


def test_10_5_10_preset_has_a_five_minute_passive_thaw():
    steps = protocols.preset_protocol("10-5-10")
    assert [s["action"] for s in steps] == ["freeze", "thaw", "freeze"]
    assert [s["duration_s"] for s in steps] == [600.0, 300.0, 600.0]
    assert steps[1]["mode"] == "passive"
    assert set(protocols.PRESETS) == {"10-8-10", "10-5-10"}


def test_preset_for_named_probes():
    steps = protocols.preset_protocol("10-5-10", probes=["P1", "P2"])
    assert all(step["probes"] == ["P1", "P2"] for step in steps)


@pytest.mark.parametrize("name", ["10-8", "ten-8-10", "10-0-10", ""])
def test_bad_preset_names_are_refused(name):
    with pytest.raises(InputError, match="protocol preset"):
        protocols.preset_protocol(name)


def test_rows_round_trip_through_steps():
    protocol = phantom.demo_protocol()
    rows = [protocols.step_to_row(step) for step in protocol]
    assert rows[0] == StepRow("freeze", "", 10.0, 100.0, "all")
    assert rows[1] == StepRow("thaw", "passive", 8.0, None, "all")
    assert protocols.rows_to_protocol(rows) == protocol


def test_rows_with_probe_names_and_active_thaw():
    rows = [StepRow("Freeze", "", 5, 80, "P1, P2"), StepRow("thaw", "Active", 2.5, None, "P1")]
    steps = protocols.rows_to_protocol(rows, probe_names=["P1", "P2"])
    assert steps[0] == {"action": "freeze", "duration_s": 300.0, "probes": ["P1", "P2"], "flow_percent": 80.0}
    assert steps[1] == {"action": "thaw", "duration_s": 150.0, "mode": "active", "probes": ["P1"]}


@pytest.mark.parametrize(
    ("row", "key"),
    [
        (StepRow("melt", "", 5, None, "all"), "protocol step 1.action"),
        (StepRow("freeze", "", 0, 100, "all"), "protocol step 1.minutes"),
        (StepRow("freeze", "", float("nan"), 100, "all"), "protocol step 1.minutes"),
        (StepRow("freeze", "", 5, 130, "all"), "protocol step 1.flow_percent"),
        (StepRow("thaw", "warm", 5, None, "all"), "protocol step 1.mode"),
        (StepRow("freeze", "", 5, 100, "P9"), "protocol step 1.probes"),
        (StepRow("freeze", "", 5, 100, " , "), "protocol step 1.probes"),
    ],
)
def test_bad_rows_name_the_step_and_column(row, key):
    with pytest.raises(InputError) as error:
        protocols.rows_to_protocol([row], probe_names=["P1"])
    assert error.value.key == key


def test_empty_protocol_is_refused():
    with pytest.raises(InputError, match="at least one step"):
        protocols.rows_to_protocol([])


def test_snapshot_times_after_a_shortened_protocol_are_dropped():
    shorter = protocols.preset_protocol("10-5-10")  # 1380 s
    assert protocols.snapshot_times_within([600.0, 1380.0, 1680.0], shorter) == [600.0, 1380.0]
    assert protocols.snapshot_times_within([], shorter) == []
