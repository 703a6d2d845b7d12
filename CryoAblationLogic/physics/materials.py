"""Tissue materials: the built-in library (``Resources/materials.json``) and case overrides.

A :class:`Material` holds the case-format keys in SI units. The enthalpy model built from it:
below the solidus the tissue is frozen (``c_frozen``, ``k_frozen``), above the liquidus unfrozen
(``c_unfrozen``, ``k_unfrozen``); in between the latent heat is released linearly in temperature and
conductivity, perfusion and metabolic heat scale with the liquid fraction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.resources import load_json_resource

REQUIRED_KEYS = (
    "k_unfrozen",
    "k_frozen",
    "c_unfrozen",
    "c_frozen",
    "latent_heat",
    "t_liquidus_c",
    "t_solidus_c",
    "perfusion",
    "metabolic",
    "blood_temperature_c",
)
OPTIONAL_KEYS = ("k_frozen_exponent", "source")


@dataclass(frozen=True)
class Material:
    k_unfrozen: float  # W/m/K
    k_frozen: float  # W/m/K at the solidus
    c_unfrozen: float  # J/m³/K (volumetric)
    c_frozen: float  # J/m³/K
    latent_heat: float  # J/m³
    t_liquidus_c: float
    t_solidus_c: float
    perfusion: float  # w_b·ρ_b·c_b, W/m³/K
    metabolic: float  # W/m³
    blood_temperature_c: float
    k_frozen_exponent: float = 0.0  # k_f(T) = k_frozen·(T_s,K / T_K)^n below the solidus
    source: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        if not data["source"]:
            del data["source"]
        return data

    def enthalpy_at_liquidus(self) -> float:
        """Enthalpy (J/m³) at the liquidus, relative to 0 at the solidus."""
        mushy_c = 0.5 * (self.c_frozen + self.c_unfrozen)
        return mushy_c * (self.t_liquidus_c - self.t_solidus_c) + self.latent_heat

    def enthalpy(self, temperature_c: float) -> float:
        """Volumetric enthalpy (J/m³) relative to the fully frozen state at the solidus."""
        t = temperature_c
        if t <= self.t_solidus_c:
            return self.c_frozen * (t - self.t_solidus_c)
        h_l = self.enthalpy_at_liquidus()
        if t >= self.t_liquidus_c:
            return h_l + self.c_unfrozen * (t - self.t_liquidus_c)
        return h_l * (t - self.t_solidus_c) / (self.t_liquidus_c - self.t_solidus_c)


def material_from_dict(data: dict, key: str, base: Material | None = None) -> Material:
    """Build a material from case-format keys; keys missing from ``data`` come from ``base``."""
    if not isinstance(data, dict):
        raise InputError(key, "must be an object of material properties")
    known = set(REQUIRED_KEYS) | set(OPTIONAL_KEYS)
    for name in data:
        if name not in known:
            raise InputError(f"{key}.{name}", "unknown material property")
    values: dict = base.to_dict() if base is not None else {}
    values.setdefault("source", "")
    values.setdefault("k_frozen_exponent", 0.0)
    for name in (*REQUIRED_KEYS, "k_frozen_exponent"):
        if name in data:
            value = data[name]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise InputError(f"{key}.{name}", "must be a finite number")
            values[name] = float(value)
        elif name not in values:
            raise InputError(f"{key}.{name}", "missing (not a library material, so every property is needed)")
    if "source" in data:
        if not isinstance(data["source"], str):
            raise InputError(f"{key}.source", "must be a string")
        values["source"] = data["source"]
    for name in ("k_unfrozen", "k_frozen", "c_unfrozen", "c_frozen"):
        if values[name] <= 0:
            raise InputError(f"{key}.{name}", "must be positive")
    for name in ("latent_heat", "perfusion", "metabolic", "k_frozen_exponent"):
        if values[name] < 0:
            raise InputError(f"{key}.{name}", "must not be negative")
    if values["t_liquidus_c"] < values["t_solidus_c"]:
        raise InputError(f"{key}.t_liquidus_c", "must not be below t_solidus_c")
    if values["t_solidus_c"] <= -273.15:
        raise InputError(f"{key}.t_solidus_c", "must be above absolute zero")
    names = {f.name for f in fields(Material)}
    return Material(**{name: values[name] for name in names})


def load_material_library() -> dict[str, Material]:
    data = load_json_resource("materials.json")
    return {
        name: material_from_dict(entry, f"materials.json:{name}") for name, entry in data["materials"].items()
    }
