"""Live mode in a real MRML scene (slicer-core, no Qt) through our own client: the live volume is
updated in place, the probe line follows its pose, a freeze reaches the isotherm overlay, sensor
readings land in a table. (The OpenIGTLinkIF connector path needs Slicer with that module; only
its node → message mapping is checked here, on real MRML nodes.)"""

from __future__ import annotations

import time

import numpy as np
import pytest
from live_testing import TIP_MM, free_port, pose, sensor, small_case, stamped, state, temperatures

pytest.importorskip("slicer", reason="the scene mapping needs slicer-core")

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.igtl.messages import ImageMessage, TransformMessage
from CryoAblationLogic.igtl.transport import Server
from CryoAblationLogic.live.console import interpret
from CryoAblationLogic.live.journal import Journal, read_journal
from CryoAblationLogic.live.link import Endpoint, LiveLink
from CryoAblationLogic.live.mode import LiveSession
from CryoAblationLogic.live.runner import LIVE_COALESCED, replay_procedure
from CryoAblationLogic.live.simulator import probe_pose
from CryoAblationLogic.scene import probes, tables, volumes
from CryoAblationLogic.scene.app import create_scene_app
from CryoAblationLogic.scene.live_link import (
    ClientSource,
    ConnectorSource,
    LiveScene,
    LiveSceneDriver,
    choose_sources,
    node_to_message,
    start_live_scene,
)


def frame(value_offset: int, t: float) -> ImageMessage:
    voxels = (np.arange(20 * 16 * 5, dtype=np.int16).reshape(20, 16, 5) + value_offset).astype(np.int16)
    return stamped(
        ImageMessage(voxels, np.diag([1.5, 1.5, 4.0]), np.array([1.0, 2.0, 3.0]), device_name="MR Image"), t
    )


def pump(monitor: LiveSceneDriver, until, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out waiting for the scene"
        monitor.step(follow_wall_clock=False)
        time.sleep(0.01)


def test_messages_through_our_client_reach_the_scene_nodes(tmp_path):
    app = create_scene_app()
    scene = app.scene
    planned = probes.add_probe(scene, "P1", TIP_MM, (0.0, 0.0, 60.0), "argon-1.47mm")
    session = LiveSession(small_case(), update_interval_s=2.0)
    live = LiveScene(scene, session)
    journal = Journal(tmp_path, "procedure")
    console = Server(0)
    console.start()
    try:
        link = LiveLink(
            journal,
            scanner=None,
            console=Endpoint("client", "127.0.0.1", console.port),
            coalesce=LIVE_COALESCED,
        )
        monitor = LiveSceneDriver(live, [ClientSource(link)])
        monitor.start()
        assert link.links["console"].wait_connected(10.0)
        deadline = time.monotonic() + 10
        while not console.connected and time.monotonic() < deadline:
            time.sleep(0.01)

        # an image, then another of the same size: one node, one voxel buffer, new values
        console.send(frame(0, 0.0), stamp=False)
        pump(monitor, lambda: live.image_node is not None)
        node = live.image_node
        buffer = node.GetImageData()
        console.send(frame(1000, 0.5), stamp=False)
        pump(monitor, lambda: volumes.image_data_to_array(node.GetImageData())[0, 0, 0] == 1000)
        assert node.GetImageData() is buffer and live.image_node is node
        shown = volumes.image_data_to_array(node.GetImageData())
        np.testing.assert_array_equal(shown, frame(1000, 0.5).voxels)
        np.testing.assert_allclose(volumes.ijk_to_ras(node)[:3, :3], np.diag([1.5, 1.5, 4.0]))
        named = scene.GetNodesByName("Live MR")
        assert named.GetNumberOfItems() == 1

        # the plan's probe line follows the console's pose (3 mm to the right)
        console.send(pose(0.0, (3.0, 0.0, TIP_MM[2]), (3.0, 0.0, 60.0)), stamp=False)
        pump(monitor, lambda: probes.probe_tip_entry(planned)[0][0] > 2.9)
        tip, entry = probes.probe_tip_entry(planned)
        np.testing.assert_allclose(tip, (3.0, 0.0, TIP_MM[2]), atol=1e-4)
        np.testing.assert_allclose(entry, (3.0, 0.0, 60.0), atol=1e-3)
        assert live.probe_lines[1] is planned

        # a freeze reaches the overlay once the clock has passed it
        console.send(state("FREEZE 1", 2.0), stamp=False)
        for t in np.arange(3.0, 40.01, 1.0):
            console.send(temperatures(t, [-100.0]), stamp=False)
            console.send(sensor("TC1", t, 20.0), stamp=False)
        pump(monitor, lambda: session.clock_s >= 40.0 - 1e-6)
        assert live.overlay_time_s == pytest.approx(40.0)
        segmentation = live.isotherm_node.GetSegmentation()
        assert segmentation.GetNumberOfSegments() == 3
        assert live.overlay_volumes_ml[0.0] > 0.0
        shown_field, _ = volumes.volume_field(live.temperature_node)
        np.testing.assert_array_equal(shown_field, session.temperature_c)

        # readings beside the prediction, a table and a chart
        monitor.stop()
        measured = tables.table_column(live.sensor_table, "P1 measured")
        predicted = tables.table_column(live.sensor_table, "TC1 predicted")
        assert len(measured) == 38 and measured[-1] == pytest.approx(-100.0)
        tc1 = [s for s in session.samples if s.name == "TC1"]
        assert predicted == pytest.approx([s.predicted_c for s in tc1])
        assert live.sensor_chart.GetNumberOfPlotSeriesNodes() == 4
    finally:
        console.stop()
        journal.close()
    messages = [r for r in read_journal(tmp_path / "procedure.jsonl").records if r["kind"] == "message"]
    received = [r for r in messages if r["direction"] == "in"]
    assert len(received) == 3 + 1 + 2 * 38  # everything journaled, both images included
    # on connecting, the console was asked for its state (it answers nothing here)
    assert [(r["message_type"], r["device_name"]) for r in messages if r["direction"] == "out"] == [
        ("GET_STATUS", "Cryo")
    ]


def test_without_the_openigtlink_module_our_client_is_chosen(tmp_path):
    app = create_scene_app()
    with Journal(tmp_path, "procedure") as journal:
        sources = choose_sources(
            app.scene, journal, scanner=Endpoint("server", port=0), console=Endpoint("client", port=18999)
        )
    assert [s.kind for s in sources] == ["client"]
    assert sources[0].link.links["console"].port == 18999 and "scanner" in sources[0].link.links


def test_connector_nodes_turn_back_into_the_messages_they_came_from():
    scene = create_scene_app().scene
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Probe2ToScanner")
    matrix = np.eye(4)
    matrix[:3, 3] = (1.0, 2.0, 3.0)
    transform.SetMatrixTransformToParent(volumes.matrix_to_vtk(matrix))
    message = node_to_message(transform)
    assert isinstance(message, TransformMessage) and message.device_name == "Probe2ToScanner"
    (event,) = interpret(message, 5.0)
    assert event.probe == 2 and np.allclose(event.matrix, matrix)

    text = scene.AddNewNodeByClass("vtkMRMLTextNode", "CryoState")
    text.SetText("THAW 1 ACTIVE")
    (change,) = interpret(node_to_message(text))
    assert (change.probe, change.action, change.mode) == (1, "thaw", "active")
    temps = scene.AddNewNodeByClass("vtkMRMLTextNode", "ProbeTemps")
    temps.SetText('{"1": -120.5}')
    (reading,) = interpret(node_to_message(temps))
    assert reading.temperatures_c == {1: -120.5}

    voxels = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    image = volumes.add_volume_node(
        scene, "MR Image", voxels, Grid((5.0, 6.0, 7.0), (1.0, 2.0, 3.0), (4, 3, 2))
    )
    message = node_to_message(image)
    assert isinstance(message, ImageMessage)
    (scan,) = interpret(message)
    np.testing.assert_array_equal(scan.voxels, voxels)
    np.testing.assert_allclose(scan.ijk_to_ras, volumes.ijk_to_ras(image))
    assert node_to_message(scene.AddNewNodeByClass("vtkMRMLTableNode", "x")) is None


def test_scan_plane_and_scanner_commands_go_out_and_its_frames_come_back(tmp_path):
    from CryoAblationLogic.live.simulator import ScannerSimulator

    app = create_scene_app()
    port = free_port()
    journal_path = tmp_path / "procedure.jsonl"
    monitor = start_live_scene(
        app.scene, small_case(), journal_path, scanner=Endpoint("server", port=port), use_connector=False
    )
    (source,) = monitor.sources
    live = monitor.live_scene
    volume = np.arange(30 * 30 * 30, dtype=np.int16).reshape(30, 30, 30)
    scanner = ScannerSimulator(volume, np.diag([2.0, 2.0, 2.0, 1.0]), port=port, frame_interval_s=0.1)
    scanner.start()
    try:
        pump(monitor, lambda: source.link.connected("scanner"))
        slice_node = app.scene.AddNewNodeByClass("vtkMRMLSliceNode")
        slice_node.SetOrientationToCoronal()
        slice_node.UpdateMatrices()
        assert monitor.send_scan_plane_from_slice(slice_node) == 1
        command_id = monitor.send_scanner_command("START_SEQUENCE")
        pump(monitor, lambda: live.image_node is not None and not source.link.commands["scanner"].pending)
        expected = volumes.vtk_to_matrix(slice_node.GetSliceToRAS())
        np.testing.assert_allclose(scanner.plane_to_ras, expected, atol=1e-6)
        assert scanner.state == "Scanning" and command_id
        assert live.image_node.GetImageData().GetDimensions() == (64, 64, 1)
    finally:
        monitor.stop()
        scanner.stop()
    records = read_journal(journal_path).records
    sent = [r for r in records if r.get("direction") == "out"]
    assert [r["device_name"] for r in sent] == ["PLANE_0", f"CMD_{command_id}"]
    assert records[-1]["note"] == "stop"
    replayed, _ = replay_procedure(journal_path)  # the scene's journal replays like the monitor's
    images = [r for r in records if r.get("message_type") == "IMAGE"]
    assert replayed.image_count == len(images) >= monitor.session.image_count >= 1


class StandInConnector:
    """Only what ConnectorSource asks of a ``vtkMRMLIGTLConnectorNode``: the nodes it made from
    incoming messages (real MRML nodes here; no OpenIGTLinkIF in slicer-core)."""

    def __init__(self, nodes):
        self.nodes = nodes

    def GetNumberOfIncomingMRMLNodes(self):
        return len(self.nodes)

    def GetIncomingMRMLNode(self, index):
        return self.nodes[index]


def test_nodes_the_connector_updates_feed_the_session_and_journal(tmp_path):
    app = create_scene_app()
    scene = app.scene
    grid = Grid((0.0, 0.0, 0.0), (2.0, 2.0, 2.0), (6, 5, 4))
    image = volumes.add_volume_node(scene, "MR Image", np.zeros(grid.size, dtype=np.int16), grid)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Probe1ToScanner")
    text = scene.AddNewNodeByClass("vtkMRMLTextNode", "CryoState")
    text.SetText("OFF 1")
    session = LiveSession(small_case())
    live = LiveScene(scene, session)
    with Journal(tmp_path, "procedure") as journal:
        # a connector carrying the console's link (poses and states count only from the console)
        source = ConnectorSource(StandInConnector([image, transform, text]), journal, role="console")
        monitor = LiveSceneDriver(live, [source], silence_s=None)
        monitor.start()
        monitor.step()
        # What the connector's nodes held before start() is no message of this session: not the
        # identity of a transform node just created (it would move the probe to the origin), not
        # a previous session's last frame or state.
        assert live.image_node is None and session.states.get("P1", ("off",))[0] == "off"
        assert session.case.probes[0].tip_mm == pytest.approx(TIP_MM, abs=1e-6)
        volumes.set_volume_field(image, np.full(grid.size, 100, dtype=np.int16), grid)
        moved = np.asarray(probe_pose((3.0, 0.0, TIP_MM[2]), (3.0, 0.0, 60.0)))
        transform.SetMatrixTransformToParent(volumes.matrix_to_vtk(moved))
        text.SetText("FREEZE 1 80%")
        monitor.step()
        assert live.image_node is image  # the connector's own node, not a copy
        assert scene.GetNodesByName("Live MR").GetNumberOfItems() == 0
        monitor.stop()
    assert session.states["P1"] == ("freeze", 80.0, None)
    assert session.case.probes[0].tip_mm == pytest.approx((3.0, 0.0, TIP_MM[2]), abs=1e-4)
    records = read_journal(tmp_path / "procedure.jsonl").records
    assert [(r["message_type"], r["device_name"]) for r in records] == [
        ("IMAGE", "MR Image"),
        ("TRANSFORM", "Probe1ToScanner"),
        ("STRING", "CryoState"),
    ]


class StandInConnectorWithState(StandInConnector):
    """A stand-in that also has the connector's state, Start and Stop."""

    StateOff, StateWaitConnection, StateConnected = 0, 1, 2

    def __init__(self, nodes):
        super().__init__(nodes)
        self.state = self.StateOff

    def GetState(self):
        return self.state

    def Start(self):
        self.state = self.StateWaitConnection

    def Stop(self):
        self.state = self.StateOff


def test_each_step_exposes_its_events_with_their_peer_and_the_connectors_state(tmp_path):
    """What a panel needs after a step: the (peer, event) pairs of the messages, and a link event
    when the connector's connection comes up or goes down; stopping frees the connector."""
    from CryoAblationLogic.igtl.inbox import LinkEvent
    from CryoAblationLogic.live.console import ProbeStateChange

    scene = create_scene_app().scene
    text = scene.AddNewNodeByClass("vtkMRMLTextNode", "CryoState")
    text.SetText("OFF 1")
    connector = StandInConnectorWithState([text])
    live = LiveScene(scene, LiveSession(small_case()))
    with Journal(tmp_path, "procedure") as journal:
        monitor = LiveSceneDriver(live, [ConnectorSource(connector, journal, "console")], silence_s=None)
        monitor.start()
        assert connector.state == connector.StateWaitConnection
        monitor.step()
        assert monitor.events == []  # the text the node held before start() is not news
        text.SetText("FREEZE 1 50%")
        monitor.step()
        assert [(peer, type(e).__name__) for peer, e in monitor.events] == [("console", "ProbeStateChange")]
        connector.state = connector.StateConnected
        text.SetText("FREEZE 1 100%")
        monitor.step()
        (link_peer, link_event), (peer, change) = monitor.events
        assert link_peer == peer == "console" and isinstance(link_event, LinkEvent)
        assert link_event.kind == "connected" and isinstance(change, ProbeStateChange)
        monitor.step()
        assert monitor.events == []
        monitor.stop()
    assert connector.state == connector.StateOff


def test_our_clients_link_events_reach_the_step_events(tmp_path):
    console = Server(0)
    console.start()
    live = LiveScene(create_scene_app().scene, LiveSession(small_case()))
    link = LiveLink(
        Journal(tmp_path, "procedure"),
        scanner=None,
        console=Endpoint("client", "127.0.0.1", console.port),
        coalesce=LIVE_COALESCED,
    )
    monitor = LiveSceneDriver(live, [ClientSource(link)], silence_s=None, journal=link.journal)
    monitor.start()
    seen: list = []
    try:
        deadline = time.monotonic() + 10
        while not any(getattr(e, "kind", "") == "connected" for _, e in seen):
            assert time.monotonic() < deadline, "no connected event"
            monitor.step()
            seen += monitor.events
            time.sleep(0.01)
        while not console.connected:  # the console's accept thread may lag behind our client
            assert time.monotonic() < deadline, "the console did not see us"
            time.sleep(0.01)
        console.send(state("FREEZE 1 100%", 0.0), stamp=False)
        seen_before = len(seen)
        while not any(type(e).__name__ == "ProbeStateChange" for _, e in seen[seen_before:]):
            assert time.monotonic() < deadline, "the freeze did not come"
            monitor.step()
            seen += monitor.events
            time.sleep(0.01)
    finally:
        monitor.stop()
        console.stop()
    assert [(peer, type(e).__name__) for peer, e in seen] == [
        ("console", "LinkEvent"),
        ("console", "ProbeStateChange"),
    ]


def test_a_second_live_session_reuses_the_scene_nodes_of_the_first(tmp_path):
    scene = create_scene_app().scene
    first = LiveScene(scene, LiveSession(small_case()))
    first.show_image(interpret(frame(0, 0.0))[0])
    first.refresh_overlay(force=True)
    first.refresh_sensor_table(force=True)
    second = LiveScene(scene, LiveSession(small_case()))
    for name in ("image_node", "temperature_node", "isotherm_node", "sensor_table", "sensor_chart"):
        assert getattr(second, name) is getattr(first, name) is not None, name
    second.refresh_overlay(force=True)
    for node_name in ("Live MR", "Live temperature", "Live isotherms"):
        assert scene.GetNodesByName(node_name).GetNumberOfItems() == 1
