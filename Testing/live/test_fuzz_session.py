"""A bounded, seeded fuzz run of the whole receiving side: 20 000 malformed messages (hostile
numbers and texts under the device names of the conventions, and mutated wire bytes that still
decode) are journaled and fed to live mode over both links. Nothing raises, every message is in
the journal, and the journal replays to the same field bit for bit."""

from __future__ import annotations

import numpy as np
from live_testing import ORIGIN_S, small_case

from CryoAblationLogic.igtl.codec import StreamReader, decode, encode
from CryoAblationLogic.igtl.crc64 import crc64
from CryoAblationLogic.igtl.errors import FramingError, ProtocolError
from CryoAblationLogic.igtl.messages import (
    ImageMessage,
    NdArrayMessage,
    RawMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.units import KELVIN
from CryoAblationLogic.live.journal import Journal, read_journal
from CryoAblationLogic.live.mode import LiveSession, feed_journal

SEED = 2026
COUNT = 20_000

_DIGITS = "0123456789"


def _number_text(rng) -> str:
    kind = rng.integers(0, 6)
    if kind == 0:
        return "".join(rng.choice(list(_DIGITS), int(rng.integers(1, 5000))))
    if kind == 1:
        return str(rng.choice(["nan", "inf", "-inf", "1e999", "-1e308", "0x1F", "", " ", "½"]))
    if kind == 2:
        return f"{rng.normal(0, 1e6):g}"
    return str(int(rng.integers(-3, 5)))


def _text(rng) -> str:
    kind = rng.integers(0, 8)
    if kind == 0:
        action = str(rng.choice(["FREEZE", "THAW", "OFF", "IDLE", "freeze", "MELT", ""]))
        extra = str(rng.choice(["", " PASSIVE", " ACTIVE", f" {_number_text(rng)}%", " %", " 100 %"]))
        return f"{action} {_number_text(rng)}{extra}"
    if kind == 1:
        depth = int(rng.integers(1, 20_000))
        return "{" + "[" * depth + "]" * depth + "}"
    if kind == 2:
        return "{" + ", ".join(f'"{_number_text(rng)}": {_number_text(rng)}' for _ in range(3)) + "}"
    if kind == 3:
        return ",".join(_number_text(rng) for _ in range(int(rng.integers(1, 300))))
    if kind == 4:
        return bytes(rng.integers(32, 127, int(rng.integers(0, 200)), dtype=np.uint8)).decode()
    return str(rng.choice(["", "OFF 1", "FREEZE 2 50%", '{"1": -40}', "-12.5,-30", "Scanning"]))


def _device(rng) -> str:
    return str(
        rng.choice(
            [
                "Cryo",
                "CryoState",
                "ProbeTemps",
                "Probe1Temp",
                "Probe0Temp",
                "Probe999Temp",
                "Probe1ToScanner",
                "Probe42ToScanner",
                "TC1",
                "TC2",
                "MR",
                "MR Image",
                "ACK_1",
                "IMAGE_TIMESTAMP",
                "",
                "Probe" + "9" * 10 + "Temp",
            ]
        )
    )


def _hostile(rng):
    """A well-framed message with hostile content."""
    device = _device(rng)
    kind = rng.integers(0, 7)
    if kind == 0:
        return StatusMessage(
            int(rng.integers(0, 20)), int(rng.integers(-9, 9)), "E", _text(rng), device_name=device
        )
    if kind == 1:
        return StringMessage(_text(rng)[:60_000], device_name=device)
    if kind == 2:
        values = rng.choice(
            [0.0, -1.0, 1e300, np.nan, np.inf, 233.15, 310.15, -1e-300], int(rng.integers(0, 40))
        )
        return SensorMessage(
            values,
            int(rng.integers(0, 256)),
            [KELVIN, 0, 2**64 - 1][int(rng.integers(0, 3))],
            device_name=device,
        )
    if kind == 3:
        shape = tuple(int(n) for n in rng.integers(1, 4, int(rng.integers(1, 3))))
        dtype = rng.choice([np.float64, np.int32, np.complex128, np.uint8])
        return NdArrayMessage((rng.normal(0, 1e4, shape)).astype(dtype), device_name=device)
    if kind == 4:
        matrix = np.eye(4)
        matrix[:3, :] = rng.choice([0.0, 1.0, -1.0, 1e30, 3.0e4, 12.0], (3, 4))
        return TransformMessage(matrix, device_name=device)
    if kind == 5 and rng.random() < 0.05:  # a few frames: each costs a file in the journal
        axes = rng.choice([0.0, 1.0, 2.0, -1.0], (3, 3))
        return ImageMessage(
            rng.integers(0, 99, (3, 2, 2), dtype=np.int16), axes, (0.0, 0.0, 0.0), device_name=device
        )
    return RawMessage(
        str(rng.choice(["VIDEO", "BIND", "COMMAND", "GET_STATUS"])), rng.bytes(int(rng.integers(0, 64)))
    )


def _mutated_wire(rng, reader: StreamReader):
    """Messages that come out of mutated bytes of a good console message (or none)."""
    data = bytearray(encode(StatusMessage(1, 0, "", "FREEZE 1 100%", device_name="Cryo")))
    for _ in range(int(rng.integers(1, 6))):
        position = int(rng.integers(58, len(data)))
        data[position] = int(rng.integers(0, 256))
    data[50:58] = crc64(bytes(data[58:])).to_bytes(8, "big")
    try:
        return [item for item in reader.feed(bytes(data)) if not isinstance(item, ProtocolError)]
    except FramingError:
        reader.close()
        return []


def _received(message) -> list:
    """What a receiver would decode from ``message`` (nothing if it cannot go on the wire)."""
    try:
        return [decode(encode(message))]
    except ProtocolError:
        return []


def test_20000_malformed_messages_never_end_the_session_and_replay_the_same(tmp_path):
    rng = np.random.default_rng(SEED)
    reader = StreamReader()
    session = LiveSession(small_case(), update_interval_s=60.0)
    fed = 0
    with Journal(tmp_path, "fuzz") as journal:
        session.journal = journal
        journal.record_note("start", {"settings": session.settings.to_dict(), "case": "fuzz"})
        arrival = ORIGIN_S
        while fed < COUNT:
            batch = _mutated_wire(rng, reader) if rng.random() < 0.2 else _received(_hostile(rng))
            for message in batch:
                arrival += float(rng.choice([0.0, 0.01, 0.5]))
                stamp = rng.choice([0.0, arrival, arrival + 3599.0, arrival - 1e6, 2.0**32 - 1])
                message.timestamp_raw = timestamp_from_seconds(float(stamp)) if stamp else 0
                link = str(rng.choice(["console", "scanner"]))
                journal.record_message(message, arrival, link=link)
                session.feed(message, arrival, link=link)
                fed += 1
    assert fed >= COUNT
    assert session.note_counts  # it did notice what was wrong
    contents = read_journal(tmp_path / "fuzz.jsonl")
    assert len(contents.messages()) == fed
    again = LiveSession(small_case(), update_interval_s=60.0)
    assert feed_journal(again, contents) == fed - sum(
        "voxels_not_kept" in r["content"] for r in contents.messages("IMAGE")
    )
    assert again.clock_s == session.clock_s
    np.testing.assert_array_equal(again.temperature_c, session.temperature_c)
