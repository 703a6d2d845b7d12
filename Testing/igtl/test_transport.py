"""Transport on loopback: server with several clients, reconnecting client, ordered bursts,
coalescing of poses only, queued sends that never block."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from CryoAblationLogic.igtl import (
    ImageMessage,
    ProtocolError,
    StatusMessage,
    StringMessage,
    TransformMessage,
    encode,
)
from CryoAblationLogic.igtl.inbox import Inbox, LinkEvent, Received, messages_of
from CryoAblationLogic.igtl.transport import Client, Server

TIMEOUT_S = 10.0


def _events(items, kind):
    return [i for i in items if isinstance(i, LinkEvent) and i.kind == kind]


def _collect(inbox: Inbox, count: int, timeout_s: float = TIMEOUT_S, message_type: str | None = None):
    """Take items until ``count`` messages (of ``message_type``) arrived."""
    taken = []
    found = 0
    deadline = time.monotonic() + timeout_s
    while found < count and time.monotonic() < deadline:
        item = inbox.get(0.05)
        if item is not None:
            taken.append(item)
            found += len(messages_of([item], message_type))
    return taken


@pytest.fixture
def server():
    srv = Server(port=0)
    srv.start()
    yield srv
    srv.stop()


def test_server_binds_loopback_by_default(server):
    assert server.host == "127.0.0.1"
    assert server._listening.getsockname()[0] == "127.0.0.1"


def test_round_trip_between_our_client_and_server(server):
    with Client(port=server.port) as client:
        assert client.wait_connected(TIMEOUT_S)
        matrix = np.eye(4)
        matrix[:3, 3] = (10, 20, 30)
        message = TransformMessage(matrix, device_name="Probe1ToScanner")
        assert client.send(message) == 1
        assert message.timestamp_raw == 0  # the caller's message is not changed
        item, _ = server.inbox.wait_for(lambda i: isinstance(i, Received), TIMEOUT_S)
        assert item.message.device_name == "Probe1ToScanner"
        np.testing.assert_allclose(item.message.matrix, matrix)
        assert item.message.timestamp_s == pytest.approx(time.time(), abs=5)  # stamped on send
        assert item.arrival_time_s == pytest.approx(time.time(), abs=5)
        server.send(StringMessage("ACK", device_name="ACK_1"), connection_id=item.connection_id)
        reply, _ = client.inbox.wait_for(lambda i: isinstance(i, Received), TIMEOUT_S)
        assert reply.message.text == "ACK"


def test_several_clients_at_once(server):
    clients = [Client(port=server.port) for _ in range(3)]
    try:
        for client in clients:
            client.start()
        assert all(c.wait_connected(TIMEOUT_S) for c in clients)
        for n, client in enumerate(clients):
            client.send(StringMessage(f"hello {n}", device_name=f"Client{n}"))
        taken = _collect(server.inbox, 3)
        assert sorted(m.text for m in messages_of(taken)) == ["hello 0", "hello 1", "hello 2"]
        assert len({i.connection_id for i in taken if isinstance(i, Received)}) == 3
        assert server.send(StatusMessage(1, 0, "", "to all", device_name="Cryo")) == 3
        for client in clients:
            assert messages_of(_collect(client.inbox, 1))[0].status_message == "to all"
    finally:
        for client in clients:
            client.stop()


def test_client_reconnects_after_the_server_goes_away():
    first = Server(port=0)
    first.start()
    port = first.port
    client = Client(port=port, reconnect_interval_s=0.1)
    client.start()
    try:
        assert client.wait_connected(TIMEOUT_S)
        first.stop()
        deadline = time.monotonic() + TIMEOUT_S
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not client.connected  # EOF detected
        assert client.send(StringMessage("lost", device_name="X")) == 0  # never blocks
        second = Server(port=port)
        second.start()
        try:
            assert client.wait_connected(TIMEOUT_S)
            assert client.send(StringMessage("again", device_name="X")) == 1
            assert messages_of(_collect(second.inbox, 1))[0].text == "again"
            kinds = [i.kind for i in client.inbox.drain() if isinstance(i, LinkEvent)]
            assert kinds[:2] == ["connected", "disconnected"] and kinds[-1] == "connected"
            assert client.connect_count == kinds.count("connected") >= 2
        finally:
            second.stop()
    finally:
        client.stop()


def test_burst_of_10000_state_messages_arrives_complete_and_in_order(server):
    with Client(port=server.port) as client:
        assert client.wait_connected(TIMEOUT_S)
        for n in range(10_000):
            kind = (
                StringMessage(f"{n}", device_name="CryoState"),
                StatusMessage(1, n, "", "", device_name="Cryo"),
            )
            assert client.send(kind[n % 2], stamp=False) == 1
        taken = _collect(server.inbox, 10_000, timeout_s=60)
    strings = [int(m.text) for m in messages_of(taken, "STRING")]
    statuses = [m.subcode for m in messages_of(taken, "STATUS")]
    assert strings == list(range(0, 10_000, 2))
    assert statuses == list(range(1, 10_000, 2))
    assert server.inbox.coalesced_count == 0


def test_poses_coalesce_to_the_latest_but_state_messages_do_not():
    inbox = Inbox()
    for n in range(5):
        matrix = np.eye(4)
        matrix[0, 3] = n
        inbox.put(Received(TransformMessage(matrix, device_name="Probe1ToScanner"), 0.0, 1, "p"))
        inbox.put(Received(StringMessage(f"{n}", device_name="CryoState"), 0.0, 1, "p"))
    inbox.put(Received(TransformMessage(device_name="Probe2ToScanner"), 0.0, 1, "p"))
    items = inbox.drain()
    transforms = messages_of(items, "TRANSFORM", "Probe1ToScanner")
    assert len(transforms) == 1 and transforms[0].matrix[0, 3] == 4  # the latest pose
    assert [m.text for m in messages_of(items, "STRING")] == ["0", "1", "2", "3", "4"]
    assert len(messages_of(items, "TRANSFORM", "Probe2ToScanner")) == 1
    assert inbox.coalesced_count == 4
    # Once taken, the next pose is queued again.
    inbox.put(Received(TransformMessage(device_name="Probe1ToScanner"), 0.0, 1, "p"))
    assert len(inbox.drain()) == 1


def test_full_inbox_pushes_back_instead_of_dropping():
    inbox = Inbox(max_items=3)
    for n in range(3):
        assert inbox.put(Received(StringMessage(f"{n}"), 0.0, 1, "p"))
    started = time.monotonic()
    assert not inbox.put(Received(StringMessage("3"), 0.0, 1, "p"), lambda: time.monotonic() - started > 0.2)
    assert len(inbox) == 3


def test_sending_without_a_peer_never_blocks(server):
    started = time.monotonic()
    for _ in range(100):
        assert server.send(StringMessage("nobody listens", device_name="CMD_1")) == 0
    client = Client(port=1, reconnect_interval_s=0.05)  # nothing listens on port 1
    client.start()
    try:
        assert client.send(StringMessage("x")) == 0
    finally:
        client.stop()
    assert time.monotonic() - started < 5


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(ProtocolError, match="cannot listen"):
        Server(port=server.port).start()


def test_large_image_and_header_split_across_segments(server):
    volume = np.arange(256 * 256 * 30, dtype=np.int16).reshape(256, 256, 30)
    data = encode(ImageMessage.from_volume(volume, (0, 0, 0), (1, 1, 3), device_name="MR Image"))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in (data[:20], data[20:58], data[58:1000]):  # header in two segments
            sock.sendall(part)
            time.sleep(0.02)
        sock.sendall(data[1000:])
        taken = _collect(server.inbox, 1, message_type="IMAGE")
    image = messages_of(taken, "IMAGE")[0]
    np.testing.assert_array_equal(image.voxels, volume)


def test_corrupt_stream_drops_only_that_connection(server):
    with Client(port=server.port) as good:
        assert good.wait_connected(TIMEOUT_S)
        with socket.create_connection(("127.0.0.1", server.port)) as bad:
            bad.sendall(b"\x00\x01NOT A HEADER" + bytes(100))
            _, taken = server.inbox.wait_for(
                lambda i: isinstance(i, LinkEvent) and i.kind == "disconnected", TIMEOUT_S
            )
            good.send(StringMessage("still here", device_name="X"))
            taken += _collect(server.inbox, 1)
    assert [m.text for m in messages_of(taken)] == ["still here"]
    assert _events(taken, "error") and _events(taken, "disconnected")


def test_idle_peer_is_dropped_after_idle_timeout():
    with Server(port=0, idle_timeout_s=0.3) as server, socket.create_connection(("127.0.0.1", server.port)):
        _, taken = server.inbox.wait_for(
            lambda i: isinstance(i, LinkEvent) and i.kind == "disconnected", TIMEOUT_S
        )
    assert "nothing received for 0.3 s" in _events(taken, "disconnected")[0].detail


def test_header_version_2_only_when_allowed(server):
    message = StringMessage("with metadata", device_name="Meta", header_version=2, metadata={"unit": "°C"})
    with Client(port=server.port) as legacy, Client(port=server.port, max_header_version=2) as modern:
        assert legacy.wait_connected(TIMEOUT_S) and modern.wait_connected(TIMEOUT_S)
        legacy.send(message)
        first = messages_of(_collect(server.inbox, 1))[0]
        modern.send(message)
        second = messages_of(_collect(server.inbox, 1))[0]
    assert (first.header_version, first.metadata) == (1, {})  # capped for legacy peers
    assert (second.header_version, second.metadata) == (2, {"unit": "°C"})


def test_connections_beyond_the_limit_are_turned_away():
    with Server(port=0, max_connections=2) as server:
        clients = [Client(port=server.port, reconnect_interval_s=5) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            assert all(c.wait_connected(TIMEOUT_S) for c in clients)
            with socket.create_connection(("127.0.0.1", server.port)) as extra:
                extra.settimeout(TIMEOUT_S)
                assert extra.recv(1) == b""  # closed by the server
            _, taken = server.inbox.wait_for(
                lambda i: isinstance(i, LinkEvent) and i.kind == "error", TIMEOUT_S
            )
            assert "refused" in _events(taken, "error")[0].detail
            assert len(server.connection_ids) == 2
        finally:
            for client in clients:
                client.stop()


def test_slow_but_moving_message_is_not_a_stall():
    data = encode(StringMessage("x" * 2000, device_name="Slow"))
    with (
        Server(port=0, stall_timeout_s=0.3) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(data), 250):  # ~0.9 s in all, never 0.3 s silent
            sock.sendall(data[start : start + 250])
            time.sleep(0.1)
        taken = _collect(server.inbox, 1, message_type="STRING")
    assert messages_of(taken, "STRING")[0].text == "x" * 2000
    assert not _events(taken, "error")


def test_unexpected_decoder_failure_costs_the_connection_not_the_server(server, monkeypatch):
    from CryoAblationLogic.igtl import codec

    def broken(self, data):
        raise RuntimeError("decoder bug")
        yield  # pragma: no cover - makes this a generator like the real feed

    with Client(port=server.port, reconnect_interval_s=0.05) as client:
        assert client.wait_connected(TIMEOUT_S)
        monkeypatch.setattr(codec.StreamReader, "feed", broken)
        client.send(StringMessage("boom"))
        _, taken = server.inbox.wait_for(
            lambda i: isinstance(i, LinkEvent) and i.kind == "disconnected", TIMEOUT_S
        )
        assert "decoder bug" in _events(taken, "error")[0].detail
        monkeypatch.undo()
        # The client sees the server close the connection, reconnects, and the link goes on.
        _, events = client.inbox.wait_for(
            lambda i: isinstance(i, LinkEvent) and i.kind == "disconnected", TIMEOUT_S
        )
        assert _events(events, "disconnected")
        assert client.wait_connected(TIMEOUT_S)
        assert client.send(StringMessage("after")) == 1
        assert messages_of(_collect(server.inbox, 1, message_type="STRING"), "STRING")[-1].text == "after"
