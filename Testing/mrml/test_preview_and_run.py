"""The live preview updates the isotherm overlay off the main thread, coalescing bursts of probe
moves; the full run reports progress, can be cancelled, and puts its result into the scene."""

from __future__ import annotations

import itertools
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from vtkmodules.vtkFiltersCore import vtkMassProperties

from CryoAblationLogic.physics.simulation import SimulationCancelled, simulate
from CryoAblationLogic.scene import case_io, probes, workflow
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.isotherms import isotherm_surface, segmentation_levels, surface_volume_ml
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
from CryoAblationLogic.scene.preview import LivePreview
from CryoAblationLogic.scene.solver_process import SolverProcess

SHORT_PROTOCOL = [{"action": "freeze", "duration_s": 120, "probes": "all", "flow_percent": 100}]


@pytest.fixture
def coarse_plan(scene_app):
    """The phantom plan on a 3 mm grid around the target, with a 2-minute freeze: quick to run."""
    scene = scene_app.scene
    parameters = build_phantom_scene(scene, scene_app.segmentations_logic, spacing_mm=3.0)
    parameters.update_settings(
        protocol=SHORT_PROTOCOL,
        snapshot_times_s=[],
        roi_margin_mm=12.0,
        playback_interval_s=60.0,
        preview_spacing_mm=3.0,
        preview_duration_s=90.0,
        preview_roi_margin_mm=12.0,
    )
    return scene, parameters


def wait_for_overlay(preview: LivePreview, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not preview.process_pending():
        if preview.last_error is not None:
            raise preview.last_error
        assert time.monotonic() < deadline, "the preview did not arrive"
        time.sleep(0.01)


def test_preview_overlay_follows_a_moved_probe(coarse_plan):
    scene, parameters = coarse_plan
    preview = LivePreview(scene, parameters)
    try:
        preview.request()
        wait_for_overlay(preview)
        overlay = parameters.get(P.PREVIEW_SEGMENTATION)
        assert segmentation_levels(overlay) == [0.0, -20.0, -40.0]
        before = surface_volume_ml(isotherm_surface(overlay, 0.0))
        assert before > 0.5  # three probes freezing for 90 s make a few millilitres of ice
        center_before = isotherm_surface(overlay, 0.0).GetCenter()

        for probe in parameters.probes():  # drag all probes 6 mm to the right
            tip, entry = probes.probe_tip_entry(probe)
            probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + np.array([6.0, 0, 0])).tolist())
            probe.SetNthControlPointPositionWorld(
                probes.ENTRY_INDEX, (entry + np.array([6.0, 0, 0])).tolist()
            )
        preview.request()
        wait_for_overlay(preview)
        center_after = isotherm_surface(overlay, 0.0).GetCenter()
        assert center_after[0] - center_before[0] == pytest.approx(6.0, abs=1.5)
        assert parameters.get(P.ISOTHERM_SEGMENTATION) is None  # the result overlay is left alone
    finally:
        preview.stop()


def test_a_burst_of_moves_is_coalesced_and_only_the_newest_is_shown(coarse_plan):
    scene, parameters = coarse_plan
    parameters.update_settings(preview_debounce_s=0.2, roi_margin_mm=None)  # preview picks its region
    calls = []
    grids = []
    release = threading.Event()

    def counting_preview(case, spacing_mm, duration_s):
        calls.append([p.tip_mm for p in case.probes])
        grids.append(case.grid)
        release.wait(10.0)
        return simulate_stub(case)

    preview = LivePreview(scene, parameters, run_preview=counting_preview, max_latency_s=5.0)
    probe = parameters.probes()[0]
    tip = probes.probe_tip_entry(probe)[0]
    try:
        for step in range(8):  # a drag: eight moves 20 ms apart
            probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + np.array([step, 0, 0])).tolist())
            preview.request()
            time.sleep(0.02)
        release.set()
        assert preview.wait_until_idle(20.0)
        assert preview.process_pending()
        assert len(calls) == 1  # one computation for the whole burst ...
        assert np.allclose(calls[0][0], tip + np.array([7.0, 0, 0]))  # ... with the final position
        assert preview.last_applied_generation == 8
        # the preview grid is a box around target and probes, not the whole image
        whole = case_io.build_case(scene, parameters).grid
        assert np.prod(grids[0].size) < 0.5 * np.prod(whole.size)
    finally:
        preview.stop()


def simulate_stub(case):
    """A cheap stand-in result for threading tests: uniform body temperature on the case grid."""
    return SimpleNamespace(grid=case.grid, temperature_final=np.full(case.grid.size, 37.0, np.float32))


def test_preview_error_is_reported_not_raised(coarse_plan):
    scene, parameters = coarse_plan

    def failing_preview(case, spacing_mm, duration_s):
        raise RuntimeError("solver exploded")

    preview = LivePreview(scene, parameters, run_preview=failing_preview)
    try:
        preview.request()
        assert preview.wait_until_idle(20.0)
        assert not preview.process_pending()
        assert "exploded" in str(preview.last_error)
    finally:
        preview.stop()


@pytest.mark.parametrize("where", ["thread", "process"])
def test_full_run_reports_progress_and_fills_the_scene(coarse_plan, where):
    """In a worker thread (command line) or a worker process (the Slicer module): the job returns
    the case simulated and its result together, with what the scene shows of them."""
    scene, parameters = coarse_plan
    solver = SolverProcess() if where == "process" else None
    try:
        job = workflow.SimulationJob(scene, parameters, solver=solver)
        job.start()
        assert job.wait(120.0)
        assert job.error is None, job.error
        finished = job.poll()
    finally:
        if solver is not None:
            solver.stop()
    assert finished is not None and job.poll() is None  # applied once
    assert finished.result is job._result and finished.result.simulated_s == pytest.approx(120.0)
    assert [probe.name for probe in finished.case.probes] == [p.GetName() for p in parameters.probes()]
    assert job.progress == pytest.approx(1.0) and job.simulated_s == pytest.approx(120.0)
    nodes = finished.plan.nodes
    assert nodes.temperature_sequence.GetNumberOfDataNodes() == 2  # 60 s and 120 s
    # the isotherm segments enclose the solver's own isotherm volumes within a voxel layer
    result_volumes = job._result.isotherm_volumes_ml
    for level, volume in nodes.isotherm_volumes_ml.items():
        surface = isotherm_surface(nodes.isotherms, level)
        area_mm2 = surface_area_mm2(surface)
        layer_ml = area_mm2 * 3.0 / 1000
        assert volume == pytest.approx(result_volumes[level], abs=layer_ml)
    assert parameters.get(P.METRICS_TABLE) is finished.plan.metrics_table
    assert finished.plan.metrics_table.GetNumberOfRows() == 3
    assert finished.plan.nodes.sensor_chart.GetNumberOfPlotSeriesNodes() == 2


def test_full_result_hides_the_preview_overlay(coarse_plan):
    scene, parameters = coarse_plan
    preview = LivePreview(scene, parameters, run_preview=lambda case, spacing, duration: simulate_stub(case))
    try:
        preview.request()
        wait_for_overlay(preview)
    finally:
        preview.stop()
    overlay = parameters.get(P.PREVIEW_SEGMENTATION)
    assert overlay.GetDisplayNode().GetVisibility()
    job = workflow.SimulationJob(scene, parameters)
    job.start()
    assert job.wait(120.0) and job.poll() is not None
    assert not overlay.GetDisplayNode().GetVisibility()


def surface_area_mm2(surface) -> float:
    mass = vtkMassProperties()
    mass.SetInputData(surface)
    mass.Update()
    return mass.GetSurfaceArea()


def test_full_run_can_be_cancelled(coarse_plan):
    scene, parameters = coarse_plan
    started = threading.Event()

    def slow_simulation(case, progress, cancel, times):
        def watching_progress(fraction, time_s):
            started.set()
            progress(fraction, time_s)

        return simulate(
            case, progress=watching_progress, cancel=lambda: cancel() or False, snapshot_times_s=times
        )

    job = workflow.SimulationJob(scene, parameters, run_simulation=slow_simulation)
    job.cancel()  # cancelled before the first step: the solver stops at once
    job.start()
    assert job.wait(60.0)
    assert isinstance(job.error, SimulationCancelled)
    assert job.poll() is None
    assert parameters.get(P.TEMPERATURE_VOLUME) is None  # nothing half-done in the scene


def test_playback_frames_cover_the_protocol():
    data = {
        "protocol": [
            {"action": "freeze", "duration_s": 600},
            {"action": "thaw", "duration_s": 480},
            {"action": "freeze", "duration_s": 600},
        ],
        "outputs": {"snapshot_times_s": [1000.0, 5000.0]},
    }
    times = workflow.playback_times(data, 300.0)
    # every 300 s, the step boundaries (600, 1080, 1680) and the case's snapshot inside the run
    assert times == [300.0, 600.0, 900.0, 1000.0, 1080.0, 1200.0, 1500.0, 1680.0]
    with pytest.raises(ValueError, match="positive"):
        workflow.playback_times(data, 0.0)


def test_simulate_scene_runs_the_case_the_scene_describes(coarse_plan):
    scene, parameters = coarse_plan
    progress = []
    scene_case, result = workflow.simulate_scene(scene, parameters, progress=lambda f, t: progress.append(f))
    assert result.grid == scene_case.grid
    assert sorted(result.snapshots) == [60.0, 120.0]
    assert progress and progress[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in itertools.pairwise(progress))


def test_dragging_a_followed_probe_requests_a_preview(coarse_plan):
    """The wiring the Slicer module uses: needle follower → preview request → overlay."""
    scene, parameters = coarse_plan
    computed = []

    def recording_preview(case, spacing_mm, duration_s):
        computed.append(case.probes[0].tip_mm)
        return simulate_stub(case)

    preview = LivePreview(scene, parameters, run_preview=recording_preview)
    follower = probes.NeedleFollower(probes.default_catalog(), on_probe_moved=preview.request)
    try:
        follower.follow_all(scene)
        probe = parameters.probes()[0]
        tip, _ = probes.probe_tip_entry(probe)
        probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + np.array([0.0, 0.0, 3.0])).tolist())
        wait_for_overlay(preview)
        np.testing.assert_allclose(computed[-1], tip + np.array([0.0, 0.0, 3.0]))
        overlay = parameters.get(P.PREVIEW_SEGMENTATION)
        assert overlay.GetSegmentation().GetNumberOfSegments() == 3
        assert overlay.GetDisplayNode().GetVisibility()
    finally:
        follower.stop()
        preview.stop()
