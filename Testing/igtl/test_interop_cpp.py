"""Interop with the C++ reference implementation (Debian openigtlink 1.11 example programs).

Each test starts the real program on its own port, talks to it over loopback and checks what
it prints or sends. ReceiveServer unpacks with the CRC check on and prints a message only when
the check passes, so its printout proves our bytes are right.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from CryoAblationLogic.igtl import (
    ImageMessage,
    PointEntry,
    PointMessage,
    PositionMessage,
    QueryMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
)
from CryoAblationLogic.igtl.inbox import Inbox, LinkEvent, messages_of
from CryoAblationLogic.igtl.transport import Client, Server

TIMEOUT_S = 15.0


def _collect(inbox: Inbox, count: int, message_type: str, timeout_s: float = TIMEOUT_S, device_name=None):
    taken = []
    deadline = time.monotonic() + timeout_s
    while len(messages_of(taken, message_type, device_name)) < count and time.monotonic() < deadline:
        item = inbox.get(0.05)
        if item is not None:
            taken.append(item)
    found = messages_of(taken, message_type, device_name)
    assert len(found) >= count, f"got {len(found)} {message_type} of {count} in {timeout_s} s: {taken[-5:]}"
    return taken


def _printed_matrices(text: str) -> list[np.ndarray]:
    """Matrices printed by igtl::PrintMatrix: four comma-separated rows between '=====' lines."""
    blocks = re.findall(r"=+\n((?:[-\d.e+, ]+\n){4})=+", text)
    return [
        np.array([[float(v) for v in row.split(",")] for row in block.strip().splitlines()])
        for block in blocks
    ]


def test_images_from_imager_server_match_its_raw_files(start_peer, peer_images, port):
    start_peer("ImagerServer", port, 50, peer_images).wait_listening(port)
    with Client(port=port, inbox=Inbox(coalesce=frozenset())) as client:
        taken = _collect(client.inbox, 7, "IMAGE")
    images = messages_of(taken, "IMAGE")
    for n, image in enumerate(images[:7]):
        assert image.device_name == "ImagerClient"
        assert image.voxels.shape == (256, 256, 1) and image.voxels.dtype == np.uint8
        np.testing.assert_allclose(image.spacing_mm, [1.0, 1.0, 5.0], rtol=1e-6)
        # The server cycles igtlTestImage1..5.raw (row-major 256 × 256: i fastest).
        raw = (peer_images / f"igtlTestImage{n % 5 + 1}.raw").read_bytes()
        np.testing.assert_array_equal(image.voxels[:, :, 0].T, np.frombuffer(raw, np.uint8).reshape(256, 256))


def test_transforms_from_tracker_server_match_its_printout(start_peer, port):
    tracker = start_peer("TrackerServer", port, 100)
    tracker.wait_listening(port)
    with Client(port=port, inbox=Inbox(coalesce=frozenset())) as client:
        taken = _collect(client.inbox, 20, "TRANSFORM")
    transforms = messages_of(taken, "TRANSFORM")[:20]
    printed = _printed_matrices(tracker.wait_output("=============", 40))[:20]
    assert len(printed) == 20
    for message, expected in zip(transforms, printed, strict=True):
        assert message.device_name == "Tracker" and message.timestamp_raw == 0
        np.testing.assert_allclose(message.matrix, expected, rtol=1e-5, atol=1e-5)  # 6 digits printed
    assert transforms[0].matrix[0, 3] == pytest.approx(50.0)  # pos = 50 (cos φ, sin φ, cos φ), φ = 0


def test_named_transforms_from_tracker_client3_reach_our_server(start_peer, port):
    with Server(port=port, inbox=Inbox(coalesce=frozenset())) as server:
        start_peer("TrackerClient3", "127.0.0.1", server.port, 50, "Probe1ToScanner", "Probe2ToScanner")
        taken = _collect(server.inbox, 3, "TRANSFORM", device_name="Probe2ToScanner")
    names = [m.device_name for m in messages_of(taken, "TRANSFORM")]
    assert {"Probe1ToScanner", "Probe2ToScanner"} <= set(names)
    assert names[:2] == ["Probe1ToScanner", "Probe2ToScanner"]  # round robin
    assert all(m.timestamp_s > 1.5e9 for m in messages_of(taken, "TRANSFORM"))  # it stamps them
    for m in messages_of(taken, "TRANSFORM"):
        np.testing.assert_allclose(m.matrix[:3, :3] @ m.matrix[:3, :3].T, np.eye(3), atol=1e-5)


def test_our_messages_pass_receive_server_crc_checks(start_peer, port):
    receiver = start_peer("ReceiveServer", port)
    receiver.wait_listening(port)
    plane = np.array([[0.0, -1.0, 0.0, 12.5], [1.0, 0.0, 0.0, -7.25], [0.0, 0.0, 1.0, 40.0], [0, 0, 0, 1]])
    volume = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    with Client(port=port) as client:
        assert client.wait_connected(TIMEOUT_S)
        client.send(TransformMessage(plane, device_name="PLANE_0"))
        client.send(StringMessage("START_SEQUENCE", device_name="CMD_0001"))
        client.send(StatusMessage(13, 2, "DNR", "Probe 2 not ready", device_name="Cryo"))
        client.send(
            PointMessage([PointEntry("Target1", (10.0, 20.0, 30.0), 5.0, "Targets", (255, 0, 0, 255))])
        )
        client.send(ImageMessage.from_volume(volume, (0, 0, 0), (0.5, 0.75, 3.0), device_name="MR Image"))
        client.send(PositionMessage((1.5, -2.0, 30.0), (0.0, 0.0, 0.6, 0.8), device_name="Probe1Tip"))
        # Header version 2 is capped at 1 by default: Debian's 1.11 cannot parse version 2.
        client.send(StringMessage("after v2", device_name="CMD_0002", header_version=2, metadata={"k": "v"}))
        out = receiver.wait_output("String: after v2")
    assert np.allclose(_printed_matrices(out)[0], plane, atol=1e-5)
    assert "Encoding: 3; String: START_SEQUENCE" in out
    assert re.search(
        r"Code\s*: 13\n\s*SubCode\s*: 2\n\s*Error Name: DNR\n\s*Status\s*: Probe 2 not ready", out
    )
    assert "Name      : Target1" in out and "GroupName : Targets" in out
    assert "Position  : ( 10.000000, 20.000000, 30.000000 )" in out
    assert re.search(r"Device Name\s*: MR Image", out)
    assert re.search(r"Dimensions\s*: \(\s*4,\s*3,\s*2\s*\)", out)
    assert "Spacing               : (0.500000, 0.750000, 3.000000)" in out
    assert "Scalar Type           : 4" in out  # int16
    # POSITION in the spec's 28-byte form (pyigtl's 136-byte records print zeros here, defect B1).
    printed = re.search(r"position\s*= \(([^)]*)\)\n\s*quaternion = \(([^)]*)\)", out)
    assert printed, out
    np.testing.assert_allclose([float(v) for v in printed.group(1).split(",")], [1.5, -2.0, 30.0], atol=1e-6)
    np.testing.assert_allclose(
        [float(v) for v in printed.group(2).split(",")], [0.0, 0.0, 0.6, 0.8], atol=1e-6
    )


def test_string_round_trip_through_string_echo_server(start_peer, port):
    echo = start_peer("StringEchoServer", port)
    echo.wait_listening(port)
    with Client(port=port, inbox=Inbox(coalesce=frozenset())) as client:
        assert client.wait_connected(TIMEOUT_S)
        client.send(StringMessage("SET_FREEZE 1", device_name="CMD_17"))
        client.send(StringMessage("Probe 1 at −40 °C", device_name="CMD_18"))  # UTF-8 (MIBenum 106)
        taken = _collect(client.inbox, 2, "STRING")
    replies = messages_of(taken, "STRING")
    assert [r.device_name for r in replies] == ["StringEchoServer", "StringEchoServer"]
    assert [r.text for r in replies] == ["SET_FREEZE 1", "Probe 1 at −40 °C"]
    assert replies[1].encoding == 106
    assert "Echoing: SET_FREEZE 1" in echo.output()


def test_status_from_status_server(start_peer, port):
    start_peer("StatusServer", port).wait_listening(port)
    with Client(port=port) as client:
        taken = _collect(client.inbox, 1, "STATUS")
    status = messages_of(taken, "STATUS")[0]
    assert (status.device_name, status.code, status.subcode, status.error_name) == ("Device", 1, 128, "OK!")
    assert status.status_message == "This is a test to send status message."


def test_client_reconnects_after_the_peer_is_killed_and_restarted(start_peer, port):
    first = start_peer("TrackerServer", port, 100)
    first.wait_listening(port)
    with Client(port=port, inbox=Inbox(coalesce=frozenset()), reconnect_interval_s=0.1) as client:
        _collect(client.inbox, 5, "TRANSFORM")
        # TrackerServer never reads: bytes left unread make the kernel reset the connection when
        # the process dies, instead of leaving the port in TIME_WAIT (the example servers do not
        # set SO_REUSEADDR, so a restart on the same port would otherwise fail for a minute).
        client.send(StringMessage("unread", device_name="X"))
        time.sleep(0.1)
        first.process.kill()
        first.process.wait(5)
        _, taken = client.inbox.wait_for(
            lambda i: isinstance(i, LinkEvent) and i.kind == "disconnected", TIMEOUT_S
        )
        assert any(isinstance(i, LinkEvent) and i.kind == "disconnected" for i in taken)
        second = start_peer("TrackerServer", port, 100)
        second.wait_listening(port)
        after = _collect(client.inbox, 5, "TRANSFORM")
    assert any(isinstance(i, LinkEvent) and i.kind == "connected" for i in after)
    assert messages_of(after, "TRANSFORM")[0].matrix[0, 3] == pytest.approx(50.0)  # a fresh sequence


def test_client_rides_over_the_servers_100_message_drop(start_peer, port):
    start_peer("TrackerServer", port, 500).wait_listening(port)
    with Client(port=port, inbox=Inbox(coalesce=frozenset()), reconnect_interval_s=0.05) as client:
        taken = _collect(client.inbox, 130, "TRANSFORM", timeout_s=30)
    kinds = [i.kind for i in taken if isinstance(i, LinkEvent)]
    assert kinds.count("connected") >= 2 and "disconnected" in kinds


def test_tracking_stream_started_and_stopped_with_stt_and_stp_tdata(start_peer, port):
    server = start_peer("TrackingDataServer", port)
    server.wait_listening(port)
    with Client(port=port, inbox=Inbox(coalesce=frozenset()), reconnect_interval_s=5) as client:
        assert client.wait_connected(TIMEOUT_S)
        client.send(
            QueryMessage("STT", "TDATA", resolution_ms=20, coordinate_name="Scanner", device_name="Tracker")
        )
        taken = _collect(client.inbox, 3, "TDATA")
        client.send(QueryMessage("STP", "TDATA", device_name="Tracker"))
        _, after = client.inbox.wait_for(
            lambda i: isinstance(i, LinkEvent) and i.kind == "disconnected", TIMEOUT_S
        )
    out = server.wait_output("Received a STP_TDATA message.")
    assert "Interval = 20 (ms)" in out  # our STT_TDATA body passed its CRC check and was read right
    tracking = messages_of(taken, "TDATA")[0]
    assert tracking.device_name == "Tracker"
    assert [e.name for e in tracking.elements] == ["Channel 0", "Channel 1", "Channel 2"]
    assert [e.tool_type for e in tracking.elements] == [1, 2, 4]  # tracker, 6D, 5D
    for element in tracking.elements:
        rotation = element.matrix[:3, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    assert any(isinstance(i, LinkEvent) and i.kind == "disconnected" for i in after)  # STP closes it
