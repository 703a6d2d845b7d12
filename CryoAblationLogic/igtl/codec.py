"""OpenIGTLink framing: the 58-byte header, CRC-64, the header-version-2 extended header and
metadata, and an incremental stream reader.

    data = encode(TransformMessage(matrix, device_name="PLANE_0"))
    message = decode(data)                       # exactly one message
    reader = StreamReader(max_body_size=...)     # bytes from a socket, in any pieces
    for item in reader.feed(chunk): ...          # Message, or ProtocolError for a bad message

Header (big-endian): V uint16, TYPE char[12], DEVICE_NAME char[20], TIME_STAMP uint64,
BODY_SIZE uint64, CRC uint64 (CRC-64/ECMA-182 of the body). Header version 2 starts the body
with EXT_HEADER_SIZE uint16 (12), META_HEADER_SIZE uint16, META_SIZE uint32, MSG_ID uint32 and
ends it with the metadata (index, then keys and values).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from CryoAblationLogic.igtl.crc64 import crc64
from CryoAblationLogic.igtl.errors import CrcError, FramingError, MessageTooLarge, ProtocolError
from CryoAblationLogic.igtl.messages import (
    ENCODING_UTF8,
    Message,
    RawMessage,
    content_class,
    decode_text,
    encode_text,
    pack_cstring,
)

HEADER = struct.Struct(">H12s20sQQQ")
HEADER_SIZE = HEADER.size  # 58
EXTENDED_HEADER = struct.Struct(">HHII")
EXTENDED_HEADER_SIZE = EXTENDED_HEADER.size  # 12
_META_ENTRY = struct.Struct(">HHI")

# Largest body accepted by default: a 512×512×256 int16 volume is 128 MiB; more is refused before
# it is buffered, so a corrupt BODY_SIZE cannot make a receiver allocate without bound.
DEFAULT_MAX_BODY_SIZE = 256 * 1024 * 1024


@dataclass(frozen=True)
class Header:
    """The decoded 58-byte header. ``timestamp_raw``: seconds << 32 | fraction × 2³² (0: unset)."""

    version: int
    message_type: str
    device_name: str
    timestamp_raw: int
    body_size: int
    crc: int


def _type_name(raw: bytes) -> str:
    end = raw.find(b"\0")
    name, padding = (raw, b"") if end < 0 else (raw[:end], raw[end:])
    # A type name is printable ASCII padded with NULs; anything else means we are not looking at
    # a header (stream out of step), so the connection cannot be trusted any more.
    if not name or padding.strip(b"\0") or not all(0x20 < b < 0x7F for b in name):
        raise FramingError("header.TYPE", f"{raw!r} is not a message type name")
    return name.decode("ascii")


def parse_header(data: bytes | bytearray | memoryview, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> Header:
    """Decode and check a 58-byte header. Raises FramingError when the stream cannot go on and
    ProtocolError when only this message is bad (its body can still be skipped)."""
    if len(data) < HEADER_SIZE:
        raise FramingError("header", f"{len(data)} bytes, a header has {HEADER_SIZE}")
    version, type_raw, name_raw, timestamp, body_size, crc = HEADER.unpack_from(data)
    if version not in (1, 2):
        raise FramingError("header.V", f"header version {version} is not supported (1 or 2)")
    message_type = _type_name(type_raw)
    if body_size > max_body_size:
        raise MessageTooLarge("header.BODY_SIZE", f"{body_size} bytes exceed the limit of {max_body_size}")
    end = name_raw.find(b"\0")
    name_bytes = name_raw if end < 0 else name_raw[:end]
    # Invalid UTF-8 is kept (as surrogates) and refused in decode_body: the framing is still
    # intact, so only this message is lost.
    device_name = name_bytes.decode("utf-8", errors="surrogateescape")
    return Header(version, message_type, device_name, timestamp, body_size, crc)


def decode_body(header: Header, body: bytes | bytearray | memoryview, check_crc: bool = True) -> Message:
    """The message of ``header`` from its ``body`` (BODY_SIZE bytes)."""
    if len(body) != header.body_size:
        raise ProtocolError("body", f"{len(body)} bytes, the header says {header.body_size}")
    if check_crc:
        actual = crc64(body)
        if actual != header.crc:
            raise CrcError(
                f"{header.message_type}.CRC",
                f"body CRC-64 {actual:#018x} does not match the header's {header.crc:#018x}",
            )
    body = bytes(body)
    message_id, metadata = 0, {}
    content = body
    if header.version == 2:
        content, message_id, metadata = _split_v2(header.message_type, body)
    cls = content_class(header.message_type)
    if not content and cls is not RawMessage and not header.message_type.startswith(("GET_", "STP_", "STT_")):
        message: Message = RawMessage(header.message_type, b"")  # "nothing available" reply
    else:
        message = cls.unpack_content(header.message_type, content)
    device_key = f"{header.message_type}.DEVICE_NAME"
    try:
        pack_cstring(header.device_name, 20, device_key)
    except ProtocolError:
        raise ProtocolError(device_key, f"{header.device_name!r} is not a valid device name") from None
    message.device_name = header.device_name
    message.timestamp_raw = header.timestamp_raw
    message.header_version = header.version
    message.message_id = message_id
    message.metadata = metadata
    return message


def _split_v2(message_type: str, body: bytes) -> tuple[bytes, int, dict[str, str]]:
    key = f"{message_type}.extended_header"
    if len(body) < EXTENDED_HEADER_SIZE:
        raise ProtocolError(key, f"body of {len(body)} bytes has no room for the extended header")
    ext_size, meta_header_size, meta_size, message_id = EXTENDED_HEADER.unpack_from(body)
    if ext_size < EXTENDED_HEADER_SIZE:
        raise ProtocolError(key, f"EXT_HEADER_SIZE {ext_size} is smaller than {EXTENDED_HEADER_SIZE}")
    content_end = len(body) - meta_header_size - meta_size
    if content_end < ext_size:
        raise ProtocolError(
            key,
            f"sizes {ext_size} + {meta_header_size} + {meta_size} exceed the body of {len(body)} bytes",
        )
    content = body[ext_size:content_end]
    metadata = _unpack_metadata(
        message_type,
        body[content_end : content_end + meta_header_size],
        body[-meta_size:] if meta_size else b"",
    )
    return content, message_id, metadata


def _unpack_metadata(message_type: str, index: bytes, values: bytes) -> dict[str, str]:
    key = f"{message_type}.metadata"
    if not index:
        if values:
            raise ProtocolError(key, "metadata without a metadata header")
        return {}
    if len(index) < 2:
        raise ProtocolError(key, "META_HEADER_SIZE is too small for INDEX_COUNT")
    (count,) = struct.unpack_from(">H", index)
    if len(index) != 2 + count * _META_ENTRY.size:
        raise ProtocolError(key, f"META_HEADER_SIZE {len(index)} does not fit INDEX_COUNT {count}")
    metadata: dict[str, str] = {}
    position = 0
    for n in range(count):
        key_size, encoding, value_size = _META_ENTRY.unpack_from(index, 2 + n * _META_ENTRY.size)
        end = position + key_size + value_size
        if end > len(values):
            raise ProtocolError(key, f"entry {n} runs past META_SIZE {len(values)}")
        name = decode_text(values[position : position + key_size], ENCODING_UTF8, f"{key}[{n}].key")
        metadata[name] = decode_text(values[position + key_size : end], encoding, f"{key}[{name}]")
        position = end
    if position != len(values):
        raise ProtocolError(key, f"entries take {position} bytes, META_SIZE says {len(values)}")
    return metadata


def _pack_metadata(message: Message) -> tuple[bytes, bytes]:
    index = [struct.pack(">H", len(message.metadata))]
    values = []
    for name, value in message.metadata.items():
        _, key_raw = encode_text(name, None, "metadata key")
        encoding, value_raw = encode_text(value, None, f"metadata[{name}]")
        if len(key_raw) > 0xFFFF:
            raise ProtocolError(f"metadata[{name}]", "key longer than 65535 bytes")
        index.append(_META_ENTRY.pack(len(key_raw), encoding, len(value_raw)))
        values.append(key_raw + value_raw)
    if len(message.metadata) > 0xFFFF:
        raise ProtocolError("metadata", "more than 65535 entries")
    return b"".join(index), b"".join(values)


def encode(message: Message, header_version: int | None = None) -> bytes:
    """The complete message (header and body) as bytes.

    ``header_version`` overrides the message's own (1 for legacy peers such as Debian's
    OpenIGTLink 1.11, which cannot parse version 2)."""
    version = message.header_version if header_version is None else header_version
    if version not in (1, 2):
        raise ProtocolError("header_version", f"must be 1 or 2, got {version}")
    content = message.pack_content()
    if version == 2:
        if not 0 <= message.message_id < 2**32:
            raise ProtocolError("message_id", "must fit in 32 unsigned bits")
        index, values = _pack_metadata(message)
        extended = EXTENDED_HEADER.pack(EXTENDED_HEADER_SIZE, len(index), len(values), message.message_id)
        body = b"".join((extended, content, index, values))
    else:
        body = content
    if not 0 <= message.timestamp_raw < 2**64:
        raise ProtocolError("timestamp_raw", "must fit in 64 unsigned bits")
    header = HEADER.pack(
        version,
        pack_cstring(message.message_type, 12, "message type"),
        pack_cstring(message.device_name, 20, "device_name"),
        message.timestamp_raw,
        len(body),
        crc64(body),
    )
    return header + body


def decode(
    data: bytes | bytearray | memoryview,
    check_crc: bool = True,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> Message:
    """Decode exactly one complete message."""
    header = parse_header(data, max_body_size)
    if len(data) != HEADER_SIZE + header.body_size:
        raise ProtocolError(
            "body", f"{len(data) - HEADER_SIZE} bytes follow the header, BODY_SIZE says {header.body_size}"
        )
    return decode_body(header, memoryview(data)[HEADER_SIZE:], check_crc)


class StreamReader:
    """Split a byte stream into messages. Feed it whatever the socket returns.

    ``feed`` yields a Message for each good message and a ProtocolError for each bad one whose
    size was still known (the stream goes on). A FramingError is raised: the caller must drop the
    connection. Memory stays bounded by ``max_body_size`` plus one read.
    """

    def __init__(self, max_body_size: int = DEFAULT_MAX_BODY_SIZE, check_crc: bool = True):
        self.max_body_size = max_body_size
        self.check_crc = check_crc
        self._buffer = bytearray()
        self._header: Header | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete message held (0 between messages)."""
        return len(self._buffer) + (HEADER_SIZE if self._header else 0)

    @property
    def bytes_needed(self) -> int:
        """How many more bytes complete the message being read."""
        if self._header is None:
            return HEADER_SIZE - len(self._buffer)
        return self._header.body_size - len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[Message | ProtocolError]:
        self._buffer += data
        while True:
            if self._header is None:
                if len(self._buffer) < HEADER_SIZE:
                    return
                self._header = parse_header(self._buffer, self.max_body_size)
                del self._buffer[:HEADER_SIZE]
            header = self._header
            if len(self._buffer) < header.body_size:
                return
            with memoryview(self._buffer) as view:
                body = bytes(view[: header.body_size])  # one copy; the view is released before del
            del self._buffer[: header.body_size]
            self._header = None
            try:
                yield decode_body(header, body, self.check_crc)
            except ProtocolError as error:
                yield error
