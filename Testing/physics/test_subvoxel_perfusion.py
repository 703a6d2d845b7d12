"""Perfusion in a voxel that the freezing front crosses (issue 13, grid convergence of the ice edge).

Pennes' sink f_l·W·(T_b − T) stops where tissue freezes. A voxel holds one temperature, but the
front crosses it with the unfrozen layer in front of the ice (1.4 mm thick in kidney) about as thick
as the voxel: the sink is averaged over the temperatures within the voxel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics import kernels as kn
from CryoAblationLogic.physics.materials import load_material_library
from CryoAblationLogic.physics.simulation import simulate

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from cases import three_probe_kidney  # noqa: E402  (the benchmark plan, benchmarks/cases.py)

KIDNEY = load_material_library()["kidney"]


def _props(material) -> np.ndarray:
    m = material
    return np.array(
        [[m.c_frozen, m.c_unfrozen, m.t_solidus_c, m.t_liquidus_c, m.enthalpy_at_liquidus(), m.k_frozen,
          m.k_unfrozen, m.k_frozen_exponent, m.perfusion, m.metabolic, m.blood_temperature_c]]
    )  # fmt: skip


def _pennes(temperature_c: float, material) -> float:
    """Pennes' perfusion at one temperature, f_l from the enthalpy model."""
    h = material.enthalpy(temperature_c)
    fl = min(max(h / material.enthalpy_at_liquidus(), 0.0), 1.0)
    return fl * material.perfusion * (material.blood_temperature_c - temperature_c)


def test_a_voxel_without_spread_perfuses_as_pennes_says_at_its_centre():
    props = _props(KIDNEY)
    for t in (20.0, -0.5, -4.5, -7.9, -30.0):
        perf, met, phi = kn.tissue_sinks(t, KIDNEY.enthalpy(t), 0.0, props, 0)
        assert perf == pytest.approx(_pennes(t, KIDNEY), rel=1e-9, abs=1e-6)
        assert met == pytest.approx(phi * KIDNEY.metabolic, rel=1e-12)


@pytest.mark.parametrize("centre_c, half_width_c", [(0.0, 10.0), (-4.5, 3.0), (-8.0, 12.0), (5.0, 6.5)])
def test_a_voxel_the_front_crosses_perfuses_as_the_mean_over_its_temperatures(centre_c, half_width_c):
    props = _props(KIDNEY)
    perf, _, phi = kn.tissue_sinks(centre_c, KIDNEY.enthalpy(centre_c), half_width_c, props, 0)
    temperatures = np.linspace(centre_c - half_width_c, centre_c + half_width_c, 200_001)
    expected = np.mean([_pennes(t, KIDNEY) for t in temperatures[::100]])  # quadrature, 2001 points
    assert perf == pytest.approx(expected, rel=2e-3)
    assert 0.0 < phi < 1.0  # partly frozen: perfused in part only


def test_a_voxel_at_the_liquidus_perfuses_less_than_if_it_were_all_unfrozen():
    props = _props(KIDNEY)
    t = KIDNEY.t_liquidus_c + 1.0
    whole, _, _ = kn.tissue_sinks(t, KIDNEY.enthalpy(t), 0.0, props, 0)
    crossed, _, phi = kn.tissue_sinks(t, KIDNEY.enthalpy(t), 8.0, props, 0)
    assert crossed < 0.8 * whole and phi < 0.8


def test_the_spread_stays_within_the_neighbours_range():
    # Next to a probe the profile is far from linear: a voxel at −100 °C between −140 and −80 °C
    # neighbours must not reach the unfrozen range (it would perfuse deep in the ice).
    half = kn.spread(-100.0, -140.0, -80.0, -100.0, -100.0, -100.0, -100.0)
    assert half <= 20.0
    assert kn.tissue_sinks(-100.0, KIDNEY.enthalpy(-100.0), half, _props(KIDNEY), 0)[0] == 0.0
    # A linear profile of 10 K per voxel along one axis spreads ±5 K (a quarter of the difference).
    assert kn.spread(0.0, -10.0, 10.0, 0.0, 0.0, 0.0, 0.0) == pytest.approx(5.0)


def test_energy_still_balances_on_the_perfused_benchmark_plan_at_2mm():
    result = simulate(parse_case(three_probe_kidney(2.0)))
    assert result.energy_balance_error < 1e-6
