"""Typed OpenIGTLink messages and their content (body) formats.

Each message class holds the decoded content of one message type, with units stated on the
fields; :mod:`.codec` adds the 58-byte header, the header-version-2 extended header and metadata.
Numbers keep the precision of the wire format (float32 matrices, float64 sensor values), so a
decoded message encodes back to the same bytes.

Content formats follow the OpenIGTLink protocol description v3.0 (OpenIGTLink's Documents/Protocol,
linked from docs/live-link.md): all numbers big-endian except IMAGE pixels, whose byte order the
image header states.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from CryoAblationLogic.igtl.errors import ProtocolError

# IMAGE and NDARRAY scalar type codes → numpy types (NDARRAY also has 13: complex, 2 × float64).
SCALAR_TYPES: dict[int, np.dtype] = {
    2: np.dtype(np.int8),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int16),
    5: np.dtype(np.uint16),
    6: np.dtype(np.int32),
    7: np.dtype(np.uint32),
    10: np.dtype(np.float32),
    11: np.dtype(np.float64),
}
NDARRAY_SCALAR_TYPES: dict[int, np.dtype] = {**SCALAR_TYPES, 13: np.dtype(np.complex128)}

# MIBenum text encodings used for STRING content and metadata values.
ENCODING_ASCII = 3
ENCODING_UTF8 = 106
_TEXT_CODECS = {ENCODING_ASCII: "ascii", ENCODING_UTF8: "utf-8", 4: "latin-1"}

STATUS_CODES: dict[int, str] = {
    0: "invalid",
    1: "ok",
    2: "unknown error",
    3: "panic",
    4: "not found",
    5: "access denied",
    6: "busy",
    7: "time out / connection lost",
    8: "overflow",
    9: "checksum error",
    10: "configuration error",
    11: "not enough resource",
    12: "unknown instruction",
    13: "device not ready",
    14: "manual mode",
    15: "device disabled",
    16: "device not present",
    17: "unknown version",
    18: "hardware failure",
    19: "shutting down",
}


# --------------------------------------------------------------------------------------------
# Fixed-size text fields


def pack_cstring(text: str, size: int, key: str) -> bytes:
    """``text`` as a NUL-padded ``char[size]`` field; a full-length field has no terminator."""
    if not isinstance(text, str):
        raise ProtocolError(key, f"must be text, got {type(text).__name__}")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ProtocolError(key, f"{text!r} cannot be written as UTF-8: {error}") from None
    if len(raw) > size:
        raise ProtocolError(key, f"{text!r} is {len(raw)} bytes, the field holds at most {size}")
    if b"\0" in raw:
        raise ProtocolError(key, "must not contain NUL characters")
    return raw.ljust(size, b"\0")


def unpack_cstring(raw: bytes, key: str) -> str:
    """Text of a ``char[n]`` field: up to the first NUL, UTF-8 (ASCII in practice)."""
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(key, f"is not valid text: {error}") from None


def decode_text(raw: bytes, encoding: int, key: str) -> str:
    codec = _TEXT_CODECS.get(encoding)
    if codec is None:
        raise ProtocolError(key, f"text encoding (MIBenum) {encoding} is not supported (3 ASCII, 106 UTF-8)")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as error:
        raise ProtocolError(key, f"is not valid {codec}: {error}") from None


def encode_text(text: str, encoding: int | None, key: str) -> tuple[int, bytes]:
    """(MIBenum, bytes) of ``text``; ``encoding=None`` picks ASCII when it fits, else UTF-8."""
    if not isinstance(text, str):
        raise ProtocolError(key, f"must be text, got {type(text).__name__}")
    if encoding is None:
        encoding = ENCODING_ASCII if text.isascii() else ENCODING_UTF8
    codec = _TEXT_CODECS.get(encoding)
    if codec is None:
        raise ProtocolError(key, f"text encoding (MIBenum) {encoding} is not supported (3 ASCII, 106 UTF-8)")
    try:
        return encoding, text.encode(codec)
    except UnicodeEncodeError as error:
        raise ProtocolError(key, f"cannot be written as {codec}: {error}") from None


def _need(content: bytes, size: int, key: str, exact: bool = True) -> None:
    if (len(content) != size) if exact else (len(content) < size):
        relation = "" if exact else "at least "
        raise ProtocolError(key, f"body is {len(content)} bytes, expected {relation}{size}")


def _float_array(value, shape: tuple[int, ...], key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ProtocolError(key, f"must be numbers: {error}") from None
    if array.shape != shape:
        raise ProtocolError(key, f"must have shape {shape}, got {array.shape}")
    return array


# --------------------------------------------------------------------------------------------
# Journal records: content as strict JSON (non-finite numbers spelt "nan", "inf", "-inf")

_NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def json_numbers(value):
    """``value`` as strict-JSON values: numpy types plain Python, non-finite floats as strings."""
    if isinstance(value, dict):
        return {k: json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_numbers(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_numbers(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, np.integer):
        return int(value)
    return value


def numbers_from_json(value, key: str) -> np.ndarray:
    """A float64 array from journal numbers (non-finite ones spelt as strings)."""

    def number(v):
        if isinstance(v, list):
            return [number(x) for x in v]
        if isinstance(v, str) and v in _NON_FINITE:
            return _NON_FINITE[v]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProtocolError(key, f"{v!r} is not a number")
        return v

    try:
        return np.array(number(value), dtype=np.float64)
    except (ValueError, OverflowError, RecursionError) as error:
        raise ProtocolError(key, f"not an array of numbers: {error}") from None


def _field(content: dict, name: str, kinds: type | tuple, key: str):
    """``content[name]``, checked to be of ``kinds`` (journal records are untrusted input)."""
    if not isinstance(content, dict):
        raise ProtocolError(key, "content must be a JSON object")
    if name not in content:
        raise ProtocolError(f"{key}.{name}", "missing")
    value = content[name]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ProtocolError(f"{key}.{name}", f"{value!r} has the wrong type")
    if not isinstance(value, kinds):
        raise ProtocolError(f"{key}.{name}", f"{value!r} has the wrong type")
    return value


def _int_field(content: dict, name: str, key: str, low: int, high: int) -> int:
    value = _field(content, name, int, key)
    if not low <= value <= high:
        raise ProtocolError(f"{key}.{name}", f"{value} outside {low} … {high}")
    return value


# --------------------------------------------------------------------------------------------
# Base class


# The class of each message type this codec interprets, filled by the classes themselves (a class
# with a MESSAGE_TYPE registers when it is defined: adding a message type is one class).
MESSAGE_CLASSES: dict[str, type[Message]] = {}


@dataclass(kw_only=True, eq=False)
class Message:
    """Fields every message has (header and header-version-2 extensions).

    ``timestamp_raw`` is the header's 64-bit time stamp: Unix seconds in the upper 32 bits and the
    fraction of a second × 2³² in the lower 32; 0 means "not set". ``timestamp_s`` converts it.
    ``header_version`` 1 is understood by every OpenIGTLink library; 2 adds ``message_id`` and
    ``metadata`` (which version 1 cannot carry).
    """

    device_name: str = ""
    timestamp_raw: int = 0
    header_version: int = 1
    message_id: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    MESSAGE_TYPE: ClassVar[str] = ""
    # Largest content (bytes) a receiver buffers for this type; IMAGE is also held to the size
    # its image header declares (see codec.StreamReader).
    MAX_CONTENT_SIZE: ClassVar[int] = 1 << 20

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("MESSAGE_TYPE"):
            MESSAGE_CLASSES[cls.MESSAGE_TYPE] = cls

    @property
    def message_type(self) -> str:
        return self.MESSAGE_TYPE

    @property
    def payload_nbytes(self) -> int:
        """Bytes the decoded content holds (for memory bounds of queues)."""
        return sum(len(v) for v in vars(self).values() if isinstance(v, (str, bytes)))

    def journal_content(self) -> dict:  # pragma: no cover - every subclass overrides it
        """The decoded content as JSON-ready values (units in the key names), for the journal."""
        raise NotImplementedError

    @classmethod
    def from_journal(cls, message_type: str, content: dict, voxels: np.ndarray | None = None) -> Message:
        """The message a journal record's ``content`` describes (inverse of
        :meth:`journal_content`; IMAGE voxels come from the file the journal keeps them in).
        Raises ProtocolError naming the field when the content is malformed."""
        raise NotImplementedError  # pragma: no cover - every subclass overrides it

    @property
    def timestamp_s(self) -> float | None:
        """Header time stamp in seconds since 1970 (UTC), or None when the sender left it 0."""
        return timestamp_to_seconds(self.timestamp_raw)

    def pack_content(self) -> bytes:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> Message:  # pragma: no cover
        raise NotImplementedError


def timestamp_to_seconds(raw: int) -> float | None:
    if raw == 0:
        return None
    return (raw >> 32) + (raw & 0xFFFFFFFF) / 2**32


def timestamp_from_seconds(seconds: float) -> int:
    """64-bit header time stamp of ``seconds`` since 1970 (within 1 ns of the reference code)."""
    if not np.isfinite(seconds) or seconds < 0 or seconds >= 2**32:
        raise ProtocolError("timestamp", f"{seconds!r} s is outside 0 … 2³² s")
    whole = int(seconds)
    fraction = round((seconds - whole) * 2**32)
    if fraction >= 2**32:  # rounding carried into the next second
        whole, fraction = whole + 1, 0
    return (whole << 32) | fraction


# --------------------------------------------------------------------------------------------
# Pose messages

_TRANSFORM = struct.Struct(">12f")


@dataclass(eq=False)
class TransformMessage(Message):
    """TRANSFORM: a 4×4 homogeneous matrix (rotation unitless, translation in mm), sent as float32."""

    matrix: np.ndarray = field(default_factory=lambda: np.eye(4))

    MESSAGE_TYPE: ClassVar[str] = "TRANSFORM"

    def __post_init__(self) -> None:
        self.matrix = _float_array(self.matrix, (4, 4), "TRANSFORM.matrix")

    MAX_CONTENT_SIZE: ClassVar[int] = 48

    def journal_content(self) -> dict:
        return {"matrix": self.matrix}

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> TransformMessage:
        return cls(numbers_from_json(_field(content, "matrix", list, "TRANSFORM"), "TRANSFORM.matrix"))

    def pack_content(self) -> bytes:
        m = self.matrix
        if not np.all(np.isfinite(m[:3, :])):
            raise ProtocolError("TRANSFORM.matrix", "must be finite")
        # Column-major upper 3×4: R11 R21 R31 R12 R22 R32 R13 R23 R33 TX TY TZ.
        return np.asarray(m[:3, :].T, dtype=">f4").tobytes()

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> TransformMessage:
        _need(content, 48, "TRANSFORM")
        with np.errstate(invalid="ignore"):  # signalling NaNs are refused just below
            values = np.frombuffer(content, dtype=">f4").astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ProtocolError("TRANSFORM.matrix", "contains NaN or infinity")
        matrix = np.eye(4)
        matrix[:3, :] = values.reshape(4, 3).T
        return cls(matrix)


@dataclass(eq=False)
class PositionMessage(Message):
    """POSITION: position (mm) and orientation quaternion (OX, OY, OZ, W).

    ``quaternion`` has 4 elements (the usual 28-byte body), 3 (24-byte body: W implied) or 0
    (12-byte body: position only).
    """

    position_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    quaternion: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))

    MESSAGE_TYPE: ClassVar[str] = "POSITION"

    def __post_init__(self) -> None:
        self.position_mm = _float_array(self.position_mm, (3,), "POSITION.position_mm")
        q = np.asarray(self.quaternion, dtype=np.float64).reshape(-1)
        if q.size not in (0, 3, 4):
            raise ProtocolError("POSITION.quaternion", f"must have 4, 3 or 0 elements, got {q.size}")
        self.quaternion = q

    MAX_CONTENT_SIZE: ClassVar[int] = 28

    def journal_content(self) -> dict:
        return {"position_mm": self.position_mm, "quaternion": self.quaternion}

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> PositionMessage:
        return cls(
            numbers_from_json(_field(content, "position_mm", list, "POSITION"), "POSITION.position_mm"),
            numbers_from_json(_field(content, "quaternion", list, "POSITION"), "POSITION.quaternion"),
        )

    def pack_content(self) -> bytes:
        values = np.concatenate([self.position_mm, self.quaternion])
        if not np.all(np.isfinite(values)):
            raise ProtocolError("POSITION", "position and quaternion must be finite")
        return values.astype(">f4").tobytes()

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> PositionMessage:
        if len(content) not in (12, 24, 28):
            raise ProtocolError("POSITION", f"body is {len(content)} bytes, expected 28, 24 or 12")
        with np.errstate(invalid="ignore"):  # signalling NaNs are refused just below
            values = np.frombuffer(content, dtype=">f4").astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ProtocolError("POSITION", "contains NaN or infinity")
        return cls(values[:3], values[3:])


# --------------------------------------------------------------------------------------------
# IMAGE

_IMAGE_HEADER = struct.Struct(">HBBBB3H12f3H3H")
_COORDINATES = {1: "RAS", 2: "LPS"}
_ENDIAN = {1: "big", 2: "little"}


@dataclass(eq=False)
class ImageMessage(Message):
    """IMAGE: a volume (or a sub-volume of it) with its geometry.

    - ``voxels``: array indexed ``[i, j, k]`` (``[i, j, k, c]`` for several components); it holds
      the transmitted sub-volume, which is the whole volume unless ``subvolume_offset`` / ``size``
      say otherwise.
    - ``axes_mm``: 3×3, column n is the step (mm) between neighbouring voxel centres along axis n
      (direction × spacing), in ``coordinate_system`` ("RAS" or "LPS").
    - ``centre_mm``: position (mm) of the centre of the whole volume, as the protocol sends it.
    - ``size``: voxel count of the whole volume (None: the shape of ``voxels``).
    - ``endian``: byte order of the pixels on the wire ("little" or "big").

    Decoded voxels are a read-only view of the received bytes (no copy for little-endian pixels):
    copy before changing them. Encoding a C-ordered [i, j, k] array transposes it to the wire's
    i-fastest order (one copy, the bulk of the encoding time for large volumes).
    """

    voxels: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1), np.uint8))
    axes_mm: np.ndarray = field(default_factory=lambda: np.eye(3))
    centre_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    coordinate_system: str = "RAS"
    endian: str = "little"
    size: tuple[int, int, int] | None = None
    subvolume_offset: tuple[int, int, int] = (0, 0, 0)

    MESSAGE_TYPE: ClassVar[str] = "IMAGE"

    def __post_init__(self) -> None:
        voxels = np.asarray(self.voxels)
        if voxels.ndim not in (3, 4):
            raise ProtocolError(
                "IMAGE.voxels", f"must be indexed [i, j, k] or [i, j, k, c], got {voxels.ndim}-D"
            )
        if voxels.dtype.newbyteorder("=") not in SCALAR_TYPES.values():
            raise ProtocolError("IMAGE.voxels", f"scalar type {voxels.dtype} cannot be sent in an IMAGE")
        self.voxels = voxels
        self.axes_mm = _float_array(self.axes_mm, (3, 3), "IMAGE.axes_mm")
        self.centre_mm = _float_array(self.centre_mm, (3,), "IMAGE.centre_mm")
        if self.coordinate_system not in ("RAS", "LPS"):
            raise ProtocolError(
                "IMAGE.coordinate_system", f"must be RAS or LPS, got {self.coordinate_system!r}"
            )
        if self.endian not in ("little", "big"):
            raise ProtocolError("IMAGE.endian", f"must be little or big, got {self.endian!r}")
        self.subvolume_offset = tuple(int(v) for v in self.subvolume_offset)  # type: ignore[assignment]
        if self.size is None:
            self.size = tuple(int(n) for n in voxels.shape[:3])  # type: ignore[assignment]
        else:
            self.size = tuple(int(n) for n in self.size)  # type: ignore[assignment]
        sub = voxels.shape[:3]
        for axis in range(3):
            if not 1 <= self.size[axis] <= 0xFFFF or not 1 <= sub[axis] <= 0xFFFF:
                raise ProtocolError("IMAGE.size", f"sizes must be 1 … 65535 voxels, got {self.size} / {sub}")
            if (
                not 0 <= self.subvolume_offset[axis]
                or self.subvolume_offset[axis] + sub[axis] > self.size[axis]
            ):
                raise ProtocolError(
                    "IMAGE.subvolume_offset",
                    f"sub-volume {sub} at {self.subvolume_offset} does not fit in the volume {self.size}",
                )
        if voxels.ndim == 4 and not 1 <= voxels.shape[3] <= 255:
            raise ProtocolError("IMAGE.voxels", "the component count must be 1 … 255")

    @classmethod
    def from_volume(
        cls,
        voxels: np.ndarray,
        origin_mm,
        spacing_mm,
        directions=None,
        coordinate_system: str = "RAS",
        **kwargs,
    ) -> ImageMessage:
        """An IMAGE from a volume indexed [i, j, k] with the position of voxel (0, 0, 0) (mm),
        the spacing (mm) and unit direction vectors of i, j, k (columns; default: the axes)."""
        voxels = np.asarray(voxels)
        directions = np.eye(3) if directions is None else _float_array(directions, (3, 3), "IMAGE.directions")
        spacing = _float_array(spacing_mm, (3,), "IMAGE.spacing_mm")
        if not np.all(spacing > 0):
            raise ProtocolError("IMAGE.spacing_mm", "must be positive")
        axes = directions * spacing[None, :]
        size = np.array(voxels.shape[:3], dtype=np.float64)
        centre = _float_array(origin_mm, (3,), "IMAGE.origin_mm") + axes @ ((size - 1) / 2)
        return cls(voxels, axes, centre, coordinate_system=coordinate_system, **kwargs)

    @property
    def scalar_type(self) -> int:
        native = self.voxels.dtype.newbyteorder("=")
        return next(code for code, dtype in SCALAR_TYPES.items() if dtype == native)

    @property
    def components(self) -> int:
        return 1 if self.voxels.ndim == 3 else int(self.voxels.shape[3])

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.axes_mm, axis=0)

    @property
    def directions(self) -> np.ndarray:
        """Unit direction vectors of i, j, k (columns)."""
        return self.axes_mm / self.spacing_mm[None, :]

    @property
    def origin_mm(self) -> np.ndarray:
        """Position (mm) of voxel (0, 0, 0) of the whole volume."""
        return self.centre_mm - self.axes_mm @ ((np.asarray(self.size, dtype=np.float64) - 1) / 2)

    @property
    def ijk_to_world(self) -> np.ndarray:
        """4×4 matrix from the whole volume's voxel index to ``coordinate_system`` (mm)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.axes_mm
        matrix[:3, 3] = self.origin_mm
        return matrix

    MAX_CONTENT_SIZE: ClassVar[int] = 2147483648

    @property
    def payload_nbytes(self) -> int:
        return self.voxels.nbytes

    def journal_content(self) -> dict:
        return {
            "dtype": str(self.voxels.dtype),
            "components": self.components,
            "subvolume_size": list(self.voxels.shape[:3]),
            "size": list(self.size),
            "subvolume_offset": list(self.subvolume_offset),
            "coordinate_system": self.coordinate_system,
            "endian": self.endian,
            "axes_mm": self.axes_mm,
            "centre_mm": self.centre_mm,
            "origin_mm": self.origin_mm,
            "spacing_mm": self.spacing_mm,
        }

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> ImageMessage:
        if voxels is None:
            raise ProtocolError("IMAGE", "the journal record's voxels are missing")
        dtype = _field(content, "dtype", str, "IMAGE")
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ProtocolError("IMAGE.dtype", f"{dtype!r} is not a scalar type") from None
        if dtype.newbyteorder("=") not in SCALAR_TYPES.values():
            raise ProtocolError("IMAGE.dtype", f"{dtype} cannot be sent in an IMAGE")
        sub = [
            _int_field({"n": n}, "n", "IMAGE.subvolume_size", 1, 0xFFFF)
            for n in _field(content, "subvolume_size", list, "IMAGE")
        ]
        if tuple(np.shape(voxels)[:3]) != tuple(sub):
            raise ProtocolError("IMAGE.subvolume_size", f"{sub} does not match the voxels {np.shape(voxels)}")
        return cls(
            np.asarray(voxels).astype(dtype, copy=False),
            numbers_from_json(_field(content, "axes_mm", list, "IMAGE"), "IMAGE.axes_mm"),
            numbers_from_json(_field(content, "centre_mm", list, "IMAGE"), "IMAGE.centre_mm"),
            coordinate_system=_field(content, "coordinate_system", str, "IMAGE"),
            endian=content.get("endian", "little"),
            size=tuple(_field(content, "size", list, "IMAGE")),
            subvolume_offset=tuple(_field(content, "subvolume_offset", list, "IMAGE")),
        )

    def pack_content(self) -> bytes:
        geometry = np.concatenate([self.axes_mm.T.reshape(-1), self.centre_mm])
        if not np.all(np.isfinite(geometry)):
            raise ProtocolError("IMAGE", "axes and centre must be finite")
        sub = self.voxels.shape[:3]
        header = _IMAGE_HEADER.pack(
            1,
            self.components,
            self.scalar_type,
            1 if self.endian == "big" else 2,
            1 if self.coordinate_system == "RAS" else 2,
            *self.size,
            *(float(v) for v in geometry),
            *self.subvolume_offset,
            *sub,
        )
        # Wire order: i fastest, then j, then k, components interleaved → C order of [k, j, i, c].
        order = (2, 1, 0) if self.voxels.ndim == 3 else (2, 1, 0, 3)
        dtype = self.voxels.dtype.newbyteorder(">" if self.endian == "big" else "<")
        pixels = np.ascontiguousarray(self.voxels.transpose(order), dtype=dtype)
        return b"".join((header, pixels.reshape(-1).view(np.uint8).data))  # one copy of the pixels

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> ImageMessage:
        _need(content, _IMAGE_HEADER.size, "IMAGE", exact=False)
        fields = _IMAGE_HEADER.unpack_from(content)
        version, components, scalar, endian, coords = fields[:5]
        size = fields[5:8]
        geometry = np.array(fields[8:20], dtype=np.float64)
        offset, sub = fields[20:23], fields[23:26]
        if version != 1:
            raise ProtocolError("IMAGE.version", f"image header version {version} is not supported (1)")
        if scalar not in SCALAR_TYPES:
            raise ProtocolError("IMAGE.scalar_type", f"unknown scalar type {scalar}")
        if endian not in _ENDIAN:
            raise ProtocolError("IMAGE.endian", f"must be 1 (big) or 2 (little), got {endian}")
        if coords not in _COORDINATES:
            raise ProtocolError("IMAGE.coordinate_system", f"must be 1 (RAS) or 2 (LPS), got {coords}")
        if components < 1:
            raise ProtocolError("IMAGE.components", "must be at least 1")
        if not np.all(np.isfinite(geometry)):
            raise ProtocolError("IMAGE.matrix", "axes or centre contain NaN or infinity")
        if min(sub) < 1:
            raise ProtocolError("IMAGE.size", f"sub-volume size {sub} has an empty axis")
        dtype = SCALAR_TYPES[scalar].newbyteorder(">" if endian == 1 else "<")
        count = sub[0] * sub[1] * sub[2] * components
        _need(content, _IMAGE_HEADER.size + count * dtype.itemsize, "IMAGE")
        pixels = np.frombuffer(content, dtype=dtype, count=count, offset=_IMAGE_HEADER.size)
        if not dtype.isnative:
            pixels = pixels.astype(dtype.newbyteorder("="))
        pixels = pixels.reshape(sub[2], sub[1], sub[0], components).transpose(2, 1, 0, 3)
        if components == 1:
            pixels = pixels[..., 0]
        return cls(
            pixels,
            geometry[:9].reshape(3, 3).T,
            geometry[9:],
            coordinate_system=_COORDINATES[coords],
            endian=_ENDIAN[endian],
            size=size,
            subvolume_offset=offset,
        )


# --------------------------------------------------------------------------------------------
# Text and state messages


@dataclass(eq=False)
class StringMessage(Message):
    """STRING: text (≤ 65535 bytes) and its MIBenum encoding (3 ASCII, 106 UTF-8; None: choose)."""

    text: str = ""
    encoding: int | None = None

    MESSAGE_TYPE: ClassVar[str] = "STRING"

    MAX_CONTENT_SIZE: ClassVar[int] = 65539

    def journal_content(self) -> dict:
        return {"text": self.text, "encoding": self.encoding}

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> StringMessage:
        encoding = _field(content, "encoding", (int, type(None)), "STRING")
        return cls(_field(content, "text", str, "STRING"), encoding)

    def pack_content(self) -> bytes:
        encoding, raw = encode_text(self.text, self.encoding, "STRING.text")
        if len(raw) > 0xFFFF:
            raise ProtocolError("STRING.text", f"is {len(raw)} bytes, at most 65535 fit")
        return struct.pack(">HH", encoding, len(raw)) + raw

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> StringMessage:
        _need(content, 4, "STRING", exact=False)
        encoding, length = struct.unpack_from(">HH", content)
        _need(content, 4 + length, "STRING")
        return cls(decode_text(content[4:], encoding, "STRING.text"), encoding)


_STATUS = struct.Struct(">Hq20s")


@dataclass(eq=False)
class StatusMessage(Message):
    """STATUS: ``code`` (see :data:`STATUS_CODES`, 1 = OK), device-specific ``subcode``, a short
    ``error_name`` (≤ 20 bytes) and a free ``status_message``."""

    code: int = 1
    subcode: int = 0
    error_name: str = ""
    status_message: str = ""

    MESSAGE_TYPE: ClassVar[str] = "STATUS"

    MAX_CONTENT_SIZE: ClassVar[int] = 30 + 0xFFFF

    def journal_content(self) -> dict:
        return {
            "code": self.code,
            "subcode": self.subcode,
            "error_name": self.error_name,
            "status_message": self.status_message,
        }

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> StatusMessage:
        return cls(
            _int_field(content, "code", "STATUS", 0, 0xFFFF),
            _int_field(content, "subcode", "STATUS", -(2**63), 2**63 - 1),
            _field(content, "error_name", str, "STATUS"),
            _field(content, "status_message", str, "STATUS"),
        )

    def pack_content(self) -> bytes:
        if not 0 <= self.code <= 0xFFFF:
            raise ProtocolError("STATUS.code", f"must be 0 … 65535, got {self.code}")
        if not -(2**63) <= self.subcode < 2**63:
            raise ProtocolError("STATUS.subcode", "must fit in 64 signed bits")
        text = self.status_message.encode("utf-8")
        if b"\0" in text:
            raise ProtocolError("STATUS.status_message", "must not contain NUL characters")
        # The reference implementation NUL-terminates the message inside the body.
        return _STATUS.pack(
            self.code, self.subcode, pack_cstring(self.error_name, 20, "STATUS.error_name")
        ) + (text + b"\0")

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> StatusMessage:
        _need(content, _STATUS.size, "STATUS", exact=False)
        code, subcode, name = _STATUS.unpack_from(content)
        return cls(
            code,
            subcode,
            unpack_cstring(name, "STATUS.error_name"),
            unpack_cstring(content[_STATUS.size :], "STATUS.status_message"),
        )


@dataclass(eq=False)
class SensorMessage(Message):
    """SENSOR: up to 255 float64 readings, a status byte and the 64-bit SI ``unit`` code (see
    :mod:`.units`; kelvin for temperatures, as the SI table has no degree Celsius)."""

    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    status: int = 0
    unit: int = 0

    MESSAGE_TYPE: ClassVar[str] = "SENSOR"

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if self.values.size > 255:
            raise ProtocolError("SENSOR.values", f"{self.values.size} readings, at most 255 fit")

    MAX_CONTENT_SIZE: ClassVar[int] = 2050

    @property
    def payload_nbytes(self) -> int:
        return self.values.nbytes

    def journal_content(self) -> dict:
        content = {"values": self.values, "status": self.status, "unit": self.unit}
        if np.isnan(self.values).any():
            # as NDARRAY: JSON spells every NaN "nan", so the exact bytes go beside the values
            content["bits"] = base64.b64encode(self.values.astype(">f8").tobytes()).decode()
        return content

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> SensorMessage:
        values = numbers_from_json(_field(content, "values", list, "SENSOR"), "SENSOR.values")
        if "bits" in content:
            bits = content["bits"]
            try:
                raw = base64.b64decode(bits, validate=True) if isinstance(bits, str) else None
            except ValueError:  # binascii.Error
                raw = None
            if raw is None or len(raw) != 8 * len(values):
                raise ProtocolError("SENSOR.bits", "must be base64 text of the values as float64")
            values = np.frombuffer(raw, dtype=">f8").astype(np.float64)
        return cls(
            values,
            _int_field(content, "status", "SENSOR", 0, 255),
            _int_field(content, "unit", "SENSOR", 0, 2**64 - 1),
        )

    def pack_content(self) -> bytes:
        if not 0 <= self.status <= 255:
            raise ProtocolError("SENSOR.status", "must be 0 … 255")
        if not 0 <= self.unit < 2**64:
            raise ProtocolError("SENSOR.unit", "must fit in 64 unsigned bits")
        return (
            struct.pack(">BBQ", self.values.size, self.status, self.unit)
            + self.values.astype(">f8").tobytes()
        )

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> SensorMessage:
        _need(content, 10, "SENSOR", exact=False)
        count, status, unit = struct.unpack_from(">BBQ", content)
        _need(content, 10 + 8 * count, "SENSOR")
        values = np.frombuffer(content, dtype=">f8", offset=10, count=count).astype(np.float64)
        return cls(values, status, unit)


@dataclass(eq=False)
class NdArrayMessage(Message):
    """NDARRAY: an n-dimensional array (C order, big-endian on the wire), e.g. probe temperatures
    in °C with shape (n_probes,). Sizes are ≤ 65535 per axis, at most 255 axes."""

    array: np.ndarray = field(default_factory=lambda: np.zeros(0))

    MESSAGE_TYPE: ClassVar[str] = "NDARRAY"

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.dtype.newbyteorder("=") not in NDARRAY_SCALAR_TYPES.values():
            raise ProtocolError("NDARRAY.array", f"scalar type {array.dtype} cannot be sent in an NDARRAY")
        if not 1 <= array.ndim <= 255 or any(n > 0xFFFF for n in array.shape):
            raise ProtocolError("NDARRAY.array", f"shape {array.shape}: 1 … 255 axes of ≤ 65535 elements")
        self.array = array

    MAX_CONTENT_SIZE: ClassVar[int] = 67108864

    @property
    def payload_nbytes(self) -> int:
        return self.array.nbytes

    def journal_content(self) -> dict:
        array = self.array
        values = np.stack([array.real, array.imag], axis=-1) if np.iscomplexobj(array) else array
        content = {"dtype": str(array.dtype), "shape": list(array.shape), "values": values}
        if array.dtype.kind in "fc" and np.isnan(array).any():
            # JSON spells every NaN "nan": its sign and payload bits would be lost, so the exact
            # bytes (big-endian, as sent) go beside the readable values and win on replay.
            content["bits"] = base64.b64encode(array.astype(array.dtype.newbyteorder(">")).tobytes()).decode()
        return content

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> NdArrayMessage:
        values = numbers_from_json(_field(content, "values", list, "NDARRAY"), "NDARRAY.values")
        name = _field(content, "dtype", str, "NDARRAY")
        try:
            dtype = np.dtype(name)
        except TypeError:
            raise ProtocolError("NDARRAY.dtype", f"{name!r} is not a scalar type") from None
        shape = _field(content, "shape", list, "NDARRAY")
        if "bits" in content:
            return cls._from_bits(content["bits"], dtype, shape)
        if dtype.kind == "c":
            if values.ndim < 1 or values.shape[-1] != 2:
                raise ProtocolError("NDARRAY.values", "complex values must be [real, imaginary] pairs")
            values = values[..., 0] + 1j * values[..., 1]
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                return cls(values.astype(dtype).reshape(shape))
        except (TypeError, ValueError) as error:
            raise ProtocolError("NDARRAY.shape", f"{shape} does not fit the values: {error}") from None

    @classmethod
    def _from_bits(cls, bits, dtype: np.dtype, shape) -> NdArrayMessage:
        """The journaled exact bytes of an array holding NaNs (see :meth:`journal_content`)."""
        if not isinstance(bits, str):
            raise ProtocolError("NDARRAY.bits", "must be base64 text")
        try:
            raw = base64.b64decode(bits, validate=True)
            count = int(np.prod(shape, dtype=np.int64))
            if len(raw) != count * dtype.itemsize:
                raise ValueError(f"{len(raw)} bytes for {count} values of {dtype}")
            array = np.frombuffer(raw, dtype=dtype.newbyteorder(">")).astype(dtype.newbyteorder("="))
            return cls(array.reshape(shape))
        except (TypeError, ValueError) as error:  # binascii.Error is a ValueError
            raise ProtocolError("NDARRAY.bits", f"do not fit dtype and shape: {error}") from None

    def pack_content(self) -> bytes:
        native = self.array.dtype.newbyteorder("=")
        code = next(c for c, dtype in NDARRAY_SCALAR_TYPES.items() if dtype == native)
        head = struct.pack(f">BB{self.array.ndim}H", code, self.array.ndim, *self.array.shape)
        return head + np.ascontiguousarray(self.array, dtype=native.newbyteorder(">")).tobytes()

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> NdArrayMessage:
        _need(content, 2, "NDARRAY", exact=False)
        code, ndim = content[0], content[1]
        if code not in NDARRAY_SCALAR_TYPES:
            raise ProtocolError("NDARRAY.scalar_type", f"unknown scalar type {code}")
        if ndim < 1:
            raise ProtocolError("NDARRAY.dim", "must be at least 1")
        _need(content, 2 + 2 * ndim, "NDARRAY", exact=False)
        shape = struct.unpack_from(f">{ndim}H", content, 2)
        dtype = NDARRAY_SCALAR_TYPES[code].newbyteorder(">")
        count = int(np.prod(shape, dtype=np.int64))
        _need(content, 2 + 2 * ndim + count * dtype.itemsize, "NDARRAY")
        data = np.frombuffer(content, dtype=dtype, count=count, offset=2 + 2 * ndim)
        return cls(data.astype(dtype.newbyteorder("=")).reshape(shape))


# --------------------------------------------------------------------------------------------
# POINT


@dataclass(eq=False)
class PointEntry:
    """One POINT element: position (mm), diameter (mm), colour RGBA (0–255) and names."""

    name: str
    position_mm: tuple[float, float, float]
    diameter_mm: float = 0.0
    group: str = ""
    rgba: tuple[int, int, int, int] = (255, 255, 255, 255)
    owner: str = ""


_POINT = struct.Struct(">64s32s4B4f20s")


@dataclass(eq=False)
class PointMessage(Message):
    """POINT: a list of named points (136 bytes each)."""

    points: list[PointEntry] = field(default_factory=list)

    MESSAGE_TYPE: ClassVar[str] = "POINT"

    def journal_content(self) -> dict:
        return {
            "points": [
                {
                    "name": p.name,
                    "group": p.group,
                    "rgba": list(p.rgba),
                    "position_mm": list(p.position_mm),
                    "diameter_mm": p.diameter_mm,
                    "owner": p.owner,
                }
                for p in self.points
            ]
        }

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> PointMessage:
        points = []
        for n, p in enumerate(_field(content, "points", list, "POINT")):
            key = f"POINT.points[{n}]"
            position = numbers_from_json(_field(p, "position_mm", list, key), f"{key}.position_mm")
            if position.shape != (3,):
                raise ProtocolError(f"{key}.position_mm", "must be three numbers")
            rgba = [_int_field({"c": c}, "c", f"{key}.rgba", 0, 255) for c in _field(p, "rgba", list, key)]
            points.append(
                PointEntry(
                    _field(p, "name", str, key),
                    tuple(float(v) for v in position),
                    float(_field(p, "diameter_mm", (int, float), key)),
                    _field(p, "group", str, key),
                    tuple(rgba),
                    _field(p, "owner", str, key),
                )
            )
        return cls(points)

    def pack_content(self) -> bytes:
        out = []
        for n, p in enumerate(self.points):
            key = f"POINT.points[{n}]"
            values = [*p.position_mm, p.diameter_mm]
            if len(values) != 4 or not np.all(np.isfinite(values)):
                raise ProtocolError(key, "position_mm must be three finite numbers, diameter_mm finite")
            if len(p.rgba) != 4 or not all(0 <= int(c) <= 255 for c in p.rgba):
                raise ProtocolError(f"{key}.rgba", "must be four integers 0 … 255")
            out.append(
                _POINT.pack(
                    pack_cstring(p.name, 64, f"{key}.name"),
                    pack_cstring(p.group, 32, f"{key}.group"),
                    *(int(c) for c in p.rgba),
                    *(float(v) for v in values),
                    pack_cstring(p.owner, 20, f"{key}.owner"),
                )
            )
        return b"".join(out)

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> PointMessage:
        if len(content) % _POINT.size:
            raise ProtocolError("POINT", f"body is {len(content)} bytes, not a multiple of {_POINT.size}")
        points = []
        for n, fields in enumerate(_POINT.iter_unpack(content)):
            key = f"POINT.points[{n}]"
            if not np.all(np.isfinite(fields[6:10])):
                raise ProtocolError(key, "position or diameter contains NaN or infinity")
            points.append(
                PointEntry(
                    name=unpack_cstring(fields[0], f"{key}.name"),
                    group=unpack_cstring(fields[1], f"{key}.group"),
                    rgba=tuple(fields[2:6]),
                    position_mm=tuple(float(v) for v in fields[6:9]),
                    diameter_mm=float(fields[9]),
                    owner=unpack_cstring(fields[10], f"{key}.owner"),
                )
            )
        return cls(points)


# --------------------------------------------------------------------------------------------
# TDATA (tracking data: several tools in one message)

_TDATA = struct.Struct(">20sBB12f")
TRACKER_TYPES = {1: "tracker", 2: "6D", 3: "3D", 4: "5D"}


@dataclass(eq=False)
class TrackingElement:
    """One tool of a TDATA message: name (≤ 20 bytes), type (1 tracker, 2 6D, 3 3D, 4 5D) and a
    4×4 pose (translation in mm, float32 on the wire)."""

    name: str
    matrix: np.ndarray = field(default_factory=lambda: np.eye(4))
    tool_type: int = 2


@dataclass(eq=False)
class TrackingDataMessage(Message):
    """TDATA: poses of several tools (70 bytes each), streamed after STT_TDATA."""

    elements: list[TrackingElement] = field(default_factory=list)

    MESSAGE_TYPE: ClassVar[str] = "TDATA"

    def journal_content(self) -> dict:
        return {
            "elements": [
                {"name": e.name, "tool_type": e.tool_type, "matrix": np.asarray(e.matrix)}
                for e in self.elements
            ]
        }

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> TrackingDataMessage:
        elements = []
        for n, e in enumerate(_field(content, "elements", list, "TDATA")):
            key = f"TDATA.elements[{n}]"
            matrix = _float_array(numbers_from_json(_field(e, "matrix", list, key), key), (4, 4), key)
            elements.append(
                TrackingElement(_field(e, "name", str, key), matrix, _int_field(e, "tool_type", key, 1, 4))
            )
        return cls(elements)

    def pack_content(self) -> bytes:
        out = []
        for n, element in enumerate(self.elements):
            key = f"TDATA.elements[{n}]"
            matrix = _float_array(element.matrix, (4, 4), f"{key}.matrix")
            if not np.all(np.isfinite(matrix[:3, :])):
                raise ProtocolError(f"{key}.matrix", "must be finite")
            if element.tool_type not in TRACKER_TYPES:
                raise ProtocolError(f"{key}.tool_type", f"must be one of {sorted(TRACKER_TYPES)}")
            values = np.asarray(matrix[:3, :].T, dtype=np.float32).reshape(-1)
            out.append(
                _TDATA.pack(
                    pack_cstring(element.name, 20, f"{key}.name"), element.tool_type, 0, *map(float, values)
                )
            )
        return b"".join(out)

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> TrackingDataMessage:
        if len(content) % _TDATA.size:
            raise ProtocolError("TDATA", f"body is {len(content)} bytes, not a multiple of {_TDATA.size}")
        elements = []
        for n, fields in enumerate(_TDATA.iter_unpack(content)):
            key = f"TDATA.elements[{n}]"
            values = np.array(fields[3:], dtype=np.float64)
            if not np.all(np.isfinite(values)):
                raise ProtocolError(f"{key}.matrix", "contains NaN or infinity")
            if fields[1] not in TRACKER_TYPES:
                raise ProtocolError(f"{key}.tool_type", f"unknown type {fields[1]}")
            matrix = np.eye(4)
            matrix[:3, :] = values.reshape(4, 3).T
            elements.append(TrackingElement(unpack_cstring(fields[0], f"{key}.name"), matrix, fields[1]))
        return cls(elements)


# --------------------------------------------------------------------------------------------
# CAPABILITY, queries and unknown types


@dataclass(eq=False)
class CapabilityMessage(Message):
    """CAPABILITY: the message types a peer supports."""

    types: list[str] = field(default_factory=list)

    MESSAGE_TYPE: ClassVar[str] = "CAPABILITY"

    MAX_CONTENT_SIZE: ClassVar[int] = 12288

    def journal_content(self) -> dict:
        return {"types": list(self.types)}

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> CapabilityMessage:
        types = _field(content, "types", list, "CAPABILITY")
        if not all(isinstance(t, str) for t in types):
            raise ProtocolError("CAPABILITY.types", "must be type names")
        return cls(list(types))

    def pack_content(self) -> bytes:
        return b"".join(pack_cstring(t, 12, f"CAPABILITY.types[{n}]") for n, t in enumerate(self.types))

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> CapabilityMessage:
        if len(content) % 12:
            raise ProtocolError("CAPABILITY", f"body is {len(content)} bytes, not a multiple of 12")
        return cls(
            [unpack_cstring(content[n : n + 12], "CAPABILITY.types") for n in range(0, len(content), 12)]
        )


# Type names a query may refer to; the wire truncates "GET_" + name to 12 characters.
DATA_TYPES = (
    "TRANSFORM",
    "POSITION",
    "IMAGE",
    "STRING",
    "STATUS",
    "POINT",
    "SENSOR",
    "NDARRAY",
    "CAPABILITY",
    "TDATA",
    "QTDATA",
    "IMGMETA",
    "LBMETA",
    "COLORT",
    "TRAJ",
    "POLYDATA",
    "BIND",
    "VIDEO",
    "VIDEOMETA",
    "COMMAND",
)
QUERY_PREFIXES = ("GET", "STT", "STP", "RTS")


# Type names of the reference implementation that are not simply cut at 12 characters.
QUERY_WIRE_NAMES = {("GET", "CAPABILITY"): "GET_CAPABIL"}


def query_data_type(truncated: str) -> str:
    """Full data type behind the (possibly truncated) part of a query type name."""
    if truncated in DATA_TYPES:
        return truncated
    matches = [t for t in DATA_TYPES if len(truncated) >= 4 and t.startswith(truncated)]
    return matches[0] if len(matches) == 1 else truncated


@dataclass(eq=False)
class QueryMessage(Message):
    """GET_/STT_/STP_/RTS_<type>: ask for one message, start or stop a stream, answer a request.

    - ``GET`` and ``STP``: empty body.
    - ``STT``: empty body, or ``resolution_ms`` (uint32, the stream's interval in ms) optionally
      followed by ``coordinate_name`` (char[32]) as for TDATA.
    - ``RTS``: ``status`` (0 ok, 1 error).
    """

    prefix: str = "GET"
    data_type: str = "TRANSFORM"
    resolution_ms: int | None = None
    coordinate_name: str | None = None
    status: int | None = None
    wire_type: str | None = None  # the type name as received (implementations truncate differently)

    def __post_init__(self) -> None:
        if self.prefix not in QUERY_PREFIXES:
            raise ProtocolError("QUERY.prefix", f"must be one of {QUERY_PREFIXES}, got {self.prefix!r}")

    @property
    def message_type(self) -> str:
        if self.wire_type is not None:
            return self.wire_type
        return QUERY_WIRE_NAMES.get((self.prefix, self.data_type), f"{self.prefix}_{self.data_type}"[:12])

    MAX_CONTENT_SIZE: ClassVar[int] = 36

    def journal_content(self) -> dict:
        return {
            "prefix": self.prefix,
            "data_type": self.data_type,
            "resolution_ms": self.resolution_ms,
            "coordinate_name": self.coordinate_name,
            "status": self.status,
        }

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> QueryMessage:
        optional_int = (int, type(None))
        return cls(
            _field(content, "prefix", str, message_type),
            _field(content, "data_type", str, message_type),
            _field(content, "resolution_ms", optional_int, message_type),
            _field(content, "coordinate_name", (str, type(None)), message_type),
            _field(content, "status", optional_int, message_type),
            wire_type=message_type,
        )

    def pack_content(self) -> bytes:
        if self.prefix in ("GET", "STP"):
            return b""
        if self.prefix == "RTS":
            if self.status is None or not 0 <= self.status <= 255:
                raise ProtocolError("RTS.status", "must be 0 (ok) … 255")
            return bytes([self.status])
        if self.resolution_ms is None:
            return b""
        if not 0 <= self.resolution_ms < 2**32:
            raise ProtocolError("STT.resolution_ms", "must fit in 32 unsigned bits")
        body = struct.pack(">I", self.resolution_ms)
        if self.coordinate_name is not None:
            body += pack_cstring(self.coordinate_name, 32, "STT.coordinate_name")
        return body

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> QueryMessage:
        prefix, data_type = message_type[:3], query_data_type(message_type[4:])
        if prefix in ("GET", "STP"):
            _need(content, 0, message_type)
            return cls(prefix, data_type, wire_type=message_type)
        if prefix == "RTS":
            _need(content, 1, message_type)
            return cls(prefix, data_type, status=content[0], wire_type=message_type)
        if len(content) not in (0, 4, 36):
            raise ProtocolError(message_type, f"body is {len(content)} bytes, expected 0, 4 or 36")
        resolution = struct.unpack_from(">I", content)[0] if content else None
        name = unpack_cstring(content[4:], f"{message_type}.coordinate_name") if len(content) == 36 else None
        return cls(prefix, data_type, resolution, name, wire_type=message_type)


@dataclass(eq=False)
class RawMessage(Message):
    """A message whose type this codec does not interpret (VIDEO, BIND, COMMAND, ...), or a data
    message with an empty body (the protocol's "nothing available" answer to a GET_)."""

    raw_type: str = ""
    content: bytes = b""

    @property
    def message_type(self) -> str:
        return self.raw_type

    @property
    def payload_nbytes(self) -> int:
        return len(self.content)

    def journal_content(self) -> dict:
        return {"content_base64": base64.b64encode(self.content).decode("ascii")}

    @classmethod
    def from_journal(cls, message_type, content, voxels=None) -> RawMessage:
        text = _field(content, "content_base64", str, message_type)
        try:
            return cls(message_type, base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as error:
            raise ProtocolError(f"{message_type}.content_base64", f"not base64: {error}") from None

    def pack_content(self) -> bytes:
        return bytes(self.content)

    @classmethod
    def unpack_content(cls, message_type: str, content: bytes) -> RawMessage:
        return cls(message_type, bytes(content))


def journal_class(message_type: str, content: dict) -> type[Message]:
    """The class that rebuilds a journal record's content: the one of its type, or RawMessage for
    content journaled as raw bytes (types not interpreted, empty "nothing available" replies)."""
    if isinstance(content, dict) and "content_base64" in content:
        return RawMessage
    return content_class(message_type)


def content_class(message_type: str) -> type[Message]:
    """The class that decodes a message type's content (RawMessage for types not interpreted)."""
    cls = MESSAGE_CLASSES.get(message_type)
    if cls is not None:
        return cls
    if message_type[:4] in ("GET_", "STT_", "STP_") or (
        message_type.startswith("RTS_") and message_type != "RTS_COMMAND"
    ):
        return QueryMessage
    return RawMessage
