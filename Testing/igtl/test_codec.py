"""OpenIGTLink codec: byte-exact against the reference test vectors, content as documented, clear
errors for malformed input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl import (
    CapabilityMessage,
    CrcError,
    FramingError,
    ImageMessage,
    MessageTooLarge,
    NdArrayMessage,
    PointEntry,
    PointMessage,
    PositionMessage,
    ProtocolError,
    QueryMessage,
    RawMessage,
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
    timestamp_from_seconds,
    timestamp_to_seconds,
)
from CryoAblationLogic.igtl.units import KELVIN, decode_unit, encode_unit

VECTORS = Path(__file__).resolve().parent.parent / "Data" / "igtl-test-vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())["messages"]
# Types whose content this codec interprets (the others pass through as RawMessage).
INTERPRETED = {
    "TRANSFORM",
    "POSITION",
    "IMAGE",
    "STRING",
    "STATUS",
    "SENSOR",
    "NDARRAY",
    "POINT",
    "CAPABILITY",
    "TDATA",
}
METADATA = {"First patient age": "22", "Second patient age": "25"}
# The vectors' common translation and rotation (float32 values from igtl_test_data_transform.h).
VECTOR_TRANSLATION = (46.0531, 19.4709, 46.0531)


def _vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def test_crc64_check_value():
    assert crc64(b"123456789") == 0x6C40DF5F0B497347
    assert crc64(b"") == 0


def test_crc64_fast_path_matches_bitwise_definition():
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()

    def bitwise(buf: bytes) -> int:  # straight from the definition, no table
        c = 0
        for byte in buf:
            c ^= byte << 56
            for _ in range(8):
                c = ((c << 1) ^ 0x42F0E1EBA9EA3693) if c & (1 << 63) else (c << 1)
                c &= (1 << 64) - 1
        return c

    assert crc64(data) == bitwise(data)
    assert crc64(data[3000:], crc64(data[:3000])) == crc64(data)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_vector_round_trip_is_byte_exact(entry):
    raw = _vector(entry["file"])
    version, _, _, timestamp, body_size, crc = struct.unpack(">H12s20sQQQ", raw[:58])
    assert body_size == entry["body_size"] == len(raw) - 58
    assert crc == int(entry["crc"], 16) == crc64(raw[58:])
    message = decode(raw)
    assert message.message_type == entry["message_type"]
    assert message.device_name == entry["device_name"]
    assert message.timestamp_raw == int(entry["timestamp_raw"], 16) == timestamp
    assert message.header_version == entry["header_version"] == version
    if "extended_header" in entry:
        assert message.message_id == entry["extended_header"]["message_id"]
        assert message.metadata == (METADATA if entry["extended_header"]["meta_size"] else {})
    assert isinstance(message, RawMessage) == (entry["message_type"] not in INTERPRETED)
    assert encode(message) == raw


@pytest.mark.parametrize("name", ["transform.bin", "transformFormat2.bin"])
def test_transform_vector_content(name):
    message = decode(_vector(name))
    assert isinstance(message, TransformMessage)
    np.testing.assert_allclose(message.matrix[:3, 3], VECTOR_TRANSLATION, atol=1e-4)
    rotation = message.matrix[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)  # a rotation
    np.testing.assert_array_equal(message.matrix[3], [0, 0, 0, 1])
    assert abs(message.timestamp_s - 0x499602D4 / 2**32) < 1e-9


@pytest.mark.parametrize("name", ["position.bin", "positionFormat2.bin"])
def test_position_vector_content(name):
    message = decode(_vector(name))
    assert isinstance(message, PositionMessage)
    np.testing.assert_allclose(message.position_mm, VECTOR_TRANSLATION, atol=1e-4)
    np.testing.assert_allclose(message.quaternion, [0.0, 0.5773503, 0.5773503, 0.3333333], atol=1e-6)


def test_image_vector_content():
    message = decode(_vector("image.bin"))
    assert isinstance(message, ImageMessage)
    assert message.voxels.shape == (50, 50, 1) and message.voxels.dtype == np.uint8
    assert message.endian == "little" and message.coordinate_system == "RAS"
    np.testing.assert_allclose(message.spacing_mm, [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(message.centre_mm, VECTOR_TRANSLATION, atol=1e-4)
    # The pixels are the 50×50 test pattern of igtl_test_data_image.h, row-major in (j, i).
    raw_pixels = _vector("image.bin")[58 + 72 :]
    np.testing.assert_array_equal(
        message.voxels[:, :, 0].T, np.frombuffer(raw_pixels, np.uint8).reshape(50, 50)
    )


def test_state_vector_contents():
    status = decode(_vector("status.bin"))
    assert (status.code, status.subcode, status.error_name, status.status_message) == (
        15,
        10,
        "ACTUATOR_DISABLED",
        "Actuator A is disabled.",
    )
    string = decode(_vector("string.bin"))
    assert (string.text, string.encoding) == ("Welcome to OpenIGTLink", 3)
    sensor = decode(_vector("sensor.bin"))
    np.testing.assert_array_equal(
        sensor.values, [123456.78, 12345.678, 1234.5678, 123.45678, 12.345678, 1.2345678]
    )
    assert decode_unit(sensor.unit) == ([("meter", 1), ("second", -2)], 0)
    ndarray = decode(_vector("ndarray.bin"))
    assert ndarray.array.shape == (5, 4, 3) and ndarray.array.dtype == np.float64
    np.testing.assert_array_equal(ndarray.array.reshape(-1), np.arange(60))
    points = decode(_vector("point.bin")).points
    assert [p.name for p in points] == [f"POINT_DESCRIPTION_{n}" for n in range(3)]
    assert points[0].position_mm == (10.0, 15.0, 20.0) and points[0].diameter_mm == 5.0
    assert points[2].group == "Landmark" and points[2].owner == "IMAGE_0"
    assert decode(_vector("capability.bin")).types == ["IMAGE", "GET_IMAGE", "TRANSFORM", "GET_TRANS"]
    tracking = decode(_vector("tdata.bin"))
    assert [(e.name, e.tool_type) for e in tracking.elements] == [(f"Tracker{n}", 2) for n in range(3)]
    np.testing.assert_allclose(tracking.elements[2].matrix[:3, 3], VECTOR_TRANSLATION, atol=1e-4)


def _round_trip(message, header_version=None):
    data = encode(message, header_version)
    again = decode(data)
    assert encode(again) == data
    return again


def test_every_type_round_trips_through_both_header_versions():
    rng = np.random.default_rng(1)
    matrix = np.eye(4)
    matrix[:3, 3] = (1.5, -2.25, 100.0)
    volume = rng.integers(-1000, 1000, size=(4, 3, 2), dtype=np.int16)
    messages = [
        TransformMessage(matrix, device_name="PLANE_0"),
        PositionMessage((1, 2, 3), (0, 0, 0, 1), device_name="Probe1ToScanner"),
        ImageMessage.from_volume(volume, (-10, -20, -30), (0.5, 0.75, 3.0), device_name="MR Image"),
        StringMessage("START_SEQUENCE", device_name="CMD_0001"),
        StringMessage("Temp −40 °C", device_name="CryoState"),  # UTF-8 (pyigtl defect B5)
        StatusMessage(13, 2, "DNR", "probe 2 not ready", device_name="Cryo"),
        SensorMessage([253.15, 233.15], unit=KELVIN, device_name="Probe1Temp"),
        NdArrayMessage(np.array([-40.5, -20.25, 37.0]), device_name="ProbeTemps"),
        PointMessage([PointEntry("Tip", (1.0, 2.0, 3.0), 2.5, "Probes", (255, 0, 0, 255), "Probe1")]),
        CapabilityMessage(["TRANSFORM", "IMAGE", "GET_STATUS"]),
        QueryMessage("GET", "TRANSFORM", device_name="Probe1ToScanner"),
        QueryMessage("STT", "TDATA", resolution_ms=50, coordinate_name="Scanner"),
        QueryMessage("STP", "TDATA"),
        QueryMessage("RTS", "TDATA", status=0),
        TrackingDataMessage([TrackingElement("Probe1", np.eye(4), 2), TrackingElement("Coil", np.eye(4), 3)]),
        RawMessage("VIDEO", b"\x01" * 70),
    ]
    for message in messages:
        for version in (1, 2):
            message.metadata = {"Unit": "mm", "Probe": "IceRod-1.5"} if version == 2 else {}
            message.message_id = 7 if version == 2 else 0
            again = _round_trip(message, version)
            assert type(again) is type(message)
            assert again.message_type == message.message_type
            assert again.device_name == message.device_name
            assert again.header_version == version
            assert again.metadata == message.metadata
            assert again.message_id == message.message_id
    image = decode(encode(messages[2]))
    np.testing.assert_array_equal(image.voxels, volume)
    np.testing.assert_allclose(image.origin_mm, (-10, -20, -30))
    np.testing.assert_allclose(image.spacing_mm, (0.5, 0.75, 3.0))
    assert decode(encode(messages[4])).text == "Temp −40 °C"
    assert decode(encode(messages[0])).message_type == "TRANSFORM"
    assert decode(encode(messages[10])).message_type == "GET_TRANSFOR"
    assert decode(encode(messages[10])).data_type == "TRANSFORM"
    stt = decode(encode(messages[11]))
    assert (stt.resolution_ms, stt.coordinate_name) == (50, "Scanner")


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64]
)
def test_image_scalar_types_and_byte_orders(dtype, endian):
    rng = np.random.default_rng(2)
    voxels = (rng.random((5, 4, 3)) * 100).astype(dtype)
    directions = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)  # oblique in-plane
    message = ImageMessage.from_volume(voxels, (1, 2, 3), (1, 2, 4), directions, "LPS", endian=endian)
    again = _round_trip(message)
    assert again.voxels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(again.voxels, voxels)
    assert again.coordinate_system == "LPS" and again.endian == endian
    np.testing.assert_allclose(again.directions, directions, atol=1e-7)
    np.testing.assert_allclose(again.ijk_to_world @ [4, 3, 2, 1], [1 - 3 * 2, 2 + 4, 3 + 2 * 4, 1], atol=1e-5)


def test_image_vector_components_and_subvolume():
    voxels = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)  # RGB
    again = _round_trip(ImageMessage.from_volume(voxels, (0, 0, 0), (1, 1, 1)))
    assert again.components == 3
    np.testing.assert_array_equal(again.voxels, voxels)
    sub = ImageMessage(np.ones((2, 2, 1), np.uint16), size=(10, 10, 5), subvolume_offset=(3, 4, 2))
    again = _round_trip(sub)
    assert again.size == (10, 10, 5) and again.subvolume_offset == (3, 4, 2)
    with pytest.raises(ProtocolError, match="does not fit"):
        ImageMessage(np.ones((2, 2, 1), np.uint16), size=(10, 10, 5), subvolume_offset=(9, 0, 0))


def test_timestamps():
    assert timestamp_to_seconds(0) is None
    raw = timestamp_from_seconds(1_700_000_000.25)
    assert raw >> 32 == 1_700_000_000 and raw & 0xFFFFFFFF == 2**30
    assert abs(timestamp_to_seconds(raw) - 1_700_000_000.25) < 1e-9
    assert timestamp_from_seconds(5.9999999999999) == 6 << 32  # rounding carries into the seconds
    with pytest.raises(ProtocolError):
        timestamp_from_seconds(-1.0)


def test_units():
    assert decode_unit(KELVIN) == ([("kelvin", 1)], 0)
    assert decode_unit(encode_unit([("meter", 1)], -3)) == ([("meter", 1)], -3)
    with pytest.raises(ProtocolError):
        encode_unit([("celsius", 1)])


# ---------------------------------------------------------------------------------------------
# Malformed input


def test_sending_invalid_content_names_the_field():
    with pytest.raises(InputError, match="device_name"):
        encode(TransformMessage(device_name="CryoProbe1TipToScanner"))  # 22 bytes > 20
    with pytest.raises(ProtocolError, match=r"TRANSFORM.matrix"):
        TransformMessage(np.eye(3))
    with pytest.raises(ProtocolError, match="finite"):
        encode(TransformMessage(np.full((4, 4), np.nan)))
    with pytest.raises(ProtocolError, match=r"STRING.text"):
        encode(StringMessage("−40 °C", encoding=3))
    with pytest.raises(ProtocolError, match=r"STRING.text"):
        encode(StringMessage("x" * 70000))
    with pytest.raises(ProtocolError, match=r"IMAGE.voxels"):
        ImageMessage(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(ProtocolError, match=r"SENSOR.values"):
        SensorMessage(np.zeros(300))
    with pytest.raises(ProtocolError, match=r"STATUS.error_name"):
        encode(StatusMessage(1, 0, "X" * 21))


def _with_body(raw: bytes, body: bytes, message_type: bytes | None = None) -> bytes:
    version, type_raw, name, timestamp, _, _ = struct.unpack(">H12s20sQQQ", raw[:58])
    type_raw = message_type.ljust(12, b"\0") if message_type else type_raw
    return struct.pack(">H12s20sQQQ", version, type_raw, name, timestamp, len(body), crc64(body)) + body


@pytest.mark.parametrize(
    ("name", "body", "key"),
    [
        ("transform.bin", b"\0" * 47, "TRANSFORM"),
        ("position.bin", b"\0" * 20, "POSITION"),
        ("image.bin", b"\0" * 71, "IMAGE"),
        ("string.bin", b"\0\x03\0\x10abc", "STRING"),
        ("string.bin", b"\0\x07\0\x03abc", "STRING.text"),
        ("status.bin", b"\0" * 29, "STATUS"),
        ("sensor.bin", b"\x02\0" + b"\0" * 8 + b"\0" * 8, "SENSOR"),
        ("ndarray.bin", b"\x0c\x01\0\x01" + b"\0" * 8, "NDARRAY.scalar_type"),
        ("ndarray.bin", b"\x0b\x01\0\x05" + b"\0" * 8, "NDARRAY"),
        ("point.bin", b"\0" * 135, "POINT"),
        ("capability.bin", b"\0" * 13, "CAPABILITY"),
    ],
)
def test_malformed_bodies_raise_protocol_errors_naming_the_type(name, body, key):
    with pytest.raises(ProtocolError) as info:
        decode(_with_body(_vector(name), body))
    assert info.value.key == key


def test_image_header_checks():
    raw = bytearray(_vector("image.bin")[58:])
    for offset, value, key in [
        (0, 2, "IMAGE.version"),
        (3, 9, "IMAGE.scalar_type"),
        (4, 0, "IMAGE.endian"),
        (5, 3, "IMAGE.coordinate_system"),
    ]:
        bad = bytearray(raw)
        bad[offset if offset else 1] = value  # V is uint16: its low byte is offset 1
        with pytest.raises(ProtocolError) as info:
            decode(_with_body(_vector("image.bin"), bytes(bad)))
        assert info.value.key == key
    with pytest.raises(ProtocolError, match="expected 2572"):
        decode(_with_body(_vector("image.bin"), bytes(raw) + b"\0"))


def test_crc_mismatch_and_framing_errors():
    raw = bytearray(_vector("transform.bin"))
    raw[-1] ^= 0x01
    with pytest.raises(CrcError):
        decode(bytes(raw))
    assert isinstance(decode(bytes(raw), check_crc=False), TransformMessage)
    garbage = bytearray(_vector("transform.bin"))
    garbage[2:14] = b"\x01\x02garbage\0\0\0"
    with pytest.raises(FramingError, match="TYPE"):
        decode(bytes(garbage))
    bad_version = b"\x00\x07" + _vector("transform.bin")[2:]
    with pytest.raises(FramingError, match="header version 7"):
        decode(bad_version)
    with pytest.raises(MessageTooLarge):
        decode(_vector("image.bin"), max_body_size=1000)
    with pytest.raises(ProtocolError, match="BODY_SIZE says"):
        decode(_vector("transform.bin")[:-1])


def test_bad_extended_header_and_metadata():
    raw = _vector("transformFormat2.bin")
    body = bytearray(raw[58:])
    body[0:2] = b"\x00\x04"  # EXT_HEADER_SIZE too small
    with pytest.raises(ProtocolError, match="EXT_HEADER_SIZE"):
        decode(_with_body(raw, bytes(body)))
    body = bytearray(raw[58:])
    body[4:8] = struct.pack(">I", 500)  # META_SIZE beyond the body
    with pytest.raises(ProtocolError, match="exceed the body"):
        decode(_with_body(raw, bytes(body)))
    body = bytearray(raw[58:])
    body[60:62] = b"\x00\x05"  # INDEX_COUNT does not fit META_HEADER_SIZE
    with pytest.raises(ProtocolError, match="INDEX_COUNT"):
        decode(_with_body(raw, bytes(body)))


def test_stream_reader_splits_any_chunking_and_reports_bad_messages():
    stream = b"".join(_vector(e["file"]) for e in MANIFEST)
    corrupt = bytearray(_vector("string.bin"))
    corrupt[-1] ^= 0xFF
    stream += bytes(corrupt) + _vector("status.bin")
    for chunk in (1, 7, 58, 1000, len(stream)):
        reader = StreamReader()
        items = []
        for start in range(0, len(stream), chunk):
            items.extend(reader.feed(stream[start : start + chunk]))
        assert len(items) == len(MANIFEST) + 2
        assert isinstance(items[-2], CrcError)  # bad message reported, stream goes on
        assert isinstance(items[-1], StatusMessage)
        assert reader.pending_bytes == 0
    with pytest.raises(FramingError):
        list(StreamReader().feed(b"\x00\x01" + b"\xff" * 60))
    with pytest.raises(MessageTooLarge):
        list(StreamReader(max_body_size=100).feed(_vector("image.bin")[:58]))


def test_query_type_names_as_the_reference_spells_them():
    capability = QueryMessage("GET", "CAPABILITY")
    assert capability.message_type == "GET_CAPABIL"  # igtlGetCapabilityMessage's name
    again = decode(encode(capability))
    assert (again.prefix, again.data_type, again.message_type) == ("GET", "CAPABILITY", "GET_CAPABIL")
    assert decode(encode(QueryMessage("STT", "TRANSFORM"))).message_type == "STT_TRANSFOR"
    odd = _with_body(_vector("string.bin"), b"", b"GET_TRANSF")  # another implementation's cut
    again = decode(odd)
    assert again.data_type == "TRANSFORM" and encode(again) == odd


def test_device_names_must_be_valid_utf8():
    raw = bytearray(_vector("string.bin"))
    raw[14:16] = b"\xff\xfe"
    with pytest.raises(ProtocolError, match="DEVICE_NAME"):
        decode(bytes(raw))
    with pytest.raises(ProtocolError, match="device_name"):
        encode(StringMessage("x", device_name="bad\udcff"))
