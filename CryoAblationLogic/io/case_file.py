"""Simulation case files (``*.cryo.json``): parsing, validation and writing.

The format is documented in ``docs/case-format.md``; its reference is the JSON Schema
``Resources/case.schema.json`` (draft 2020-12), which holds every key, type and range with its
unit and the reason for each bound. :func:`parse_case` validates against the schema first, then
checks the rules that involve several keys (probe names in protocol steps, points inside the grid,
label values, materials, the label volume and its folder) and raises
:class:`~CryoAblationLogic.core.errors.InputError` naming the key path (``probes[1].tip_mm[2]``)
before any computing starts.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import DEFAULT_ISOTHERMS_C
from CryoAblationLogic.core.plan import (
    FACES,
    PROTECTION_DIAMETER_RANGE_MM,
    PROTECTION_HELD_RANGE_C,
    PROTECTION_POWER_MAX_W_PER_ML,
    BoundaryCondition,
    Case,
    LineSinkSource,
    Outputs,
    ProbeSpec,
    ProtocolStep,
    Sensor,
    SphereSource,
    Structure,
    WarmLineSource,
    WarmRegionSource,
)
from CryoAblationLogic.core.protocols import MAX_RUN_S
from CryoAblationLogic.core.resources import load_json_resource
from CryoAblationLogic.io.volumes import read_nrrd, write_nrrd
from CryoAblationLogic.physics.materials import load_material_library, material_from_dict
from CryoAblationLogic.physics.probes import load_probe_catalog

if TYPE_CHECKING:
    from jsonschema import ValidationError

SCHEMA_RESOURCE = "case.schema.json"
# A case file is a page of JSON (label volumes are separate files): the demo case is 3 KB and a
# plan with 64 probes and 256 sensors stays under 100 KB. Bigger files are refused before parsing.
MAX_CASE_FILE_BYTES = 4 * 1024 * 1024
# JSON numbers with more characters than this are refused by name instead of being converted:
# no physical quantity of the format needs 40 significant digits, and Python refuses to convert
# integers of more than 4 300 digits anyway (a ValueError with no key).
MAX_NUMBER_CHARS = 100
LABEL_MAX = 65_535  # label volumes hold 16-bit labels at most


# --- reading JSON safely ----------------------------------------------------------------------


class UnreadableNumber:
    """A JSON number that has no finite float value (too long, overflowing, NaN or Infinity).

    It is kept as a value of its own so that the schema refuses it with the key where it stands.
    """

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        if len(self.text) > 24:
            return f"a {len(self.text)}-character number ({self.text[:12]}…)"
        return f"the number {self.text} (not finite in double precision)"


def _parse_int(text: str):
    return UnreadableNumber(text) if len(text) > MAX_NUMBER_CHARS else int(text)


def _parse_float(text: str):
    if len(text) > MAX_NUMBER_CHARS:
        return UnreadableNumber(text)
    value = float(text)
    return value if math.isfinite(value) else UnreadableNumber(text)


def read_case_json(path: str | Path) -> dict:
    """Read a case file's JSON: bounded in size, UTF-8, numbers kept finite; ``InputError`` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), "is a folder: give the case file (.cryo.json) in it")
    if not path.is_file():
        raise InputError(str(path), "case file not found")
    size = path.stat().st_size
    if size > MAX_CASE_FILE_BYTES:
        raise InputError(
            str(path),
            f"{size} bytes is too large for a case file (at most {MAX_CASE_FILE_BYTES // 1024**2} MiB; "
            "label volumes are separate NRRD files)",
        )
    raw = path.read_bytes()[: MAX_CASE_FILE_BYTES + 1]
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some Windows editors write, is fine
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(
            str(path), f"not UTF-8 text: byte {error.start} (line {line}) is {raw[error.start : error.end]!r}"
        ) from None
    try:
        return json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=UnreadableNumber
        )
    except json.JSONDecodeError as error:
        raise InputError(str(path), f"not valid JSON: {error}") from None
    except RecursionError:
        raise InputError(str(path), "nested too deeply to be a case file (a case is 5 levels deep)") from None


# --- the schema -------------------------------------------------------------------------------


def _is_number(_checker, instance) -> bool:
    # Python callers (Slicer, scripts) pass numpy scalars; NaN and infinity are not numbers here.
    return (
        isinstance(instance, numbers.Real)
        and not isinstance(instance, (bool, np.bool_))
        and math.isfinite(instance)
    )


def _is_integer(checker, instance) -> bool:
    if isinstance(instance, numbers.Integral) and not isinstance(instance, (bool, np.bool_)):
        return True
    return _is_number(checker, instance) and float(instance).is_integer()


def _is_array(_checker, instance) -> bool:
    return isinstance(instance, (list, tuple))


@functools.cache
def case_schema() -> dict:
    """The case format's JSON Schema (``Resources/case.schema.json``)."""
    return load_json_resource(SCHEMA_RESOURCE)


@functools.cache
def _validator():
    # Imported here: inside Slicer, jsonschema is installed with numba on first use (with the
    # user's consent), so importing this module must not need it yet.
    try:
        # installed in Slicer on first use, with numba
        from jsonschema import Draft202012Validator, validators
    except ImportError as error:
        raise ModuleNotFoundError(
            "reading case files needs the Python package jsonschema (pip install jsonschema; in Slicer "
            "the CryoAblation module installs it with numba)"
        ) from error

    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_number, "integer": _is_integer, "array": _is_array}
    )
    schema = case_schema()
    Draft202012Validator.check_schema(schema)
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


def key_path(parts: Iterable) -> str:
    """``("probes", 1, "tip_mm", 2)`` → ``probes[1].tip_mm[2]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part or any(c in part for c in ".[] ") or not part.isprintable():
            text += f"[{json.dumps(part)}]"  # a name that would not read back as one key
        else:
            text += f".{part}" if text else part
    return text


_JSON_TYPES = {
    "number": "a number",
    "integer": "an integer",
    "string": "a string",
    "array": "a list",
    "object": "an object",
    "boolean": "true or false",
    "null": "null",
}


def _describe(value) -> str:
    if isinstance(value, UnreadableNumber):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bound_reason(error: ValidationError) -> str:
    words = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "more than",
        "exclusiveMaximum": "less than",
    }[error.validator]
    reason = f"must be {words} {error.validator_value:g}, not {_describe(error.instance)}"
    description = error.schema.get("description")
    return f"{reason} ({description})" if description else reason


def _schema_error(error: ValidationError) -> InputError:
    """One schema error as an ``InputError`` naming the key path and saying what is wanted."""
    path = list(error.absolute_path)
    kind = error.validator
    instance = error.instance
    if kind == "required":
        missing = next(name for name in error.validator_value if name not in instance)
        hint = {
            "protocol": " (a case with only sources uses one 'off' step to set its length)",
            "temperature_c": " (a fixed face needs its temperature)",
            "mode": " (a thaw step is 'passive' or 'active')",
        }.get(missing, "")
        return InputError(key_path([*path, missing]), "missing" + hint)
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = set(error.schema.get("properties", {}))
        extra = sorted(str(name) for name in instance if name not in known)
        reason = "unknown key"
        if "then" in error.relative_schema_path:  # a key that belongs to another kind of entry
            kind_name = instance.get("type", instance.get("action"))
            reason = f"not a key of a {kind_name!r} entry" if kind_name else reason
        return InputError(key_path([*path, extra[0] if extra else "?"]), reason)
    if "propertyNames" in error.relative_schema_path:
        description = error.schema.get("description", "")
        return InputError(key_path([*path, str(instance)]), f"not an allowed name. {description}".strip())
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = " or ".join(_JSON_TYPES.get(name, name) for name in wanted)
        if "number" in wanted or "integer" in wanted:
            names = names.replace("a number", "a finite number")
        return InputError(key_path(path), f"must be {names}, not {_describe(instance)}")
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return InputError(key_path(path), _bound_reason(error))
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return InputError(
            key_path(path), f"must be {' or '.join(repr(v) for v in allowed)}, not {_describe(instance)}"
        )
    if kind in ("minItems", "maxItems"):
        count = len(instance)
        if error.schema.get("minItems") == error.schema.get("maxItems"):
            return InputError(key_path(path), f"must hold {error.validator_value} values, not {count}")
        words = "at least" if kind == "minItems" else "at most"
        reason = f"must hold {words} {error.validator_value} entries, not {count}"
        description = error.schema.get("description")
        return InputError(key_path(path), f"{reason} ({description})" if description else reason)
    if kind in ("minProperties", "maxProperties"):
        words = "at least" if kind == "minProperties" else "at most"
        return InputError(key_path(path), f"must hold {words} {error.validator_value} entries")
    if kind in ("minLength", "maxLength", "pattern"):
        description = error.schema.get("description", "")
        return InputError(
            key_path(path), f"{_describe(instance)} is not allowed here: {description}".rstrip(": ")
        )
    description = error.schema.get("description")
    return InputError(key_path(path), f"must be {description}" if description else error.message)


def _plain(value):
    """JSON-like data from Python callers as JSON would give it: lists, floats and ints."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def validate_schema(data) -> None:
    """Check a case (the parsed JSON) against the schema; raise ``InputError`` naming the key path."""
    if not isinstance(data, dict):
        raise InputError("case", f"must be a JSON object, not {_describe(data)}")
    from jsonschema.exceptions import best_match  # see _validator

    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    # Report the error of the first section in the format's order (grid before protocol, as a
    # reader goes through the file), and within it the most specific one (jsonschema's choice).
    order = {name: rank for rank, name in enumerate(case_schema()["properties"])}

    def section_rank(error) -> int:
        path = list(error.absolute_path)
        if path:
            return order.get(path[0], len(order))
        if error.validator == "required":
            return min(order.get(name, len(order)) for name in error.validator_value if name not in data)
        return len(order)

    first = min(section_rank(error) for error in errors)
    raise _schema_error(best_match(error for error in errors if section_rank(error) == first))


# --- rules across keys ------------------------------------------------------------------------


def _vector(value) -> tuple[float, float, float]:
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_boundaries(data, initial_c: float) -> dict[str, BoundaryCondition]:
    resolved = {face: BoundaryCondition("fixed", initial_c) for face in FACES}
    if data is None:
        return resolved
    parsed = {
        face: BoundaryCondition("fixed", float(entry["temperature_c"]))
        if entry["type"] == "fixed"
        else BoundaryCondition("adiabatic")
        for face, entry in data.items()
    }
    for face in FACES:
        if face in parsed:
            resolved[face] = parsed[face]
        elif "default" in parsed:
            resolved[face] = parsed["default"]
    return resolved


def _parse_materials(data, library: dict) -> tuple[dict, dict]:
    materials = dict(library)
    if data is None:
        return materials, {}
    for name, entry in data.items():
        materials[name] = material_from_dict(entry, f"materials.{name}", base=library.get(name))
    return materials, data


def contained_path(source: str, base_dir: Path, key: str) -> Path:
    """``source`` as a file inside ``base_dir``: relative, no ``..``, no link leading out of it."""
    for flavour in (PurePosixPath, PureWindowsPath):
        pure = flavour(source)
        if pure.is_absolute() or pure.anchor or pure.drive:
            raise InputError(key, f"{source!r} is an absolute path; give a path relative to the case file")
        if ".." in pure.parts:
            raise InputError(key, f"{source!r} leaves the case file's folder ('..'); keep the file beside it")
    folder = base_dir.resolve()
    path = folder / source
    if not path.is_file():
        raise InputError(key, f"file not found: {path}")
    if not path.resolve().is_relative_to(folder):
        raise InputError(key, f"{source!r} is a link to a file outside the case file's folder")
    return path


def _parse_tissue(data: dict, materials: dict, grid: Grid, base_dir: Path | None, arrays: dict | None):
    has_tissue, has_map = "tissue" in data, "tissue_map" in data
    if has_tissue == has_map:
        raise InputError(
            "tissue", "give exactly one of 'tissue' (one material) or 'tissue_map' (a label volume)"
        )
    known = ", ".join(sorted(materials))
    if has_tissue:
        tissue = data["tissue"]
        if tissue not in materials:
            raise InputError("tissue", f"unknown material {tissue!r}; known: {known}")
        return tissue, None, {}, None
    entry = data["tissue_map"]
    label_materials: dict[int, str] = {}
    for label_text, material in entry["labels"].items():
        key = f"tissue_map.labels.{label_text}"
        label = int(label_text)
        if label > LABEL_MAX:
            raise InputError(key, f"label values must lie in 0..{LABEL_MAX}")
        if material not in materials:
            raise InputError(key, f"unknown material {material!r}; known: {known}")
        label_materials[label] = material
    source = entry["labelmap"]
    if arrays is not None and source in arrays:
        labels = np.asarray(arrays[source])
        if labels.shape != tuple(grid.size):
            raise InputError(
                "tissue_map.labelmap", f"array shape {labels.shape} differs from grid size {grid.size}"
            )
    else:
        path = contained_path(source, base_dir or Path.cwd(), "tissue_map.labelmap")
        try:
            labels, label_grid = read_nrrd(path)
        except InputError as error:
            raise InputError("tissue_map.labelmap", str(error)) from None
        if tuple(label_grid.size) != tuple(grid.size):
            raise InputError(
                "tissue_map.labelmap", f"volume size {label_grid.size} differs from grid size {grid.size}"
            )
        if not (
            np.allclose(label_grid.origin_mm, grid.origin_mm, atol=1e-3)
            and np.allclose(label_grid.spacing_mm, grid.spacing_mm, atol=1e-4)
        ):
            raise InputError(
                "tissue_map.labelmap", "volume geometry (origin/spacing) differs from the case grid"
            )
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.all(np.equal(np.mod(labels, 1), 0)):
            raise InputError("tissue_map.labelmap", "label volume must hold integers")
    if labels.size and (labels.min() < 0 or labels.max() > LABEL_MAX):
        raise InputError("tissue_map.labelmap", f"label values must lie in 0..{LABEL_MAX}")
    labels = labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8)
    present = np.unique(labels)
    missing = [int(v) for v in present if int(v) not in label_materials]
    if missing:
        raise InputError(
            "tissue_map.labels", f"label {missing[0]} occurs in the label map but has no material"
        )
    return None, labels, label_materials, source


def _parse_probes(data, grid: Grid, catalog: dict) -> list[ProbeSpec]:
    probes: list[ProbeSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(data or []):
        key = f"probes[{index}]"
        name = entry["name"]
        if name in names:
            raise InputError(f"{key}.name", f"duplicate probe name {name!r}")
        names.add(name)
        model_name = entry["model"]
        if model_name not in catalog:
            raise InputError(
                f"{key}.model", f"unknown probe model {model_name!r}; catalog: {', '.join(sorted(catalog))}"
            )
        model = catalog[model_name]
        tip = _vector(entry["tip_mm"])
        shaft = _vector(entry["entry_mm"])
        if np.linalg.norm(np.subtract(shaft, tip)) < 1e-6:
            raise InputError(f"{key}.entry_mm", "must differ from tip_mm (it gives the probe direction)")
        overrides = {
            name: float(entry[name])
            for name in ("diameter_mm", "active_length_mm", "tip_length_mm")
            if name in entry
        }
        probe = ProbeSpec(
            name=name,
            model=model_name,
            tip_mm=tip,
            entry_mm=shaft,
            diameter_mm=overrides.get("diameter_mm", model.diameter_mm),
            active_length_mm=overrides.get("active_length_mm", model.active_length_mm),
            tip_length_mm=overrides.get("tip_length_mm", model.tip_length_mm),
            overrides=overrides,
        )
        for point_name, point in zip(("tip_mm", "active segment"), probe.active_segment_mm(), strict=True):
            if not grid.contains_ras(point):
                raise InputError(f"{key}.tip_mm", f"the probe's {point_name} end lies outside the grid")
        probes.append(probe)
    return probes


def parse_sources(data, grid: Grid) -> list:
    """A case's ``sources`` (entries the schema checked) as the plan's source objects."""
    return _parse_sources(data, grid)


def _parse_sources(data, grid: Grid) -> list:
    sources: list = []
    for index, entry in enumerate(data or []):
        key = f"sources[{index}]"
        if entry["type"] == "sphere":
            center = _vector(entry["center_mm"])
            if not grid.contains_ras(center):
                raise InputError(f"{key}.center_mm", "lies outside the grid")
            sources.append(SphereSource(center, float(entry["radius_mm"]), float(entry["temperature_c"])))
        elif entry["type"] == "line_sink":
            start = _vector(entry["start_mm"])
            end = _vector(entry["end_mm"])
            if np.linalg.norm(np.subtract(end, start)) < 1e-6:
                raise InputError(f"{key}.end_mm", "must differ from start_mm")
            for name, point in (("start_mm", start), ("end_mm", end)):
                if not grid.contains_ras(point):
                    raise InputError(f"{key}.{name}", "lies outside the grid")
            sources.append(LineSinkSource(start, end, float(entry["power_w_per_m"])))
        elif entry["type"] == "warm_line":
            sources.append(_parse_warm_line(entry, key, grid))
        else:
            sources.append(_parse_warm_region(entry, key))
    return sources


def _parse_warm_line(entry: dict, key: str, grid: Grid) -> WarmLineSource:
    """Thermal protection: a catheter (urethral warmer) held at a temperature (the schema checked
    the keys and ranges; here the rules across fields)."""
    start, end = _vector(entry["start_mm"]), _vector(entry["end_mm"])
    if np.linalg.norm(np.subtract(end, start)) < 1e-6:
        raise InputError(f"{key}.end_mm", "must differ from start_mm")
    for name, point in (("start_mm", start), ("end_mm", end)):
        if not grid.contains_ras(point):
            raise InputError(f"{key}.{name}", "lies outside the grid")
    _check_held(entry["temperature_c"], f"{key}.temperature_c")
    low, high = PROTECTION_DIAMETER_RANGE_MM
    if not low <= entry["diameter_mm"] <= high:
        raise InputError(
            f"{key}.diameter_mm",
            f"{entry['diameter_mm']:g} mm is outside {low:g}–{high:g} mm (warmers: 6–25 mm)",
        )
    return WarmLineSource(
        start, end, float(entry["diameter_mm"]), float(entry["temperature_c"]), name=entry.get("name")
    )


def _parse_warm_region(entry: dict, key: str) -> WarmRegionSource:
    """Thermal protection: a labelled region (warm-saline pocket, skin pad) held at a temperature or
    heated: exactly one of the two."""
    if ("temperature_c" in entry) == ("power_w_per_ml" in entry):
        raise InputError(
            f"{key}.temperature_c", "give either temperature_c (held) or power_w_per_ml (heated)"
        )
    named = {"name": entry.get("name"), "purpose": entry.get("purpose")}
    if "temperature_c" in entry:
        _check_held(entry["temperature_c"], f"{key}.temperature_c")
        return WarmRegionSource(entry["label"], temperature_c=float(entry["temperature_c"]), **named)
    if not 0.0 < entry["power_w_per_ml"] <= PROTECTION_POWER_MAX_W_PER_ML:
        raise InputError(
            f"{key}.power_w_per_ml",
            f"{entry['power_w_per_ml']:g} W/ml is outside 0–{PROTECTION_POWER_MAX_W_PER_ML:g} W/ml (above 0; "
            "warm-saline infusion brings a few W/ml)",
        )
    return WarmRegionSource(entry["label"], power_w_per_ml=float(entry["power_w_per_ml"]), **named)


def _check_held(value: float, key: str) -> None:
    """A protection measure's held temperature, within the range that warms without burning."""
    low, high = PROTECTION_HELD_RANGE_C
    if not low <= value <= high:
        raise InputError(
            key,
            f"{value:g} °C is outside {low:g}–{high:g} °C: below {low:g} °C a warming measure cools the "
            f"structure it should spare, from {high:g} °C it burns tissue",
        )


def _parse_protocol(data, probe_names: list[str]) -> list[ProtocolStep]:
    steps = []
    start = 0.0
    for index, entry in enumerate(data):
        key = f"protocol[{index}]"
        action = entry["action"]
        duration = float(entry["duration_s"])
        probes_value = entry.get("probes", "all")
        if probes_value == "all":
            probes: str | tuple[str, ...] = "all"
        else:
            for position, name in enumerate(probes_value):
                if name not in probe_names:
                    raise InputError(f"{key}.probes[{position}]", f"no probe named {name!r}")
            probes = tuple(probes_value)
        flow = float(entry.get("flow_percent", 100.0)) if action == "freeze" else 100.0
        mode = entry["mode"] if action == "thaw" else None
        steps.append(ProtocolStep(action, duration, probes, flow, mode, start))
        start += duration
    if start > MAX_RUN_S:
        raise InputError(
            "protocol", f"the steps last {start:g} s in all; a run lasts at most {MAX_RUN_S:g} s (one day)"
        )
    return steps


def _parse_sensors(data, grid: Grid) -> list[Sensor]:
    sensors = []
    names: set[str] = set()
    for index, entry in enumerate(data or []):
        key = f"sensors[{index}]"
        name = entry["name"]
        if name in names:
            raise InputError(f"{key}.name", f"duplicate sensor name {name!r}")
        names.add(name)
        position = _vector(entry["position_mm"])
        if not grid.contains_ras(position):
            raise InputError(f"{key}.position_mm", "lies outside the grid")
        sensors.append(Sensor(name, position))
    return sensors


def _parse_outputs(data, duration_s: float) -> Outputs:
    if data is None:
        return Outputs()
    isotherms = data.get("isotherms_c", list(DEFAULT_ISOTHERMS_C))
    snapshots = data.get("snapshot_times_s", [])
    for index, value in enumerate(snapshots):
        if not 0.0 <= value <= duration_s + 1e-9:
            raise InputError(
                f"outputs.snapshot_times_s[{index}]",
                f"time {value:g} s lies outside the run (0..{duration_s:g} s)",
            )
    return Outputs(
        tuple(float(v) for v in dict.fromkeys(float(v) for v in isotherms)),
        tuple(sorted({float(v) for v in snapshots})),
    )


def _parse_structures(
    data, label_materials: dict[int, str] | None, labels: np.ndarray | None
) -> tuple[Structure, ...]:
    """``structures`` (the schema checked each entry's keys and types): rules across fields. The
    target and each critical structure must hold voxels of the label map: the metrics measure
    them, and an empty one would fail only after the simulation."""
    if not data:
        return ()
    if label_materials is None or labels is None:
        raise InputError("structures", "needs a tissue_map (structures name its labels)")
    counts = np.bincount(labels.reshape(-1))
    result = []
    for index, entry in enumerate(data):
        if entry["label"] not in label_materials:
            message = f"{entry['label']} is not a label of tissue_map.labels"
            raise InputError(f"structures[{index}].label", message)
        empty = entry["label"] >= counts.size or counts[entry["label"]] == 0
        if entry["role"] in ("target", "critical") and empty:
            name, role, label = entry["name"], entry["role"], entry["label"]
            message = f"{name!r} ({role}): label {label} has no voxel in the label map"
            raise InputError(f"structures[{index}].label", message)
        result.append(Structure(entry["label"], entry["name"], entry["role"], entry.get("type")))
    if len({s.label for s in result}) != len(result):
        raise InputError("structures", "a label is named twice")
    return tuple(result)


# --- public API -------------------------------------------------------------------------------


def parse_case(data: dict, base_dir: Path | None = None, arrays: dict[str, np.ndarray] | None = None) -> Case:
    """Validate a case (the parsed JSON) and build a :class:`Case`; raises ``InputError``.

    ``base_dir`` is the case file's folder (label volumes are read inside it only); ``arrays``
    holds label volumes already in memory, by the name the case gives them.
    """
    validate_schema(data)
    try:
        data = _plain(data)
    except RecursionError:
        raise InputError("case", "nested too deeply to be a case") from None
    grid = Grid.from_dict(data["grid"])
    initial = float(data.get("initial_temperature_c", 37.0))
    boundaries = _parse_boundaries(data.get("boundaries"), initial)
    materials, overrides = _parse_materials(data.get("materials"), load_material_library())
    tissue, labels, label_materials, labelmap = _parse_tissue(data, materials, grid, base_dir, arrays)
    probes = _parse_probes(data.get("probes"), grid, load_probe_catalog())
    sources = _parse_sources(data.get("sources"), grid)
    protocol = _parse_protocol(data["protocol"], [p.name for p in probes])
    sensors = _parse_sensors(data.get("sensors"), grid)
    outputs = _parse_outputs(data.get("outputs"), protocol[-1].end_s)
    structures = _parse_structures(
        data.get("structures"), label_materials if labels is not None else None, labels
    )
    region_labels = label_materials if labels is not None else {}
    for index, source in enumerate(sources):
        if isinstance(source, WarmRegionSource) and source.label not in region_labels:
            raise InputError(f"sources[{index}].label", "must be a label of tissue_map.labels")
    return Case(
        grid=grid,
        initial_temperature_c=initial,
        boundaries=boundaries,
        materials=materials,
        tissue=tissue,
        tissue_labels=labels,
        label_materials=label_materials,
        probes=probes,
        sources=sources,
        protocol=protocol,
        sensors=sensors,
        outputs=outputs,
        material_overrides=overrides,
        boundaries_raw=data.get("boundaries"),
        labelmap_filename=labelmap,
        name=data.get("name"),
        structures=structures,
    )


def load_case(path: str | Path) -> Case:
    """Read, validate and build a case file; label volumes are read from its folder only."""
    path = Path(path)
    return parse_case(read_case_json(path), base_dir=path.parent)


def save_case(case: Case, path: str | Path, labelmap_filename: str = "labels.nrrd") -> Path:
    """Write the case file and, for a label-map case, its label volume beside it."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if case.tissue_labels is not None:
        write_nrrd(path.parent / labelmap_filename, case.tissue_labels, case.grid)
    data = case.to_dict(labelmap_filename=labelmap_filename)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
