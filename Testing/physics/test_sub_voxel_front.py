"""The sub-voxel front (``kernels.front_cell``, docs/physics.md "Numerics" and "The grid").

A voxel the freezing front crosses conducts through Kirchhoff conductances ∫k dT / ΔT and perfuses
only in its unfrozen part, so that a 1 mm grid places the ice's edge where a fine grid does.
"""

from __future__ import annotations

import numpy as np
import pytest
from verification_cases import slab_case

from CryoAblationLogic.physics import kernels as kn
from CryoAblationLogic.physics.materials import load_material_library
from CryoAblationLogic.physics.simulation import Simulation


def _props(material) -> np.ndarray:
    m = material
    row = (
        m.c_frozen, m.c_unfrozen, m.t_solidus_c, m.t_liquidus_c, m.enthalpy_at_liquidus(), m.k_frozen,
        m.k_unfrozen, m.k_frozen_exponent, m.perfusion, m.metabolic, m.blood_temperature_c,
    )  # fmt: skip
    return np.array([row], dtype=np.float64)


KIDNEY = _props(load_material_library()["kidney"])  # k_f ∝ 1/T in the ice, mushy −8 … −1 °C
GEL = _props(load_material_library()["gel"])


def _with_exponent(props: np.ndarray, n: float) -> np.ndarray:
    out = props.copy()
    out[0, kn.KEXP] = n
    return out


@pytest.mark.parametrize("props", [KIDNEY, GEL, _with_exponent(KIDNEY, 0.0), _with_exponent(KIDNEY, 1.6)])
def test_the_kirchhoff_potential_is_the_integral_of_k_and_its_inverse_gives_the_temperature_back(props):
    t = np.linspace(-190.0, 40.0, 46001)  # 0.005 K
    k = np.array([kn.conductivity_at(v, props, 0) for v in t])
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (k[1:] + k[:-1]) * np.diff(t))])
    integral -= np.interp(props[0, kn.TS], t, integral)  # Φ = 0 at the solidus
    for value in (-190.0, -120.0, -40.0, -8.0, -4.5, -1.0, 0.0, 37.0):
        phi = kn.kirchhoff(value, props, 0)
        assert phi == pytest.approx(np.interp(value, t, integral), abs=1e-4 * max(1.0, abs(phi)))  # W/m
        assert kn.kirchhoff_inverse(phi, props, 0) == pytest.approx(value, abs=1e-9)


def test_pennes_departure_over_a_half_link_is_the_mean_over_the_kirchhoff_profile():
    """An unfrozen voxel at 4 °C whose face towards the ice is at −20 °C: along the half-link Φ is
    linear, and the departure of Pennes' terms from the voxel's own (it perfuses as a whole) is
    their mean over that profile, here a loss of perfusion where the half-link is frozen."""
    props, p = KIDNEY, KIDNEY[0]
    t, t_face, own_fraction = 4.0, -20.0, 1.0
    phi, phi_face = kn.kirchhoff(t, props, 0), kn.kirchhoff(t_face, props, 0)
    samples = np.linspace(phi, phi_face, 200001)[1:-1]
    temps = np.array([kn.kirchhoff_inverse(s, props, 0) for s in samples])
    fraction = np.clip((temps - p[kn.TS]) / (p[kn.TL] - p[kn.TS]), 0.0, 1.0)
    departure = (fraction - own_fraction) * (p[kn.W] * (p[kn.TB] - temps) + p[kn.QM])
    got = kn.half_link_departure(t, t_face, phi, phi_face, own_fraction, props, 0)
    assert got < 0.0  # perfusion heat that the frozen part does not receive
    assert got == pytest.approx(departure.mean(), rel=2e-3)
    # Within one phase and at the voxel's own liquid fraction there is no departure.
    p20, p10 = kn.kirchhoff(20.0, props, 0), kn.kirchhoff(10.0, props, 0)
    assert kn.half_link_departure(20.0, 10.0, p20, p10, 1.0, props, 0) == 0.0


def _kidney_slab(spacing_mm: float, sub_voxel_front: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """A perfused kidney slab (80 mm) frozen for 600 s from a face held at −60 °C: (x, T, balance)."""
    case = slab_case(spacing_mm, -60.0, "kidney", 600.0)
    simulation = Simulation(case, sub_voxel_front=sub_voxel_front)
    simulation.advance_to(600.0)
    x = np.arange(case.grid.size[0]) * spacing_mm
    return x, simulation.temperature_c[:, 1, 1], simulation.energy_balance_error()


def _crossing_mm(x: np.ndarray, t: np.ndarray, level_c: float) -> float:
    """Where the profile rises through ``level_c``, linear between voxel centres."""
    i = int(np.nonzero((t[:-1] <= level_c) & (t[1:] > level_c))[0][-1])
    return float(x[i] + (level_c - t[i]) / (t[i + 1] - t[i]) * (x[i + 1] - x[i]))


def test_a_1mm_grid_puts_the_edge_of_perfused_ice_where_a_fine_grid_does():
    """Perfused kidney, 600 s from a −60 °C face: on a 1 mm grid the 0, −20 and −40 °C points lie
    within 0.25 mm of a 0.25 mm grid's (the voxel front left the 0 °C point 1.5 mm short: the front
    voxel perfused as a whole until its centre froze); energy balance within 1e-6 of the heat."""
    fine_x, fine_t, _ = _kidney_slab(0.25, True)
    coarse_x, coarse_t, balance = _kidney_slab(1.0, True)
    voxel_x, voxel_t, _ = _kidney_slab(1.0, False)
    for level in (0.0, -20.0, -40.0):
        fine = _crossing_mm(fine_x, fine_t, level)
        assert _crossing_mm(coarse_x, coarse_t, level) == pytest.approx(fine, abs=0.25), level
    assert _crossing_mm(voxel_x, voxel_t, 0.0) < _crossing_mm(fine_x, fine_t, 0.0) - 1.0
    assert balance < 1e-6
