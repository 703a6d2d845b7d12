"""A journal holds enough to rebuild every message byte for byte, and to replay a procedure."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl import (
    CapabilityMessage,
    ImageMessage,
    NdArrayMessage,
    PointEntry,
    PointMessage,
    PositionMessage,
    QueryMessage,
    RawMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TrackingDataMessage,
    TrackingElement,
    TransformMessage,
    decode,
    encode,
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.units import KELVIN
from CryoAblationLogic.live.journal import Journal, read_journal, record_to_message
from CryoAblationLogic.live.resend import resend_journal


def _all_kinds() -> list:
    rng = np.random.default_rng(11)
    pose = np.eye(4)
    pose[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    pose[:3, 3] = (1.1, -2.2, 3.3)  # not exact in float32: the journal must keep float32 values
    rgb = rng.integers(0, 255, size=(3, 2, 2, 3), dtype=np.uint8)
    directions = np.array([[0.6, -0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    messages = [
        TransformMessage(pose, device_name="Probe1ToScanner"),
        PositionMessage((0.1, 0.2, 0.3), (0.0, 0.0, 0.6, 0.8)),
        ImageMessage.from_volume(
            rng.normal(size=(5, 4, 3)).astype(np.float32),
            (0.3, -7.1, 2.2),
            (0.7, 0.7, 2.5),
            directions,
            "LPS",
        ),
        ImageMessage.from_volume(rgb, (0, 0, 0), (1, 1, 1), endian="big"),
        ImageMessage(np.ones((2, 2, 1), np.uint16), size=(10, 10, 5), subvolume_offset=(3, 4, 2)),
        StringMessage("Probe 1 at −40 °C"),
        StringMessage("ascii", encoding=3),
        StatusMessage(13, -5, "DNR", "not ready"),
        SensorMessage([233.15, float("nan"), float("inf")], status=1, unit=KELVIN),
        NdArrayMessage(np.array([[1 + 2j, 3 - 4j]])),
        NdArrayMessage(np.arange(6, dtype=np.uint32).reshape(3, 2)),
        PointMessage([PointEntry("Tip", (1.1, 2.2, 3.3), 1.7, "Probes", (1, 2, 3, 4), "Probe1")]),
        CapabilityMessage(["TRANSFORM", "IMAGE"]),
        TrackingDataMessage([TrackingElement("Coil", pose, 3)]),
        QueryMessage("GET", "CAPABILITY"),
        QueryMessage("STT", "TDATA", resolution_ms=50, coordinate_name="Scanner"),
        QueryMessage("RTS", "TDATA", status=1),
        RawMessage("VIDEO", b"\x00\xff\x10"),
    ]
    for n, message in enumerate(messages):
        message.device_name = message.device_name or f"Dev{n}"
        message.timestamp_raw = timestamp_from_seconds(1_800_000_000 + n / 7)
        if n % 2:
            message.header_version, message.message_id, message.metadata = (
                2,
                n,
                {"Probe": "IceRod", "n": str(n)},
            )
    # Decoded copies: what the journal normally sees (wire precision, the sender's own spelling).
    return [decode(encode(m)) for m in messages]


def test_every_journaled_message_rebuilds_to_the_same_bytes(tmp_path):
    messages = _all_kinds()
    with Journal(tmp_path, "replay-me") as journal:
        for message in messages:
            journal.record_message(message)
    contents = read_journal(tmp_path / "replay-me.jsonl")
    for record, original in zip(contents.records, messages, strict=True):
        rebuilt = record_to_message(record, contents.folder)
        assert encode(rebuilt) == encode(original), record["message_type"]


def test_replay_keeps_order_and_spacing(tmp_path):
    with Journal(tmp_path, "timed") as journal:
        for n, text in enumerate(["FREEZE 1", "THAW 1 PASSIVE", "OFF 1"]):
            journal.record_message(
                StringMessage(text, device_name="CryoState"), arrival_time_s=100.0 + 2.0 * n
            )
        journal.record_message(StringMessage("START_UP", device_name="CMD_1"), 101.0, direction="out")
    sent, slept = [], []
    count = resend_journal(tmp_path / "timed.jsonl", sent.append, speed=4.0, sleep=slept.append)
    assert count == 3  # only what came in
    assert [m.text for m in sent] == ["FREEZE 1", "THAW 1 PASSIVE", "OFF 1"]
    assert slept == [0.5, 0.5]
    with pytest.raises(InputError, match="speed"):
        resend_journal(tmp_path / "timed.jsonl", sent.append, speed=-1)
    with pytest.raises(InputError, match="not a message record"):
        record_to_message({"kind": "event", "seq": 3}, tmp_path)
