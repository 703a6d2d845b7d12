"""The correction's ensemble follows the probe poses the console reports (``live/late_correction.py``):
prepared again on them before the first freeze, a later move beyond the tracking prior said as
NOT VALID, the poses it used journaled so that a replay prepares on the same ones."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import numpy as np
import pytest
from live_testing import ENTRY_MM, ORIGIN_S, TIP_MM, pose, small_case, state

from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, IceCorrector
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.live.journal import Journal
from CryoAblationLogic.live.late_correction import (
    PREPARING_NOTE,
    READY_NOTE,
    EnsemblePreparation,
    GatedCorrector,
    LiveCorrection,
    replay_centre,
    replay_corrector,
)
from CryoAblationLogic.live.mode import LiveSession

SETTINGS = CorrectionSettings(members=8)


def gated_with_requests(case):
    requests = []
    gated = GatedCorrector(IceCorrector(case, SETTINGS), request=requests.append)
    return gated, requests


def test_the_ensemble_is_prepared_again_on_the_reported_poses_before_the_freeze():
    """Some probes reported: still the plan's prior; every probe reported: the reported placement
    with the tracking prior (0.5 mm / 1°); a move within it changes nothing, beyond it (0.8 mm)
    prepares again; after the first freeze nothing is prepared again."""
    case = small_case()
    gated, requests = gated_with_requests(case)
    gated.prepare_on(case, "planned")  # what live mode asks for at its start
    assert [(r.placement, r.placement_prior()) for r in requests] == [("planned", (2.0, 3.0))]
    gated.probes_reported(case, [], freezing_started=False)
    assert len(requests) == 1  # nothing reported: the plan's ensemble stays
    gated.probes_reported(case, list(case.probes), freezing_started=False)
    assert [(r.placement, r.placement_prior()) for r in requests[1:]] == [("reported", (0.5, 1.0))]
    nudged = replace(case.probes[0], tip_mm=(0.3, 0.0, -15.0), entry_mm=(0.3, 0.0, 60.0))
    gated.probes_reported(replace(case, probes=[nudged]), [nudged], False)
    assert len(requests) == 2  # 0.3 mm: within the tracking accuracy
    moved = replace(case.probes[0], tip_mm=(0.8, 0.0, -15.0), entry_mm=(0.8, 0.0, 60.0))
    moved_case = replace(case, probes=[moved])
    gated.probes_reported(moved_case, [moved], False)
    assert len(requests) == 3 and requests[-1].case.probes[0].tip_mm == (0.8, 0.0, -15.0)
    assert gated.corrector is None  # an ensemble of the old placement is not used any more
    far = replace(moved, tip_mm=(5.0, 0.0, -15.0), entry_mm=(5.0, 0.0, 60.0))
    found = gated.probes_reported(moved_case, [far], freezing_started=True)
    assert len(requests) == 3  # frozen in: never prepared again
    assert len(found) == 1 and found[0].startswith("P1 reported 4.2 mm / 0.0° from the pose")
    assert gated.departures == found
    assert gated.probes_reported(moved_case, [far], freezing_started=True) == []  # said once


def test_the_session_tells_the_corrector_the_reported_poses_and_notes_a_late_move():
    """Live mode gives the corrector every pose it is told (also those it does not follow after the
    freeze); a departure the corrector finds is noted as the console's are."""
    case = small_case()
    gated, requests = gated_with_requests(case)
    session = LiveSession(case, corrector=gated, track_ice=True)
    gated.prepare_on(session.planned_case, "planned")
    moved_tip = (TIP_MM[0] + 3.0, TIP_MM[1], TIP_MM[2])
    session.feed(pose(0.0, moved_tip, (3.0, 0.0, 60.0)), ORIGIN_S)
    assert requests[-1].placement == "reported"
    assert requests[-1].case.probes[0].tip_mm == pytest.approx(moved_tip, abs=1e-4)
    session.feed(state("FREEZE 1", 1.0), ORIGIN_S + 1.0)
    session.feed(pose(2.0, (9.0, 0.0, -15.0), (9.0, 0.0, 60.0)), ORIGIN_S + 2.0)
    assert len(requests) == 2
    notes = [n.detail["detail"] for n in session.notes if n.what.startswith("console departs")]
    # (this plan has its probe off throughout: the freeze itself departs from it too)
    assert [text for text in notes if "reported" in text] == [
        "P1 reported 6.0 mm / 0.0° from the pose the correction's ensemble was drawn around "
        "(after freezing began)"
    ]


def test_a_pose_without_a_shaft_is_not_given_to_the_corrector():
    case = small_case()
    gated, requests = gated_with_requests(case)
    session = LiveSession(case, corrector=gated, track_ice=True)
    gated.prepare_on(session.planned_case, "planned")
    bad = pose(0.0)
    bad.matrix[:3, 2] = 0.0
    session.feed(bad, ORIGIN_S)
    assert session.reported_probes() == [] and [r.placement for r in requests] == ["planned"]


def _journal_with(tmp_path, notes):
    journal = Journal(tmp_path, "procedure")
    for note, detail in notes:
        journal.record_note(note, detail)
    journal.close()
    return tmp_path / "procedure.jsonl"


def test_the_replay_prepares_on_the_poses_of_the_last_ready_ensemble(tmp_path):
    case = small_case()
    probes = {"P1": {"tip_mm": [1.25, 0.0, -15.0], "entry_mm": [1.25, 0.0, 60.0]}}
    planned = {
        "members": 8,
        "placement": "planned",
        "probes": {"P1": {"tip_mm": list(TIP_MM), "entry_mm": list(ENTRY_MM)}},
    }
    reported = {"members": 8, "placement": "reported", "probes": probes}
    path = _journal_with(
        tmp_path,
        [
            (PREPARING_NOTE, planned),
            (PREPARING_NOTE, reported),
            (READY_NOTE, {**reported, "images_skipped": 3}),
        ],
    )
    placed, placement, members, skipped = replay_centre(path, case)
    assert (placement, members, skipped) == ("reported", 8, 3)
    assert placed.probes[0].tip_mm == (1.25, 0.0, -15.0) and placed.probes[0].entry_mm == (1.25, 0.0, 60.0)
    # a preparation begun after the last ready one, never ready: the live session had no correction
    never = _journal_with(
        tmp_path / "never", [(PREPARING_NOTE, planned), (READY_NOTE, planned), (PREPARING_NOTE, reported)]
    )
    assert replay_centre(never, case) is None
    # a journal of a monitor that prepared on the plan before connecting: the plan
    assert replay_centre(_journal_with(tmp_path / "old", []), case) == (case, "planned", None, 0)


@pytest.mark.parametrize(
    ("detail", "field"),
    [
        ({"placement": "somewhere"}, "placement"),
        ({"probes": {"P1": {"tip_mm": [0.0, "x", 0.0], "entry_mm": [0.0, 0.0, 60.0]}}}, "P1.tip_mm"),
        ({"probes": {}}, "no pose for probe 'P1'"),
        ({"images_skipped": -1}, "images_skipped"),
    ],
)
def test_a_damaged_ready_note_is_refused_naming_its_line_and_field(tmp_path, detail, field):
    good = {
        "members": 8,
        "placement": "reported",
        "images_skipped": 0,
        "probes": {"P1": {"tip_mm": list(TIP_MM), "entry_mm": list(ENTRY_MM)}},
    }
    path = _journal_with(tmp_path, [(PREPARING_NOTE, good), (READY_NOTE, {**good, **detail})])
    with pytest.raises(InputError, match=rf"procedure\.jsonl:\d+.*{re.escape(field)}"):
        replay_centre(path, small_case())


def test_live_correction_prepares_in_its_process_on_the_reported_poses_and_journals_them(tmp_path):
    """The process prepares the plan's ensemble first; poses reported for every probe replace it
    (the first one abandoned); the ready ensemble is the reported one, its poses journaled."""
    case = small_case()
    journal = Journal(tmp_path, "procedure")
    live = LiveCorrection(case, 8, EnsemblePreparation.start())
    try:
        session = LiveSession(case, journal=journal, corrector=live.gated, track_ice=True)
        live.attach(journal, lambda: session.clock_s, session.planned_case)
        moved_tip = (TIP_MM[0] + 2.0, TIP_MM[1], TIP_MM[2])
        session.feed(pose(0.0, moved_tip, (2.0, 0.0, 60.0)), ORIGIN_S)
        deadline = time.monotonic() + 300  # a process without a numba cache compiles the kernels
        lines = []
        while live.state["phase"] == "preparing":
            assert time.monotonic() < deadline, live.state
            lines += live.poll()
            time.sleep(0.05)
    finally:
        live.preparation.close()
        journal.close()
    assert live.state["phase"] == "ready", live.state
    assert lines == ["correction: ensemble of 8 ready, drawn around the reported probe poses"]
    installed = live.gated.corrector
    assert installed.placement == "reported" and installed.prepared
    assert installed.case.probes[0].tip_mm == pytest.approx(moved_tip, abs=1e-4)
    records = [json.loads(line) for line in (tmp_path / "procedure.jsonl").read_text().splitlines()]
    notes = [r for r in records if r.get("kind") == "live" and r.get("note") in (PREPARING_NOTE, READY_NOTE)]
    assert [(r["note"], r["detail"]["placement"]) for r in notes] == [
        (PREPARING_NOTE, "planned"),
        (PREPARING_NOTE, "reported"),
        (READY_NOTE, "reported"),
    ]
    placed, placement, members, skipped = replay_centre(tmp_path / "procedure.jsonl", case)
    assert (placement, members, skipped) == ("reported", 8, 0)
    assert placed.probes == installed.case.probes  # the same floats: a replay draws the same members
    assert np.array_equal(
        IceCorrector(placed, SETTINGS, placement).draw_parameters()[2], installed.parameter_values
    )


# --- re-centring (IceCorrector.recentred): live and replayed alike --------------------------------

RECENTRING = CorrectionSettings(members=8, snapshot_every_s=15.0, recentre_generations=1, recentre_shift=0.0)
QUARTER_TIMES_S = (60.0, 120.0, 150.0, 330.0, 420.0)  # plan_case(protocol_scale=0.25): 1st freeze 0–150 s


class InlinePreparation:
    """:class:`EnsemblePreparation`'s interface without its process: each request is prepared when
    polled (what the process sends back, in this process: the wiring, not the concurrency)."""

    def __init__(self):
        self.latest = None
        self._next = 0
        self.queue = []

    def request(self, corrector):
        self._next += 1
        self.latest = self._next
        self.queue.append((self.latest, corrector))
        return self.latest

    def poll(self):
        replies = []
        for ident, corrector in self.queue:
            corrector.prepare()
            replies.append(("ready", ident, corrector))
        self.queue = []
        return replies


@pytest.fixture(scope="module")
def quarter_zones():
    """The 0 °C zone of a truth whose probe P1 lies 4 mm off the plan (3 mm grid, quarter protocol)."""
    from CryoAblationLogic.live.synthetic import plan_case
    from CryoAblationLogic.physics.ensemble import ScaledCoolingSimulation

    case = plan_case(3.0, protocol_scale=0.25)
    spec = case.probes[0]
    off = replace(
        spec,
        tip_mm=tuple(np.add(spec.tip_mm, (4.0, 0, 0))),
        entry_mm=tuple(np.add(spec.entry_mm, (4.0, 0, 0))),
    )
    simulation = ScaledCoolingSimulation(replace(case, probes=[off, *case.probes[1:]]), {})
    zones = []
    for t in QUARTER_TIMES_S:
        simulation.advance_to(t)
        zones.append((t, (simulation.temperature_c <= 0.0).astype(np.uint8)))
    return case, zones


def _live_session_with_recentring(tmp_path, case, zones):
    """A live correction whose re-centring is asked after the 120 s image and becomes ready after
    the 150 s one (answered meanwhile by the first ensemble); its corrections and journal."""
    journal = Journal(tmp_path, "procedure")
    clock = {"t": 0.0}
    live = LiveCorrection(case, 8, InlinePreparation(), settings=RECENTRING)
    live.attach(journal, lambda: clock["t"], case)
    assert live.poll() == ["correction: ensemble of 8 ready, drawn around the planned probe poses"]
    corrections, lines = [], []
    for t, zone in zones:
        clock["t"] = t
        corrections.append(live.gated.update(t, zone))
        if t == 120.0:
            assert live.state["recentring"] == {"generation": 1, "done": 0, "total": 8}
        if (
            t == 150.0
        ):  # the re-centred ensemble comes after the next image: that one is answered by the first
            assert corrections[-1].ensemble["generation"] == 0
            lines += live.poll()
    journal.close()
    return corrections, lines, tmp_path / "procedure.jsonl"


def test_a_live_re_centring_is_journaled_and_the_replay_reproduces_it_bit_for_bit(tmp_path, quarter_zones):
    """Live: asked after the 120 s volume (within 30 s of the first freeze's end), ready after
    the 150 s image, which the first ensemble still answered; the re-centred ensemble took the
    three images kept so far and answers from 330 s. The journal notes when it was asked, the
    posterior's centre at full precision, and after which image it was installed; the replay
    (prepared as the live session was) reproduces every correction exactly."""
    case, zones = quarter_zones
    corrections, lines, path = _live_session_with_recentring(tmp_path, case, zones)
    assert lines == [
        "correction: ensemble re-centred (generation 1) on the posterior after 2 images; "
        "3 images assimilated again"
    ]
    assert [c.ensemble["generation"] for c in corrections] == [0, 0, 0, 1, 1]
    assert corrections[-1].ensemble["images_reassimilated"] == 3
    records = [json.loads(line) for line in path.read_text().splitlines()]
    notes = [(r["note"], r["detail"]) for r in records if r.get("kind") == "live"]
    asked = [d for n, d in notes if n == "correction_recentring"]
    done = [d for n, d in notes if n == "correction_recentred"]
    assert [(d["generation"], d["centre"]["images"], d["time_s"]) for d in asked] == [(1, 2, 120.0)]
    assert [(d["generation"], d["images"], d["time_s"]) for d in done] == [(1, 3, 150.0)]
    assert asked[0]["centre"] == corrections[-1].ensemble["centre"]

    replayed_corrector = IceCorrector(case, RECENTRING)
    replayed_corrector.prepare()
    gated = replay_corrector(path, replayed_corrector)
    replayed = [gated.update(t, zone) for t, zone in zones]
    for live_one, again in zip(corrections, replayed, strict=True):
        assert again.to_dict() == {**live_one.to_dict(), "update_s": again.to_dict()["update_s"]}
        assert np.array_equal(again.min_temperature[10.0], live_one.min_temperature[10.0])


def test_a_damaged_or_different_re_centring_note_is_refused_naming_its_line_and_field(
    tmp_path, quarter_zones
):
    """A centre whose field is not numbers, or a generation installed that was never asked for:
    refused by line and field before anything is replayed; a centre that is not the posterior the
    replay reaches after the same images (one cooling scale 1e-9 off): refused at that image."""
    case, zones = quarter_zones
    _, _, path = _live_session_with_recentring(tmp_path, case, zones)
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "correction_recentring" in line)
    corrector = IceCorrector(case, RECENTRING)
    corrector.prepare()

    def with_line(name, text):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "procedure.jsonl").write_text("\n".join([*lines[:index], text, *lines[index + 1 :]]) + "\n")
        return folder / "procedure.jsonl"

    record = json.loads(lines[index])
    broken = json.loads(lines[index])
    broken["detail"]["centre"]["cooling"][0] = "x"
    with pytest.raises(InputError, match=rf"procedure\.jsonl:{index + 1}: centre\.cooling"):
        replay_corrector(with_line("broken", json.dumps(broken)), corrector)
    unasked = json.loads(lines[index])
    unasked["note"] = "something else"
    with pytest.raises(InputError, match=r"procedure\.jsonl:\d+: generation"):
        replay_corrector(with_line("unasked", json.dumps(unasked)), corrector)
    record["detail"]["centre"]["cooling"][0] += 1e-9
    gated = replay_corrector(with_line("different", json.dumps(record)), corrector)
    with pytest.raises(
        InputError, match=rf"procedure\.jsonl:{index + 1}: centre\.cooling.*differs from the posterior"
    ):
        for t, zone in zones:
            gated.update(t, zone)


def test_a_journal_without_re_centring_notes_replays_with_the_first_ensemble(tmp_path, quarter_zones):
    """Journals written before re-centring (or by a session that never asked): the replay keeps the
    ensemble it prepared, whatever the settings' rule would say now."""
    case, zones = quarter_zones
    path = _journal_with(tmp_path, [(PREPARING_NOTE, {"members": 8}), (READY_NOTE, {"images_skipped": 0})])
    corrector = IceCorrector(case, RECENTRING)
    corrector.prepare()
    gated = replay_corrector(path, corrector)
    assert [gated.update(t, zone).ensemble["generation"] for t, zone in zones] == [0] * len(zones)


def test_the_ensemble_s_process_prepares_a_re_centred_generation_as_this_process_would(quarter_zones):
    """A re-centred generation (drawn here, unprepared) goes to the ensemble's process and comes
    back prepared: the same members (parameters and fields bit for bit) as preparing it here."""
    case, zones = quarter_zones
    corrector = IceCorrector(case, RECENTRING)
    corrector.prepare()
    for t, zone in zones[:3]:
        corrector.update(t, zone)
    successor = corrector.recentred()
    preparation = EnsemblePreparation.start()
    try:
        ident = preparation.request(successor)
        deadline = time.monotonic() + 300  # a process without a numba cache compiles the kernels
        ready = None
        while ready is None:
            assert time.monotonic() < deadline
            for reply in preparation.poll():
                assert reply[0] in ("progress", "ready"), reply
                if reply[0] == "ready" and reply[1] == ident:
                    ready = reply[2]
            time.sleep(0.05)
    finally:
        preparation.close()
    here = corrector.recentred()
    here.prepare()
    assert ready.generation == 1 and ready.centre == here.centre
    assert np.array_equal(ready.parameter_values, here.parameter_values)
    assert np.array_equal(ready.fields, here.fields) and np.array_equal(ready.min_fields, here.min_fields)


def test_images_observed_while_the_ensemble_is_prepared_are_taken_in_when_it_is_ready(
    tmp_path, quarter_zones
):
    """The freeze began before the ensemble was ready (or a resumed journal is fed again while it
    is prepared anew): the first three images are kept, the ready ensemble takes them in (the
    journal's ready note says how many) and corrects the next ones from all five, exactly as an
    ensemble ready from the start would. The replay keeps and takes in the same, bit for bit. A
    journal written when such images were skipped (``images_skipped`` only) still replays so."""
    case, zones = quarter_zones
    settings = CorrectionSettings(members=8, snapshot_every_s=15.0, recentre_generations=0)
    journal = Journal(tmp_path, "procedure")
    clock = {"t": 0.0}
    live = LiveCorrection(case, 8, InlinePreparation(), settings=settings)
    live.attach(journal, lambda: clock["t"], case)  # the plan's ensemble asked for, not yet ready
    corrections = []
    for n, (t, zone) in enumerate(zones):
        clock["t"] = t
        corrections.append(live.gated.update(t, zone))
        if n == 2:
            assert live.poll() == [
                "correction: ensemble of 8 ready, drawn around the planned probe poses; "
                "the 3 images observed meanwhile taken in"
            ]
    journal.close()
    assert corrections[:3] == [None] * 3 and [c.images for c in corrections[3:]] == [4, 5]
    path = tmp_path / "procedure.jsonl"
    ready = [json.loads(line)["detail"] for line in path.read_text().splitlines() if READY_NOTE in line]
    assert [d["images_kept"] for d in ready] == [3]

    def prepared():
        corrector = IceCorrector(case, settings)
        corrector.prepare()
        return corrector

    ready_from_start = prepared()
    expected = [ready_from_start.update(t, zone) for t, zone in zones]
    gated = replay_corrector(path, prepared())
    replayed = [gated.update(t, zone) for t, zone in zones]
    assert replayed[:3] == [None] * 3
    for live_one, again, direct in zip(corrections[3:], replayed[3:], expected[3:], strict=True):
        for other in (again, direct):
            assert other.to_dict() == {**live_one.to_dict(), "update_s": other.to_dict()["update_s"]}
            assert np.array_equal(other.min_temperature[10.0], live_one.min_temperature[10.0])

    old = tmp_path / "old"
    old.mkdir()
    skipping = replay_corrector(
        _journal_with(old, [(PREPARING_NOTE, {"members": 8}), (READY_NOTE, {"images_skipped": 2})]),
        prepared(),
    )
    assert [c is None for c in (skipping.update(t, zone) for t, zone in zones)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert skipping.corrector.images[0].time_s == zones[2][0]


def test_images_kept_for_an_ensemble_of_reported_poses_are_measured_as_its_replay_measures_them(
    tmp_path, quarter_zones
):
    """The console reported poses 1 mm off the plan before the freeze, and the ensemble drawn
    around them was ready only after three images: those images are kept as that ensemble
    measures them (rays from the reported cluster's centre; what it learns from), not as the
    plan's corrector would, so the replay, prepared on the journaled poses, reproduces every
    correction bit for bit."""
    case, zones = quarter_zones
    settings = CorrectionSettings(members=8, snapshot_every_s=15.0, recentre_generations=0)
    journal = Journal(tmp_path, "procedure")
    clock = {"t": 0.0}
    live = LiveCorrection(case, 8, InlinePreparation(), settings=settings)
    live.attach(journal, lambda: clock["t"], case)
    step = np.array([1.0, 0.0, 0.0])
    reported = replace(
        case,
        probes=[
            replace(p, tip_mm=tuple(np.add(p.tip_mm, step)), entry_mm=tuple(np.add(p.entry_mm, step)))
            for p in case.probes
        ],
    )
    live.gated.probes_reported(reported, list(reported.probes), freezing_started=False)
    corrections = []
    for n, (t, zone) in enumerate(zones):
        clock["t"] = t
        corrections.append(live.gated.update(t, zone))
        if n == 2:
            assert live.poll()[-1].startswith("correction: ensemble of 8 ready, drawn around the reported")
    journal.close()
    assert live.gated.corrector.placement == "reported" and live.gated.kept == 3
    placed, placement, members, skipped = replay_centre(tmp_path / "procedure.jsonl", case)
    assert (placement, members, skipped) == ("reported", 8, 0)
    again = IceCorrector(placed, settings, placement)
    again.prepare()
    gated = replay_corrector(tmp_path / "procedure.jsonl", again)
    replayed = [gated.update(t, zone) for t, zone in zones]
    assert replayed[:3] == corrections[:3] == [None] * 3
    for live_one, other in zip(corrections[3:], replayed[3:], strict=True):
        assert other.to_dict() == {**live_one.to_dict(), "update_s": other.to_dict()["update_s"]}
        assert np.array_equal(other.min_temperature[10.0], live_one.min_temperature[10.0])
