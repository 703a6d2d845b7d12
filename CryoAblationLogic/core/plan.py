"""The plan as the solver and the scene see it: probes, protocol, sources, sensors and outputs of
one simulation case, as plain dataclasses. Reading and writing case files is
:mod:`CryoAblationLogic.io.case_file`; the format is documented in ``docs/case-format.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import DEFAULT_ISOTHERMS_C  # Outputs' default, defined once there

FORMAT = "cryoablation-case/1"
FACES = ("x-", "x+", "y-", "y+", "z-", "z+")
ACTIONS = ("freeze", "thaw", "off")
THAW_MODES = ("passive", "active")


@dataclass(frozen=True)
class BoundaryCondition:
    type: str  # "fixed" or "adiabatic"
    temperature_c: float | None = None

    def to_dict(self) -> dict:
        if self.type == "fixed":
            return {"type": "fixed", "temperature_c": self.temperature_c}
        return {"type": self.type}


@dataclass
class ProbeSpec:
    name: str
    model: str
    tip_mm: tuple[float, float, float]
    entry_mm: tuple[float, float, float]
    diameter_mm: float
    active_length_mm: float
    tip_length_mm: float
    overrides: dict = field(default_factory=dict)  # catalog values this case replaces

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from the tip towards the entry point (up the shaft)."""
        axis = np.asarray(self.entry_mm, float) - np.asarray(self.tip_mm, float)
        return axis / np.linalg.norm(axis)

    def active_segment_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(distal end, proximal end) of the active (freezing) segment."""
        tip = np.asarray(self.tip_mm, float)
        start = tip + self.direction * self.tip_length_mm
        return start, start + self.direction * self.active_length_mm

    def to_dict(self) -> dict:
        data = {
            "name": self.name,
            "model": self.model,
            "tip_mm": list(self.tip_mm),
            "entry_mm": list(self.entry_mm),
        }
        data.update(self.overrides)
        return data


STRUCTURE_ROLES = ("target", "critical", "vessel", "organ")


@dataclass(frozen=True)
class Structure:
    """What a label of the tissue map is for the plan's metrics: the target, a critical structure
    (``kind``: bowel, nerve, cord, ureter, skin, … for its safety margin), a vessel or an organ."""

    label: int
    name: str
    role: str
    kind: str | None = None

    def to_dict(self) -> dict:
        data: dict = {"label": self.label, "name": self.name, "role": self.role}
        if self.kind:
            data["type"] = self.kind
        return data


@dataclass(frozen=True)
class SphereSource:
    center_mm: tuple[float, float, float]
    radius_mm: float
    temperature_c: float

    def to_dict(self) -> dict:
        return {
            "type": "sphere",
            "center_mm": list(self.center_mm),
            "radius_mm": self.radius_mm,
            "temperature_c": self.temperature_c,
        }


@dataclass(frozen=True)
class LineSinkSource:
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    power_w_per_m: float

    def to_dict(self) -> dict:
        return {
            "type": "line_sink",
            "start_mm": list(self.start_mm),
            "end_mm": list(self.end_mm),
            "power_w_per_m": self.power_w_per_m,
        }


# The physical range of a thermal-protection measure (case files and the panel alike): below
# 30 °C a "warm" measure cools the structure it should spare; from 50 °C it coagulates tissue
# within minutes. Warm-saline infusion deposits a few W/ml; 10 W/ml boils a pocket in minutes.
# Urethral warmers are 6–8 mm (18–24 Fr); rectal warmers reach about 25 mm.
PROTECTION_HELD_RANGE_C = (30.0, 50.0)
PROTECTION_POWER_MAX_W_PER_ML = 10.0
PROTECTION_DIAMETER_RANGE_MM = (1.0, 30.0)


@dataclass(frozen=True)
class WarmLineSource:
    """Thermal protection: a catheter (e.g. a urethral warmer) whose wall is held at a temperature."""

    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    diameter_mm: float
    temperature_c: float
    name: str | None = None  # what the plan calls it ("Urethral warmer"): the panel and the record

    def to_dict(self) -> dict:
        data: dict = {
            "type": "warm_line",
            "start_mm": list(self.start_mm),
            "end_mm": list(self.end_mm),
            "diameter_mm": self.diameter_mm,
            "temperature_c": self.temperature_c,
        }
        if self.name:
            data["name"] = self.name
        return data


# What a warm region is for (the case format's optional ``purpose``): the physics is the same.
WARM_REGION_PURPOSES = ("warm_fluid", "skin_warming")


@dataclass(frozen=True)
class WarmRegionSource:
    """Thermal protection: the voxels of a tissue label (a warm-saline pocket, a skin layer under a
    warming pad) held at ``temperature_c``, or heated by ``power_w_per_ml`` (fluid with its own
    material and a heat source); exactly one of the two is set."""

    label: int
    temperature_c: float | None = None
    power_w_per_ml: float | None = None
    name: str | None = None  # what the plan calls it ("Saline pocket"): the panel and the record
    purpose: str | None = None  # WARM_REGION_PURPOSES: a warm-fluid pocket or skin warming

    def to_dict(self) -> dict:
        data: dict = {"type": "warm_region", "label": self.label}
        if self.name:
            data["name"] = self.name
        if self.purpose:
            data["purpose"] = self.purpose
        if self.temperature_c is not None:
            data["temperature_c"] = self.temperature_c
        if self.power_w_per_ml is not None:
            data["power_w_per_ml"] = self.power_w_per_ml
        return data


def warming_text(temperature_c: float | None, power_w_per_ml: float | None) -> str:
    """How a protection measure warms, in words (the panel's table, the record, the warnings)."""
    if temperature_c is not None:
        return f"held at {temperature_c:g} °C"
    return f"heated at {power_w_per_ml:g} W/ml"


def protection_names(sources, region_names: Mapping[int, str] | None = None) -> list[str | None]:
    """The name of each of ``sources`` that is a protection measure (None for the others): its own
    name, else a warm region's structure (``region_names``: label → name), else "Warm catheter n" /
    "Warm region n", numbered by kind, so that the record's table and the warnings call an unnamed
    measure alike."""
    names: list[str | None] = []
    counts = {WarmLineSource: 0, WarmRegionSource: 0}
    for source in sources:
        kind = type(source)
        if kind not in counts:
            names.append(None)
            continue
        counts[kind] += 1
        if kind is WarmLineSource:
            names.append(source.name or f"Warm catheter {counts[kind]}")
        else:
            region = (region_names or {}).get(source.label)
            names.append(source.name or region or f"Warm region {counts[kind]}")
    return names


@dataclass(frozen=True)
class ProtocolStep:
    action: str
    duration_s: float
    probes: str | tuple[str, ...]  # "all" or names
    flow_percent: float = 100.0
    mode: str | None = None  # thaw: passive / active
    start_s: float = 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def applies_to(self, probe_name: str) -> bool:
        return self.probes == "all" or probe_name in self.probes

    def to_dict(self) -> dict:
        data: dict = {
            "action": self.action,
            "duration_s": self.duration_s,
            "probes": self.probes if self.probes == "all" else list(self.probes),
        }
        if self.action == "freeze":
            data["flow_percent"] = self.flow_percent
        if self.action == "thaw":
            data["mode"] = self.mode
        return data


@dataclass(frozen=True)
class Sensor:
    name: str
    position_mm: tuple[float, float, float]

    def to_dict(self) -> dict:
        return {"name": self.name, "position_mm": list(self.position_mm)}


@dataclass(frozen=True)
class Outputs:
    isotherms_c: tuple[float, ...] = DEFAULT_ISOTHERMS_C
    snapshot_times_s: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {"isotherms_c": list(self.isotherms_c), "snapshot_times_s": list(self.snapshot_times_s)}


@dataclass
class Case:
    grid: Grid
    initial_temperature_c: float
    boundaries: dict[str, BoundaryCondition]  # all six faces, resolved
    materials: dict  # name → physics.materials.Material (library merged with overrides)
    tissue: str | None
    tissue_labels: np.ndarray | None
    label_materials: dict[int, str]
    probes: list[ProbeSpec]
    sources: list
    protocol: list[ProtocolStep]
    sensors: list[Sensor]
    outputs: Outputs
    material_overrides: dict = field(default_factory=dict)  # as written in the case file
    boundaries_raw: dict | None = None
    labelmap_filename: str | None = None
    name: str | None = None
    structures: tuple[Structure, ...] = ()  # roles of tissue-map labels (optional key "structures")

    @property
    def duration_s(self) -> float:
        return self.protocol[-1].end_s if self.protocol else 0.0

    def to_dict(self, labelmap_filename: str | None = None) -> dict:
        data: dict = {"format": FORMAT}
        if self.name:
            data["name"] = self.name
        data["grid"] = self.grid.to_dict()
        data["initial_temperature_c"] = self.initial_temperature_c
        if self.boundaries_raw is not None:
            data["boundaries"] = self.boundaries_raw
        if self.material_overrides:
            data["materials"] = self.material_overrides
        if self.tissue is not None:
            data["tissue"] = self.tissue
        else:
            data["tissue_map"] = {
                "labelmap": labelmap_filename or self.labelmap_filename or "labels.nrrd",
                "labels": {str(label): name for label, name in sorted(self.label_materials.items())},
            }
        data["probes"] = [probe.to_dict() for probe in self.probes]
        data["sources"] = [source.to_dict() for source in self.sources]
        data["protocol"] = [step.to_dict() for step in self.protocol]
        data["sensors"] = [sensor.to_dict() for sensor in self.sensors]
        data["outputs"] = self.outputs.to_dict()
        if self.structures:
            data["structures"] = [structure.to_dict() for structure in self.structures]
        return data
