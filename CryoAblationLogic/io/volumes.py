"""Read and write fields on a :class:`~.grid.Grid` as NRRD files the way Slicer writes volumes.

Slicer stores volumes in LPS space: a RAS-aligned grid is written with ``space directions``
(-sx,0,0) (0,-sy,0) (0,0,sz) and the origin's x and y negated, so the file loads in Slicer at the
case's coordinates. SimpleITK does the file format; this module maps the geometry and checks the
header before SimpleITK sees it: the data must be in the file itself (a ``data file:`` field could
pull in any file on the machine), and a corrupted header is refused naming its line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.memory import available_memory_bytes

MAX_HEADER_BYTES = 64 * 1024  # Slicer's headers are < 1 KiB; a longer one is not a volume header
MAX_AXIS_VOXELS = 65_536  # as the case grid (docs/case-format.md)
# NRRD type names (teem's nrrd format definition) → bytes per value.
_TYPE_BYTES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), 2),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32"), 4),
    **dict.fromkeys(("uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "int64"), 8),
    **dict.fromkeys(("signed long long int", "int64_t", "ulonglong", "unsigned long long"), 8),
    **dict.fromkeys(("unsigned long long int", "uint64", "uint64_t", "double"), 8),
}
_ENCODINGS = {"raw", "gzip", "gz", "bzip2", "bz2", "ascii", "text", "txt", "hex"}
# Fields that name other files: the data would come from somewhere else than the file read.
_DETACHED_FIELDS = {"data file", "datafile"}
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9 ]*?): ?(.*)$")
_KEY_VALUE = re.compile(r"^[^:]+:=")
_VECTOR = re.compile(r"\(([^()]*)\)")


def write_nrrd(path: str | Path, field: np.ndarray, grid: Grid, compress: bool = True) -> Path:
    import SimpleITK as sitk  # slow to import; only readers and writers need it

    field = np.asarray(field)
    if field.shape != tuple(grid.size):
        raise ValueError(f"field shape {field.shape} does not match grid size {grid.size}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(field.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in grid.spacing_mm])
    image.SetOrigin([float(v) for v in np.asarray(grid.origin_mm) * RAS_LPS_FLIP])
    image.SetDirection([-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), compress)
    return path


def _finite_numbers(text: str, where: str, line: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(where, f"not numbers: {line[:120]!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(where, f"numbers must be finite: {line[:120]!r}")
    return values


def _check_field(name: str, value: str, where: str, line: str, fields: dict) -> None:
    if name in _DETACHED_FIELDS:
        raise InputError(
            where,
            "the data lives in another file ('data file:'); only NRRD files holding their own data "
            "are read (save the volume from Slicer as .nrrd)",
        )
    if name == "dimension":
        if not value.strip().isdigit() or not 1 <= int(value) <= 16:
            raise InputError(where, f"dimension must be an integer from 1 to 16: {line[:120]!r}")
    elif name == "sizes":
        parts = value.split()
        if not parts or not all(p.isdigit() and len(p) <= 6 for p in parts):
            raise InputError(where, f"sizes must be positive integers: {line[:120]!r}")
        sizes = [int(p) for p in parts]
        if not all(1 <= n <= MAX_AXIS_VOXELS for n in sizes):
            raise InputError(where, f"sizes must lie in 1..{MAX_AXIS_VOXELS} per axis: {line[:120]!r}")
    elif name == "type":
        if value.strip() not in _TYPE_BYTES:
            raise InputError(where, f"unknown type {value.strip()[:40]!r}")
    elif name == "encoding":
        if value.strip() not in _ENCODINGS:
            raise InputError(where, f"unknown encoding {value.strip()[:40]!r}")
    elif name == "space directions":
        for token in value.split():
            if token != "none" and not _VECTOR.fullmatch(token):
                raise InputError(where, f"space directions must be vectors '(x,y,z)' or none: {line[:120]!r}")
        for vector in _VECTOR.findall(value):
            _finite_numbers(vector, where, line)
    elif name == "space origin":
        match = _VECTOR.fullmatch(value.strip())
        if not match:
            raise InputError(where, f"space origin must be a vector '(x,y,z)': {line[:120]!r}")
        _finite_numbers(match.group(1), where, line)
    elif name == "spacings":
        _finite_numbers(value.replace("nan", ""), where, line)
    fields[name] = value.strip()


def check_nrrd_header(path: str | Path) -> dict[str, str]:
    """Read and check an NRRD header; return its fields. Raises ``InputError`` naming the line.

    Refused: files that are not NRRD, detached data (``data file:``, ``.nhdr``), unknown types or
    encodings, malformed sizes, directions or origin, non-finite geometry, and headers declaring
    more voxels than this machine can hold.
    """
    path = Path(path)
    with path.open("rb") as stream:
        head = stream.read(MAX_HEADER_BYTES + 1)
    lines = head.split(b"\n")
    if not re.fullmatch(rb"NRRD000[1-5]\r?", lines[0]):
        raise InputError(
            f"{path} line 1", f"not a readable image: not an NRRD file (starts {lines[0][:20]!r})"
        )
    fields: dict[str, str] = {}
    ended = False
    for number, raw in enumerate(lines[1:], start=2):
        if number == len(lines) and len(head) > MAX_HEADER_BYTES:
            raise InputError(f"{path} line {number}", f"header longer than {MAX_HEADER_BYTES} bytes")
        where = f"{path} line {number}"
        try:
            line = raw.decode("ascii").rstrip("\r")
        except UnicodeDecodeError:
            raise InputError(where, "not a readable image: header line is not ASCII text") from None
        if line == "":
            ended = True
            break
        if line.startswith("#") or _KEY_VALUE.match(line):
            continue  # comment, or a key/value pair (free-form metadata)
        match = _FIELD.match(line)
        if not match:
            raise InputError(where, f"not a readable image: not an NRRD field: {line[:120]!r}")
        _check_field(match.group(1).strip().lower(), match.group(2), where, line, fields)
    if not ended:
        raise InputError(f"{path} line {len(lines)}", "not a readable image: the header has no end (no data)")
    for name in ("dimension", "sizes", "type", "encoding"):
        if name not in fields:
            raise InputError(str(path), f"not a readable image: NRRD header has no {name!r} field")
    sizes = [int(p) for p in fields["sizes"].split()]
    if len(sizes) != int(fields["dimension"]):
        raise InputError(str(path), f"'sizes' has {len(sizes)} values for dimension {fields['dimension']}")
    need = math.prod(sizes) * _TYPE_BYTES[fields["type"]]
    if need > available_memory_bytes():
        raise InputError(
            str(path), f"the header declares {need / 1e9:.1f} GB of data, more than this machine holds"
        )
    return fields


def read_nrrd(path: str | Path) -> tuple[np.ndarray, Grid]:
    """Read a volume whose axes are aligned with RAS (any sign); return the field and its grid.

    Axis flips are undone so that the returned grid has positive spacing along +R, +A, +S.
    Oblique volumes are refused: resample them first (the MRML adapters do this with SimpleITK).
    The header is checked first (:func:`check_nrrd_header`).
    """
    import SimpleITK as sitk  # slow to import; only readers and writers need it

    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    check_nrrd_header(path)
    try:
        image = sitk.ReadImage(str(path))
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(str(path), "must be a 3-D scalar volume")
        array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    except RuntimeError as error:
        raise InputError(str(path), f"not a readable image: {error}") from error
    direction = np.array(image.GetDirection()).reshape(3, 3) * RAS_LPS_FLIP[:, None]  # LPS→RAS rows
    signs = np.diag(direction)
    if not np.allclose(np.abs(direction), np.eye(3), atol=1e-6):
        raise InputError(str(path), "volume axes are oblique; resample it onto a RAS-aligned grid first")
    spacing = np.array(image.GetSpacing())
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        raise InputError(str(path), f"voxel spacing must be positive and finite, not {tuple(spacing)}")
    origin = np.array(image.GetOrigin()) * RAS_LPS_FLIP
    size = np.array(array.shape)
    for axis in range(3):
        if signs[axis] < 0:  # axis runs against RAS: flip it and move the origin to the other end
            origin[axis] -= spacing[axis] * (size[axis] - 1)
            array = np.flip(array, axis=axis)
    grid = Grid(
        tuple(float(v) for v in origin),
        tuple(float(v) for v in spacing),
        tuple(int(n) for n in size),
    )
    return np.ascontiguousarray(array), grid
