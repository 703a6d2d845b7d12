"""Live mode's worker process (scene/live_process.py): what main-thread sources bring (Slicer's
OpenIGTLinkIF connector) is journaled and fed in the worker; a worker that cannot start says why."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the live scene nodes are slicer-core's MRML")

import CryoAblationScenarios as scenarios
from live_sources import MainThreadSource

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import StringMessage, timestamp_from_seconds
from CryoAblationLogic.live.journal import read_journal
from CryoAblationLogic.live.runner import replay_procedure
from CryoAblationLogic.scene.case_io import build_case
from CryoAblationLogic.scene.live_link import CONNECTOR_PEER
from CryoAblationLogic.scene.live_process import LiveProcessDriver


@pytest.fixture
def plan(scene_app):
    parameters = scenarios.load_phantom(scene_app.scene, scene_app.segmentations_logic)
    scenarios.place_probes(scene_app.scene, parameters)
    parameters.update_settings(grid_spacing_mm=4.0)
    return scene_app.scene, build_case(scene_app.scene, parameters).parse()


def test_messages_of_a_main_thread_source_are_journaled_and_fed_in_the_worker(plan, tmp_path):
    scene, case = plan
    start = float(int(time.time()))
    messages = [StringMessage(device_name="CryoState", text="FREEZE 1 100%")]
    messages += [StringMessage(device_name="ProbeTemps", text="-20.0") for _ in range(3)]
    for seconds, message in enumerate(messages):
        message.timestamp_raw = timestamp_from_seconds(start + 10.0 * seconds)  # 30 s of freezing
    journal = tmp_path / "connector.jsonl"
    driver = LiveProcessDriver(
        scene, case, journal, sources=[MainThreadSource(messages)], silence_s=None, update_interval_s=1.0
    )
    deadline = time.monotonic() + 300.0  # a worker without a numba cache compiles the kernels first
    while driver.session.console_messages < len(messages):
        assert time.monotonic() < deadline, "the worker did not take the forwarded messages"
        driver.step()
        time.sleep(0.01)
    driver.stop()
    assert driver.session.states[case.probes[0].name][0] == "freeze"
    assert driver.session.clock_s == pytest.approx(30.0)
    assert float(np.min(driver.live_scene.session.temperature_c)) < 0.0  # the overlay froze
    records = [r for r in read_journal(journal).records if r["kind"] == "message"]
    assert [r["peer"] for r in records] == [CONNECTOR_PEER] * len(messages)  # journaled once, in the worker
    replayed, _ = replay_procedure(journal)
    assert np.array_equal(replayed.temperature_c, driver.session.temperature_c)


def _ice_ball(case, radius_mm: float) -> np.ndarray:
    """0 °C at ``radius_mm`` from the probes' active centre, 4 °C/mm outside, body temperature far out."""
    centre = np.mean([np.mean(p.active_segment_mm(), axis=0) for p in case.probes], axis=0)
    x, y, z = np.meshgrid(*(case.grid.axis_mm(a) for a in range(3)), indexing="ij")
    r = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    return np.clip(4.0 * (r - radius_mm), -150.0, 37.0)


def test_the_ice_the_worker_observes_reaches_the_scenes_observed_ice_nodes(plan, tmp_path):
    """Live mode tracks the ice in the worker; the panel's scene shows it all the same: the
    "Observed ice" segmentation and the observed-against-predicted table, as in process."""
    from CryoAblationLogic.io import mr_synthesis as mr
    from CryoAblationLogic.live.synthetic import mr_image_message, volume_grid
    from CryoAblationLogic.scene.observed_ice import OBSERVED_ICE_NODE_NAME, OBSERVED_TABLE_NAME
    from CryoAblationLogic.scene.tables import table_column

    scene, case = plan
    start = float(int(time.time()))

    def volume(field, seed, t):
        image = mr.render_volume(field, case.grid, case.probes, grid=volume_grid(case.grid, 4.0), seed=seed)
        message = mr_image_message(image, "MR Volume")
        message.timestamp_raw = timestamp_from_seconds(start + t)
        return message

    freeze = StringMessage(device_name="CryoState", text="FREEZE 1 100%")
    freeze.timestamp_raw = timestamp_from_seconds(start + 1.0)
    warm = np.full(case.grid.size, 37.0)
    messages = [volume(warm, 5, 0.0), freeze, volume(_ice_ball(case, 15.0), 6, 30.0)]
    driver = LiveProcessDriver(
        scene, case, tmp_path / "ice.jsonl", sources=[MainThreadSource(messages)], silence_s=None
    )
    deadline = time.monotonic() + 300.0  # a worker without a numba cache compiles the kernels first
    try:
        while driver.session.ice is None or driver.session.ice.counts.get("observed", 0) < 1:
            assert time.monotonic() < deadline, "the worker's observed ice did not reach the main thread"
            driver.step()
            time.sleep(0.01)
    finally:
        driver.stop()
    node = scene.GetFirstNodeByName(OBSERVED_ICE_NODE_NAME)
    assert node is not None and node.GetSegmentation().GetNumberOfSegments() == 1
    assert driver.session.ice.counts["baseline"] == 1
    assert int(driver.session.ice.ice_map.sum()) > 0  # frozen voxels on the plan grid
    table = scene.GetFirstNodeByName(OBSERVED_TABLE_NAME)
    assert table_column(table, "Image") == ["MR Volume"]


def test_a_live_worker_that_cannot_open_its_journal_says_why(plan, tmp_path):
    scene, case = plan
    # the worker's InputError comes back as itself, with its key, raised where live mode is switched on
    with pytest.raises(InputError, match=r"journal: .* a journal is a \.jsonl file") as refused:
        LiveProcessDriver(scene, case, tmp_path / "not a journal.txt", silence_s=None)
    assert refused.value.reason.endswith("a journal is a .jsonl file")
