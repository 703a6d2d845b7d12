"""The corrected prediction in the panel (scene/corrected_ice.py, live mode's worker): the corrected
isotherms, their −40 °C band and the corrected minimum temperature as live-folder nodes updated in
place, the forecast and parameter tables holding exactly the correction's numbers, and live mode
in the worker process correcting as a replay of its journal does.

Kept short: the phantom plan on a 4 mm grid, a 4 min protocol, an ensemble of 8 members."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the corrected nodes are slicer-core's MRML")

import CryoAblationScenarios as scenarios
from live_sources import MainThreadSource

from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, IceCorrector
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import StringMessage, timestamp_from_seconds
from CryoAblationLogic.live.late_correction import GatedCorrector, replay_corrector
from CryoAblationLogic.scene import corrected_ice as ci
from CryoAblationLogic.scene.case_io import build_case
from CryoAblationLogic.scene.colors import level_label
from CryoAblationLogic.scene.live_link import LIVE_FOLDER
from CryoAblationLogic.scene.tables import table_column

MEMBERS = 8
SHORT_PROTOCOL = [  # a short double freeze: the ensemble's runs take seconds on the 4 mm grid
    {"action": "freeze", "duration_s": 120, "probes": "all", "flow_percent": 100},
    {"action": "thaw", "mode": "passive", "duration_s": 60, "probes": "all"},
    {"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100},
]


@pytest.fixture
def plan(scene_app):
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    parameters.update_settings(grid_spacing_mm=4.0, protocol=SHORT_PROTOCOL, snapshot_times_s=[])
    return scene_app.scene, parameters, build_case(scene_app.scene, parameters).parse()


def _ice_ball(case, radius_mm: float) -> np.ndarray:
    """0 °C at ``radius_mm`` from the probes' active centre, 4 °C/mm outside, body temperature far out."""
    centre = np.mean([np.mean(p.active_segment_mm(), axis=0) for p in case.probes], axis=0)
    x, y, z = np.meshgrid(*(case.grid.axis_mm(a) for a in range(3)), indexing="ij")
    r = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    return np.clip(4.0 * (r - radius_mm), -150.0, 37.0)


_PREPARED: dict = {}  # the ensemble of the (same) plan, run once for the scene tests


def _corrections(case, radii_mm=(10.0, 14.0)):
    if "corrector" not in _PREPARED:
        _PREPARED["corrector"] = IceCorrector(case, CorrectionSettings(members=MEMBERS))
        _PREPARED["corrector"].prepare()
    corrector = _PREPARED["corrector"]
    corrector.reset()
    return [
        corrector.update(60.0 * (n + 1), (_ice_ball(case, r) <= 0).astype(np.uint8))
        for n, r in enumerate(radii_mm)
    ]


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def test_corrected_nodes_appear_in_the_live_folder_and_update_in_place(plan):
    scene, _parameters, case = plan
    first, second = _corrections(case)
    view = ci.CorrectedIceView(scene, case.grid, LIVE_FOLDER)
    view.show(ci.correction_payload(first, {}, 5.0))
    isotherm_node, band_node, volume_node = view.isotherm_node, view.band_node, view.volume_node
    segments = isotherm_node.GetSegmentation()
    assert [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())] == [
        level_label(level) for level in (-40.0, -20.0, 0.0)
    ]
    band = band_node.GetSegmentation()
    assert sorted(band.GetSegmentIDs()) == ["band_p10", "band_p90"]
    assert isotherm_node.GetName() == ci.CORRECTED_ISOTHERMS_NAME
    assert band_node.GetName() == ci.CORRECTED_BAND_NAME
    # the band's cold side (p10) encloses at least the warm side's (p90) lethal zone
    from CryoAblationLogic.scene.isotherms import CLOSED_SURFACE, surface_volume_ml

    p10 = surface_volume_ml(band.GetSegment("band_p10").GetRepresentation(CLOSED_SURFACE))
    p90 = surface_volume_ml(band.GetSegment("band_p90").GetRepresentation(CLOSED_SURFACE))
    assert p10 > 0.0 and p10 >= p90  # (on this coarse, short plan the p90 side may still be empty)
    before = _node_ids(scene)
    sent = {}
    ci.correction_payload(first, sent, 5.0)
    view.show(ci.correction_payload(second, sent, 5.0))
    assert _node_ids(scene) == before  # no node churn: the same nodes, new content
    assert (view.isotherm_node, view.band_node, view.volume_node) == (isotherm_node, band_node, volume_node)
    from CryoAblationLogic.scene.volumes import volume_field

    field, _grid = volume_field(volume_node)
    assert np.array_equal(field, second.min_temperature[50.0].astype(np.float32))  # the p50 field, exactly
    # a second view (live mode on again) takes the same nodes
    again = ci.CorrectedIceView(scene, case.grid, LIVE_FOLDER)
    assert (again.isotherm_node, again.band_node, again.forecast_table) == (
        isotherm_node,
        band_node,
        view.forecast_table,
    )


def test_forecast_and_parameter_tables_hold_the_corrections_values(plan):
    scene, _parameters, case = plan
    _first, correction = _corrections(case)
    view = ci.CorrectedIceView(scene, case.grid, LIVE_FOLDER)
    view.show(ci.correction_payload(correction, {}, 5.0))
    events = list(correction.forecasts)
    assert events, "the phantom plan has a target and critical structures: something to forecast"
    forecast = view.forecast_table
    assert forecast.GetName() == "Forecast"
    assert table_column(forecast, "Event") == [ci.event_label(e, 5.0) for e in events]
    for p in ("p10", "p50", "p90"):
        expected = [correction.forecasts[e][p] for e in events]
        got = table_column(forecast, f"{p} s")
        assert [None if math.isnan(v) else v for v in got] == expected  # exactly, None as NaN
        assert table_column(forecast, p) == [ci.mm_ss(v) for v in expected]
    assert table_column(forecast, "Never") == [100.0 * correction.forecasts[e]["p_never"] for e in events]
    assert set(table_column(forecast, "Issued at")) == {ci.mm_ss(correction.time_s)}
    parameters = view.parameters_table
    assert parameters.GetName() == "Correction parameters"
    # the fitted parameters, then the probe tips the ensemble was drawn around (issue 14)
    rows = {**correction.parameters, **ci.placement_rows(correction.placement)}
    names = list(rows)
    assert names[-1] == f"ensemble_tip_S:{case.probes[-1].name}"
    assert table_column(parameters, "Name") == names
    for key, title in (("mean", "Mean"), ("p10", "p10"), ("p90", "p90"), ("prior_mean", "Prior mean")):
        assert table_column(parameters, title) == [rows[n][key] for n in names]
    assert table_column(parameters, "Unit") == [rows[n]["unit"] for n in names]


def test_status_line_says_when_what_and_when_it_is_not_valid():
    payload = {
        "time_s": 760.0,
        "images": 23,
        "margin_mm": 5.0,
        "departures": [],
        "forecasts": {
            "lethal_covers_target": {"p10": 950.0, "p50": 990.0, "p90": 1045.0, "p_never": 0.0},
            "ice_reaches:Bowel": {"p10": 1500.0, "p50": None, "p90": None, "p_never": 0.86},
        },
    }
    assert ci.status_line(payload) == (
        "Correction at 12:40 from 23 images; −40 °C covers target + 5 mm at 16:30 (p10 15:50, p90 17:25); "
        "ice reaches Bowel: not within the protocol (14 % chance it does, p10 25:00)"
    )
    departed = ci.status_line(payload, ["600 s: P1 is thaw, the plan has freeze 100 %"])
    assert departed.startswith("Correction NOT VALID: the console departs from the planned protocol")
    assert "P1 is thaw" in departed


def test_bad_input_gets_a_clear_message(plan, tmp_path):
    from CryoAblationLogic.scene.live_process import LiveProcessDriver

    scene, _parameters, case = plan
    for members in (4, 513, 8.5, True):
        with pytest.raises(InputError, match=r"ensemble_members: must be an integer in \[8, 512\]"):
            ci.check_members(members)
    with pytest.raises(InputError, match="ensemble_members"):
        LiveProcessDriver(scene, case, tmp_path / "x.jsonl", silence_s=None, correction_members=4)
    from dataclasses import replace

    with pytest.raises(InputError, match="protocol: the correction needs the planned protocol"):
        LiveProcessDriver(scene, replace(case, protocol=[]), tmp_path / "x.jsonl", correction_members=8)
    assert not (tmp_path / "x.jsonl").exists()  # nothing started, nothing written


def procedure_messages(case):
    """``stamped(message, t)`` and ``volume(field, seed, t)`` for a procedure that starts now: a
    message stamped at procedure time ``t`` (s), and the MR volume (4 mm) of a temperature field."""
    from CryoAblationLogic.io import mr_synthesis as mr
    from CryoAblationLogic.live.synthetic import mr_image_message, volume_grid

    start = float(int(time.time()))

    def stamped(message, t):
        message.timestamp_raw = timestamp_from_seconds(start + t)
        return message

    def volume(field, seed, t):
        image = mr.render_volume(field, case.grid, case.probes, grid=volume_grid(case.grid, 4.0), seed=seed)
        return stamped(mr_image_message(image, "MR Volume"), t)

    return stamped, volume


def _replayed_alike(journal, members: int, state, images: int):
    """The journal replayed with a corrector prepared as the CLI prepares it corrects from as many
    images to the same band, bit for bit, as live mode did (``state``); its correction."""
    from CryoAblationLogic.io.case_file import load_case
    from CryoAblationLogic.live.runner import case_path_for, prepare_corrector, replay_procedure

    corrector = prepare_corrector(load_case(case_path_for(journal)), members)
    replayed, _ = replay_procedure(journal, corrector=replay_corrector(journal, corrector))
    again = replayed.ice.correction
    assert again.images == images
    for q in (10.0, 50.0, 90.0):
        assert np.array_equal(state.fields[q], again.min_temperature[q].astype(np.float32))
    return again


def _wait(driver, condition, what: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s  # a worker without a numba cache compiles the kernels first
    while not condition():
        ice = driver.session.ice
        seen = [(r.status, r.reason) for r in ice.records] if ice is not None else None
        assert time.monotonic() < deadline, f"live mode did not {what}: {driver.session.correction}, {seen}"
        assert driver.alive(), f"the live worker ended before it could {what}"
        driver.step()
        time.sleep(0.02)


def test_live_mode_in_the_worker_corrects_as_the_replay_of_its_journal(plan, tmp_path):
    """The worker prepares the ensemble (its progress shown), corrects after each observed image,
    sends the band to the scene; the replay of its journal with a corrector prepared as the CLI
    prepares it gives the same corrected field, bit for bit."""
    from CryoAblationLogic.scene.live_process import LiveProcessDriver

    scene, _parameters, case = plan
    stamped, volume = procedure_messages(case)

    source = MainThreadSource()
    journal = tmp_path / "corrected.jsonl"
    driver = LiveProcessDriver(
        scene, case, journal, sources=[source], silence_s=None, correction_members=MEMBERS
    )
    try:
        source.release([volume(np.full(case.grid.size, 37.0), 5, 0.0)])  # the baseline, before the freeze
        progress = set()

        def ready():
            state = driver.session.correction
            progress.add(state.done)
            return state.phase == "ready"

        _wait(driver, ready, "prepare the ensemble")
        assert "preparing" not in driver.session.correction.text()
        freeze = stamped(StringMessage(device_name="CryoState", text="FREEZE 1 100%"), 1.0)
        source.release(
            [freeze, volume(_ice_ball(case, 10.0), 6, 60.0), volume(_ice_ball(case, 14.0), 7, 110.0)]
        )
        _wait(driver, lambda: driver.session.correction.corrections >= 2, "correct from two images")
    finally:
        driver.stop()
    assert MEMBERS in progress  # the panel saw the ensemble's progress
    state = driver.session.correction
    assert state.kept == 0 and not state.freeze_before_ready
    assert state.payload["images"] == 2
    assert state.payload["time_s"] == pytest.approx(109.0)  # procedure time 0: the freeze, 1 s in
    assert state.text().startswith("Correction at 1:49 from 2 images; −40 °C covers target + 5 mm")
    view = driver.corrected_view
    assert scene.GetFirstNodeByName(ci.CORRECTED_ISOTHERMS_NAME) is view.isotherm_node
    again = _replayed_alike(journal, MEMBERS, state, images=2)
    assert state.payload["forecasts"] == again.forecasts
    assert state.payload["parameters"] == again.parameters


def test_a_freeze_before_the_ensemble_is_ready_is_said_and_its_images_are_taken_in_when_it_is(plan, tmp_path):
    """The first freeze and an image come while the ensemble still runs: the panel says so and
    keeps the image (counted, journaled); the ready ensemble takes it in, so the next image's
    correction is from both; the replay keeps and takes in the same, bit for bit."""
    from CryoAblationLogic.live.journal import read_journal
    from CryoAblationLogic.scene.live_process import LiveProcessDriver

    scene, _parameters, case = plan
    stamped, volume = procedure_messages(case)

    source = MainThreadSource()
    journal = tmp_path / "late.jsonl"
    # an ensemble big enough to be still running when the first messages are taken (seconds)
    members = 24
    driver = LiveProcessDriver(
        scene, case, journal, sources=[source], silence_s=None, correction_members=members
    )
    texts = []
    try:
        freeze = stamped(StringMessage(device_name="CryoState", text="FREEZE 1 100%"), 1.0)
        source.release(
            [volume(np.full(case.grid.size, 37.0), 5, 0.0), freeze, volume(_ice_ball(case, 10.0), 6, 60.0)]
        )

        def ready():
            texts.append(driver.session.correction.text())
            return driver.session.correction.phase == "ready"

        _wait(driver, ready, "prepare the ensemble")
        source.release([volume(_ice_ball(case, 14.0), 7, 110.0)])
        _wait(driver, lambda: driver.session.correction.corrections >= 1, "correct from the next image")
    finally:
        driver.stop()
    assert any("The freeze started before the ensemble was ready" in t for t in texts), sorted(set(texts))
    assert any("are kept (1 so far) and taken in when it is" in t for t in texts), sorted(set(texts))
    state = driver.session.correction
    assert state.freeze_before_ready and state.kept == 1
    assert state.payload["images"] == 2  # the kept image and the next one
    ready = [r["detail"] for r in read_journal(journal).records if r.get("note") == "correction_ready"]
    assert ready[-1]["images_kept"] == 1 and "images_skipped" not in ready[-1]
    assert "from 2 images (1 of them kept while the ensemble was prepared)" in state.text()
    _replayed_alike(journal, members, state, images=2)


def test_a_resumed_session_corrects_from_every_image_its_journal_holds(plan, tmp_path):
    """Live mode stopped after the freeze and two corrected images, then started again on the same
    journal (a crash, a restart of Slicer): its messages are fed again while a new ensemble is
    prepared (solver runs are not journaled), the two images are kept and taken in when it is
    ready, and the next image's correction is from all three, as the replay of the journal's."""
    from CryoAblationLogic.scene.live_process import LiveProcessDriver

    scene, _parameters, case = plan
    stamped, volume = procedure_messages(case)
    journal = tmp_path / "resumed.jsonl"

    def run(before_ready, after_ready, until, what):
        """Live mode on the journal: ``before_ready`` sent, the ensemble awaited, ``after_ready``
        sent, ``until`` awaited; (images kept when the ensemble was ready, the correction's state)."""
        source = MainThreadSource()
        driver = LiveProcessDriver(
            scene, case, journal, sources=[source], silence_s=None, correction_members=MEMBERS
        )
        try:
            source.release(before_ready)
            _wait(driver, lambda: driver.session.correction.phase == "ready", "prepare the ensemble")
            ready = driver.session.correction.kept
            source.release(after_ready)
            _wait(driver, lambda: until(driver.session.correction), what)
        finally:
            driver.stop()
        return ready, driver.session.correction

    freeze = stamped(StringMessage(device_name="CryoState", text="FREEZE 1 100%"), 1.0)
    baseline = volume(np.full(case.grid.size, 37.0), 5, 0.0)
    first_two = [freeze, volume(_ice_ball(case, 10.0), 6, 60.0), volume(_ice_ball(case, 14.0), 7, 110.0)]
    _, before = run([baseline], first_two, lambda c: c.corrections >= 2, "correct from two images")
    assert before.payload["images"] == 2
    # the resumed worker feeds the journal again (the baseline, the freeze, the two volumes) while
    # its ensemble is prepared, then takes a third volume
    third = volume(_ice_ball(case, 16.0), 8, 150.0)
    kept, after = run([], [third], lambda c: c.corrections >= 1, "correct from the next image")
    assert kept == 2
    assert after.payload["images"] == 3
    assert "(2 of them kept while the ensemble was prepared)" in after.text()
    _replayed_alike(journal, MEMBERS, after, images=3)


def test_a_console_that_departs_from_the_plan_makes_the_status_say_not_valid(plan):
    """The planned protocol's check runs before the ensemble is ready: a thaw where the plan
    freezes is a departure, kept when the prepared corrector is installed, and said plainly."""
    from CryoAblationLogic.scene.live_process import CorrectionState

    _scene, _parameters, case = plan
    gated = GatedCorrector(IceCorrector(case, CorrectionSettings(members=MEMBERS)))
    probe = case.probes[0].name
    assert gated.console_state(10.0, {probe: ("freeze", 100.0)}) == []  # as planned
    found = gated.console_state(60.0, {probe: ("thaw", 100.0)})
    assert len(found) == 1 and f"{probe} is thaw, the plan has freeze 100 %" in found[0]
    state = CorrectionState(phase="ready", members=MEMBERS, done=MEMBERS, total=MEMBERS)
    state.take({"departures": gated.departures})
    assert "Correction NOT VALID: the console departs from the planned protocol" in state.text()
    prepared = IceCorrector(case, CorrectionSettings(members=MEMBERS))
    gated.install(prepared)
    assert prepared.departures == found  # what the console did while the ensemble ran is kept
