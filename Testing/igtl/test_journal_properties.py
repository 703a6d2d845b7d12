"""Journal records, property-based: what the journal writes reads back to the same message bytes,
and whatever a journal line holds, reading and rebuilding it either works or is an InputError
naming the problem (never another exception)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl import (
    NdArrayMessage,
    PointEntry,
    PointMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
    decode,
    encode,
)
from CryoAblationLogic.igtl.messages import MESSAGE_CLASSES
from CryoAblationLogic.live.journal import Journal, read_journal, record_to_message

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=6).filter(
    lambda s: len(s.encode()) <= 20
)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite32 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)

messages = st.one_of(
    st.builds(
        lambda text, name: StringMessage(text, device_name=name),
        st.text(st.characters(codec="utf-8"), max_size=40),
        names,
    ),
    st.builds(
        StatusMessage,
        st.integers(0, 0xFFFF),
        st.integers(-(2**63), 2**63 - 1),
        st.text(st.characters(codec="ascii", exclude_characters="\0"), max_size=20),
        st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40),
    ),
    st.builds(
        SensorMessage,
        st.lists(floats, max_size=8),
        st.integers(0, 255),
        st.integers(0, 2**64 - 1),
    ),
    st.builds(
        lambda values: NdArrayMessage(np.array(values, dtype=np.float64)),
        st.lists(floats, min_size=1, max_size=8),
    ),
    st.builds(
        lambda values: TransformMessage(np.vstack([np.array(values).reshape(3, 4), [0, 0, 0, 1]])),
        st.lists(finite32, min_size=12, max_size=12),
    ),
    st.builds(
        lambda name, xyz, d: PointMessage([PointEntry(name, tuple(xyz), d)]),
        st.text(st.characters(codec="ascii", exclude_characters="\0"), max_size=10),
        st.lists(finite32, min_size=3, max_size=3),
        finite32,
    ),
)


@FAST
@given(message=messages, version=st.sampled_from([1, 2]), metadata=st.dictionaries(names, names, max_size=3))
def test_a_journaled_message_rebuilds_to_the_same_bytes(tmp_path_factory, message, version, metadata):
    message.header_version = version
    if version == 2:
        message.metadata = metadata
    received = decode(encode(message))  # as the journal sees it: wire precision
    folder = tmp_path_factory.mktemp("journal")
    with Journal(folder, "p") as journal:
        journal.record_message(received)
    contents = read_journal(folder / "p.jsonl")
    assert encode(record_to_message(contents.records[0], folder)) == encode(received)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats.filter(math.isfinite) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["seq", "kind", "arrival_time_s", "direction", "message_type", "device_name", "timestamp_raw",
     "header_version", "message_id", "metadata", "content", "peer", "link", "event", "detail", "note"]
)  # fmt: skip


@st.composite
def records(draw):
    """A journal record with some of its fields replaced by arbitrary JSON."""
    record = {
        "seq": 0,
        "kind": draw(st.sampled_from(["message", "event", "live"])),
        "arrival_time_s": 1.0,
        "direction": "in",
        "connection_id": 1,
        "peer": "",
        "message_type": draw(st.sampled_from([*MESSAGE_CLASSES, "GET_STATUS", "VIDEO"])),
        "device_name": "D",
        "timestamp_s": None,
        "timestamp_raw": 0,
        "header_version": 1,
        "message_id": 0,
        "metadata": {},
        "content": draw(st.dictionaries(st.text(max_size=12), json_values, max_size=5)),
        "event": "connected",
        "detail": "",
        "note": "clock",
    }
    for name in draw(st.lists(field_names, max_size=3)):
        record[name] = draw(json_values)
    return record


@FAST
@given(record=records())
def test_any_record_reads_and_rebuilds_or_is_an_input_error(tmp_path_factory, record):
    folder = tmp_path_factory.mktemp("journal")
    (folder / "p.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    try:
        contents = read_journal(folder / "p.jsonl")
        for found in contents.records:
            if found["kind"] == "message":
                record_to_message(found, folder)
    except InputError:
        pass


@pytest.mark.parametrize("bits", [0xFFF8000000000001, 0x7FF4000000000000, 0xFFF8000000000000])
def test_a_nan_keeps_its_sign_and_payload_through_the_journal(tmp_path, bits):
    """Found by the property above: JSON spells every NaN "nan", so an NDARRAY holding a negative or
    signalling NaN came back from the journal as another NaN, with another CRC."""
    array = np.array([1.5, 0.0], dtype=np.float64)
    array.view(np.uint64)[1] = bits
    received = decode(encode(NdArrayMessage(array)))
    with Journal(tmp_path, "p") as journal:
        journal.record_message(received)
    rebuilt = record_to_message(read_journal(tmp_path / "p.jsonl").records[0], tmp_path)
    assert rebuilt.array.view(np.uint64).tolist() == array.view(np.uint64).tolist()
    assert encode(rebuilt) == encode(received)
