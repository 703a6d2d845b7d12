"""A monitoring run in-process: the link, the journal and the session together; reopening the
journal of an interrupted run resumes it where it was."""

from __future__ import annotations

import time

import numpy as np
import pytest
from live_testing import free_port, pose, small_case, state, temperatures

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.transport import Server
from CryoAblationLogic.live.journal import read_journal
from CryoAblationLogic.live.link import Endpoint
from CryoAblationLogic.live.runner import case_path_for, journal_summary, replay_procedure, start_monitor_run


def run_until(monitor, condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        monitor.step()
        time.sleep(0.01)


def test_a_reopened_journal_resumes_the_procedure(tmp_path):
    journal_path = tmp_path / "journal" / "case-7.jsonl"
    console = Server(0)
    console.start()
    try:
        endpoint = Endpoint("client", "127.0.0.1", console.port)
        first = start_monitor_run(
            small_case(), journal_path, None, endpoint, update_interval_s=2.0, silence_s=None
        )
        assert case_path_for(journal_path).is_file()  # the plan, saved beside the journal
        run_until(first, lambda: console.connected)
        console.send(pose(0.0), stamp=False)
        console.send(state("FREEZE 1", 1.0), stamp=False)
        for t in np.arange(2.0, 20.01, 1.0):
            console.send(temperatures(t, [-90.0]), stamp=False)
        run_until(first, lambda: first.session.clock_s >= 20.0 - 1e-6)
        first.close()  # the console stays; the monitor goes away (a crash would leave the same journal)
        frozen = first.session.temperature_c

        second = start_monitor_run(small_case(sensors=()), journal_path, None, endpoint, silence_s=None)
        assert second.resumed_messages == 21
        assert [s.name for s in second.session.case.sensors] == [
            "TC1"
        ]  # the journal's case, not the one given
        assert second.session.settings.update_interval_s == 2.0
        assert second.session.states["P1"][0] == "freeze"
        second.session.finish()
        np.testing.assert_array_equal(second.session.temperature_c, frozen)
        run_until(second, lambda: console.connected)
        for t in np.arange(21.0, 30.01, 1.0):
            console.send(temperatures(t, [-95.0]), stamp=False)
        run_until(second, lambda: second.session.clock_s >= 30.0 - 1e-6)
        second.close()
    finally:
        console.stop()

    notes = [r["note"] for r in read_journal(journal_path).records if r["kind"] == "live"]
    assert notes[:2] == ["case", "start"] and notes.count("resume") == 1 and notes[-1] == "stop"
    replayed, truncated = replay_procedure(journal_path)
    assert not truncated
    np.testing.assert_array_equal(replayed.temperature_c, second.session.temperature_c)
    counts = journal_summary(journal_path)["counts"]
    assert counts["in:NDARRAY"] == 29 and counts["in:TRANSFORM"] == 1 and counts["in:STATUS"] == 1


def test_a_journal_path_must_be_jsonl_and_replay_needs_its_case(tmp_path):
    with pytest.raises(InputError, match="jsonl"):
        start_monitor_run(small_case(), tmp_path / "journal.txt", None, Endpoint("client", port=free_port()))
    journal = tmp_path / "lost.jsonl"
    journal.write_text(
        '{"seq": 0, "kind": "live", "arrival_time_s": 1.0, "note": "start", "detail": {"settings": {}}}\n'
    )
    with pytest.raises(InputError, match="case file"):
        replay_procedure(journal)
