"""Procedure journal: every OpenIGTLink message and link event of one procedure, append-only.

One JSON Lines file per procedure (``<folder>/<procedure>.jsonl``), one record per line, flushed
as it is written, so a crash loses at most the line being written. Image voxels go to NRRD files
in ``<folder>/<procedure>_images/`` (written before the record that names them); the record keeps
the full geometry as sent. An image NRRD cannot hold (zero spacing, collinear axes) is kept there
as the message received (``raw_file``, with ``nrrd_refused`` saying why); beyond the image budget
a record keeps the geometry only (``voxels_not_kept``).

Record keys: ``seq`` (0, 1, ...), ``kind`` ("message", "event" or "live"), ``arrival_time_s``
(receiver clock, Unix s), ``direction`` ("in" or "out"), ``connection_id``, ``peer``; for messages
also ``message_type``, ``device_name``, ``timestamp_s`` (the message's own time stamp, null if
unset), ``timestamp_raw``, ``header_version``, ``message_id``, ``metadata``, ``content`` (each
message type's own :meth:`~CryoAblationLogic.igtl.messages.Message.journal_content`) and, for
what live links received, ``link`` ("scanner" or "console"); for events ``event`` and ``detail``.
Non-finite numbers are written as the strings "nan", "inf" and "-inf" so that every line is
strict JSON. Live mode adds records of ``kind`` "live" (``note`` and ``detail``: its settings,
clock moves and applied events).

Reading is for untrusted files: every record is checked (:func:`check_record`), a damaged one is
an InputError naming its line, and every file a record names must lie inside the journal's folder
(:func:`journal_file`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.codec import decode, encode
from CryoAblationLogic.igtl.errors import ProtocolError
from CryoAblationLogic.igtl.inbox import LinkEvent, Received
from CryoAblationLogic.igtl.messages import ImageMessage, Message, journal_class, json_numbers

# Disk the journal's images may take (bytes), and the free space it always leaves on the disk.
DEFAULT_IMAGE_BUDGET_BYTES = 16 * 1024**3
MIN_FREE_DISK_BYTES = 512 * 1024**2
RECORD_KINDS = ("message", "event", "live")
MAX_RECORD_BYTES = 64 * 1024**2  # a longer journal line is damage, not a record


def message_content(message: Message) -> dict:
    """The decoded content of a message as JSON-ready values (each message type's own
    :meth:`~CryoAblationLogic.igtl.messages.Message.journal_content`)."""
    return message.journal_content()


def write_image_nrrd(path: Path, message: ImageMessage, compress: bool = False) -> Path:
    """The transmitted (sub-)volume as NRRD in LPS, the way Slicer writes volumes (oblique
    directions kept)."""

    voxels = message.voxels
    order = (2, 1, 0) if voxels.ndim == 3 else (2, 1, 0, 3)
    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose(order)), isVector=voxels.ndim == 4)
    axes = message.axes_mm.copy()
    origin = message.origin_mm + axes @ np.asarray(message.subvolume_offset, dtype=np.float64)
    if message.coordinate_system == "RAS":
        axes = axes * RAS_LPS_FLIP[:, None]
        origin = origin * RAS_LPS_FLIP
    spacing = np.linalg.norm(axes, axis=0)
    if not np.all(spacing > 0) or not np.all(np.isfinite(origin)):
        raise InputError("IMAGE.axes_mm", "zero spacing: NRRD cannot hold this geometry")
    if abs(np.linalg.det(axes / spacing[None, :])) < 1e-6:
        raise InputError("IMAGE.axes_mm", "collinear axes: NRRD cannot hold this geometry")
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in (axes / spacing[None, :]).reshape(-1)])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), compress)
    return path


def read_image_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(voxels indexed [i, j, k(, c)], 4×4 IJK→LPS matrix) of a journal image."""

    if not Path(path).is_file():
        raise InputError(str(path), "journal image file not found")
    with open(path, "rb") as stream:
        head = stream.read(16384)
    header = head.split(b"\n\n", 1)[0].lower()
    if re.search(rb"^\s*data ?file\s*:", header, re.MULTILINE):
        raise InputError(str(path), "a journal image must hold its own voxels (no detached 'data file')")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:  # SimpleITK's way of saying the file is not a readable image
        raise InputError(str(path), f"journal image cannot be read: {str(error).strip()[-200:]}") from None
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
    line left by a crash is cut off first, so the file stays valid JSON Lines).

    Images take at most ``image_budget_bytes`` of disk (and always leave ``MIN_FREE_DISK_BYTES``
    free): beyond it an IMAGE record keeps its geometry, says ``voxels_not_kept`` and
    ``on_fault(text)`` is told once. An image NRRD cannot hold (zero spacing, collinear axes) is
    kept as its raw OpenIGTLink message (``raw_file``), so a replay rebuilds what was received.
    """

    def __init__(
        self,
        folder: str | Path,
        procedure: str,
        fsync: bool = False,
        compress_images: bool = False,
        image_budget_bytes: int = DEFAULT_IMAGE_BUDGET_BYTES,
        on_fault: Callable[[str], None] | None = None,
    ):
        check_procedure_name(procedure)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{procedure}.jsonl"
        self.image_folder = self.folder / f"{procedure}_images"
        self.fsync = fsync
        self.compress_images = compress_images
        self.image_budget_bytes = int(image_budget_bytes)
        self.on_fault = on_fault
        self.faults: list[str] = []
        self._lock = threading.Lock()
        self._seq = self._recover()
        self.image_bytes = self._images_on_disk()
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
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                with self.path.open("r+b") as f:
                    f.truncate(end)
        return data[:end].count(b"\n")

    def _images_on_disk(self) -> int:
        if not self.image_folder.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.image_folder.iterdir() if f.is_file())

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
        line = json.dumps(json_numbers(record), ensure_ascii=False, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._seq += 1
        return record

    def _fault(self, text: str) -> None:
        if text in self.faults:
            return
        self.faults.append(text)
        if self.on_fault is not None:
            self.on_fault(text)

    def record(self, item: Received | LinkEvent, link: str | None = None) -> dict:
        """Journal an item from an inbox (or a transport listener); ``link``: the role of the
        link it came over ("scanner" or "console"), kept so that a replay applies the same rules."""
        if isinstance(item, LinkEvent):
            return self.record_event(item)
        return self.record_message(
            item.message, item.arrival_time_s, "in", item.connection_id, item.peer, link=link
        )

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

    def _store_image(self, seq: int, message: ImageMessage, content: dict) -> None:
        """Voxels to a file beside the journal (NRRD, or the raw message NRRD cannot hold)."""
        stem = f"{seq:07d}_{_UNSAFE.sub('_', message.device_name) or 'image'}"
        size = message.voxels.nbytes + 4096
        free = shutil.disk_usage(self.folder).free
        if self.image_bytes + size > self.image_budget_bytes or free - size < MIN_FREE_DISK_BYTES:
            reason = (
                f"journal image budget of {self.image_budget_bytes / 1024**2:.0f} MiB reached"
                if self.image_bytes + size > self.image_budget_bytes
                else f"less than {MIN_FREE_DISK_BYTES / 1024**2:.0f} MiB free on the journal's disk"
            )
            content["voxels_not_kept"] = reason
            self._fault(f"{reason}: image voxels are no longer journaled")
            return
        try:
            path = write_image_nrrd(self.image_folder / f"{stem}.nrrd", message, self.compress_images)
            content["file"] = f"{self.image_folder.name}/{path.name}"
        except (InputError, RuntimeError, ValueError) as error:  # SimpleITK raises RuntimeError
            path = self.image_folder / f"{stem}.igtl"
            self.image_folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(message, header_version=message.header_version))
            content["raw_file"] = f"{self.image_folder.name}/{path.name}"
            content["nrrd_refused"] = str(error)
        self.image_bytes += path.stat().st_size

    def record_message(
        self,
        message: Message,
        arrival_time_s: float | None = None,
        direction: str = "in",
        connection_id: int = 0,
        peer: str = "",
        link: str | None = None,
    ) -> dict:
        """Journal one message (``direction`` "out" for what we send; time: now if not given)."""
        if direction not in ("in", "out"):
            raise InputError("direction", f"must be 'in' or 'out', got {direction!r}")
        content = message.journal_content()
        with self._lock:
            if self._file.closed:
                raise InputError("journal", f"{self.path} is closed")
            seq = self._seq
            if isinstance(message, ImageMessage):
                self._store_image(seq, message, content)
            record = {
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
            if link is not None:
                record["link"] = link
            return self._append(record)


# ---------------------------------------------------------------------------------------------
# Reading a journal back (untrusted: every record is checked, every file stays in its folder)


@dataclass(frozen=True)
class JournalContents:
    records: list[dict]
    truncated_tail: bool  # the last line was incomplete (a crash mid-write) and was skipped
    folder: Path
    path: Path | None = None
    lines: list[int] = field(default_factory=list)  # the file line of each record

    def where(self, index: int) -> str:
        """ "<journal>:<line>" of record ``index`` (for error messages)."""
        line = self.lines[index] if index < len(self.lines) else index + 1
        return f"{self.path or 'journal'}:{line}"

    def messages(self, message_type: str | None = None, device_name: str | None = None) -> list[dict]:
        return [
            r
            for r in self.records
            if r["kind"] == "message"
            and (message_type is None or r["message_type"] == message_type)
            and (device_name is None or r["device_name"] == device_name)
        ]

    def image(self, record: dict) -> tuple[np.ndarray, np.ndarray]:
        """(voxels [i, j, k(, c)], 4×4 IJK→LPS matrix) of an IMAGE record kept as NRRD."""
        if record.get("message_type") != "IMAGE" or "file" not in record.get("content", {}):
            raise InputError(f"record {record.get('seq')}", "is not an IMAGE record with an NRRD file")
        return read_image_nrrd(journal_file(self.folder, record["content"]["file"], "content.file"))


def journal_file(folder: Path, name, key: str) -> Path:
    """A file named by a journal record: a relative path inside the journal's folder (no '..',
    no absolute path, no link leading out of it)."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise InputError(key, f"{name!r} is not a relative file path")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or ":" in relative.parts[0]:
        raise InputError(key, f"{name!r} must be a path inside the journal's folder")
    path = Path(folder) / relative
    try:
        inside = path.resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise InputError(key, f"{name!r} leads out of the journal's folder")
    return path


def _number(record: dict, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InputError(key, f"{value!r} is not a number in {low:g} … {high:g}")
    return float(value)


def check_record(record) -> None:
    """The shape of one journal record (raises InputError naming the key)."""
    if not isinstance(record, dict):
        raise InputError("record", "must be a JSON object")
    kind = record.get("kind")
    if kind not in RECORD_KINDS:
        raise InputError("kind", f"{kind!r} is not one of {RECORD_KINDS}")
    _number(record, "arrival_time_s", 0.0, 2.0**32)
    if kind == "message":
        for key, kinds in (("message_type", str), ("device_name", str), ("peer", str), ("metadata", dict)):
            if not isinstance(record.get(key), kinds):
                raise InputError(key, f"{record.get(key)!r} has the wrong type")
        if not isinstance(record.get("content"), dict):
            raise InputError("content", "must be a JSON object")
        if record.get("direction") not in ("in", "out"):
            raise InputError("direction", f"{record.get('direction')!r} is not 'in' or 'out'")
        if not 0 < len(record["message_type"].encode()) <= 12:
            raise InputError("message_type", f"{record['message_type']!r} is not a message type")
        _number(record, "timestamp_raw", 0, 2**64 - 1)
        _number(record, "message_id", 0, 2**32 - 1)
        if record.get("header_version") not in (1, 2):
            raise InputError("header_version", f"{record.get('header_version')!r} is not 1 or 2")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in record["metadata"].items()):
            raise InputError("metadata", "must map text to text")
        if record.get("link") not in (None, "scanner", "console"):
            raise InputError("link", f"{record.get('link')!r} is not 'scanner' or 'console'")
    elif kind == "event":
        if not isinstance(record.get("event"), str) or not isinstance(record.get("detail"), str):
            raise InputError("event", "an event record needs the texts 'event' and 'detail'")
    elif not isinstance(record.get("note"), str) or not isinstance(record.get("detail"), dict):
        raise InputError("note", "a live record needs a text 'note' and an object 'detail'")


def read_journal(path: str | Path) -> JournalContents:
    """All complete records of a journal, each checked (:func:`check_record`). An incomplete last
    line (crash while writing) is skipped; a damaged line anywhere else is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "journal not found")
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline (normally empty)
    records, numbers = [], []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = _parse_line(line)
            check_record(record)
        except InputError as error:
            raise InputError(f"{path}:{number}", f"damaged journal record: {error}") from None
        records.append(record)
        numbers.append(number)
    truncated = bool(tail.strip())
    if truncated:
        try:  # a last record written completely but without its newline is kept
            record = _parse_line(tail)
            check_record(record)
            records.append(record)
            numbers.append(len(complete) + 1)
            truncated = False
        except InputError:
            pass
    return JournalContents(records, truncated, path.parent, path, numbers)


def _parse_line(line: bytes):
    if len(line) > MAX_RECORD_BYTES:
        raise InputError("record", f"{len(line)} bytes, longer than any record ({MAX_RECORD_BYTES})")
    try:
        return json.loads(line, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as error:
        raise InputError("record", f"not JSON: {str(error)[:200]}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not strict JSON")


def record_to_message(record: dict, folder: Path) -> Message:
    """The message a journal record describes (``folder``: where the journal lies). Each message
    type rebuilds its own content (:meth:`~CryoAblationLogic.igtl.messages.Message.from_journal`);
    image voxels come from their file beside the journal."""
    if not isinstance(record, dict) or record.get("kind") != "message":
        raise InputError(
            f"record {record.get('seq') if isinstance(record, dict) else '?'}", "is not a message record"
        )
    check_record(record)
    message_type, content = record["message_type"], record["content"]
    try:
        if "raw_file" in content:  # an image NRRD could not hold: the message as received
            raw = journal_file(folder, content["raw_file"], "content.raw_file").read_bytes()
            message = decode(raw, check_crc=False)
        else:
            voxels = None
            if message_type == "IMAGE" and "file" in content:
                voxels, _ = read_image_nrrd(journal_file(folder, content["file"], "content.file"))
            message = journal_class(message_type, content).from_journal(message_type, content, voxels)
    except (ProtocolError, InputError):
        raise
    except (
        KeyError,
        TypeError,
        ValueError,
        OverflowError,
        IndexError,
        RecursionError,
        OSError,
        RuntimeError,
    ) as error:
        raise InputError(f"record {record.get('seq')}", f"cannot be rebuilt: {error!r}") from None
    message.device_name = record["device_name"]
    message.timestamp_raw = int(record["timestamp_raw"])
    message.header_version = record["header_version"]
    message.message_id = int(record["message_id"])
    message.metadata = dict(record["metadata"])
    return message


def image_kept(record: dict) -> bool:
    """Whether an IMAGE record's voxels were kept (not when the image budget was reached)."""
    return "voxels_not_kept" not in record.get("content", {})


def journal_messages(contents: JournalContents, direction: str = "in") -> Iterator[tuple[float, Message]]:
    """(arrival time s, message) of every message record going ``direction``, in journal order
    (images whose voxels were not kept are left out); a record that cannot be rebuilt is an
    InputError naming its line."""
    for index, record in enumerate(contents.records):
        if record["kind"] != "message" or record["direction"] != direction or not image_kept(record):
            continue
        try:
            message = record_to_message(record, contents.folder)
        except InputError as error:
            raise InputError(contents.where(index), str(error)) from None
        yield record["arrival_time_s"], message
