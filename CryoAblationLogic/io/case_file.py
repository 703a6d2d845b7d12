"""Simulation case files (``*.cryo.json``): parsing, validation and writing.

:func:`parse_case` checks everything that ``case-format.md`` describes and raises
:class:`~.errors.InputError` naming the offending key before any computing starts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import (
    ACTIONS,
    DEFAULT_ISOTHERMS_C,
    FACES,
    FORMAT,
    THAW_MODES,
    BoundaryCondition,
    Case,
    LineSinkSource,
    Outputs,
    ProbeSpec,
    ProtocolStep,
    Sensor,
    SphereSource,
    WarmLineSource,
    WarmRegionSource,
)
from CryoAblationLogic.io.volumes import read_nrrd, write_nrrd
from CryoAblationLogic.physics.materials import load_material_library, material_from_dict
from CryoAblationLogic.physics.probes import load_probe_catalog

TOP_LEVEL_KEYS = {
    "format",
    "grid",
    "initial_temperature_c",
    "boundaries",
    "materials",
    "tissue",
    "tissue_map",
    "probes",
    "sources",
    "protocol",
    "sensors",
    "outputs",
    "name",
    "description",
}


# --- small validators -------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value, key: str, minimum: float | None = None, strict: bool = False) -> float:
    if not _is_number(value):
        raise InputError(key, "must be a finite number")
    value = float(value)
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise InputError(key, f"must be {'greater than' if strict else 'at least'} {minimum:g}")
    return value


def _vector(value, key: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_number(v) for v in value):
        raise InputError(key, "must be three finite numbers (mm)")
    return (float(value[0]), float(value[1]), float(value[2]))


def _object(value, key: str, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise InputError(key, "must be an object")
    for name in value:
        if name not in allowed:
            raise InputError(f"{key}.{name}", "unknown key")
    return value


def _name(value, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(key, "must be a non-empty string")
    return value


# --- sections ---------------------------------------------------------------------------------


def _parse_boundaries(data, initial_c: float) -> dict[str, BoundaryCondition]:
    resolved = {face: BoundaryCondition("fixed", initial_c) for face in FACES}
    if data is None:
        return resolved
    _object(data, "boundaries", {"default", *FACES})
    parsed = {}
    for face, entry in data.items():
        key = f"boundaries.{face}"
        _object(entry, key, {"type", "temperature_c"})
        kind = entry.get("type")
        if kind == "fixed":
            if "temperature_c" not in entry:
                raise InputError(f"{key}.temperature_c", "missing (a fixed face needs its temperature)")
            parsed[face] = BoundaryCondition(
                "fixed", _number(entry["temperature_c"], f"{key}.temperature_c", -273.15)
            )
        elif kind == "adiabatic":
            if "temperature_c" in entry:
                raise InputError(f"{key}.temperature_c", "an adiabatic face has no temperature")
            parsed[face] = BoundaryCondition("adiabatic")
        else:
            raise InputError(f"{key}.type", "must be 'fixed' or 'adiabatic'")
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
    _object(data, "materials", set(data) if isinstance(data, dict) else set())
    for name, entry in data.items():
        _name(name, "materials")
        materials[name] = material_from_dict(entry, f"materials.{name}", base=library.get(name))
    return materials, data


def _parse_tissue(data: dict, materials: dict, grid: Grid, base_dir: Path | None, arrays: dict | None):
    has_tissue, has_map = "tissue" in data, "tissue_map" in data
    if has_tissue == has_map:
        raise InputError(
            "tissue", "give exactly one of 'tissue' (one material) or 'tissue_map' (a label volume)"
        )
    if has_tissue:
        tissue = data["tissue"]
        if not isinstance(tissue, str) or tissue not in materials:
            raise InputError("tissue", f"unknown material {tissue!r}; known: {', '.join(sorted(materials))}")
        return tissue, None, {}, None
    entry = _object(data["tissue_map"], "tissue_map", {"labelmap", "labels"})
    for name in ("labelmap", "labels"):
        if name not in entry:
            raise InputError(f"tissue_map.{name}", "missing")
    labels_raw = _object(
        entry["labels"],
        "tissue_map.labels",
        set(entry["labels"]) if isinstance(entry["labels"], dict) else set(),
    )
    label_materials: dict[int, str] = {}
    for label_text, material in labels_raw.items():
        key = f"tissue_map.labels.{label_text}"
        try:
            label = int(label_text)
        except ValueError:
            raise InputError(key, "label values must be integers written as strings") from None
        if not 0 <= label <= 65535:
            raise InputError(key, "label values must lie in 0..65535")
        if not isinstance(material, str) or material not in materials:
            raise InputError(key, f"unknown material {material!r}; known: {', '.join(sorted(materials))}")
        label_materials[label] = material
    if not label_materials:
        raise InputError("tissue_map.labels", "must map at least one label to a material")
    source = entry["labelmap"]
    if not isinstance(source, str) or not source:
        raise InputError(
            "tissue_map.labelmap", "must be a file name (or a key of the arrays passed in memory)"
        )
    if arrays is not None and source in arrays:
        labels = np.asarray(arrays[source])
        if labels.shape != tuple(grid.size):
            raise InputError(
                "tissue_map.labelmap", f"array shape {labels.shape} differs from grid size {grid.size}"
            )
    else:
        path = Path(source)
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        if not path.is_file():
            raise InputError("tissue_map.labelmap", f"file not found: {path}")
        labels, label_grid = read_nrrd(path)
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
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise InputError("tissue_map.labelmap", "label volume must hold integers")
    labels = labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8)
    present = np.unique(labels)
    missing = [int(v) for v in present if int(v) not in label_materials]
    if missing:
        raise InputError(
            "tissue_map.labels", f"label {missing[0]} occurs in the label map but has no material"
        )
    return None, labels, label_materials, source


def _parse_probes(data, grid: Grid, catalog: dict) -> list[ProbeSpec]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise InputError("probes", "must be a list")
    probes: list[ProbeSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(data):
        key = f"probes[{index}]"
        _object(
            entry,
            key,
            {"name", "model", "tip_mm", "entry_mm", "diameter_mm", "active_length_mm", "tip_length_mm"},
        )
        for name in ("name", "model", "tip_mm", "entry_mm"):
            if name not in entry:
                raise InputError(f"{key}.{name}", "missing")
        name = _name(entry["name"], f"{key}.name")
        if name in names:
            raise InputError(f"{key}.name", f"duplicate probe name {name!r}")
        names.add(name)
        model_name = entry["model"]
        if model_name not in catalog:
            raise InputError(
                f"{key}.model", f"unknown probe model {model_name!r}; catalog: {', '.join(sorted(catalog))}"
            )
        model = catalog[model_name]
        tip = _vector(entry["tip_mm"], f"{key}.tip_mm")
        shaft = _vector(entry["entry_mm"], f"{key}.entry_mm")
        if np.linalg.norm(np.subtract(shaft, tip)) < 1e-6:
            raise InputError(f"{key}.entry_mm", "must differ from tip_mm (it gives the probe direction)")
        overrides = {}
        for name_override in ("diameter_mm", "active_length_mm", "tip_length_mm"):
            if name_override in entry:
                overrides[name_override] = _number(
                    entry[name_override],
                    f"{key}.{name_override}",
                    0.0,
                    strict=name_override != "tip_length_mm",
                )
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


def _parse_sources(data, grid: Grid) -> list:
    if data is None:
        return []
    if not isinstance(data, list):
        raise InputError("sources", "must be a list")
    sources = []
    for index, entry in enumerate(data):
        key = f"sources[{index}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise InputError(f"{key}.type", "missing ('sphere' or 'line_sink')")
        if entry["type"] == "sphere":
            _object(entry, key, {"type", "center_mm", "radius_mm", "temperature_c"})
            for name in ("center_mm", "radius_mm", "temperature_c"):
                if name not in entry:
                    raise InputError(f"{key}.{name}", "missing")
            center = _vector(entry["center_mm"], f"{key}.center_mm")
            if not grid.contains_ras(center):
                raise InputError(f"{key}.center_mm", "lies outside the grid")
            sources.append(
                SphereSource(
                    center,
                    _number(entry["radius_mm"], f"{key}.radius_mm", 0.0, strict=True),
                    _number(entry["temperature_c"], f"{key}.temperature_c", -273.15),
                )
            )
        elif entry["type"] == "line_sink":
            _object(entry, key, {"type", "start_mm", "end_mm", "power_w_per_m"})
            for name in ("start_mm", "end_mm", "power_w_per_m"):
                if name not in entry:
                    raise InputError(f"{key}.{name}", "missing")
            start = _vector(entry["start_mm"], f"{key}.start_mm")
            end = _vector(entry["end_mm"], f"{key}.end_mm")
            if np.linalg.norm(np.subtract(end, start)) < 1e-6:
                raise InputError(f"{key}.end_mm", "must differ from start_mm")
            for name, point in (("start_mm", start), ("end_mm", end)):
                if not grid.contains_ras(point):
                    raise InputError(f"{key}.{name}", "lies outside the grid")
            sources.append(
                LineSinkSource(start, end, _number(entry["power_w_per_m"], f"{key}.power_w_per_m"))
            )
        elif entry["type"] == "warm_line":
            sources.append(_parse_warm_line(entry, key, grid))
        elif entry["type"] == "warm_region":
            sources.append(_parse_warm_region(entry, key))
        else:
            raise InputError(f"{key}.type", "must be 'sphere', 'line_sink', 'warm_line' or 'warm_region'")
    return sources


def _parse_warm_line(entry: dict, key: str, grid: Grid) -> WarmLineSource:
    """Thermal protection: a catheter (urethral warmer) held at a temperature (issue 13)."""
    _object(entry, key, {"type", "start_mm", "end_mm", "diameter_mm", "temperature_c"})
    for name in ("start_mm", "end_mm", "diameter_mm", "temperature_c"):
        if name not in entry:
            raise InputError(f"{key}.{name}", "missing")
    start = _vector(entry["start_mm"], f"{key}.start_mm")
    end = _vector(entry["end_mm"], f"{key}.end_mm")
    if np.linalg.norm(np.subtract(end, start)) < 1e-6:
        raise InputError(f"{key}.end_mm", "must differ from start_mm")
    for name, point in (("start_mm", start), ("end_mm", end)):
        if not grid.contains_ras(point):
            raise InputError(f"{key}.{name}", "lies outside the grid")
    return WarmLineSource(
        start,
        end,
        _number(entry["diameter_mm"], f"{key}.diameter_mm", 0.0, strict=True),
        _number(entry["temperature_c"], f"{key}.temperature_c", -273.15),
    )


def _parse_warm_region(entry: dict, key: str) -> WarmRegionSource:
    """Thermal protection: a labelled region held at a temperature or heated (issue 13)."""
    _object(entry, key, {"type", "label", "temperature_c", "power_w_per_ml"})
    label = entry.get("label")
    if not isinstance(label, int) or isinstance(label, bool) or label < 1:
        raise InputError(f"{key}.label", "must be a label value of the tissue map (an integer ≥ 1)")
    if ("temperature_c" in entry) == ("power_w_per_ml" in entry):
        raise InputError(
            f"{key}.temperature_c", "give either temperature_c (held) or power_w_per_ml (heated)"
        )
    if "temperature_c" in entry:
        return WarmRegionSource(
            label, temperature_c=_number(entry["temperature_c"], f"{key}.temperature_c", -273.15)
        )
    return WarmRegionSource(
        label, power_w_per_ml=_number(entry["power_w_per_ml"], f"{key}.power_w_per_ml", 0.0)
    )


def _parse_protocol(data, probe_names: list[str]) -> list[ProtocolStep]:
    if not isinstance(data, list) or not data:
        raise InputError("protocol", "must be a non-empty list of steps")
    steps = []
    start = 0.0
    for index, entry in enumerate(data):
        key = f"protocol[{index}]"
        _object(entry, key, {"action", "duration_s", "probes", "flow_percent", "mode"})
        action = entry.get("action")
        if action not in ACTIONS:
            raise InputError(f"{key}.action", "must be 'freeze', 'thaw' or 'off'")
        if "duration_s" not in entry:
            raise InputError(f"{key}.duration_s", "missing")
        duration = _number(entry["duration_s"], f"{key}.duration_s", 0.0, strict=True)
        probes_value = entry.get("probes", "all")
        if probes_value == "all":
            probes: str | tuple[str, ...] = "all"
        elif isinstance(probes_value, list) and all(isinstance(p, str) for p in probes_value):
            for name in probes_value:
                if name not in probe_names:
                    raise InputError(f"{key}.probes", f"no probe named {name!r}")
            probes = tuple(probes_value)
        else:
            raise InputError(f"{key}.probes", "must be 'all' or a list of probe names")
        flow = 100.0
        mode = None
        if action == "freeze":
            flow = _number(entry.get("flow_percent", 100.0), f"{key}.flow_percent", 0.0, strict=True)
            if flow > 100.0:
                raise InputError(f"{key}.flow_percent", "must not exceed 100")
        elif "flow_percent" in entry:
            raise InputError(f"{key}.flow_percent", "only a freeze step has a flow")
        if action == "thaw":
            mode = entry.get("mode")
            if mode not in THAW_MODES:
                raise InputError(f"{key}.mode", "must be 'passive' or 'active'")
        elif "mode" in entry:
            raise InputError(f"{key}.mode", "only a thaw step has a mode")
        steps.append(ProtocolStep(action, duration, probes, flow, mode, start))
        start += duration
    return steps


def _parse_sensors(data, grid: Grid) -> list[Sensor]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise InputError("sensors", "must be a list")
    sensors = []
    names: set[str] = set()
    for index, entry in enumerate(data):
        key = f"sensors[{index}]"
        _object(entry, key, {"name", "position_mm"})
        for name in ("name", "position_mm"):
            if name not in entry:
                raise InputError(f"{key}.{name}", "missing")
        name = _name(entry["name"], f"{key}.name")
        if name in names:
            raise InputError(f"{key}.name", f"duplicate sensor name {name!r}")
        names.add(name)
        position = _vector(entry["position_mm"], f"{key}.position_mm")
        if not grid.contains_ras(position):
            raise InputError(f"{key}.position_mm", "lies outside the grid")
        sensors.append(Sensor(name, position))
    return sensors


def _parse_outputs(data, duration_s: float) -> Outputs:
    if data is None:
        return Outputs()
    _object(data, "outputs", {"isotherms_c", "snapshot_times_s"})
    isotherms = data.get("isotherms_c", list(DEFAULT_ISOTHERMS_C))
    if not isinstance(isotherms, list) or not all(_is_number(v) for v in isotherms):
        raise InputError("outputs.isotherms_c", "must be a list of temperatures (°C)")
    snapshots = data.get("snapshot_times_s", [])
    if not isinstance(snapshots, list) or not all(_is_number(v) for v in snapshots):
        raise InputError("outputs.snapshot_times_s", "must be a list of times (s)")
    for value in snapshots:
        if not 0.0 <= value <= duration_s + 1e-9:
            raise InputError(
                "outputs.snapshot_times_s", f"time {value:g} s lies outside the run (0..{duration_s:g} s)"
            )
    return Outputs(
        tuple(float(v) for v in dict.fromkeys(isotherms)), tuple(sorted(float(v) for v in set(snapshots)))
    )


# --- public API -------------------------------------------------------------------------------


def parse_case(data: dict, base_dir: Path | None = None, arrays: dict[str, np.ndarray] | None = None) -> Case:
    """Validate a case (the parsed JSON) and build a :class:`Case`; raises ``InputError``."""

    if not isinstance(data, dict):
        raise InputError("case", "must be a JSON object")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise InputError(key, "unknown key")
    if data.get("format") != FORMAT:
        raise InputError("format", f"must be {FORMAT!r}")
    if "grid" not in data:
        raise InputError("grid", "missing")
    grid = Grid.from_dict(data["grid"])
    initial = _number(data.get("initial_temperature_c", 37.0), "initial_temperature_c", -273.15)
    boundaries = _parse_boundaries(data.get("boundaries"), initial)
    materials, overrides = _parse_materials(data.get("materials"), load_material_library())
    tissue, labels, label_materials, labelmap = _parse_tissue(data, materials, grid, base_dir, arrays)
    probes = _parse_probes(data.get("probes"), grid, load_probe_catalog())
    sources = _parse_sources(data.get("sources"), grid)
    if "protocol" not in data:
        raise InputError(
            "protocol", "missing (a case with only sources uses one 'off' step to set its length)"
        )
    protocol = _parse_protocol(data["protocol"], [p.name for p in probes])
    sensors = _parse_sensors(data.get("sensors"), grid)
    outputs = _parse_outputs(data.get("outputs"), protocol[-1].end_s)
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise InputError("name", "must be a string")
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
        name=name,
    )


def load_case(path: str | Path) -> Case:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "case file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(str(path), f"not valid JSON: {error}") from error
    return parse_case(data, base_dir=path.parent)


def save_case(case: Case, path: str | Path, labelmap_filename: str = "labels.nrrd") -> Path:
    """Write the case file and, for a label-map case, its label volume beside it."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if case.tissue_labels is not None:
        write_nrrd(path.parent / labelmap_filename, case.tissue_labels, case.grid)
    data = case.to_dict(labelmap_filename=labelmap_filename)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
