"""The MR bridge and cryo console simulators, alone and through LiveLink on loopback."""

from __future__ import annotations

import time

import numpy as np
import pytest

from CryoAblationLogic.igtl import StatusMessage, StringMessage, TransformMessage
from CryoAblationLogic.live.console import (
    CommandAck,
    ProbePose,
    ProbeStateChange,
    ProbeTemperatures,
    ScannerImage,
    ScannerStatus,
)
from CryoAblationLogic.live.link import Endpoint, LiveLink
from CryoAblationLogic.live.simulator import ConsoleSimulator, ScannerSimulator, probe_pose

TIMEOUT_S = 10.0


def _volume():
    """40³ voxels, 3 mm, value = i + 100 j + 10000 k so a pixel says where it was sampled."""
    i, j, k = np.meshgrid(np.arange(40), np.arange(40), np.arange(40), indexing="ij")
    ijk_to_ras = np.diag([3.0, 3.0, 3.0, 1.0])
    ijk_to_ras[:3, 3] = (-58.5, -58.5, -58.5)  # centre of the volume at the origin
    return (i + 100 * j + 10000 * k).astype(np.int32), ijk_to_ras


def test_scanner_simulator_reslices_on_the_plane_it_is_sent():
    volume, ijk_to_ras = _volume()
    scanner = ScannerSimulator(volume, ijk_to_ras, slice_pixels=(8, 6), pixel_mm=3.0)
    plane = np.eye(4)
    plane[:3, 3] = (0.0 - 1.5, 0.0 - 1.5, 3.0 * 5 - 1.5)  # on voxel (19, 19, 24)
    assert scanner.handle(TransformMessage(plane, device_name="PLANE_0")) == []
    frame = scanner.frame()
    assert frame.voxels.shape == (8, 6, 1)
    np.testing.assert_allclose(frame.centre_mm, plane[:3, 3])
    # Pixel (u, v) sits at plane origin + (u - 3.5, v - 2.5) × 3 mm: voxel (19 + u - 3.5, 19 + v - 2.5, 24).
    assert frame.voxels[4, 3, 0] == np.rint(19 + 0.5) + 100 * np.rint(19 + 0.5) + 10000 * 24
    replies = scanner.handle(StringMessage("START_SEQUENCE", device_name="CMD_7"))
    assert [(r.message_type, r.device_name) for r in replies] == [("STRING", "ACK_7"), ("STATUS", "MR")]
    assert replies[1].status_message == "Scanning"
    (refusal,) = scanner.handle(StringMessage("SELF_DESTRUCT", device_name="CMD_8"))
    assert refusal.code == 12


def test_console_simulator_commands_and_temperatures():
    console = ConsoleSimulator([probe_pose((0, 0, 0), (0, -80, 0)), probe_pose((10, 0, 0), (10, -80, 0))])
    ack, status = console.handle(StringMessage("FREEZE 2 50%", device_name="CMD_3"))
    assert (ack.device_name, ack.text, status.status_message) == ("ACK_3", "FREEZE 2 50%", "FREEZE 2 50%")
    for _ in range(10):
        console.probes[1].advance(10.0)
    assert console.probes[1].temperature_c == pytest.approx(-75.0, abs=2.0)  # 50 % of -150 °C
    assert console.probes[0].temperature_c == pytest.approx(37.0)
    (refusal,) = console.handle(StringMessage("FREEZE 9", device_name="CMD_4"))
    assert (
        isinstance(refusal, StatusMessage) and refusal.code == 12 and "no probe 9" in refusal.status_message
    )
    pose = console.probes[0].pose
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(pose[:3, 2], (0, -1, 0))


def _poll_until(link, predicate, timeout_s=TIMEOUT_S):
    events = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events += [e for _, e in link.poll()]
        if predicate(events):
            return events
        time.sleep(0.02)
    pytest.fail(f"not met in {timeout_s} s: {[type(e).__name__ for e in events][-20:]}")


def _of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_live_link_drives_both_simulators():
    volume, ijk_to_ras = _volume()
    console = ConsoleSimulator([probe_pose((5, 5, 5), (5, -75, 5))], port=0, update_interval_s=0.1)
    console.start()
    link = LiveLink(None, scanner=Endpoint("server", port=0), console=Endpoint("client", port=console.port))
    link.start()
    scanner = ScannerSimulator(volume, ijk_to_ras, port=link.links["scanner"].port, frame_interval_s=0.1)
    scanner.start()
    try:
        _poll_until(link, lambda _: link.connected("scanner") and link.connected("console"))
        plane = np.eye(4)
        plane[:3, 3] = (0.0, 0.0, 12.0)
        link.send_scan_plane(plane)
        link.send_scanner_command("START_SEQUENCE")
        events = _poll_until(link, lambda ev: _of(ev, CommandAck) and len(_of(ev, ScannerImage)) >= 2)
        assert _of(events, ScannerStatus)[0].state == "Scanning"
        frame = _of(events, ScannerImage)[-1]
        np.testing.assert_allclose(frame.ijk_to_ras[2, 3], 12.0)  # resliced on our plane
        link.send_console_command("FREEZE 1 100%")
        events = _poll_until(
            link,
            lambda ev: (
                _of(ev, CommandAck)
                and _of(ev, ProbeStateChange)
                and any(t.temperatures_c[1] < 30.0 for t in _of(ev, ProbeTemperatures))
            ),
        )
        assert _of(events, ProbeStateChange)[0].action == "freeze"
        assert _of(events, ProbePose)[0].matrix[0, 3] == pytest.approx(5.0)
        assert link.commands["console"].pending == {} and link.commands["scanner"].pending == {}
    finally:
        scanner.stop()
        link.stop()
        console.stop()
