"""Verification cases of docs/physics.md §7 (TC-1, TC-3, TC-4, TC-6) as functions of the grid.

Each returns measured and expected values; the tests (coarse, by default) and ``verify.py`` (full
resolution, ``make verify``) share them. Fronts of the enthalpy solution are measured by the frozen
fraction (Σ(1 − f_l)·voxel), which, unlike an isotherm between voxel centres, moves continuously.
"""

from __future__ import annotations

import math

import numpy as np
from analytic import front, line_sink_lambda, line_sink_T, neumann_lambda, neumann_T, steady_sphere_R

from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics.simulation import Simulation


def material(d_t=0.1, perfusion=0.0, latent=2.5e8) -> dict:
    return {
        "k_unfrozen": 0.5,
        "k_frozen": 2.0,
        "c_unfrozen": 3.6e6,
        "c_frozen": 1.8e6,
        "latent_heat": latent,
        "t_liquidus_c": 0.0,
        "t_solidus_c": -d_t,
        "perfusion": perfusion,
        "metabolic": 0.0,
        "blood_temperature_c": 37.0,
    }


def frozen_fraction(field_c: np.ndarray, d_t: float) -> np.ndarray:
    """1 − liquid fraction for the material() above (H is linear in T across the mushy range)."""
    return 1.0 - np.clip((field_c + d_t) / d_t, 0.0, 1.0)


def slab_case(spacing_mm: float, face_c: float, tissue: str, duration_s: float, materials=None):
    """An 80 mm slab at 37 °C (3×3 voxels across, adiabatic sides) frozen from its x− face, held at
    ``face_c``; its x+ face is held at 37 °C. Voxel i lies at x = i·spacing, voxel 0 on the face."""
    n = round(80.0 / spacing_mm) + 1
    case = {
        "format": "cryoablation-case/1",
        "grid": {"origin_mm": [0, 0, 0], "spacing_mm": spacing_mm, "size": [n, 3, 3]},
        "initial_temperature_c": 37.0,
        "boundaries": {
            "default": {"type": "adiabatic"},
            "x-": {"type": "fixed", "temperature_c": face_c},
            "x+": {"type": "fixed", "temperature_c": 37.0},
        },
        "tissue": tissue,
        "protocol": [{"action": "off", "duration_s": duration_s}],
    }
    if materials:
        case["materials"] = materials
    return parse_case(case)


def planar_neumann(spacing_mm=0.5, d_t=0.1, latent=2.5e8, times=(60.0, 600.0), max_dt_s=None):
    """TC-1 / TC-6: a slab frozen from a face held at −150 °C; fronts X(t) in mm."""
    case = slab_case(spacing_mm, -150.0, "m", max(times), {"m": material(d_t, latent=latent)})
    n = case.grid.size[0]
    simulation = Simulation(case, max_dt_s=max_dt_s)
    lam, a_s, a_l = neumann_lambda(2.0, 1.8e6, 0.5, 3.6e6, latent, -150.0, 0.0, 37.0)
    out = {"front_mm": {}, "exact_mm": {}, "T5_c": {}, "T5_exact_c": {}}
    x = np.arange(n) * spacing_mm
    for t in times:
        simulation.advance_to(t)
        profile = simulation.temperature_c[:, 1, 1]
        # Voxel 0 is the face (held); half of it lies inside the slab.
        out["front_mm"][t] = spacing_mm * (0.5 + float(np.sum(frozen_fraction(profile[1:], d_t))))
        out["exact_mm"][t] = front(t, lam, a_s) * 1e3
        out["T5_c"][t] = float(np.interp(5.0, x, profile))
        out["T5_exact_c"][t] = neumann_T(0.005, t, lam, a_s, a_l, -150.0, 0.0, 37.0)
    out["energy_balance_error"] = simulation.energy_balance_error()
    return out


def line_sink(spacing_mm=0.5, power_w_per_m=50.0, times=(150.0, 600.0), half_width_mm=20.0, probe_r_mm=1.5):
    """TC-3: a line sink along z in a medium at the melting point; frozen radius R(t) in mm."""
    d_t = 0.05
    n = 2 * round(half_width_mm / spacing_mm) + 1
    c = half_width_mm
    thickness = 3 * spacing_mm
    case = parse_case(
        {
            "format": "cryoablation-case/1",
            "grid": {"origin_mm": [-c, -c, 0.0], "spacing_mm": spacing_mm, "size": [n, n, 3]},
            "initial_temperature_c": 0.0,
            "boundaries": {
                "default": {"type": "fixed", "temperature_c": 0.0},
                "z-": {"type": "adiabatic"},
                "z+": {"type": "adiabatic"},
            },
            "materials": {"m": material(d_t)},
            "tissue": "m",
            "sources": [
                {
                    "type": "line_sink",
                    "start_mm": [0, 0, -0.5 * spacing_mm],
                    "end_mm": [0, 0, thickness - 0.5 * spacing_mm],
                    "power_w_per_m": power_w_per_m,
                }
            ],
            "protocol": [{"action": "off", "duration_s": max(times)}],
        }
    )
    simulation = Simulation(case)
    lam, a_s = line_sink_lambda(power_w_per_m, 2.0, 1.8e6, 2.5e8)
    out = {"radius_mm": {}, "exact_mm": {}, "T_probe_c": {}, "T_probe_exact_c": {}}
    voxel_area = spacing_mm**2
    for t in times:
        simulation.advance_to(t)
        field = simulation.temperature_c
        frozen_area = float(np.sum(frozen_fraction(field[:, :, 1], d_t))) * voxel_area
        out["radius_mm"][t] = math.sqrt(frozen_area / math.pi)
        out["exact_mm"][t] = front(t, lam, a_s) * 1e3
        out["T_probe_c"][t] = simulation.temperature_at([probe_r_mm, 0.0, spacing_mm])
        out["T_probe_exact_c"][t] = line_sink_T(probe_r_mm * 1e-3, t, power_w_per_m, 2.0, a_s, lam)
    t0, t1 = times[0], times[-1]
    out["log_slope"] = math.log(out["radius_mm"][t1] / out["radius_mm"][t0]) / math.log(t1 / t0)
    out["energy_balance_error"] = simulation.energy_balance_error()
    return out


def steady_sphere(spacing_mm=1.0, perfusion=1800.0, half_width_mm=40.0, duration_s=3 * 3600.0, max_dt_s=60.0):
    """TC-4: a 1.2 mm ball at −150 °C in perfused tissue run to steady state; frozen radius in mm.

    One octant: the ball sits at the corner where three adiabatic (mirror) faces meet.
    """
    d_t = 0.1
    n = round(half_width_mm / spacing_mm)
    corner = -0.5 * spacing_mm
    case = parse_case(
        {
            "format": "cryoablation-case/1",
            "grid": {"origin_mm": [0, 0, 0], "spacing_mm": spacing_mm, "size": [n, n, n]},
            "initial_temperature_c": 37.0,
            "boundaries": {
                "default": {"type": "fixed", "temperature_c": 37.0},
                "x-": {"type": "adiabatic"},
                "y-": {"type": "adiabatic"},
                "z-": {"type": "adiabatic"},
            },
            "materials": {"m": material(d_t, perfusion=perfusion)},
            "tissue": "m",
            "sources": [
                {"type": "sphere", "center_mm": [corner] * 3, "radius_mm": 1.2, "temperature_c": -150.0}
            ],
            "protocol": [{"action": "off", "duration_s": duration_s}],
        }
    )
    simulation = Simulation(case, max_dt_s=max_dt_s)
    simulation.advance_to(duration_s)
    field = simulation.temperature_c
    inside = simulation.fixed == 2
    frozen = frozen_fraction(field, d_t)
    frozen[inside] = 1.0
    volume = 8.0 * float(frozen.sum()) * spacing_mm**3  # eight octants
    radius = (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)
    exact = steady_sphere_R(1.2e-3, -150.0, 0.0, 37.0, 2.0, 0.5, perfusion) * 1e3
    return {"radius_mm": radius, "exact_mm": exact, "energy_balance_error": simulation.energy_balance_error()}
