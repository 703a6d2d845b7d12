"""Messages back from a procedure journal, and replaying them with their original timing.

``record_to_message`` rebuilds the message a journal record describes (image voxels from the
NRRD file beside the journal); the rebuilt message encodes to the same bytes as the original,
so a recorded procedure can be sent again to Slicer or to a test peer.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import (
    CapabilityMessage,
    ImageMessage,
    Message,
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
    content_class,
)
from CryoAblationLogic.live.journal import JournalContents, read_image_nrrd, read_journal

_SPECIAL = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _numbers(value):
    """Undo the journal's strict-JSON spelling of non-finite numbers."""
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str) and value in _SPECIAL:
        return _SPECIAL[value]
    return value


def _image(content: dict, folder: Path) -> ImageMessage:
    voxels, _ = read_image_nrrd(folder / content["file"])  # geometry comes from the record, exact
    return ImageMessage(
        voxels.astype(np.dtype(content["dtype"]), copy=False),
        np.array(content["axes_mm"], dtype=np.float64),
        np.array(content["centre_mm"], dtype=np.float64),
        coordinate_system=content["coordinate_system"],
        endian=content.get("endian", "little"),
        size=tuple(content["size"]),
        subvolume_offset=tuple(content["subvolume_offset"]),
    )


def _content_message(message_type: str, c: dict, folder: Path) -> Message:
    cls = content_class(message_type)
    if "content_base64" in c:
        return RawMessage(message_type, base64.b64decode(c["content_base64"]))
    if cls is TransformMessage:
        return TransformMessage(np.array(c["matrix"], dtype=np.float64))
    if cls is PositionMessage:
        return PositionMessage(c["position_mm"], c["quaternion"])
    if cls is StringMessage:
        return StringMessage(c["text"], c["encoding"])
    if cls is StatusMessage:
        return StatusMessage(c["code"], c["subcode"], c["error_name"], c["status_message"])
    if cls is SensorMessage:
        return SensorMessage(np.array(_numbers(c["values"]), dtype=np.float64), c["status"], c["unit"])
    if cls is NdArrayMessage:
        values = np.array(_numbers(c["values"]), dtype=np.float64)
        dtype = np.dtype(c["dtype"])
        if dtype.kind == "c":
            values = values[..., 0] + 1j * values[..., 1]
        return NdArrayMessage(values.astype(dtype).reshape(c["shape"]))
    if cls is PointMessage:
        return PointMessage(
            [
                PointEntry(
                    p["name"],
                    tuple(p["position_mm"]),
                    p["diameter_mm"],
                    p["group"],
                    tuple(p["rgba"]),
                    p["owner"],
                )
                for p in c["points"]
            ]
        )
    if cls is CapabilityMessage:
        return CapabilityMessage(list(c["types"]))
    if cls is TrackingDataMessage:
        return TrackingDataMessage(
            [TrackingElement(e["name"], np.array(e["matrix"]), e["tool_type"]) for e in c["elements"]]
        )
    if cls is QueryMessage:
        return QueryMessage(
            c["prefix"],
            c["data_type"],
            c["resolution_ms"],
            c["coordinate_name"],
            c["status"],
            wire_type=message_type,
        )
    if cls is ImageMessage:
        return _image(c, folder)
    raise InputError(message_type, "no content in the journal record to rebuild it from")  # pragma: no cover


def record_to_message(record: dict, folder: Path) -> Message:
    """The message a journal record describes (``folder``: where the journal lies)."""
    if record.get("kind") != "message":
        raise InputError(f"record {record.get('seq')}", "is not a message record")
    try:
        message = _content_message(record["message_type"], record["content"], Path(folder))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"record {record.get('seq')}", f"cannot be rebuilt: {error!r}") from None
    message.device_name = record["device_name"]
    message.timestamp_raw = record["timestamp_raw"]
    message.header_version = record["header_version"]
    message.message_id = record["message_id"]
    message.metadata = dict(record["metadata"])
    return message


def journal_messages(contents: JournalContents, direction: str = "in") -> Iterator[tuple[float, Message]]:
    """(arrival time s, message) of every message record going ``direction``, in journal order."""
    for record in contents.records:
        if record["kind"] == "message" and record["direction"] == direction:
            yield record["arrival_time_s"], record_to_message(record, contents.folder)


def replay(
    journal_path: str | Path,
    send: Callable[[Message], object],
    speed: float = 1.0,
    direction: str = "in",
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send the journaled messages again, spaced as they arrived (``speed`` 2 = twice as fast;
    0 = as fast as possible). Returns how many were sent."""
    if speed < 0:
        raise InputError("speed", f"must be ≥ 0, got {speed}")
    count = 0
    previous = None
    for arrival_s, message in journal_messages(read_journal(journal_path), direction):
        if previous is not None and speed > 0:
            sleep(max(0.0, (arrival_s - previous) / speed))
        previous = arrival_s
        send(message)
        count += 1
    return count
