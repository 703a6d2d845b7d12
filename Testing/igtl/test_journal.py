"""Procedure journal: every message and event, flushed per record, images beside it as NRRD,
readable after a crash mid-write."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl import (
    ImageMessage,
    NdArrayMessage,
    PointEntry,
    PointMessage,
    RawMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TrackingDataMessage,
    TrackingElement,
    TransformMessage,
    timestamp_from_seconds,
)
from CryoAblationLogic.igtl.inbox import LinkEvent, Received
from CryoAblationLogic.igtl.transport import Client, Server
from CryoAblationLogic.igtl.units import KELVIN
from CryoAblationLogic.live.journal import Journal, read_journal


def _messages():
    matrix = np.eye(4)
    matrix[:3, 3] = (5.0, -7.5, 12.0)
    stamp = timestamp_from_seconds(1_800_000_000.5)
    return [
        TransformMessage(matrix, device_name="Probe1ToScanner", timestamp_raw=stamp),
        StatusMessage(1, 0, "", "FREEZE", device_name="Cryo"),
        StringMessage("THAW 2", device_name="CryoState"),
        SensorMessage([233.15, float("nan")], unit=KELVIN, device_name="Probe1Temp"),
        NdArrayMessage(np.array([-40.0, -35.5]), device_name="ProbeTemps"),
        PointMessage([PointEntry("Tip", (1.0, 2.0, 3.0), 1.5)], device_name="Targets"),
        RawMessage("VIDEO", b"\x00\x01\x02", device_name="Camera"),
        TrackingDataMessage([TrackingElement("Coil1", matrix, 3)], device_name="MRTracking"),
    ]


def test_records_every_message_with_times_and_content(tmp_path):
    with Journal(tmp_path, "case-001") as journal:
        for n, message in enumerate(_messages()):
            journal.record(Received(message, 1000.0 + n, 3, "127.0.0.1:5000"))
        journal.record(LinkEvent("disconnected", 3, "127.0.0.1:5000", "peer closed", 1010.0))
        journal.record_message(StringMessage("START_UP", device_name="CMD_1"), direction="out")
    contents = read_journal(tmp_path / "case-001.jsonl")
    assert not contents.truncated_tail
    records = contents.records
    assert [r["seq"] for r in records] == list(range(10))
    transform = records[0]
    assert transform["message_type"] == "TRANSFORM" and transform["device_name"] == "Probe1ToScanner"
    assert transform["arrival_time_s"] == 1000.0
    assert transform["timestamp_s"] == pytest.approx(1_800_000_000.5)
    assert transform["content"]["matrix"][0][3] == 5.0
    assert records[1]["content"]["status_message"] == "FREEZE"
    assert records[2]["content"]["text"] == "THAW 2"
    assert records[3]["content"]["values"] == [233.15, "nan"]  # strict JSON, NaN kept as text
    assert records[4]["content"]["values"] == [-40.0, -35.5]
    assert records[5]["content"]["points"][0]["position_mm"] == [1.0, 2.0, 3.0]
    assert records[6]["content"]["content_base64"] == "AAEC"
    assert records[7]["content"]["elements"][0]["name"] == "Coil1"
    assert records[7]["content"]["elements"][0]["matrix"][1][3] == -7.5
    assert records[8]["kind"] == "event" and records[8]["event"] == "disconnected"
    assert records[9]["direction"] == "out" and records[9]["timestamp_s"] is None
    for line in (tmp_path / "case-001.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_images_go_to_nrrd_files_beside_the_journal(tmp_path):
    rng = np.random.default_rng(3)
    volume = rng.integers(-500, 1500, size=(6, 5, 4), dtype=np.int16)
    directions = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # rotated in-plane
    image = ImageMessage.from_volume(
        volume, (10.0, 20.0, 30.0), (0.8, 0.9, 3.0), directions, device_name="MR Image"
    )
    with Journal(tmp_path, "case-002") as journal:
        journal.record_message(image)
    contents = read_journal(tmp_path / "case-002.jsonl")
    record = contents.messages("IMAGE")[0]
    assert record["content"]["file"].startswith("case-002_images/")
    assert record["content"]["spacing_mm"] == pytest.approx([0.8, 0.9, 3.0])
    voxels, ijk_to_lps = contents.image(record)
    np.testing.assert_array_equal(voxels, volume)
    expected = image.ijk_to_world.copy()
    expected[:2] *= -1  # RAS → LPS
    np.testing.assert_allclose(ijk_to_lps, expected, atol=1e-5)


def test_truncated_last_line_loses_nothing_earlier(tmp_path):
    with Journal(tmp_path, "crash") as journal:
        for message in _messages()[:3]:
            journal.record_message(message)
    path = tmp_path / "crash.jsonl"
    data = path.read_bytes()
    last = data[:-1].rfind(b"\n") + 1
    path.write_bytes(data[: last + 25])  # the process died while writing the third record
    contents = read_journal(path)
    assert contents.truncated_tail
    assert [r["message_type"] for r in contents.records] == ["TRANSFORM", "STATUS"]
    # Reopening cuts the incomplete line and goes on with the next sequence number.
    with Journal(tmp_path, "crash") as journal:
        journal.record_message(StringMessage("after restart"))
    records = read_journal(path).records
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert records[-1]["content"]["text"] == "after restart"


def test_damaged_middle_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    record = '{"seq": %d, "kind": "event", "arrival_time_s": 1.0, "event": "connected", "detail": ""}'
    path.write_text(f'{record % 0}\n{{"seq": 1\n{record % 2}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2"):
        read_journal(path)
    with pytest.raises(InputError, match="procedure"):
        Journal(tmp_path, "../escape")


def test_transport_listener_journals_every_arrival_even_coalesced_ones(tmp_path):
    with Journal(tmp_path, "live") as journal, Server(port=0, listener=journal.record) as server:
        with Client(port=server.port) as client:
            assert client.wait_connected(10)
            for n in range(20):
                matrix = np.eye(4)
                matrix[0, 3] = n
                client.send(TransformMessage(matrix, device_name="Probe1ToScanner"))
            deadline = time.monotonic() + 10
            while server.received_count < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
    records = read_journal(tmp_path / "live.jsonl").messages("TRANSFORM")
    assert [r["content"]["matrix"][0][3] for r in records] == list(range(20))
