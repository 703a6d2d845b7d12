"""Procedure journal: every OpenIGTLink message and link event of one procedure, append-only.

One JSON Lines file per procedure (``<folder>/<procedure>.jsonl``), one record per line, flushed
as it is written, so a crash loses at most the line being written. Image voxels go to NRRD files
in ``<folder>/<procedure>_images/`` (written before the record that names them); the record keeps
the full geometry as sent.

Record keys: ``seq`` (0, 1, ...), ``kind`` ("message" or "event"), ``arrival_time_s`` (receiver
clock, Unix s), ``direction`` ("in" or "out"), ``connection_id``, ``peer``; for messages also
``message_type``, ``device_name``, ``timestamp_s`` (the message's own time stamp, null if unset),
``timestamp_raw``, ``header_version``, ``message_id``, ``metadata`` and ``content`` (per type, see
:func:`message_content`); for events ``event`` and ``detail``. Non-finite numbers are written as
the strings "nan", "inf" and "-inf" so that every line is strict JSON. Live mode adds records of
``kind`` "live" (``note`` and ``detail``: its settings, clock moves and applied events).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.inbox import LinkEvent, Received
from CryoAblationLogic.igtl.messages import (
    CapabilityMessage,
    ImageMessage,
    Message,
    NdArrayMessage,
    PointMessage,
    PositionMessage,
    QueryMessage,
    RawMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TrackingDataMessage,
    TransformMessage,
)

_LPS_FLIP = np.array([-1.0, -1.0, 1.0])


def _finite(value):
    """JSON-safe numbers: non-finite floats become strings, numpy types plain Python."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if np.isnan(value):
            return "nan"
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, np.integer):
        return int(value)
    return value


def message_content(message: Message) -> dict:
    """The decoded content of a message as JSON-ready values (units in the key names)."""
    if isinstance(message, TransformMessage):
        return {"matrix": message.matrix}
    if isinstance(message, PositionMessage):
        return {"position_mm": message.position_mm, "quaternion": message.quaternion}
    if isinstance(message, StringMessage):
        return {"text": message.text, "encoding": message.encoding}
    if isinstance(message, StatusMessage):
        return {
            "code": message.code,
            "subcode": message.subcode,
            "error_name": message.error_name,
            "status_message": message.status_message,
        }
    if isinstance(message, SensorMessage):
        return {"values": message.values, "status": message.status, "unit": message.unit}
    if isinstance(message, NdArrayMessage):
        array = message.array
        values = np.stack([array.real, array.imag], axis=-1) if np.iscomplexobj(array) else array
        return {"dtype": str(array.dtype), "shape": list(array.shape), "values": values}
    if isinstance(message, PointMessage):
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
                for p in message.points
            ]
        }
    if isinstance(message, TrackingDataMessage):
        return {
            "elements": [
                {"name": e.name, "tool_type": e.tool_type, "matrix": np.asarray(e.matrix)}
                for e in message.elements
            ]
        }
    if isinstance(message, CapabilityMessage):
        return {"types": list(message.types)}
    if isinstance(message, QueryMessage):
        return {
            "prefix": message.prefix,
            "data_type": message.data_type,
            "resolution_ms": message.resolution_ms,
            "coordinate_name": message.coordinate_name,
            "status": message.status,
        }
    if isinstance(message, ImageMessage):
        return {
            "dtype": str(message.voxels.dtype),
            "components": message.components,
            "subvolume_size": list(message.voxels.shape[:3]),
            "size": list(message.size),
            "subvolume_offset": list(message.subvolume_offset),
            "coordinate_system": message.coordinate_system,
            "endian": message.endian,
            "axes_mm": message.axes_mm,
            "centre_mm": message.centre_mm,
            "origin_mm": message.origin_mm,
            "spacing_mm": message.spacing_mm,
        }
    if isinstance(message, RawMessage):
        return {"content_base64": base64.b64encode(message.content).decode("ascii")}
    raise InputError("message", f"cannot journal {type(message).__name__}")  # pragma: no cover


def write_image_nrrd(path: Path, message: ImageMessage, compress: bool = False) -> Path:
    """The transmitted (sub-)volume as NRRD in LPS, the way Slicer writes volumes (oblique
    directions kept)."""
    import SimpleITK as sitk

    voxels = message.voxels
    order = (2, 1, 0) if voxels.ndim == 3 else (2, 1, 0, 3)
    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose(order)), isVector=voxels.ndim == 4)
    axes = message.axes_mm.copy()
    origin = message.origin_mm + axes @ np.asarray(message.subvolume_offset, dtype=np.float64)
    if message.coordinate_system == "RAS":
        axes = axes * _LPS_FLIP[:, None]
        origin = origin * _LPS_FLIP
    spacing = np.linalg.norm(axes, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in (axes / spacing[None, :]).reshape(-1)])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), compress)
    return path


def read_image_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(voxels indexed [i, j, k(, c)], 4×4 IJK→LPS matrix) of a journal image."""
    import SimpleITK as sitk

    if not Path(path).is_file():
        raise InputError(str(path), "journal image file not found")
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    voxels = array.transpose(2, 1, 0) if array.ndim == 3 else array.transpose(2, 1, 0, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())[None, :]
    matrix[:3, 3] = image.GetOrigin()
    return voxels, matrix


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def check_procedure_name(procedure: str, key: str = "procedure") -> None:
    """A procedure name is a file name stem of letters, digits, '_', '.' and '-'."""
    if not procedure or _UNSAFE.sub("", procedure) != procedure:
        raise InputError(key, f"{procedure!r}: use letters, digits, '_', '.' or '-' only")


class Journal:
    """Append-only journal of one procedure. Thread-safe: the network thread may record while
    the main thread records what it sends. Reopening continues the same file (an incomplete last
    line left by a crash is cut off first, so the file stays valid JSON Lines)."""

    def __init__(
        self, folder: str | Path, procedure: str, fsync: bool = False, compress_images: bool = False
    ):
        check_procedure_name(procedure)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{procedure}.jsonl"
        self.image_folder = self.folder / f"{procedure}_images"
        self.fsync = fsync
        self.compress_images = compress_images
        self._lock = threading.Lock()
        self._seq = self._recover()
        self._file = self.path.open("a", encoding="utf-8")

    def _recover(self) -> int:
        """Cut an incomplete last line and return the next sequence number."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            try:  # complete record, only its newline missing: keep it
                json.loads(data[end:])
                with self.path.open("ab") as f:
                    f.write(b"\n")
                return data.count(b"\n") + 1
            except (json.JSONDecodeError, UnicodeDecodeError):
                with self.path.open("r+b") as f:
                    f.truncate(end)
        return data[:end].count(b"\n")

    @property
    def record_count(self) -> int:
        return self._seq

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _append(self, record: dict) -> dict:
        line = json.dumps(_finite(record), ensure_ascii=False, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._seq += 1
        return record

    def record(self, item: Received | LinkEvent) -> dict:
        """Journal an item from an inbox (or a transport listener)."""
        if isinstance(item, LinkEvent):
            return self.record_event(item)
        return self.record_message(item.message, item.arrival_time_s, "in", item.connection_id, item.peer)

    def record_event(self, event: LinkEvent) -> dict:
        with self._lock:
            return self._append(
                {
                    "seq": self._seq,
                    "kind": "event",
                    "arrival_time_s": event.time_s,
                    "direction": "in",
                    "connection_id": event.connection_id,
                    "peer": event.peer,
                    "event": event.kind,
                    "detail": event.detail,
                }
            )

    def record_note(self, note: str, detail: dict, time_s: float | None = None) -> dict:
        """Journal a record of live mode's own (``kind`` "live", ``note`` its name, ``detail`` a
        JSON-ready dict): the session settings, the clock moves and events it applied."""
        with self._lock:
            if self._file.closed:
                raise InputError("journal", f"{self.path} is closed")
            return self._append(
                {
                    "seq": self._seq,
                    "kind": "live",
                    "arrival_time_s": time.time() if time_s is None else time_s,
                    "note": note,
                    "detail": detail,
                }
            )

    def record_message(
        self,
        message: Message,
        arrival_time_s: float | None = None,
        direction: str = "in",
        connection_id: int = 0,
        peer: str = "",
    ) -> dict:
        """Journal one message (``direction`` "out" for what we send; time: now if not given)."""
        if direction not in ("in", "out"):
            raise InputError("direction", f"must be 'in' or 'out', got {direction!r}")
        content = message_content(message)
        with self._lock:
            if self._file.closed:
                raise InputError("journal", f"{self.path} is closed")
            seq = self._seq
            if isinstance(message, ImageMessage):
                name = f"{seq:07d}_{_UNSAFE.sub('_', message.device_name) or 'image'}.nrrd"
                write_image_nrrd(self.image_folder / name, message, self.compress_images)
                content["file"] = f"{self.image_folder.name}/{name}"
            return self._append(
                {
                    "seq": seq,
                    "kind": "message",
                    "arrival_time_s": time.time() if arrival_time_s is None else arrival_time_s,
                    "direction": direction,
                    "connection_id": connection_id,
                    "peer": peer,
                    "message_type": message.message_type,
                    "device_name": message.device_name,
                    "timestamp_s": message.timestamp_s,
                    "timestamp_raw": message.timestamp_raw,
                    "header_version": message.header_version,
                    "message_id": message.message_id,
                    "metadata": message.metadata,
                    "content": content,
                }
            )


@dataclass(frozen=True)
class JournalContents:
    records: list[dict]
    truncated_tail: bool  # the last line was incomplete (a crash mid-write) and was skipped
    folder: Path

    def messages(self, message_type: str | None = None, device_name: str | None = None) -> list[dict]:
        return [
            r
            for r in self.records
            if r["kind"] == "message"
            and (message_type is None or r["message_type"] == message_type)
            and (device_name is None or r["device_name"] == device_name)
        ]

    def image(self, record: dict) -> tuple[np.ndarray, np.ndarray]:
        """(voxels [i, j, k(, c)], 4×4 IJK→LPS matrix) of an IMAGE record."""
        if record.get("message_type") != "IMAGE" or "file" not in record.get("content", {}):
            raise InputError(f"record {record.get('seq')}", "is not an IMAGE record")
        return read_image_nrrd(self.folder / record["content"]["file"])


def read_journal(path: str | Path) -> JournalContents:
    """All complete records of a journal. An incomplete last line (crash while writing) is
    skipped; a damaged line anywhere else is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "journal not found")
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline (normally empty)
    records = []
    for number, line in enumerate(complete, start=1):
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"{path}:{number}", f"damaged journal record: {error}") from None
    truncated = bool(tail.strip())
    if truncated:
        try:  # a last record written completely but without its newline is kept
            records.append(json.loads(tail))
            truncated = False
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    return JournalContents(records, truncated, path.parent)
