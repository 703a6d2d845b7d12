"""The module's self-test scenarios, run here on a slicer-core scene (Slicer runs the same code).

Each test calls the scenario functions of ``CryoAblationScenarios`` (``CryoAblation/Testing/Python``)
in the order the module's ``CryoAblationTest`` does; a scenario raises ``ScenarioFailure`` when its
checks fail.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the scenarios need slicer-core")

import CryoAblationScenarios as scenarios

from CryoAblationLogic.io import phantom
from CryoAblationLogic.scene.app import create_scene_app


@pytest.fixture
def scene_app():
    return create_scene_app()


def test_load_phantom_gives_image_segments_roles_and_no_probes(scene_app):
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    assert parameters.probes() == []


def test_place_probes_puts_the_demo_plan_on_markups_lines(scene_app):
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    nodes = scenarios.place_probes(scene_app.scene, parameters)
    assert [n.GetName() for n in nodes] == [p["name"] for p in phantom.demo_probe_plan()]
    tip = np.zeros(3)
    nodes[0].GetNthControlPointPositionWorld(0, tip)
    np.testing.assert_allclose(tip, phantom.demo_probe_plan()[0]["tip_mm"], atol=1e-3)


def test_save_and_reload_keeps_the_plan(scene_app, tmp_path):
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    reloaded = scenarios.save_and_reload(scene_app.scene, tmp_path / "plan.mrb")
    assert [p.GetName() for p in reloaded.probes()] == ["P1", "P2", "P3"]


def test_a_changed_plan_is_reported_by_the_reload_check(scene_app, tmp_path, monkeypatch):
    """The check is not vacuous: a plan that comes back different fails with the key that changed."""
    from CryoAblationLogic.scene import app

    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    real_load = app.load_scene_mrb

    def load_and_move_a_probe(scene, path, clear=True):
        real_load(scene, path, clear)
        from CryoAblationLogic.scene import parameters as P

        P.get_parameter_node(scene).probes()[0].SetNthControlPointPositionWorld(0, [0.0, 0.0, 0.0])

    monkeypatch.setattr(app, "load_scene_mrb", load_and_move_a_probe)
    with pytest.raises(scenarios.ScenarioFailure, match="'probes' changed on reload"):
        scenarios.save_and_reload(scene_app.scene, tmp_path / "plan.mrb")


def test_simulate_check_export_and_report(scene_app, tmp_path):
    """One run (the solver is the slow part) for the simulate and the export scenarios."""
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    run = scenarios.simulate_and_check(scene_app.scene, parameters, scene_app.sequences_logic)
    assert run.plan.metrics.isotherm(0.0).target_coverage_percent >= 95.0
    files = scenarios.export_case_and_report(scene_app.scene, parameters, run, tmp_path)
    assert files["case"].name == "plan.cryo.json" and files["report"].name == "report.html"


def test_report_refuses_a_plan_changed_since_the_run(scene_app, tmp_path):
    """The report pairs a result only with the plan it was computed for (no solver run needed:
    a moved probe is refused before anything is drawn)."""
    from types import SimpleNamespace

    from CryoAblationLogic.core.errors import InputError
    from CryoAblationLogic.scene.case_io import build_case
    from CryoAblationLogic.scene.plan_report import SimulatedPlan, write_plan_report

    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    nodes = scenarios.place_probes(scene_app.scene, parameters)
    scene_case = build_case(scene_app.scene, parameters)
    simulated_case = scene_case.parse()
    nodes[0].SetNthControlPointPositionWorld(0, [-20.0, 10.0, 4.0])
    result = SimpleNamespace(grid=scene_case.grid)
    with pytest.raises(InputError, match="probes changed"):
        write_plan_report(scene_app.scene, parameters, SimulatedPlan(simulated_case, result, None), tmp_path)


def test_replay_a_short_journal(tmp_path):
    path = scenarios.write_short_journal(tmp_path)
    state = scenarios.replay_short_journal(path)
    assert state.sensor_rows()[0][:2] == ("Probe 1 (thaw passive)", "-120.0")


def test_replay_check_notices_a_journal_that_differs(tmp_path):
    from CryoAblationLogic.igtl.messages import StringMessage
    from CryoAblationLogic.live.journal import Journal

    path = scenarios.write_short_journal(tmp_path)
    with Journal(tmp_path, scenarios.SHORT_JOURNAL_PROCEDURE) as journal:  # reopening appends
        journal.record_message(StringMessage(device_name="ProbeTemps", text="5.0, 6.0"), peer="console")
    with pytest.raises(scenarios.ScenarioFailure, match="last probe temperatures"):
        scenarios.replay_short_journal(path)


def test_live_procedure_and_its_replay(scene_app, tmp_path):
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    parameters.update_settings(grid_spacing_mm=4.0)
    journal = tmp_path / "live-short.jsonl"
    live = scenarios.run_short_live_procedure(scene_app.scene, parameters, journal)
    assert live.frames_sent >= 1 and live.scene_nodes.image_node is not None
    freezing = [t for t in live.overlay_times_s if t <= scenarios.LIVE_FREEZE_S]
    assert len(freezing) >= scenarios.LIVE_FREEZE_S  # at least one overlay per second of freezing
    replayed = scenarios.replay_live_procedure(journal, live.session)
    probe_readings = round(scenarios.LIVE_FREEZE_S / scenarios.LIVE_READING_EVERY_S)
    sensor_readings = probe_readings // 2
    assert len(replayed.samples) == probe_readings * len(parameters.probes()) + sensor_readings


def test_live_procedure_check_notices_an_overlay_that_lags(scene_app, tmp_path, monkeypatch):
    """The overlay check is not vacuous: an overlay refreshed only every 2 s of procedure time fails."""
    from CryoAblationLogic.scene.live_link import LiveScene

    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    parameters.update_settings(grid_spacing_mm=4.0)
    real_refresh = LiveScene.refresh_overlay

    def every_other_second(self, force=False):
        if not force and self.session.time_s % 2.0:
            return False
        return real_refresh(self, force)

    monkeypatch.setattr(LiveScene, "refresh_overlay", every_other_second)
    with pytest.raises(scenarios.ScenarioFailure, match="at least once per second"):
        scenarios.run_short_live_procedure(scene_app.scene, parameters, tmp_path / "lagging.jsonl")
