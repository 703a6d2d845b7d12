"""LiveLink end to end on loopback: a fake MR bridge and a fake cryo console talk to it; events
come out typed, commands are acknowledged, everything is journaled."""

from __future__ import annotations

import time

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl import (
    ImageMessage,
    NdArrayMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
)
from CryoAblationLogic.igtl.inbox import LinkEvent, Received, messages_of
from CryoAblationLogic.igtl.transport import Client, Server
from CryoAblationLogic.live.console import (
    CommandAck,
    ProbePose,
    ProbeStateChange,
    ProbeTemperatures,
    ScannerImage,
)
from CryoAblationLogic.live.journal import Journal, read_journal
from CryoAblationLogic.live.link import CommandTimeout, Endpoint, LiveLink

TIMEOUT_S = 10.0


def _poll_until(link: LiveLink, predicate, timeout_s: float = TIMEOUT_S):
    events = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events += link.poll()
        if predicate(events):
            return events
        time.sleep(0.02)
    pytest.fail(f"condition not met in {timeout_s} s; events: {events}")


def _of(events, kind):
    return [e for _, e in events if isinstance(e, kind)]


def test_scanner_and_console_through_one_live_link(tmp_path):
    console = Server(port=0)  # stands in for the cryo console
    console.start()
    journal = Journal(tmp_path, "case-live")
    link = LiveLink(
        journal, scanner=Endpoint("server", port=0), console=Endpoint("client", port=console.port)
    )
    link.start()
    bridge = Client(port=link.links["scanner"].port)  # stands in for the MR bridge
    bridge.start()
    try:
        assert bridge.wait_connected(TIMEOUT_S)
        # Both ends must have registered the connection: the console's accept thread may lag
        # behind our client seeing the socket open, and a send before it reaches nobody.
        _poll_until(link, lambda _: link.connected("console") and console.connected)
        # On connecting, the console is asked for its state (it sends one only when it changes).
        _, asked = console.inbox.wait_for(
            lambda i: isinstance(i, Received) and i.message.message_type == "GET_STATUS", TIMEOUT_S
        )
        query = messages_of(asked, "GET_STATUS")[0]
        assert (query.prefix, query.data_type, query.device_name) == ("GET", "STATUS", "Cryo")
        # MR bridge → us: an image frame; console → us: pose, state and temperatures.
        voxels = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
        bridge.send(ImageMessage.from_volume(voxels, (0, 0, 0), (1, 1, 3), device_name="MR Image"))
        pose = np.eye(4)
        pose[:3, 3] = (5, 6, 7)
        console.send(TransformMessage(pose, device_name="Probe1ToScanner"))
        console.send(StatusMessage(1, 0, "", "FREEZE 1 100%", device_name="Cryo"))
        console.send(NdArrayMessage(np.array([-38.5]), device_name="ProbeTemps"))
        console.send(StringMessage("BOIL 9", device_name="CryoState"))  # breaks the convention
        events = _poll_until(link, lambda ev: _of(ev, ProbeTemperatures) and _of(ev, ScannerImage))
        np.testing.assert_array_equal(_of(events, ScannerImage)[0].voxels, voxels)
        assert _of(events, ProbePose)[0].matrix[2, 3] == 7
        assert _of(events, ProbeStateChange)[0].action == "freeze"
        assert _of(events, ProbeTemperatures)[0].temperatures_c == {1: -38.5}
        # Us → MR bridge: scan plane and a command; the bridge acknowledges the command.
        assert link.send_scan_plane(pose) == 1
        command_id = link.send_scanner_command("START_SEQUENCE")
        _, received = bridge.inbox.wait_for(
            lambda i: isinstance(i, Received) and i.message.device_name.startswith("CMD_"), TIMEOUT_S
        )
        plane = messages_of(received, "TRANSFORM", "PLANE_0")[0]
        np.testing.assert_allclose(plane.matrix, pose)
        command = messages_of(received, "STRING")[0]
        assert (command.device_name, command.text) == (f"CMD_{command_id}", "START_SEQUENCE")
        bridge.send(StringMessage("START_SEQUENCE", device_name=f"ACK_{command_id}"))
        events = _poll_until(link, lambda ev: _of(ev, CommandAck))
        assert link.commands["scanner"].pending == {}
        # A console command nobody answers times out (once).
        link.command_timeout_s = 0.2
        link.send_console_command("THAW 1 PASSIVE")
        timeouts = _of(_poll_until(link, lambda ev: _of(ev, CommandTimeout)), CommandTimeout)
        assert timeouts[0].text == "THAW 1 PASSIVE"
        assert not _of(link.poll(), CommandTimeout)
    finally:
        bridge.stop()
        link.stop()
        console.stop()
        journal.close()
    records = read_journal(tmp_path / "case-live.jsonl").records
    incoming = {
        (r["message_type"], r["device_name"])
        for r in records
        if r.get("direction") == "in" and "message_type" in r
    }
    outgoing = [(r["message_type"], r["device_name"]) for r in records if r.get("direction") == "out"]
    assert {
        ("IMAGE", "MR Image"),
        ("STATUS", "Cryo"),
        ("NDARRAY", "ProbeTemps"),
        ("STRING", "CryoState"),
    } <= incoming
    assert outgoing[0] == ("GET_STATUS", "Cryo")
    assert outgoing[1] == ("TRANSFORM", "PLANE_0") and outgoing[2][0] == "STRING"
    assert all(r["timestamp_s"] is not None for r in records if r.get("direction") == "out")
    assert any(r["kind"] == "event" and r["event"] == "connected" for r in records)


def test_commands_need_a_connected_peer_and_a_configured_link(tmp_path):
    with LiveLink(None, scanner=Endpoint("server", port=0)) as link:
        with pytest.raises(InputError, match="not connected"):
            link.send_scanner_command("START_UP")
        with pytest.raises(InputError, match="not configured"):
            link.send_console_command("FREEZE 1")
        assert link.send_scan_plane(np.eye(4)) == 0  # nobody to send to, nothing blocks
        assert not any(isinstance(e, LinkEvent) for _, e in link.poll())
    with pytest.raises(InputError, match="role"):
        Endpoint("peer")
