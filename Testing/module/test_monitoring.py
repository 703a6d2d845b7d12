"""The Monitor section's state, from the live links' typed events and from a real loopback link."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.inbox import LinkEvent
from CryoAblationLogic.igtl.messages import StringMessage
from CryoAblationLogic.igtl.transport import Server
from CryoAblationLogic.live import link_panel
from CryoAblationLogic.live.console import (
    ConsoleFault,
    ProbeStateChange,
    ProbeTemperatures,
    ScannerImage,
    Unrecognised,
)
from CryoAblationLogic.live.journal import Journal, read_journal
from CryoAblationLogic.live.link import CommandTimeout, LiveLink
from CryoAblationLogic.live.runner import journal_location


def test_lights_follow_start_connect_disconnect_and_stop():
    state = link_panel.LinkPanel()
    assert state.lights == {"scanner": "off", "console": "off"}
    state.started()
    assert state.lights == {"scanner": "waiting", "console": "waiting"}
    state.apply("console", LinkEvent("connected", 1, "127.0.0.1:5", "", 1.0))
    assert state.lights == {"scanner": "waiting", "console": "connected"}
    state.apply("console", LinkEvent("disconnected", 1, "127.0.0.1:5", "", 2.0))
    assert state.lights["console"] == "waiting"
    state.stopped()
    assert set(state.lights.values()) == {"off"}


def test_latest_temperature_and_state_per_probe_make_the_sensor_rows():
    state = link_panel.LinkPanel()
    state.apply("console", ProbeTemperatures({1: -20.0, 2: 15.5}, 30.0, 31.0))
    state.apply("console", ProbeTemperatures({1: -35.25}, None, 61.0))  # no sender time: arrival
    state.apply("console", ProbeStateChange(1, "FREEZE", None, 100.0, "STRING", 61.0))
    state.apply("console", ProbeStateChange(2, "THAW", "passive", None, "STATUS", 62.0))
    assert state.sensor_rows() == [
        ("Probe 1 (freeze 100%)", "-35.2", "61.0"),
        ("Probe 2 (thaw passive)", "15.5", "30.0"),
    ]


def test_faults_unrecognised_messages_timeouts_and_drops_are_shown():
    state = link_panel.LinkPanel()
    state.apply("console", ConsoleFault(18, "HARDWARE_FAILURE", "gas pressure low", 1.0))
    state.apply("scanner", Unrecognised("POINT", "X", "no convention", 2.0))
    state.apply("console", CommandTimeout("7", "FREEZE 1 100%", 3.0))
    state.apply("scanner", LinkEvent("error", 2, "peer", "bad CRC", 4.0))
    state.apply("scanner", ScannerImage("MR Image", np.zeros((2, 2, 1)), np.eye(4), None, 5.0))
    text = "\n".join(state.messages)
    for fragment in ("gas pressure low", "unrecognised POINT", "not acknowledged", "bad CRC"):
        assert fragment in text
    assert state.images_received == 1


def test_messages_keep_only_the_latest():
    state = link_panel.LinkPanel()
    for n in range(link_panel.MAX_MESSAGES + 5):
        state.apply("console", Unrecognised("STRING", f"D{n}", "?", float(n)))
    assert len(state.messages) == link_panel.MAX_MESSAGES
    assert "D24" in state.messages[-1]


def test_journal_location_from_the_panel_path(tmp_path):
    """The panel's journal field and the monitor command's --journal share one check."""
    assert journal_location(f" {tmp_path / 'case-001.jsonl'} ", key="journal") == (tmp_path, "case-001")
    for bad in ("", "  ", str(tmp_path / "case.txt"), str(tmp_path / "bad name.jsonl")):
        with pytest.raises(InputError) as refused:
            journal_location(bad, key="journal")
        assert refused.value.key == "journal"
    with pytest.raises(InputError, match="--journal"):
        journal_location(tmp_path / "case.txt")


def test_in_live_mode_console_faults_are_left_to_the_sessions_notes():
    """Live mode shows a fault once, from the session's notes (with its procedure time); the link's
    own problems still come from the state."""
    state = link_panel.LinkPanel(live=True)
    state.apply("console", ConsoleFault(18, "HARDWARE_FAILURE", "gas pressure low", 1.0))
    state.apply("console", CommandTimeout("7", "FREEZE 1 100%", 3.0))
    assert list(state.messages) == ["console: command 'FREEZE 1 100%' was not acknowledged"]


def test_endpoints_listen_for_the_scanner_and_connect_to_the_console():
    scanner, console = link_panel.live_endpoints("127.0.0.1", 18944, "console.local", 18945)
    assert (scanner.role, scanner.host, scanner.port) == ("server", "127.0.0.1", 18944)
    assert (console.role, console.host, console.port) == ("client", "console.local", 18945)
    with pytest.raises(InputError, match="different ports"):
        link_panel.live_endpoints("localhost", 18944, "localhost", 18944)
    with pytest.raises(InputError, match="console host"):
        link_panel.live_endpoints("localhost", 18944, " ", 18945)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_console_on_loopback_turns_the_light_green_and_fills_the_table(tmp_path):
    """LiveLink (as the panel starts it) against a console peer on this machine, journaled."""
    console_port = free_port()
    console = Server(console_port, "127.0.0.1")
    console.start()
    folder, procedure = journal_location(tmp_path / "procedure.jsonl", key="journal")
    scanner, console_endpoint = link_panel.live_endpoints("127.0.0.1", free_port(), "127.0.0.1", console_port)
    journal = Journal(folder, procedure)
    link = LiveLink(journal, scanner=scanner, console=console_endpoint)
    state = link_panel.LinkPanel()
    try:
        link.start()
        state.started()
        deadline = time.monotonic() + 10.0
        sent = False
        while time.monotonic() < deadline and not state.temperatures_c:
            for source, event in link.poll():
                state.apply(source, event)
            if not sent and console.connected:
                console.send(StringMessage(device_name="ProbeTemps", text="-42.5, 12.0"))
                sent = True
            time.sleep(0.02)
    finally:
        link.stop()
        console.stop()
        journal.close()
    assert state.lights == {"scanner": "waiting", "console": "connected"}
    assert [row[:2] for row in state.sensor_rows()] == [("Probe 1", "-42.5"), ("Probe 2", "12.0")]
    recorded = read_journal(folder / f"{procedure}.jsonl").messages(device_name="ProbeTemps")
    assert len(recorded) == 1
