"""The cryoprobe catalog (``Resources/probes.json``): geometry and the probe-surface cooling model.

Cooling model (per unit length of the active segment, q' > 0 = heat taken from the tissue):

- freeze at flow fraction f: the gas at ``coolant_temperature_c`` takes heat through a surface
  coefficient h·f^``flow_exponent`` on the probe surface (2π·r_probe per length), limited to
  ``max_power_w_per_m``·f;
- active thaw: the same with ``thaw.temperature_c``, ``thaw.surface_htc_w_m2k`` and a heating limit
  ``thaw.max_power_w_per_m``;
- passive thaw and off: no heat flows through the probe (zero-flux surface, docs/physics.md 2.3).

The tissue side between the probe surface and the grid is a logarithmic radial resistance (the
well model in :mod:`.probe_coupling`), so the probe surface temperature follows from both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.resources import load_json_resource


@dataclass(frozen=True)
class CoolingModel:
    coolant_temperature_c: float
    surface_htc_w_m2k: float
    max_power_w_per_m: float
    flow_exponent: float


@dataclass(frozen=True)
class ThawModel:
    temperature_c: float
    surface_htc_w_m2k: float
    max_power_w_per_m: float


@dataclass(frozen=True)
class ProbeModel:
    name: str
    description: str
    gauge: str
    diameter_mm: float
    active_length_mm: float
    tip_length_mm: float  # physical tip → start of the active (freezing) segment
    tip_geometry: str
    cooling: CoolingModel
    thaw: ThawModel
    calibrated_on: dict = field(default_factory=dict)
    checked_against: list = field(default_factory=list)
    maker: dict = field(default_factory=dict)  # the commercial kind it stands for, what data was found


def _number(entry: dict, name: str, key: str, positive: bool = True) -> float:
    if name not in entry:
        raise InputError(f"{key}.{name}", "missing")
    value = entry[name]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InputError(f"{key}.{name}", "must be a finite number")
    if positive and value <= 0:
        raise InputError(f"{key}.{name}", "must be positive")
    return float(value)


def probe_model_from_dict(name: str, entry: dict, key: str) -> ProbeModel:
    cooling = entry.get("cooling", {})
    thaw = entry.get("thaw", {})
    return ProbeModel(
        name=name,
        description=str(entry.get("description", "")),
        gauge=str(entry.get("gauge", "")),
        diameter_mm=_number(entry, "diameter_mm", key),
        active_length_mm=_number(entry, "active_length_mm", key),
        tip_length_mm=_number(entry, "tip_length_mm", key, positive=False),
        tip_geometry=str(entry.get("tip_geometry", "")),
        cooling=CoolingModel(
            coolant_temperature_c=_number(cooling, "coolant_temperature_c", f"{key}.cooling", positive=False),
            surface_htc_w_m2k=_number(cooling, "surface_htc_w_m2k", f"{key}.cooling"),
            max_power_w_per_m=_number(cooling, "max_power_w_per_m", f"{key}.cooling"),
            flow_exponent=_number(cooling, "flow_exponent", f"{key}.cooling", positive=False),
        ),
        thaw=ThawModel(
            temperature_c=_number(thaw, "temperature_c", f"{key}.thaw", positive=False),
            surface_htc_w_m2k=_number(thaw, "surface_htc_w_m2k", f"{key}.thaw"),
            max_power_w_per_m=_number(thaw, "max_power_w_per_m", f"{key}.thaw"),
        ),
        calibrated_on=dict(entry.get("calibrated_on", {})),
        checked_against=list(entry.get("checked_against", [])),
        maker=dict(entry.get("maker", {})),
    )


def load_probe_catalog() -> dict[str, ProbeModel]:
    data = load_json_resource("probes.json")
    return {
        name: probe_model_from_dict(name, entry, f"probes.json:{name}")
        for name, entry in data["probes"].items()
    }
