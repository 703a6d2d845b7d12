"""The panel's Simulate and preview under a main thread that behaves like Slicer's (PythonQtIdle:
the GIL held in C between 100 ms timer slots, as PythonQt's idle loop does). A worker thread
starves there; the module's worker processes do not."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the panel runs on slicer-core's real MRML")

import CryoAblationScenarios as scenarios
from PythonQtIdle import PythonQtIdle

from CryoAblationLogic.scene import probes

# A guard against a hang, not a speed check: the first solver worker of a test run compiles the
# kernels into a fresh numba cache (146 s on a 2-vCPU AMD EPYC alone, more under the full suite's
# load, where 180 s was once not enough); later workers read that cache and answer in seconds.
FIRST_WORKER_RUN_S = 600.0


@pytest.fixture
def pythonqt_idle():
    return PythonQtIdle()


def phantom_with_probes(widget, scene_app):
    """The panel with the sample phantom loaded and the scenario's probes placed (scripted
    probes: the panel follows them as it does after a scene load); returns the planning session."""
    widget.ui.loadPhantomButton.click()
    session = widget.logic.session
    scenarios.place_probes(scene_app.scene, session.parameters)
    session.follow_probes()
    return session


def test_the_fixture_starves_a_python_worker_thread_as_slicer_does(pythonqt_idle):
    """The harness is faithful: a counting thread gets far less done while the main thread idles
    the PythonQt way than while it sleeps in Python (which releases the GIL)."""

    def count_while(idle) -> int:
        counter = [0]
        stop = threading.Event()

        def work():
            while not stop.is_set():
                counter[0] += 1

        thread = threading.Thread(target=work)
        thread.start()
        deadline = time.perf_counter() + 0.6
        while time.perf_counter() < deadline:
            idle(0.1)
        stop.set()
        thread.join()
        return counter[0]

    free = count_while(time.sleep)
    starved = count_while(pythonqt_idle.idle)
    # Each 100 ms slot lends the thread about one switch interval (5 ms): a few per cent of the time.
    assert starved < free / 4, (starved, free)


def test_simulate_from_the_panel_finishes_under_a_slicer_like_main_thread(widget, scene_app, pythonqt_idle):
    ui = widget.ui
    ui.loadPhantomButton.click()
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    widget.logic.session.apply_protocol_preset("3-1-3")
    ui.gridSpacingSpinBox.value = 4.0
    ui.simulateButton.click()
    # The plan's 420 s protocol on a 4 mm grid takes seconds in the worker process; a worker
    # thread would not get the GIL between the timer's slots.
    pythonqt_idle.run(widget.onTimer, until=lambda: ui.simulateButton.enabled, timeout_s=FIRST_WORKER_RUN_S)
    assert ui.simulationStatusLabel.text.startswith("Simulated 420 s. Target coverage"), (
        ui.simulationStatusLabel.text
    )


def test_the_preview_follows_a_probe_under_a_slicer_like_main_thread(widget, scene_app, pythonqt_idle):
    ui = widget.ui
    session = phantom_with_probes(widget, scene_app)
    ui.previewCheckBox.checked = True
    preview = session.preview
    pythonqt_idle.run(
        widget.onTimer, until=lambda: preview.last_applied_generation > 0, timeout_s=FIRST_WORKER_RUN_S
    )
    probe = session.probe_nodes()[0]
    tip, entry = probes.probe_tip_entry(probe)

    def move_and_follow(shift_mm: float, main_thread) -> float:
        shown = preview.last_applied_generation
        shift = np.array([shift_mm, 0.0, 0.0])
        probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + shift).tolist())
        probe.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, (entry + shift).tolist())
        return main_thread.run(
            widget.onTimer,
            until=lambda: preview.last_applied_generation > shown,
            timeout_s=60.0,
            interval_s=lambda: widget._timer.interval / 1000.0,  # the module's timer, as it sets it
        )

    class FreeMainThread(PythonQtIdle):
        def idle(self, seconds: float) -> None:
            time.sleep(seconds)  # releases the GIL: what a plain Python main loop does

    free = move_and_follow(1.0, FreeMainThread())
    slicer_like = move_and_follow(2.0, pythonqt_idle)
    # The worker process does not need the GIL: the overlay follows as fast as with a free main
    # thread, give or take a few 100 ms timer slots (the machine may be shared; make bench
    # measures the 0.3 s target).
    assert slicer_like < 2.0 * free + 0.5, (slicer_like, free)
    assert ui.simulationStatusLabel.text == ""  # no preview error reported in the panel


def test_live_mode_keeps_up_under_a_slicer_like_main_thread(scene_app, tmp_path, pythonqt_idle):
    """The live scenario (console and MR bridge on loopback, in a process of their own as other
    computers are: probe pose, freeze, temperatures, sensor, thaw, MR frames, overlay and sensor
    table) with the main thread idling the PythonQt way between 100 ms slots: live mode's links
    and solver run in its worker process, so every console message is taken and every solver
    update shown, each within a few timer slots of its arrival."""
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    parameters.update_settings(grid_spacing_mm=4.0)
    journal = tmp_path / "live-pythonqt.jsonl"
    live = scenarios.run_short_live_procedure(
        scene_app.scene,
        parameters,
        journal,
        timeout_s=120.0,
        main_thread=pythonqt_idle,
        peers_in_process=True,
    )
    assert pythonqt_idle.slots_run == 0  # stepped through idle() only: the scenario is the timer
    freezing = [t for t in live.overlay_times_s if t <= scenarios.LIVE_FREEZE_S]
    assert len(freezing) >= scenarios.LIVE_FREEZE_S  # one overlay per second of freezing, none lost
    # message arrival → overlay updated: one 100 ms slot to wait for, plus the solver's second of
    # procedure time on a 4 mm grid (a few ms); 1 s leaves room for a busy shared machine
    assert (
        live.overlay_latencies_s
        and sorted(live.overlay_latencies_s)[len(live.overlay_latencies_s) // 2] < 1.0
    )
    scenarios.replay_live_procedure(journal, live.session)  # the same prediction, bit for bit


def test_plain_monitoring_keeps_up_under_a_slicer_like_main_thread(
    widget, scene_app, tmp_path, pythonqt_idle
):
    """Connect (plain monitoring, no live mode) with the console and the MR bridge in a process of
    their own, and the main thread idling the PythonQt way between 100 ms slots: the links and
    their journal run in the monitor's worker process, so a burst of 100 console readings is
    taken, journaled and shown within a few slots (threads of Slicer's process would read them
    only while a slot runs Python)."""
    from CryoAblationLogic.igtl.messages import StringMessage
    from CryoAblationLogic.live.journal import read_journal
    from CryoAblationLogic.scene import parameters as P

    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    peers = scenarios.LoopbackPeers(parameters.get(P.INPUT_VOLUME), in_process=True)
    monitor = widget.logic.session.monitor
    journal = tmp_path / "plain-pythonqt.jsonl"
    readings = 100
    try:
        monitor.start("127.0.0.1", peers.scanner_port, "127.0.0.1", peers.console_port, str(journal))
        deadline = time.monotonic() + 30.0
        while monitor.poll()[0]["console"] != "connected" and time.monotonic() < deadline:
            pythonqt_idle.idle(0.1)
        assert monitor.poll()[0]["console"] == "connected"
        # one every 20 ms while the main thread idles (2 s): as a console reports, not all at once
        burst = [
            StringMessage(device_name="ProbeTemps", text=f"{-n / 10:.1f}") for n in range(1, readings + 1)
        ]
        peers.send_paced_from_console(burst, 0.02)

        def shown() -> str | None:
            rows = monitor.poll()[1]
            return rows[0][1] if rows else None

        slots = 0
        while shown() != f"{-readings / 10:.1f}" and slots < 100:
            pythonqt_idle.idle(0.1)
            slots += 1
        # sent over 2 s (20 slots): the last one shown within 1.5 s of it (in 21 slots here, where
        # links in Slicer's process took 51)
        assert slots <= 35, f"the last reading was shown after {slots} slots of 100 ms"
    finally:
        monitor.stop()
        peers.stop()
    journaled = [r for r in read_journal(journal).records if r.get("device_name") == "ProbeTemps"]
    assert len(journaled) == readings


def test_the_preview_answers_first_on_a_coarser_grid_then_on_the_preview_grid(
    widget, scene_app, pythonqt_idle, monkeypatch
):
    """With the worker process, a probe move is answered first on a grid twice as coarse as the
    preview's (4-7x quicker, so the overlay follows even on a busy machine), then on the preview
    grid; a move made while the finer answer computes cancels it without an error, and the last
    overlay is the preview grid's answer for the newest position."""
    from CryoAblationLogic.scene import preview as preview_module

    shown: list[float] = []  # the grid spacing (mm) of each overlay update
    real_update = preview_module.update_isotherm_segmentation

    def recording_update(segmentation, field, grid, levels):
        shown.append(grid.spacing_mm[0])
        return real_update(segmentation, field, grid, levels)

    monkeypatch.setattr(preview_module, "update_isotherm_segmentation", recording_update)
    ui = widget.ui
    session = phantom_with_probes(widget, scene_app)
    ui.previewCheckBox.checked = True
    preview = session.preview
    spacing = session.settings().preview_spacing_mm
    # A timer slot falls between a job's two answers, as on a machine where the preview grid's
    # answer takes longer than a slot: on a quiet one the phantom's finer answer can land in the
    # same slot as the coarse one, and the overlay then rightly shows the finer one alone. (That
    # the worker sends the coarser answer first is test_..._needs_no_round_trip_after_the_coarse_one.)
    real_poll = preview.solver.poll
    after_partial = [False]

    def one_answer_per_slot():
        if after_partial[0]:
            after_partial[0] = False
            return None  # the finer answer waits for the next slot
        reply = real_poll()
        after_partial[0] = reply is not None and reply.partial
        return reply

    preview.solver.poll = one_answer_per_slot

    def timer_interval_s() -> float:
        # the panel's own timer (20 ms while a move awaits its overlay): at a fixed 100 ms both
        # answers of a quiet machine's worker land in one slot and only the finer one is shown
        return widget._timer.interval / 1000.0

    pythonqt_idle.run(
        widget.onTimer,
        until=lambda: preview.last_applied_final and shown,
        timeout_s=FIRST_WORKER_RUN_S,
        interval_s=timer_interval_s,
    )
    assert shown[:2] == [2 * spacing, spacing]  # coarser first, then the preview grid

    probe = session.probe_nodes()[0]
    tip, entry = probes.probe_tip_entry(probe)
    for shift_mm in (1.0, 2.0):  # the second move comes while the first one's finer answer computes
        shift = np.array([shift_mm, 0.0, 0.0])
        probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + shift).tolist())
        probe.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, (entry + shift).tolist())
        generation = preview._generation
        pythonqt_idle.run(
            widget.onTimer,
            until=lambda: preview.last_applied_generation >= generation,  # noqa: B023
            timeout_s=60.0,
            interval_s=timer_interval_s,
        )
    pythonqt_idle.run(
        widget.onTimer, until=lambda: preview.last_applied_final, timeout_s=60.0, interval_s=timer_interval_s
    )
    # the newest position, on the preview grid
    assert preview.last_applied_generation == preview._generation and shown[-1] == spacing
    assert preview.last_error is None and ui.simulationStatusLabel.text == ""


def test_the_panels_timer_quickens_while_a_probe_move_awaits_its_overlay(widget, scene_app, pythonqt_idle):
    """A 100 ms timer alone added a slot to send the move and one per answer to the overlay's
    latency: while a move awaits its overlay the timer fires every 20 ms, and once the preview
    grid's answer is shown it is back to 100 ms (idle slots stay rare)."""
    ui = widget.ui
    session = phantom_with_probes(widget, scene_app)
    assert widget._timer.interval == 100
    ui.previewCheckBox.checked = True
    preview = session.preview
    widget.onTimer()  # the slot that sends the probes' positions to the worker
    assert preview.awaiting_answer and widget._timer.interval == 20
    intervals: list[int] = []

    def timer_interval_s() -> float:
        intervals.append(widget._timer.interval)
        return widget._timer.interval / 1000.0

    pythonqt_idle.run(
        widget.onTimer,
        until=lambda: preview.last_applied_final and not preview.awaiting_answer,
        timeout_s=FIRST_WORKER_RUN_S,
        interval_s=timer_interval_s,
    )
    widget.onTimer()
    assert set(intervals) == {20} and widget._timer.interval == 100


def test_the_preview_grids_answer_needs_no_round_trip_after_the_coarse_one(widget, scene_app, pythonqt_idle):
    """The worker goes on to the preview grid as soon as it has sent the coarser answer: one probe
    move is one request to the worker, and both overlays (coarse, then the preview grid's) are
    replies to that same job. Were the refinement to wait for the main thread to apply the coarse
    answer and ask again, a second request (and a timer slot or more) would come between them."""
    ui = widget.ui
    session = phantom_with_probes(widget, scene_app)
    ui.previewCheckBox.checked = True
    preview = session.preview
    solver = preview.solver
    submitted: list[int] = []
    replies: list[tuple[int, bool]] = []  # (job, partial) of each answer
    real_submit, real_poll = solver.submit, solver.poll

    def recording_submit(kind, case, **options):
        job = real_submit(kind, case, **options)
        submitted.append(job)
        return job

    def recording_poll():
        reply = real_poll()
        if reply is not None:
            replies.append((reply.job, reply.partial))
        return reply

    solver.submit, solver.poll = recording_submit, recording_poll
    pythonqt_idle.run(
        widget.onTimer,
        until=lambda: preview.last_applied_generation > 0 and not preview.awaiting_answer,
        timeout_s=FIRST_WORKER_RUN_S,
    )
    assert len(submitted) == 1, submitted
    assert replies == [(submitted[0], True), (submitted[0], False)]
    assert preview.last_applied_generation == preview._generation and preview.last_error is None
