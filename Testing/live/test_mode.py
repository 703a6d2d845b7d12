"""Live mode without a network: the solver follows the console's clock and events, probes follow
their poses before freezing, sensor readings sit beside the prediction, and the journal replays
to the same field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from live_testing import ORIGIN_S, TIP_MM, pose, sensor, small_case, state, temperatures

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import StatusMessage
from CryoAblationLogic.live.journal import Journal, read_journal
from CryoAblationLogic.live.mode import (
    DEFAULT_MAX_CLOCK_STEP_S,
    LiveSession,
    feed_journal,
    write_live_results,
)


def minimum_at_updates(session: LiveSession) -> dict[float, float]:
    """Coldest voxel at every update tick (recorded through the update callback)."""
    seen: dict[float, float] = {}

    def on_update(s, update):
        seen[update.time_s] = float(s.temperature_c.min())

    session.on_update = on_update
    return seen


def feed_clock(session: LiveSession, times, value_c: float = 37.0) -> None:
    for t in times:
        session.feed(temperatures(t, [value_c]), ORIGIN_S + t + 0.01)


def test_the_clock_follows_the_console_time_stamps_and_updates_at_every_tick(case):
    session = LiveSession(case, update_interval_s=1.0)
    feed_clock(session, np.arange(0.0, 10.01, 0.5))
    assert session.clock_s == pytest.approx(10.0, abs=1e-6)
    assert [u.time_s for u in session.updates] == pytest.approx(np.arange(1.0, 10.01, 1.0))
    assert session.time_s == pytest.approx(10.0, abs=1e-6)
    # nothing froze: the gel stays at body temperature
    assert session.temperature_c.min() == pytest.approx(37.0)
    assert all(v == 0.0 for v in session.updates[-1].volumes_ml.values())


def test_a_message_without_time_stamp_counts_at_its_arrival(case):
    session = LiveSession(case, update_interval_s=1.0)
    session.feed(StatusMessage(1, 0, "", "OFF 1", device_name="Cryo"), 1000.0)
    session.feed(StatusMessage(1, 0, "", "FREEZE 1", device_name="Cryo"), 1003.5)
    assert session.clock_s == pytest.approx(3.5)
    assert session.states["P1"][0] == "freeze"
    assert [n.time_s for n in session.notes if n.what == "probe_state"] == pytest.approx([0.0, 3.5])


def test_freeze_takes_effect_at_the_moment_it_happened(case):
    early, late = LiveSession(case), LiveSession(small_case())
    cold_early, cold_late = minimum_at_updates(early), minimum_at_updates(late)
    for session, start in ((early, 10.0), (late, 14.0)):
        feed_clock(session, np.arange(0.0, start, 1.0))
        session.feed(state("FREEZE 1 100%", start), ORIGIN_S + start)
        feed_clock(session, np.arange(start + 1.0, 30.01, 1.0))
    for t in range(1, 31):
        assert (cold_early[t] < 36.0) == (t > 10), t
        assert (cold_late[t] < 36.0) == (t > 14), t
    # The same freeze four seconds later: the same field four seconds later.
    shifted_early = LiveSession(small_case())
    feed_clock(shifted_early, np.arange(0.0, 10.0, 1.0))
    shifted_early.feed(state("FREEZE 1 100%", 10.0), ORIGIN_S + 10.0)
    feed_clock(shifted_early, np.arange(11.0, 26.01, 1.0))
    np.testing.assert_allclose(shifted_early.temperature_c, late.temperature_c, atol=1e-3)


def test_an_event_stamped_before_the_clock_takes_effect_at_the_clock(case):
    session = LiveSession(case)
    feed_clock(session, [0.0, 5.0])
    session.feed(state("FREEZE 1", 3.0), ORIGIN_S + 5.2)  # late: the solver is already at 5 s
    assert [n.time_s for n in session.notes if n.what == "probe_state"] == [pytest.approx(5.0)]


def test_a_console_time_far_ahead_moves_the_clock_one_bounded_step_only(case):
    """A stamp an hour ahead (a wrong clock, or a peer buying solver time) moves the procedure
    clock by max_clock_step_s (60 s) and is noted; the event itself is applied."""
    session = LiveSession(case)
    feed_clock(session, [0.0, 1.0])
    session.feed(state("FREEZE 1", 7200.0), ORIGIN_S + 7200.0)
    assert session.clock_s == pytest.approx(1.0 + DEFAULT_MAX_CLOCK_STEP_S)
    assert session.states["P1"][0] == "freeze"
    assert [n.what for n in session.notes] == ["clock_step_limited", "probe_state"]


def test_thaw_and_off_change_the_prediction_from_that_moment(case):
    texts = ("FREEZE 1", "THAW 1 ACTIVE", "OFF 1")
    sessions = {text: LiveSession(small_case(), update_interval_s=3.0) for text in texts}
    for text, session in sessions.items():
        session.feed(state("FREEZE 1 100%", 0.0), ORIGIN_S)
        feed_clock(session, np.arange(3.0, 90.01, 3.0))
        at_change = session.temperature_c.copy()
        session.feed(state(text, 90.0), ORIGIN_S + 90.0)
        np.testing.assert_array_equal(session.temperature_c, at_change)  # no jump at the event itself
        feed_clock(session, np.arange(93.0, 120.01, 3.0))
    frozen = {text: s.simulation.isotherm_volumes_ml()[0.0] for text, s in sessions.items()}
    coldest = {text: float(s.temperature_c.min()) for text, s in sessions.items()}
    mean = {text: float(s.temperature_c.mean()) for text, s in sessions.items()}
    assert frozen["FREEZE 1"] >= frozen["OFF 1"] >= frozen["THAW 1 ACTIVE"]  # 3 mm voxels: coarse volumes
    assert coldest["FREEZE 1"] < coldest["OFF 1"] < coldest["THAW 1 ACTIVE"]
    assert mean["FREEZE 1"] < mean["OFF 1"] < mean["THAW 1 ACTIVE"]
    assert sessions["THAW 1 ACTIVE"].states["P1"] == ("thaw", 0.0, "active")


def test_a_pose_before_freezing_moves_the_probe_and_after_it_is_kept(case):
    session = LiveSession(case)
    moved_tip = (TIP_MM[0] + 3.0, TIP_MM[1], TIP_MM[2])
    moved_entry = (3.0, 0.0, 60.0)
    session.feed(pose(0.0), ORIGIN_S)  # as planned: nothing to do
    assert not [n for n in session.notes if n.what == "probe_moved"]
    session.feed(pose(1.0, moved_tip, moved_entry), ORIGIN_S + 1.0)
    assert session.case.probes[0].tip_mm == pytest.approx(moved_tip, abs=1e-4)
    assert [n.detail["moved_mm"] for n in session.notes if n.what == "probe_moved"] == [
        pytest.approx(3.0, abs=1e-4)
    ]
    assert session.time_s == pytest.approx(1.0)  # the rebuilt solver is brought to the clock
    session.feed(state("FREEZE 1", 2.0), ORIGIN_S + 2.0)
    session.feed(pose(3.0, (9.0, 0.0, -15.0), (9.0, 0.0, 60.0)), ORIGIN_S + 3.0)
    feed_clock(session, np.arange(4.0, 30.01, 1.0))
    assert session.case.probes[0].tip_mm == pytest.approx(moved_tip, abs=1e-4)
    ignored = [n for n in session.notes if n.what == "probe_move_ignored"]
    assert len(ignored) == 1 and ignored[0].detail["moved_mm"] == pytest.approx(6.0, abs=1e-3)
    # the ice is centred on the probe where it was measured, 3 mm off the plan
    field = session.temperature_c
    coldest = np.unravel_index(np.argmin(field[:, :, 5]), field[:, :, 5].shape)
    x_mm = session.case.grid.index_to_ras((coldest[0], coldest[1], 5))[0]
    assert x_mm == pytest.approx(3.0, abs=1.6)


def test_sensor_readings_sit_beside_the_prediction(case):
    session = LiveSession(case)
    session.feed(temperatures(0.0, [36.8]), ORIGIN_S)
    session.feed(sensor("TC1", 0.0, 37.1), ORIGIN_S)
    session.feed(sensor("Elsewhere", 0.0, 20.0), ORIGIN_S)
    session.feed(state("FREEZE 1", 0.5), ORIGIN_S + 0.5)
    for t in np.arange(1.0, 60.01, 1.0):
        session.feed(temperatures(t, [-100.0]), ORIGIN_S + t)
        session.feed(sensor("TC1", t, 5.0), ORIGIN_S + t)
        session.feed(sensor("Elsewhere", t, 20.0), ORIGIN_S + t)
    probe = [s for s in session.samples if s.kind == "probe"]
    tc1 = [s for s in session.samples if s.name == "TC1"]
    assert len(probe) == 61 and len(tc1) == 61
    assert probe[0].measured_c == pytest.approx(36.8) and probe[0].predicted_c == pytest.approx(37.0)
    assert probe[-1].predicted_c < -50.0 and probe[-1].predicted_tissue_c < 36.0
    assert probe[-1].predicted_time_s == pytest.approx(60.0) and probe[-1].time_s == pytest.approx(60.0)
    # TC1 lies 9 mm from the probe: cooled, but less than the probe
    assert probe[-1].predicted_c < tc1[-1].predicted_c < 37.0
    assert tc1[-1].predicted_c == pytest.approx(session.simulation.temperature_at((9.0, 0.0, 0.0)))
    assert [n.detail for n in session.notes if n.what == "unknown_sensor"] == [{"name": "Elsewhere"}]


def test_console_input_for_an_unknown_probe_is_noted_not_applied(case):
    session = LiveSession(case)
    session.feed(state("FREEZE 4", 0.0), ORIGIN_S)
    assert session.states["P1"][0] == "off"
    assert [n.detail for n in session.notes if n.what == "unknown_probe"] == [
        {"probe": 4, "action": "freeze"}
    ]


def test_a_pose_live_mode_cannot_use_is_noted_and_costs_nothing_else(case):
    session = LiveSession(case)
    flat = pose(0.0)
    flat.matrix[:3, 2] = 0.0  # no shaft direction
    session.feed(flat, ORIGIN_S)
    session.feed(pose(1.0, (0.0, 0.0, 30.0), (0.0, 0.0, 90.0)), ORIGIN_S + 1.0)  # tip beyond the grid
    session.feed(pose(2.0, (0.0, 0.0, 30.0), (0.0, 0.0, 90.0)), ORIGIN_S + 2.0)
    session.feed(state("FREEZE 1", 3.0), ORIGIN_S + 3.0)
    assert [n.what for n in session.notes] == ["event_refused", "probe_outside_grid", "probe_state"]
    assert session.case.probes[0].tip_mm == pytest.approx(TIP_MM) and session.clock_s == pytest.approx(3.0)


def test_bad_settings_are_refused_naming_them(case):
    with pytest.raises(InputError, match="update_interval_s"):
        LiveSession(case, update_interval_s=0.0)
    with pytest.raises(InputError, match="probe_names"):
        LiveSession(case, probe_names=["P9"])


def test_the_journal_replays_to_the_same_field_bit_for_bit(tmp_path, case):
    journal = Journal(tmp_path, "procedure")
    live = LiveSession(case, update_interval_s=2.0, journal=journal)

    def receive(message, arrival_s):
        journal.record_message(message, arrival_s, "in")
        live.feed(message, arrival_s)

    receive(pose(0.0, (1.0, 0.0, -15.0), (1.0, 0.0, 60.0)), ORIGIN_S)
    receive(state("FREEZE 1 80%", 1.3), ORIGIN_S + 1.4)
    for t in np.arange(1.5, 12.0, 0.7):
        receive(temperatures(t, [-50.0]), ORIGIN_S + t)
    # the console falls silent; the wall clock moves the procedure on (journaled)
    assert live.follow_wall_clock(silence_s=1.0, now=live._wall_ref + 4.3)
    receive(state("THAW 1 ACTIVE", 13.0), ORIGIN_S + 13.0)  # stamped before the clock: applied at it
    for t in np.arange(16.0, 25.0, 1.0):
        receive(sensor("TC1", t, 10.0), ORIGIN_S + t)
    live.finish()
    journal.close()

    contents = read_journal(tmp_path / "procedure.jsonl")
    clock_moves = [r for r in contents.records if r["kind"] == "live" and r["note"] == "clock"]
    assert len(clock_moves) == 1 and clock_moves[0]["detail"]["time_s"] == pytest.approx(16.0)
    again = LiveSession(small_case(), update_interval_s=2.0)
    feed_journal(again, contents)
    again.finish()
    np.testing.assert_array_equal(again.temperature_c, live.temperature_c)
    np.testing.assert_array_equal(again.simulation.min_temperature_c, live.simulation.min_temperature_c)
    assert again.updates == live.updates
    assert again.samples == live.samples
    assert [(n.time_s, n.what, n.detail) for n in again.notes] == [
        (n.time_s, n.what, n.detail) for n in live.notes
    ]


def test_results_hold_the_case_format_folder_and_the_live_records(tmp_path, case):
    session = LiveSession(case, update_interval_s=5.0)
    session.feed(state("FREEZE 1", 0.0), ORIGIN_S)
    for t in np.arange(5.0, 40.01, 5.0):
        session.feed(temperatures(t, [-120.0]), ORIGIN_S + t)
        session.feed(sensor("TC1", t, 30.0), ORIGIN_S + t)
    session.finish()
    out = write_live_results(session, tmp_path / "out")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == "cryoablation-result/1"
    assert summary["simulated_s"] == pytest.approx(40.0)
    assert set(summary["isotherms"]) == {"0", "-20", "-40"} and summary["isotherms"]["0"]["volume_ml"] > 0
    assert summary["snapshots"] == {"30": "temperature_30s.nrrd"}
    assert summary["live"]["updates"] == 8 and summary["live"]["probe_states"]["P1"][0] == "freeze"
    for name in ("temperature_final.nrrd", "min_temperature.nrrd", "temperature_30s.nrrd", "case.cryo.json"):
        assert (out / name).is_file(), name
    history = (out / "ice_volume_history.csv").read_text().splitlines()
    assert history[0] == "time_s,volume_ml_at_0C,volume_ml_at_-20C,volume_ml_at_-40C" and len(history) == 9
    readings = (out / "sensor_readings.csv").read_text().splitlines()
    assert len(readings) == 1 + 8 + 8
