"""Interop with pyigtl, a second independent implementation (only for the types it handles
correctly: TRANSFORM, 3-D IMAGE, STRING, POINT; one connection per pyigtl server; wait=False)."""

from __future__ import annotations

import signal
import time

import numpy as np
import pyigtl
import pytest

from CryoAblationLogic.igtl import ImageMessage, PointEntry, PointMessage, StringMessage, TransformMessage
from CryoAblationLogic.igtl.inbox import Inbox, messages_of
from CryoAblationLogic.igtl.transport import Client, Server

TIMEOUT_S = 15.0


def _pose() -> np.ndarray:
    angle = np.deg2rad(30.0)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    matrix[:3, 3] = (12.5, -40.0, 7.25)
    return matrix


def _ijk_to_ras() -> np.ndarray:
    matrix = np.diag([0.8, 0.8, 3.0, 1.0])
    matrix[:3, 3] = (-100.0, -90.0, 20.0)
    return matrix


def test_pyigtl_client_to_our_server(port):
    volume_kji = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # pyigtl orders (k, j, i)
    with Server(port=port, inbox=Inbox(coalesce=frozenset())) as server:
        client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not server.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            client.send_message(pyigtl.TransformMessage(_pose(), device_name="Probe1ToScanner"), wait=False)
            client.send_message(pyigtl.StringMessage("FREEZE 1", device_name="CryoState"), wait=False)
            client.send_message(
                pyigtl.ImageMessage(
                    volume_kji,
                    ijk_to_world_matrix=_ijk_to_ras(),
                    world_coordinate_system="ras",
                    device_name="MR Image",
                ),
                wait=False,
            )
            client.send_message(
                pyigtl.PointMessage(
                    positions=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], names=["A", "B"], device_name="Tgt"
                ),
                wait=False,
            )
            taken = []
            while len(messages_of(taken)) < 4 and time.monotonic() < deadline:
                item = server.inbox.get(0.05)
                if item is not None:
                    taken.append(item)
        finally:
            client.stop()
    transform, string, image, point = messages_of(taken)
    np.testing.assert_allclose(transform.matrix, _pose(), atol=1e-6)
    assert (transform.device_name, string.text, string.device_name) == (
        "Probe1ToScanner",
        "FREEZE 1",
        "CryoState",
    )
    np.testing.assert_array_equal(image.voxels, volume_kji.transpose(2, 1, 0))
    np.testing.assert_allclose(image.ijk_to_world, _ijk_to_ras(), atol=1e-5)
    assert image.coordinate_system == "RAS"
    assert [p.name for p in point.points] == ["A", "B"]
    assert point.points[1].position_mm == (4.0, 5.0, 6.0)


@pytest.fixture
def pyigtl_server(port):
    """A pyigtl server; its constructor replaces SIGINT/SIGTERM handlers (defect B8): restore them."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    try:
        yield server
    finally:
        server.stop()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_our_client_to_pyigtl_server(pyigtl_server, port):
    volume = np.arange(4 * 3 * 2, dtype=np.uint16).reshape(4, 3, 2)
    with Client(port=port) as client:
        assert client.wait_connected(TIMEOUT_S)
        client.send(TransformMessage(_pose(), device_name="PLANE_0"))
        client.send(StringMessage("START_SEQUENCE", device_name="CMD_42"))
        client.send(
            ImageMessage.from_volume(volume, (-100.0, -90.0, 20.0), (0.8, 0.8, 3.0), device_name="Img")
        )
        client.send(PointMessage([PointEntry("Tip", (7.0, 8.0, 9.0), 2.0, "Probes")], device_name="Pts"))
        plane = pyigtl_server.wait_for_message("PLANE_0", timeout=TIMEOUT_S)
        command = pyigtl_server.wait_for_message("CMD_42", timeout=TIMEOUT_S)
        image = pyigtl_server.wait_for_message("Img", timeout=TIMEOUT_S)
        points = pyigtl_server.wait_for_message("Pts", timeout=TIMEOUT_S)
    assert plane is not None and command is not None and image is not None and points is not None
    np.testing.assert_allclose(plane.matrix, _pose(), atol=1e-6)
    assert command.string == "START_SEQUENCE"
    np.testing.assert_array_equal(image.image, volume.transpose(2, 1, 0))
    np.testing.assert_allclose(image.ijk_to_world_matrix, _ijk_to_ras(), atol=1e-5)
    np.testing.assert_allclose(points.positions, [[7.0, 8.0, 9.0]])
