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

import mmap
import struct
import threading
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
# Room a header-version-2 body may add to its content: extended header and metadata.
V2_EXTRA_SIZE = 64 * 1024
_IMAGE_HEADER_SIZE = 72


def body_limit(message_type: str, version: int, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> int:
    """Largest BODY_SIZE accepted for a message type: its content limit (small for STRING, STATUS,
    SENSOR, queries; 1 MiB for types not interpreted), plus room for a version-2 extended header
    and metadata, and never more than ``max_body_size``."""
    limit = content_class(message_type).MAX_CONTENT_SIZE + (V2_EXTRA_SIZE if version == 2 else 0)
    return min(max_body_size, limit)


def image_body_size(prefix: bytes | bytearray | memoryview) -> int | None:
    """The content size an IMAGE's 72-byte image header declares (header plus pixels); None when
    the header is too broken to say (decoding then reports why)."""
    if len(prefix) < _IMAGE_HEADER_SIZE:
        return None
    components, scalar = prefix[2], prefix[3]
    sub = struct.unpack_from(">3H", prefix, _IMAGE_HEADER_SIZE - 6)
    itemsize = {2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 10: 4, 11: 8}.get(scalar)
    if itemsize is None:
        return None
    return _IMAGE_HEADER_SIZE + sub[0] * sub[1] * sub[2] * max(components, 1) * itemsize


class ByteBudget:
    """Bytes of incomplete messages that all connections together may hold (thread-safe); a
    reader reserves a message's whole BODY_SIZE when its header arrives."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = int(limit_bytes)
        self.used_bytes = 0
        self.peak_bytes = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used_bytes + size > self.limit_bytes:
                return False
            self.used_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.used_bytes)
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used_bytes = max(0, self.used_bytes - size)


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
    limit = body_limit(message_type, version, max_body_size)
    if body_size > limit:
        raise MessageTooLarge(
            f"{message_type}.BODY_SIZE", f"{body_size} bytes exceed the limit of {limit} for {message_type}"
        )
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
    if isinstance(body, memoryview):
        body = bytes(body)
    elif isinstance(body, mmap.mmap) and header.version == 2:
        body = body[:]  # the content is sliced out below: bytes do that without a second map
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


_MAPPED_BODY_SIZE = 1 << 20


def _body_buffer(size: int):
    """A zeroed, writable buffer for a body: large ones as an anonymous memory map, whose pages
    cost memory only once the peer's bytes are written into them (a bytearray is zeroed, and so
    paid for, in full at once)."""
    if size < _MAPPED_BODY_SIZE:
        return bytearray(size)
    return mmap.mmap(-1, size)


class StreamReader:
    """Split a byte stream into messages. Feed it whatever the socket returns.

    ``feed`` yields a Message for each good message and a ProtocolError for each bad one whose
    size was still known (the stream goes on). A FramingError is raised: the caller must drop the
    connection. Memory stays bounded: BODY_SIZE is held to the type's limit (:func:`body_limit`;
    an IMAGE also to the size its image header declares), the body's buffer is allocated once and
    filled in place (pages the peer has not sent cost nothing), and with a ``budget`` all readers
    together hold at most its limit (a message that would exceed it is refused).
    """

    def __init__(
        self,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        check_crc: bool = True,
        budget: ByteBudget | None = None,
    ):
        self.max_body_size = max_body_size
        self.check_crc = check_crc
        self.budget = budget
        self._head = bytearray()
        self._header: Header | None = None
        self._body: bytearray | None = None
        self._filled = 0
        self._reserved = 0
        self._image_checked = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete message held (0 between messages)."""
        return len(self._head) + (HEADER_SIZE + self._filled if self._header else 0)

    @property
    def bytes_needed(self) -> int:
        """How many more bytes complete the message being read."""
        if self._header is None:
            return HEADER_SIZE - len(self._head)
        return self._header.body_size - self._filled

    @property
    def message_in_progress(self) -> Header | None:
        return self._header

    def close(self) -> None:
        """Give back what the message in progress reserved (the connection is gone)."""
        self._release()
        self._header, self._body, self._filled = None, None, 0

    def _release(self) -> None:
        if self.budget is not None and self._reserved:
            self.budget.release(self._reserved)
        self._reserved = 0

    def _start(self, header: Header) -> None:
        if self.budget is not None and header.body_size:
            if not self.budget.reserve(header.body_size):
                raise MessageTooLarge(
                    f"{header.message_type}.BODY_SIZE",
                    f"{header.body_size} bytes would exceed the {self.budget.limit_bytes} bytes "
                    "all connections together may hold",
                )
            self._reserved = header.body_size
        self._header = header
        self._body = _body_buffer(header.body_size)
        self._filled = 0
        self._image_checked = header.message_type != "IMAGE" or header.body_size == 0

    def _check_image_size(self) -> None:
        """An IMAGE's BODY_SIZE against the size its image header declares."""
        header = self._header
        offset = EXTENDED_HEADER_SIZE if header.version == 2 else 0
        if self._filled < offset + _IMAGE_HEADER_SIZE and self._filled < header.body_size:
            return
        self._image_checked = True
        if header.body_size < offset + _IMAGE_HEADER_SIZE:
            return  # too short to hold an image header: decoding reports it, the stream goes on
        declared = image_body_size(memoryview(self._body)[offset : offset + _IMAGE_HEADER_SIZE])
        if declared is None:
            return
        extra = header.body_size - offset - declared
        if extra < 0 or extra > (V2_EXTRA_SIZE if header.version == 2 else 0):
            raise FramingError(
                "IMAGE.BODY_SIZE",
                f"{header.body_size} bytes, but the image header declares {declared} bytes of content",
            )

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[Message | ProtocolError]:
        view = memoryview(data).cast("B")
        position = 0
        while True:
            if self._header is None:
                take = min(HEADER_SIZE - len(self._head), len(view) - position)
                self._head += view[position : position + take]
                position += take
                if len(self._head) < HEADER_SIZE:
                    return
                header = parse_header(self._head, self.max_body_size)
                self._head = bytearray()
                self._start(header)
            header = self._header
            take = min(header.body_size - self._filled, len(view) - position)
            if take:
                self._body[self._filled : self._filled + take] = view[position : position + take]
                self._filled += take
                position += take
            if not self._image_checked:
                self._check_image_size()
            if self._filled < header.body_size:
                return
            body = self._body
            self._release()
            self._header, self._body, self._filled = None, None, 0
            try:
                yield decode_body(header, body, self.check_crc)
            except ProtocolError as error:
                yield error
