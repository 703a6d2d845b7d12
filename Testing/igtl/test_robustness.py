"""Random and mutated input never crashes or hangs the receiver, memory stays bounded, and valid
messages after the garbage still arrive.

- 100,000 seeded mutations of valid messages through the decoder and the stream reader;
- hypothesis: arbitrary bytes and arbitrary valid content;
- a live server fed a few thousand mutated messages over sockets, then a valid one.
"""

from __future__ import annotations

import resource
import socket
import struct
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from CryoAblationLogic.igtl import (
    FramingError,
    ImageMessage,
    NdArrayMessage,
    PointEntry,
    PointMessage,
    PositionMessage,
    ProtocolError,
    QueryMessage,
    SensorMessage,
    StatusMessage,
    StreamReader,
    StringMessage,
    TrackingDataMessage,
    TrackingElement,
    TransformMessage,
    crc64,
    decode,
    encode,
)
from CryoAblationLogic.igtl.inbox import Inbox, LinkEvent, messages_of
from CryoAblationLogic.igtl.transport import Client, Server

VECTORS = Path(__file__).resolve().parent.parent / "Data" / "igtl-test-vectors"
MAX_BODY = 64 * 1024


def _seeds() -> list[bytes]:
    """Valid messages to mutate: the reference vectors and our own, in both header versions."""
    seeds = [p.read_bytes() for p in sorted(VECTORS.glob("*.bin"))]
    ours = [
        TransformMessage(np.eye(4), device_name="PLANE_0"),
        PositionMessage((1, 2, 3), (0, 0, 0, 1)),
        ImageMessage.from_volume(np.arange(24, dtype=np.int16).reshape(4, 3, 2), (0, 0, 0), (1, 1, 2)),
        StringMessage("START_SEQUENCE", device_name="CMD_1"),
        StatusMessage(13, 2, "DNR", "not ready", device_name="Cryo"),
        SensorMessage([1.0, 2.0], unit=5),
        NdArrayMessage(np.arange(6, dtype=np.float32).reshape(2, 3)),
        PointMessage([PointEntry("P", (1.0, 2.0, 3.0))]),
        TrackingDataMessage([TrackingElement("Coil", np.eye(4), 3)]),
        QueryMessage("STT", "TDATA", resolution_ms=50, coordinate_name="Scanner"),
    ]
    for message in ours:
        seeds.append(encode(message, 1))
        message.metadata = {"key": "value"}
        seeds.append(encode(message, 2))
    return seeds


def _mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """One random corruption; half the time the CRC is fixed up so the body parsers see it."""
    buf = bytearray(data)
    kind = rng.integers(0, 7)
    if kind == 0:  # flip bits anywhere
        for _ in range(rng.integers(1, 8)):
            position = rng.integers(0, len(buf))
            buf[position] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # overwrite a header field or the start of the body with random bytes
        start = int(rng.choice([0, 2, 14, 34, 42, 50, 58, 60, 62, 66, 70]))
        length = int(rng.integers(1, 9))
        buf[start : start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    elif kind == 2:  # truncate
        del buf[rng.integers(0, len(buf)) :]
    elif kind == 3:  # extend with junk
        buf += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 4:  # set a size field of the body (counts, lengths, dimensions) to an extreme
        if len(buf) > 62:
            position = int(rng.integers(58, min(len(buf) - 1, 140)))
            buf[position : position + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\x00\x01"])
    elif kind == 5:  # random BODY_SIZE
        buf[42:50] = struct.pack(">Q", int(rng.integers(0, 2**63)) >> int(rng.integers(0, 63)))
    else:  # random bytes of the same length
        buf = bytearray(rng.integers(0, 256, len(buf), dtype=np.uint8).tobytes())
    if len(buf) >= 58 and rng.random() < 0.5:  # consistent BODY_SIZE and CRC: exercise the parsers
        buf[42:58] = struct.pack(">QQ", len(buf) - 58, crc64(bytes(buf[58:])))
    return bytes(buf)


def _decode_or_reject(data: bytes) -> bool:
    """True if decoded; False if rejected with a protocol error. Anything else fails the test."""
    try:
        message = decode(data, max_body_size=MAX_BODY)
    except ProtocolError:
        return False
    again = encode(message)  # what decoded must also encode again
    assert decode(again).message_type == message.message_type
    return True


def test_100000_mutated_messages_decode_or_are_rejected_cleanly():
    rng = np.random.default_rng(20240611)
    seeds = _seeds()
    decoded = rejected = 0
    started = time.monotonic()
    for n in range(100_000):
        data = _mutate(rng, seeds[n % len(seeds)])
        if _decode_or_reject(data):
            decoded += 1
        else:
            rejected += 1
    elapsed = time.monotonic() - started
    assert decoded + rejected == 100_000
    assert decoded > 10_000 and rejected > 10_000  # both paths really exercised
    assert elapsed < 120, f"decoder too slow on garbage: {elapsed:.1f} s"


def test_mutated_stream_through_the_stream_reader_stays_bounded():
    rng = np.random.default_rng(7)
    seeds = _seeds()
    valid = encode(StringMessage("still alive", device_name="Check"))
    good = bad = reconnects = 0
    reader = StreamReader(max_body_size=MAX_BODY)
    for n in range(20_000):
        chunk = _mutate(rng, seeds[n % len(seeds)]) if n % 10 else valid
        try:
            for item in reader.feed(chunk):
                if isinstance(item, ProtocolError):
                    bad += 1
                else:
                    good += 1
        except FramingError:
            reconnects += 1  # the transport drops the connection; a new one starts clean
            reader = StreamReader(max_body_size=MAX_BODY)
        assert reader.pending_bytes <= MAX_BODY + 58 + 64 * 1024
    assert good > 0 and bad > 0 and reconnects > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=400))
def test_arbitrary_bytes_never_crash_the_decoder(data):
    _decode_or_reject(data)
    reader = StreamReader(max_body_size=MAX_BODY)
    try:
        for _ in reader.feed(data):
            pass
    except FramingError:
        pass


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30)
_name = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    name=_name,
    text=_text,
    code=st.integers(0, 0xFFFF),
    subcode=st.integers(-(2**63), 2**63 - 1),
    values=st.lists(st.floats(allow_nan=False), max_size=20),
    translation=st.tuples(_f32, _f32, _f32),
    version=st.sampled_from([1, 2]),
)
def test_arbitrary_valid_content_round_trips(*, name, text, code, subcode, values, translation, version):
    matrix = np.eye(4)
    matrix[:3, 3] = translation
    metadata = {"note": text} if version == 2 else {}
    for message in (
        TransformMessage(matrix, device_name=name, metadata=metadata),
        StringMessage(text, device_name=name, metadata=metadata),
        StatusMessage(code, subcode, name, text, device_name=name, metadata=metadata),
        SensorMessage(values, device_name=name, metadata=metadata),
    ):
        data = encode(message, version)
        again = decode(data)
        assert encode(again) == data
        assert again.device_name == name and again.metadata == metadata
    assert decode(encode(StringMessage(text))).text == text
    np.testing.assert_array_equal(decode(encode(TransformMessage(matrix))).matrix, matrix)


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_live_server_survives_mutated_traffic_and_still_receives():
    rng = np.random.default_rng(99)
    seeds = _seeds()
    rss_before = _max_rss_mib()
    inbox = Inbox(max_items=1000)
    with Server(port=0, inbox=inbox, max_body_size=MAX_BODY, stall_timeout_s=0.3) as server:
        sent = 0
        for _ in range(60):  # 60 connections × 50 mutated messages
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                payload = b"".join(_mutate(rng, seeds[int(rng.integers(0, len(seeds)))]) for _ in range(50))
                try:
                    sock.sendall(payload)
                except OSError:
                    pass  # the server may drop a connection whose stream is out of step
                sent += 50
            inbox.drain()  # the consumer keeps up; nothing is kept that nobody takes
        assert sent == 3000
        # A stalled message (header promising more bytes than ever come) does not hang the link.
        with socket.create_connection(("127.0.0.1", server.port)) as stalled:
            stalled.sendall(encode(StringMessage("x" * 100))[:80])
            _, events = inbox.wait_for(lambda i: isinstance(i, LinkEvent) and "stalled" in i.detail, 10)
            assert any(isinstance(i, LinkEvent) and "stalled" in i.detail for i in events)
        with Client(port=server.port) as client:
            assert client.wait_connected(10)
            client.send(StatusMessage(1, 0, "", "valid after garbage", device_name="Cryo"))
            found, _ = inbox.wait_for(lambda i: messages_of([i], "STATUS", "Cryo"), 10)
        assert found is not None and found.message.status_message == "valid after garbage"
        assert server._thread.is_alive()
        assert server.error_count > 0
    assert _max_rss_mib() - rss_before < 300  # bounded: no buffer grew with the garbage


def test_unconsumed_images_push_back_on_the_sender_and_none_is_lost():
    frame = encode(ImageMessage(np.zeros((512, 1024, 1), np.uint16), device_name="MR Image"))  # 1 MiB
    limit = 8 * 1024 * 1024
    inbox = Inbox(max_bytes=limit, coalesce=frozenset())  # keep every frame: the worst case
    with Server(port=0, inbox=inbox) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(0.2)
        sent = 0
        started = time.monotonic()
        while sent < 80 and time.monotonic() - started < 3.0:  # nobody consumes meanwhile
            try:
                sock.sendall(frame)
            except TimeoutError:
                break  # the receiver stopped reading: TCP pushes back on us
            sent += 1
        assert inbox.pending_bytes <= limit  # bounded although frames keep coming
        assert sent < 80, sent  # the sender was held back instead of the receiver buffering everything
        sock.settimeout(None)
        received = 0
        while received < sent:
            item = inbox.get(10)
            assert item is not None, f"only {received} of {sent} frames arrived"
            received += len(messages_of([item], "IMAGE"))
    assert received == sent
