"""Thermal protection in the scene: what an operator does to spare a structure, kept in the plan.

Three measures, each a source of the case format (``docs/case-format.md``, ``sources``):

- a **warm catheter** (a urethral warmer): a markups line (its two control points are the ends of
  the warmed segment) with an outer diameter, held at a temperature → ``warm_line``;
- a **warm-fluid region** (warm-saline hydrodissection): a segment of the plan's segmentation, held
  at a temperature or heated at a power per volume → ``warm_region`` with ``purpose: warm_fluid``;
- **skin warming** (a warm saline-soaked pad, or the skin itself kept warm): a segment held at a
  temperature → ``warm_region`` with ``purpose: skin_warming``.

State lives in the module's parameter node, so saving and reloading the scene restores it (the
SlicerIGT way): the parameter ``ThermalProtections`` holds the list as JSON (kind, name, held
temperature or heating power, catheter diameter, segment ID of a region), and each catheter's line
node is a node reference of the parameter node under the role ``ThermalProtectionLine_<key>``, so
that Slicer keeps the reference right when node IDs change on import.

A region's segment must be part of the tissue map, i.e. have a role and a material (the Inputs
table); one chosen without them becomes an ``organ`` of ``saline`` (warm fluid, a soaked pad), and
the caller is told so. When the case is built, a catheter is clipped to the simulation grid (only
what lies inside can warm the simulated tissue) and a region with no voxel on the grid is left out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import (
    PROTECTION_DIAMETER_RANGE_MM,
    PROTECTION_HELD_RANGE_C,
    PROTECTION_POWER_MAX_W_PER_ML,
    warming_text,
)
from CryoAblationLogic.scene import inputs, probes
from CryoAblationLogic.scene import parameters as P

PARAMETER = "ThermalProtections"
LINE_ROLE_PREFIX = "ThermalProtectionLine_"

WARM_CATHETER = "warm_catheter"
WARM_FLUID = "warm_fluid"
SKIN_WARMING = "skin_warming"
KINDS = (WARM_CATHETER, WARM_FLUID, SKIN_WARMING)
KIND_LABELS = {WARM_CATHETER: "Warm catheter", WARM_FLUID: "Warm-fluid region", SKIN_WARMING: "Skin warming"}

# What the panel accepts: the case format's own ranges (core/plan.py says why), checked here
# against the panel's fields so that a message points at the widget to fix.
HELD_TEMPERATURE_RANGE_C = PROTECTION_HELD_RANGE_C
HEATING_POWER_MAX_W_PER_ML = PROTECTION_POWER_MAX_W_PER_ML
CATHETER_DIAMETER_RANGE_MM = PROTECTION_DIAMETER_RANGE_MM
# Field names as the panel labels them, so that a message points at the widget to fix.
FIELD_LINE = "Catheter line"
FIELD_DIAMETER = "Catheter diameter (mm)"
FIELD_SEGMENT = "Region segment"
FIELD_TEMPERATURE = "Held temperature (°C)"
FIELD_POWER = "Heating power (W/ml)"
FIELD_KIND = "Measure"

FLUID_ROLE, FLUID_MATERIAL = "organ", "saline"  # a region chosen without a role: warm saline


@dataclass(frozen=True)
class Protection:
    """One planned measure, as the parameter node keeps it."""

    key: str
    kind: str
    name: str
    temperature_c: float | None = None  # held at this temperature, or …
    power_w_per_ml: float | None = None  # … heated at this power (warm-fluid regions only)
    diameter_mm: float | None = None  # catheters
    segment_id: str | None = None  # regions: a segment of the plan's segmentation

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @property
    def warming_text(self) -> str:
        return warming_text(self.temperature_c, self.power_w_per_ml)


# -- the parameter node ----------------------------------------------------------------------
def protections(parameters: P.ParameterNode) -> list[Protection]:
    """The plan's measures, in the order they were added."""
    text = parameters.node.GetParameter(PARAMETER)
    if not text:
        return []
    try:
        items = json.loads(text)
        return [Protection(**item) for item in items]
    except (json.JSONDecodeError, TypeError) as error:
        key = f"{parameters.node.GetName()}.{PARAMETER}"
        raise InputError(key, f"not a list of measures: {error}") from error


def _write(parameters: P.ParameterNode, items: Sequence[Protection]) -> None:
    parameters.node.SetParameter(PARAMETER, json.dumps([item.to_dict() for item in items]))


def line_role(protection: Protection) -> str:
    return LINE_ROLE_PREFIX + protection.key


def catheter_line(parameters: P.ParameterNode, protection: Protection):
    """The markups line of a catheter (None once the user has deleted it from the scene)."""
    return parameters.get(line_role(protection))


def _new_key(existing: Sequence[Protection]) -> str:
    used = {item.key for item in existing}
    number = 1
    while f"m{number}" in used:
        number += 1
    return f"m{number}"


def _default_name(kind: str, existing: Sequence[Protection], hint: str = "") -> str:
    if hint:
        return hint
    count = sum(1 for item in existing if item.kind == kind) + 1
    return f"{KIND_LABELS[kind]} {count}"


# -- checks of what the user typed -------------------------------------------------------------
def _check_temperature(value) -> float:
    low, high = HELD_TEMPERATURE_RANGE_C
    if value is None or not np.isfinite(value):
        raise InputError(FIELD_TEMPERATURE, "give the temperature the measure is held at (°C)")
    if not low <= value <= high:
        raise InputError(
            FIELD_TEMPERATURE,
            f"{value:g} °C is outside {low:g}–{high:g} °C: below {low:g} °C a warming measure cools the "
            f"structure it should spare, from {high:g} °C it burns tissue",
        )
    return float(value)


def _check_power(value) -> float:
    if value is None or not np.isfinite(value) or not 0.0 < value <= HEATING_POWER_MAX_W_PER_ML:
        shown = "nothing" if value is None else f"{value:g} W/ml"
        raise InputError(
            FIELD_POWER,
            f"{shown} is outside 0–{HEATING_POWER_MAX_W_PER_ML:g} W/ml (above 0; warm-saline infusion "
            "brings a few W/ml)",
        )
    return float(value)


def _check_diameter(value) -> float:
    low, high = CATHETER_DIAMETER_RANGE_MM
    if value is None or not np.isfinite(value) or not low <= value <= high:
        shown = "nothing" if value is None else f"{value:g} mm"
        raise InputError(
            FIELD_DIAMETER, f"{shown} is outside {low:g}–{high:g} mm (urethral warmers are 6–8 mm)"
        )
    return float(value)


def _line_ends(line_node, field: str = FIELD_LINE) -> tuple[np.ndarray, np.ndarray]:
    if line_node is None:
        raise InputError(field, "choose or place the catheter's line (its two ends)")
    defined = line_node.GetNumberOfDefinedControlPoints()
    if defined < 2:
        raise InputError(
            field,
            f"{line_node.GetName()!r} has {defined} point{'s' if defined != 1 else ''}; a catheter "
            "needs two (the ends of its warmed segment)",
        )
    start, end = np.zeros(3), np.zeros(3)
    line_node.GetNthControlPointPositionWorld(0, start)
    line_node.GetNthControlPointPositionWorld(1, end)
    if np.linalg.norm(end - start) < 1e-3:
        raise InputError(field, f"the two points of {line_node.GetName()!r} coincide")
    return start, end


# -- adding and removing -----------------------------------------------------------------------
def add_warm_catheter(
    parameters: P.ParameterNode, line_node, diameter_mm: float, temperature_c: float, name: str = ""
) -> Protection:
    """A catheter along ``line_node`` (two points) held at ``temperature_c``. Nothing changes when
    an input is refused (the error names the panel's field)."""
    existing = protections(parameters)
    _line_ends(line_node)
    if probes.is_probe(line_node) or line_node.GetID() in {node.GetID() for node in parameters.probes()}:
        raise InputError(FIELD_LINE, f"{line_node.GetName()!r} is a cryoprobe, not a catheter")
    for item in existing:
        line = catheter_line(parameters, item) if item.kind == WARM_CATHETER else None
        if line is not None and line.GetID() == line_node.GetID():
            raise InputError(FIELD_LINE, f"{line_node.GetName()!r} is already the catheter {item.name!r}")
    protection = Protection(
        key=_new_key(existing),
        kind=WARM_CATHETER,
        name=name.strip() or line_node.GetName() or _default_name(WARM_CATHETER, existing),
        temperature_c=_check_temperature(temperature_c),
        diameter_mm=_check_diameter(diameter_mm),
    )
    parameters.node.SetNodeReferenceID(line_role(protection), line_node.GetID())
    _write(parameters, [*existing, protection])
    return protection


def add_warm_region(
    parameters: P.ParameterNode,
    kind: str,
    segment_id: str,
    *,
    temperature_c: float | None = None,
    power_w_per_ml: float | None = None,
    name: str = "",
) -> tuple[Protection, str]:
    """A segment of the plan's segmentation held at ``temperature_c`` or (warm fluid only) heated
    at ``power_w_per_ml``. Returns the measure and a note for the user (empty, or what was set on
    the segment so that it becomes part of the tissue map)."""
    if kind not in (WARM_FLUID, SKIN_WARMING):
        raise InputError(FIELD_KIND, f"a region is {KIND_LABELS[WARM_FLUID]} or {KIND_LABELS[SKIN_WARMING]}")
    existing = protections(parameters)
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    if segmentation is None:
        raise InputError(FIELD_SEGMENT, "the plan has no segmentation (Inputs); a region is a segment of it")
    if not segment_id:
        raise InputError(FIELD_SEGMENT, "choose the segment that is warmed")
    segment = segmentation.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise InputError(FIELD_SEGMENT, f"{segment_id!r} is not a segment of {segmentation.GetName()!r}")
    if (temperature_c is None) == (power_w_per_ml is None):
        raise InputError(FIELD_TEMPERATURE, "give either a held temperature or a heating power")
    if kind == SKIN_WARMING and temperature_c is None:
        raise InputError(FIELD_TEMPERATURE, "skin warming holds the skin or its pad at a temperature")
    for item in existing:
        if item.segment_id == segment_id:
            raise InputError(FIELD_SEGMENT, f"{segment.GetName()!r} is already the region {item.name!r}")
    protection = Protection(
        key=_new_key(existing),
        kind=kind,
        name=name.strip() or segment.GetName() or _default_name(kind, existing),
        temperature_c=None if temperature_c is None else _check_temperature(temperature_c),
        power_w_per_ml=None if power_w_per_ml is None else _check_power(power_w_per_ml),
        segment_id=segment_id,
    )
    note = ""
    tagged = {info.segment_id: info for info in inputs.segment_infos(segmentation)}
    info = tagged.get(segment_id)
    if info is None or not info.material:
        # Without a role and a material the segment is not painted into the tissue map.
        inputs.set_segment_role(segmentation, segment_id, info.role if info else FLUID_ROLE, FLUID_MATERIAL)
        note = f"Segment {segment.GetName()!r} had no role or material: it is now warm {FLUID_MATERIAL}."
    _write(parameters, [*existing, protection])
    return protection, note


def remove_protection(parameters: P.ParameterNode, index: int) -> Protection:
    """Take a measure out of the plan (its line or segment stays in the scene)."""
    existing = protections(parameters)
    if not 0 <= index < len(existing):
        raise InputError("Thermal protection", "select the measure in the table")
    removed = existing.pop(index)
    if removed.kind == WARM_CATHETER:
        parameters.node.RemoveNodeReferenceIDs(line_role(removed))
    _write(parameters, existing)
    return removed


def clear_protections(parameters: P.ParameterNode) -> None:
    for item in protections(parameters):
        if item.kind == WARM_CATHETER:
            parameters.node.RemoveNodeReferenceIDs(line_role(item))
    parameters.node.UnsetParameter(PARAMETER)


def candidate_lines(scene, parameters: P.ParameterNode) -> list:
    """Markups lines that may become a catheter: every line of the scene that is not a probe."""
    probe_ids = {node.GetID() for node in parameters.probes()}
    nodes = scene.GetNodesByClass("vtkMRMLMarkupsLineNode")
    lines = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    return [line for line in lines if line.GetID() not in probe_ids and not probes.is_probe(line)]


def new_catheter_line(scene, name: str = "Warm catheter"):
    """An empty line for the user to place (first click: one end, second click: the other)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(0.95, 0.2, 0.6)  # magenta, as the report outlines protection
    return node


# -- the panel's table -------------------------------------------------------------------------
def protection_rows(parameters: P.ParameterNode) -> list[tuple[str, str, str, str]]:
    """``(measure, name, where, warming)`` of every measure, as the panel's table shows them."""
    rows = []
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    for item in protections(parameters):
        if item.kind == WARM_CATHETER:
            line = catheter_line(parameters, item)
            if line is None:
                where = "its line was deleted"
            elif line.GetNumberOfDefinedControlPoints() < 2:
                where = f"line {line.GetName()!r} (placing…), Ø {item.diameter_mm:g} mm"
            else:
                start, end = _line_ends(line)
                length = np.linalg.norm(end - start)
                where = f"line {line.GetName()!r}, {length:.0f} mm long, Ø {item.diameter_mm:g} mm"
        else:
            segment = None
            if segmentation is not None:
                segment = segmentation.GetSegmentation().GetSegment(item.segment_id)
            where = f"segment {segment.GetName()!r}" if segment is not None else "its segment was deleted"
        rows.append((KIND_LABELS[item.kind], item.name, where, item.warming_text))
    return rows


# -- scene → case ------------------------------------------------------------------------------
def case_sources(
    parameters: P.ParameterNode,
    grid: Grid,
    label_segments: Mapping[int, inputs.SegmentInfo],
    labels: np.ndarray | None,
) -> list[dict]:
    """The measures as case-format ``sources`` on ``grid`` (``label_segments``: the tissue map's
    label of each segment; ``labels``: the map on the grid)."""
    sources = []
    label_of = {info.segment_id: label for label, info in label_segments.items()}
    for item in protections(parameters):
        field = f"{KIND_LABELS[item.kind]} {item.name!r}"
        if item.kind == WARM_CATHETER:
            start, end = _line_ends(catheter_line(parameters, item), f"{field}.line")
            clipped = clip_segment_to_grid(start, end, grid)
            if clipped is None:
                continue  # wholly outside the simulated region: it warms nothing that is simulated
            sources.append(
                {
                    "type": "warm_line",
                    "name": item.name,
                    "start_mm": [round(float(v), 4) for v in clipped[0]],
                    "end_mm": [round(float(v), 4) for v in clipped[1]],
                    "diameter_mm": item.diameter_mm,
                    "temperature_c": item.temperature_c,
                }
            )
            continue
        label = label_of.get(item.segment_id)
        if label is None:
            raise InputError(
                f"{field}.segment",
                "the segment is not in the tissue map: it was deleted, or has no role and material (Inputs)",
            )
        if labels is not None and not np.any(labels == label):
            continue  # outside the simulated region
        entry: dict = {"type": "warm_region", "name": item.name, "purpose": item.kind, "label": label}
        if item.temperature_c is not None:
            entry["temperature_c"] = item.temperature_c
        else:
            entry["power_w_per_ml"] = item.power_w_per_ml
        sources.append(entry)
    return sources


def clip_segment_to_grid(start, end, grid: Grid) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the segment inside the box of the grid's voxel centres (Liang–Barsky), or None."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    low = np.asarray(grid.origin_mm, float)
    high = low + np.asarray(grid.spacing_mm, float) * (np.asarray(grid.size) - 1)
    direction = end - start
    t0, t1 = 0.0, 1.0
    for axis in range(3):
        if abs(direction[axis]) < 1e-12:
            if not low[axis] <= start[axis] <= high[axis]:
                return None
            continue
        a = (low[axis] - start[axis]) / direction[axis]
        b = (high[axis] - start[axis]) / direction[axis]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    if t1 - t0 < 1e-9:
        return None
    return start + t0 * direction, start + t1 * direction


# -- case → scene ------------------------------------------------------------------------------
def segment_ids_by_label(segmentation_node) -> dict[int, str]:
    """``label value → segment ID`` of a segmentation imported from a label map."""
    if segmentation_node is None:
        return {}
    segmentation = segmentation_node.GetSegmentation()
    return {
        segmentation.GetSegment(segment_id).GetLabelValue(): segment_id
        for segment_id in segmentation.GetSegmentIDs()
    }


def restore_from_case(scene, parameters: P.ParameterNode, sources: Sequence[dict]) -> list[dict]:
    """Make the case's ``warm_line`` and ``warm_region`` sources the plan's measures again (lines
    for catheters, segments of the plan's segmentation for regions) and return the other sources,
    which the plan keeps as they are. A file's values are taken as the case format allows them."""
    clear_protections(parameters)
    segment_of = segment_ids_by_label(parameters.get(P.INPUT_SEGMENTATION))
    kept: list[dict] = []
    restored: list[Protection] = []
    for entry in sources:
        kind = entry.get("type")
        if kind == "warm_line":
            key = _new_key(restored)
            name = entry.get("name") or _default_name(WARM_CATHETER, restored)
            line = new_catheter_line(scene, name)
            line.AddControlPointWorld([float(v) for v in entry["start_mm"]])
            line.AddControlPointWorld([float(v) for v in entry["end_mm"]])
            item = Protection(
                key, WARM_CATHETER, name, temperature_c=float(entry["temperature_c"]),
                diameter_mm=float(entry["diameter_mm"]),
            )  # fmt: skip
            parameters.node.SetNodeReferenceID(line_role(item), line.GetID())
            restored.append(item)
        elif kind == "warm_region" and int(entry["label"]) in segment_of:
            purpose = entry.get("purpose") or WARM_FLUID
            name = entry.get("name") or _default_name(purpose, restored)
            restored.append(
                Protection(
                    _new_key(restored), purpose, name,
                    temperature_c=None if "temperature_c" not in entry else float(entry["temperature_c"]),
                    power_w_per_ml=None if "power_w_per_ml" not in entry else float(entry["power_w_per_ml"]),
                    segment_id=segment_of[int(entry["label"])],
                )
            )  # fmt: skip
        else:
            kept.append(entry)  # a region of a label that no segment carries stays a plain source
    _write(parameters, restored)
    return kept
