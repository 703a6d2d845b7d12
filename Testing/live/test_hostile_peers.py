"""A seeded hostile-peer suite: what a broken or hostile scanner bridge or console sends, and what
live mode does with it. Every case ends the same way: the session goes on, the journal holds what
arrived, and the journal replays (or resumes) to the same field.

The cases of issue 12 (a 5 000-digit probe number, huge or deeply nested ProbeTemps JSON, time
stamps an hour ahead, a raw client's FREEZE on the scanner port, 32 idle connections squatting the
scanner port, images NRRD cannot hold, 20 000 unknown sensors) and more: peers off the allow-list,
bodies over their type's limit, IMAGE sizes that lie, held and trickled bodies, a full image
budget, a handler that fails.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest
from live_testing import ORIGIN_S, TIP_MM, sensor, small_case, stamped, state

from CryoAblationLogic.igtl import transport
from CryoAblationLogic.igtl.codec import ByteBudget, encode
from CryoAblationLogic.igtl.crc64 import crc64
from CryoAblationLogic.igtl.inbox import LinkEvent
from CryoAblationLogic.igtl.messages import (
    ImageMessage,
    StatusMessage,
    StringMessage,
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.transport import Server
from CryoAblationLogic.live.journal import Journal, read_journal, record_to_message
from CryoAblationLogic.live.link import Endpoint
from CryoAblationLogic.live.mode import DEFAULT_MAX_CLOCK_STEP_S, MAX_NOTES_PER_KIND, LiveSession
from CryoAblationLogic.live.runner import open_session, replay_procedure, start_monitor_run

SEED = 12


class FakeConsole:
    """A console that sends whatever bytes it is given to the monitor that connects to it."""

    def __init__(self):
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.port = self.listening.getsockname()[1]
        self.connection: socket.socket | None = None
        self._accepted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.connection, _ = self.listening.accept()
        self._accepted.set()

    def send(self, *messages) -> None:
        assert self._accepted.wait(10), "the monitor did not connect"
        for message in messages:
            self.connection.sendall(message if isinstance(message, bytes) else encode(message))

    def close(self) -> None:
        for sock in (self.connection, self.listening):
            if sock is not None:
                sock.close()


def raw_message(message_type: str, body: bytes, device: str = "X", body_size: int | None = None) -> bytes:
    """A header-version-1 message with any body (the CRC made to match)."""
    size = len(body) if body_size is None else body_size
    header = struct.pack(
        ">H12s20sQQQ", 1, message_type.encode(), device.encode(), 0, size, crc64(body) if body else 0
    )
    return header + body


def pump(run, until, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out"
        run.step()
        time.sleep(0.01)


@pytest.fixture
def monitor(tmp_path):
    """A monitor run on the small case: we listen for the scanner and connect to a fake console."""
    console = FakeConsole()
    run = start_monitor_run(
        small_case(),
        tmp_path / "procedure.jsonl",
        Endpoint("server", port=0),
        Endpoint("client", port=console.port),
        update_interval_s=2.0,
        silence_s=None,
    )
    run.console = console
    run.journal_path = tmp_path / "procedure.jsonl"
    yield run
    run.close()
    console.close()


def incoming(run) -> int:
    return sum(link.received_count for link in run.link.links.values())


def test_numbers_no_probe_has_and_json_no_console_sends_are_faults_on_their_message_only(monitor):
    """5 000-digit probe numbers, a 5 000-digit temperature, 30 000 nested brackets: each message
    is unrecognised (journaled, shown); the freeze after them is applied; resume and replay too."""
    hostile = [
        state("FREEZE " + "9" * 5000, 0.0),
        stamped(StringMessage('{"' + "1" * 5000 + '": -40}', device_name="ProbeTemps"), 0.0),
        stamped(StringMessage('{"1": ' + "4" * 5000 + "}", device_name="ProbeTemps"), 0.0),
        stamped(StringMessage("{" + "[" * 30_000 + "]" * 30_000 + "}", device_name="ProbeTemps"), 0.0),
        stamped(StringMessage("1e999, -40", device_name="ProbeTemps"), 0.0),
        stamped(StatusMessage(1, 0, "", "FREEZE 1 " + "5" * 4000 + "%", device_name="Cryo"), 0.0),
        sensor("Probe" + "7" * 10 + "Temp", 0.0, -40.0),  # not a probe number: an unknown sensor,
    ]
    monitor.console.send(*hostile, state("FREEZE 1 100%", 1.0), sensor("TC1", 4.0, 30.0))
    pump(monitor, lambda: monitor.session.clock_s >= 4.0)
    assert monitor.session.states["P1"][0] == "freeze"
    assert monitor.session.samples and monitor.session.samples[-1].name == "TC1"
    monitor.close()
    records = [r for r in read_journal(monitor.journal_path).messages() if r["direction"] == "in"]
    assert len(records) == len(hostile) + 2  # every message journaled, hostile ones too
    replayed, _ = replay_procedure(monitor.journal_path)
    np.testing.assert_array_equal(replayed.temperature_c, monitor.session.temperature_c)
    journal, resumed, fed = open_session(small_case(), monitor.journal_path)  # a resume goes on too
    journal.close()
    assert fed == len(hostile) + 2 and resumed.states["P1"][0] == "freeze"


def test_time_stamps_an_hour_ahead_move_the_clock_one_bounded_step_each(case):
    """Five stamps 3 599 s ahead of each other (the issue's 450 bytes that bought 91 s of CPU and
    17 995 s of clock) move the clock 60 s each."""
    session = LiveSession(case, update_interval_s=2.0)
    for n in range(6):
        session.feed(state("OFF 1", n * 3599.0), ORIGIN_S)
    assert session.clock_s == pytest.approx(5 * DEFAULT_MAX_CLOCK_STEP_S)
    assert session.note_counts["clock_step_limited"] == 5


def test_20000_unknown_sensors_are_noted_once_each_and_kept_in_bounded_memory(case):
    session = LiveSession(case, update_interval_s=600.0)
    for n in range(20_000):
        session.feed(sensor(f"S{n % 5000}", 0.0, 20.0), ORIGIN_S)
    assert session.note_counts["unknown_sensor"] == 5000  # one per name, however often it came
    assert len([n for n in session.notes if n.what == "unknown_sensor"]) == MAX_NOTES_PER_KIND


def test_a_raw_clients_freeze_on_the_scanner_port_is_not_applied(monitor):
    scanner_port = monitor.link.links["scanner"].port
    with socket.create_connection(("127.0.0.1", scanner_port)) as raw:
        raw.sendall(encode(state("FREEZE 1 100%", 0.0)))
        pump(monitor, lambda: monitor.session.notes)
    assert monitor.session.states["P1"][0] == "off"
    assert [n.what for n in monitor.session.notes] == ["command_from_wrong_link"]
    monitor.close()
    record = read_journal(monitor.journal_path).messages("STATUS")[0]
    assert record["link"] == "scanner"  # so that the replay refuses it too
    replayed, _ = replay_procedure(monitor.journal_path)
    assert replayed.states["P1"][0] == "off"


def test_32_idle_connections_cannot_lock_the_scanner_out(monitor):
    """Each new connection replaces the one before: the scanner that connects last is heard."""
    port = monitor.link.links["scanner"].port
    squatters = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as scanner:
            scanner.sendall(encode(ImageMessage(np.ones((4, 4, 2), np.int16), device_name="MR Image")))
            pump(monitor, lambda: monitor.session.image_count == 1)
        assert len(monitor.link.links["scanner"].connection_ids) <= 1
    finally:
        for sock in squatters:
            sock.close()


def test_a_peer_off_the_allow_list_is_refused_and_reported_once(tmp_path):
    with Server(port=0, allowed_peers=("10.255.0.1",)) as server:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(encode(state("FREEZE 1", 0.0)))
        deadline = time.monotonic() + 5
        while server.refused_count < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        events = server.inbox.drain()
    assert server.refused_count == 20 and server.received_count == 0
    assert [e.detail for e in events] == ["refused: 127.0.0.1 is not an allowed peer"]  # once per 10 s


def test_default_allow_list_is_this_machine():
    assert Endpoint("server", "127.0.0.1", 1).allowed_peers == ("127.0.0.0/8", "::1", "127.0.0.1")
    assert Endpoint("server", "10.0.0.5", 1).allowed_peers == ("127.0.0.0/8", "::1", "10.0.0.5")
    assert Endpoint("server", "0.0.0.0", 1, ("10.0.0.7",)).allowed_peers == ("10.0.0.7",)
    assert Endpoint("server", "0.0.0.0", 1, ("*",)).allowed_peers is None


def _events_after(server: Server, count: int, timeout_s: float = 5.0) -> list:
    """The first ``count`` error events of ``server``."""
    errors = []
    deadline = time.monotonic() + timeout_s
    while len(errors) < count:
        assert time.monotonic() < deadline, errors
        item = server.inbox.get(0.05)
        if isinstance(item, LinkEvent) and item.kind == "error":
            errors.append(item)
    return errors


@pytest.mark.parametrize(
    ("message_type", "body_size", "limit"),
    [
        ("STRING", 70_000, 4 + 0xFFFF),
        ("STATUS", 1 << 20, 30 + 0xFFFF),
        ("SENSOR", 4096, 2050),
        ("VIDEO", 2 << 20, 1 << 20),
    ],
)
def test_a_body_over_its_types_limit_is_refused_before_it_is_buffered(message_type, body_size, limit):
    with Server(port=0) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(raw_message(message_type, b"", body_size=body_size))
        events = _events_after(server, 1)
    assert f"exceed the limit of {limit} for {message_type}" in events[0].detail


def test_an_image_whose_body_size_is_not_what_its_header_declares_is_refused():
    image = encode(ImageMessage(np.zeros((8, 8, 8), np.uint8)))
    lying = bytearray(image)
    lying[42:50] = struct.pack(">Q", 200 * 1024 * 1024)  # BODY_SIZE 200 MiB, header says 8×8×8 bytes
    with Server(port=0) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(bytes(lying))
        events = _events_after(server, 1)
    assert "image header declares 584 bytes" in events[0].detail


def _declared_image(megabytes: int) -> bytes:
    """The header and image header of an IMAGE of ``megabytes`` MiB of uint8 voxels (no pixels)."""
    side = (512, 512, megabytes * 4)
    image_header = struct.pack(
        ">HBBBB3H12f3H3H", 1, 1, 3, 2, 1, *side, *np.eye(3).reshape(-1), 0, 0, 0, 0, 0, 0, *side
    )
    body_size = 72 + side[0] * side[1] * side[2]
    return raw_message("IMAGE", b"", body_size=body_size)[:58] + image_header


def test_all_connections_together_hold_at_most_the_byte_budget():
    budget = ByteBudget(300 * 1024**2)
    with Server(port=0, budget=budget) as server:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        try:
            for sock in socks:
                sock.sendall(_declared_image(250))
            events = _events_after(server, 2)
            assert budget.used_bytes == 250 * 1024**2 + 72  # one held, two refused at their header
        finally:
            for sock in socks:
                sock.close()
        deadline = time.monotonic() + 5
        while budget.used_bytes and time.monotonic() < deadline:
            time.sleep(0.01)
    assert budget.used_bytes == 0  # given back when the connection went
    assert sum("would exceed the 314572800 bytes" in e.detail for e in events if e.kind == "error") == 2


def test_a_peer_trickling_a_message_is_dropped_when_it_is_too_slow(monkeypatch):
    monkeypatch.setattr(transport, "MESSAGE_TIME_FLOOR_S", 0.4)
    data = encode(StringMessage("x" * 3000, device_name="Slow"))
    with (
        Server(port=0, stall_timeout_s=2.0, min_rate_bytes_per_s=1000) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        with pytest.raises(OSError):
            for start in range(len(data)):
                sock.sendall(data[start : start + 1])
                time.sleep(0.1)  # moving (never 2 s silent), but 10 bytes/s: 3 KB would take 5 min
        events = _events_after(server, 1)
    assert "not complete after" in events[0].detail and server.received_count == 0


@pytest.mark.parametrize(
    "axes",
    [np.diag([1.0, 0.0, 1.0]), np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])],
    ids=["zero spacing", "collinear axes"],
)
def test_an_image_nrrd_cannot_hold_is_journaled_as_received(tmp_path, axes):
    message = ImageMessage(np.arange(24, dtype=np.int16).reshape(4, 3, 2), axes, (1.0, 2.0, 3.0))
    message.device_name, message.timestamp_raw = "MR Image", timestamp_from_seconds(ORIGIN_S)
    with Journal(tmp_path, "odd") as journal:
        journal.record_message(message)
    contents = read_journal(tmp_path / "odd.jsonl")
    record = contents.records[0]
    assert record["content"]["raw_file"].startswith("odd_images/") and "nrrd_refused" in record["content"]
    assert encode(record_to_message(record, contents.folder)) == encode(message)


def test_a_full_image_budget_is_a_clear_fault_and_the_rest_goes_on(tmp_path):
    faults = []
    frame = ImageMessage(np.zeros((16, 16, 16), np.int16), device_name="MR Image")
    with Journal(tmp_path, "full", image_budget_bytes=13_000, on_fault=faults.append) as journal:
        for _ in range(3):
            journal.record_message(frame)
        journal.record_message(state("FREEZE 1", 0.0))
    records = read_journal(tmp_path / "full.jsonl").records
    assert "file" in records[0]["content"]
    assert [r["content"].get("voxels_not_kept", "")[:28] for r in records[1:3]] == [
        "journal image budget of 0 Mi"
    ] * 2
    assert faults == ["journal image budget of 0 MiB reached: image voxels are no longer journaled"]
    assert records[3]["message_type"] == "STATUS"


def test_a_failing_handler_is_a_fault_on_that_message_and_the_session_goes_on(case, monkeypatch):
    session = LiveSession(case, update_interval_s=2.0)
    original = session._apply_pose

    def broken(event):
        raise RuntimeError("solver could not place the probe")

    monkeypatch.setattr(session, "_apply_pose", broken)
    from live_testing import pose

    events = session.feed(pose(0.0), ORIGIN_S)
    assert type(events[0]).__name__ == "Unrecognised" and "solver could not place" in events[0].reason
    monkeypatch.setattr(session, "_apply_pose", original)
    session.feed(state("FREEZE 1", 2.0), ORIGIN_S + 2.0)
    assert session.states["P1"][0] == "freeze"
    assert [n.what for n in session.notes] == ["message_fault", "probe_state"]


def test_poses_far_outside_the_scanner_and_wrong_links_are_refused_seeded(case):
    """A seeded stream of console messages with random numbers: the session never raises and
    applies exactly the well-formed ones."""
    rng = np.random.default_rng(SEED)
    session = LiveSession(case, update_interval_s=600.0)
    applied = 0
    for n in range(300):
        number = int(rng.choice([1, 0, -1, 2, 100, 10**6]))
        action = str(rng.choice(["FREEZE", "THAW", "OFF", "IDLE", "MELT"]))
        text = f"{action} {number}"
        session.feed(StatusMessage(1, 0, "", text, device_name="Cryo"), ORIGIN_S + n * 0.01)
        applied += action != "MELT" and number == 1
    assert session.note_counts.get("probe_state", 0) == applied
    assert TIP_MM == session.case.probes[0].tip_mm


def test_a_silent_connection_is_closed_after_the_idle_timeout():
    from CryoAblationLogic.live.link import LiveLink

    with LiveLink(None, scanner=Endpoint("server", port=0), idle_timeout_s=0.3) as link:
        server = link.links["scanner"]
        with socket.create_connection(("127.0.0.1", server.port)):
            deadline = time.monotonic() + 5
            kinds = []
            while "disconnected" not in kinds:
                assert time.monotonic() < deadline, kinds
                kinds += [e.kind for e in server.inbox.drain() if isinstance(e, LinkEvent)]
                time.sleep(0.02)
        assert kinds == ["connected", "disconnected"] and not server.connection_ids
