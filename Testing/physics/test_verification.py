"""Exact solutions (docs/physics.md §7, [Analytic]): coarse grids by default, full resolution with -m slow."""

from __future__ import annotations

import pytest
from verification_cases import line_sink, planar_neumann, steady_sphere


def test_tc1_planar_neumann_front_and_temperature():
    result = planar_neumann(spacing_mm=0.5)
    front, exact = result["front_mm"][600.0], result["exact_mm"][600.0]
    assert exact == pytest.approx(27.113, abs=1e-3)
    assert abs(front - exact) <= 0.02 * exact  # TC-1: ± 2 %
    assert result["T5_c"][600.0] == pytest.approx(-119.87, abs=1.5)
    assert result["energy_balance_error"] < 0.01


def test_tc1_grid_convergence_front_within_a_tenth_of_a_voxel_and_error_falls_below_1mm():
    # The sub-voxel front places the front within about 0.12 mm of Neumann's on 2 and 1 mm grids
    # (a twentieth and a tenth of a voxel; the voxel front was 1.8 and 0.7 mm off), so the error
    # no longer falls with the spacing there; from 1 mm to 0.5 mm it does (0.12 → 0.04 mm).
    errors = []
    for spacing in (2.0, 1.0, 0.5):
        result = planar_neumann(spacing_mm=spacing, times=(600.0,))
        exact = result["exact_mm"][600.0]
        errors.append(abs(result["front_mm"][600.0] - exact))
    assert max(errors) < 0.006 * exact  # 0.16 mm
    assert errors[2] < 0.5 * errors[1]


def test_tc1_second_latent_heat():
    result = planar_neumann(spacing_mm=0.5, latent=3.0e8, times=(600.0,))
    assert result["exact_mm"][600.0] == pytest.approx(25.765, abs=1e-2)
    assert abs(result["front_mm"][600.0] - result["exact_mm"][600.0]) <= 0.02 * result["exact_mm"][600.0]


def test_tc6_mushy_zone_converges_to_the_sharp_front():
    fronts = {}
    for d_t in (7.0, 2.0, 0.5, 0.1):
        result = planar_neumann(spacing_mm=0.5, d_t=d_t, times=(600.0,))
        fronts[d_t] = result["front_mm"][600.0]
        assert result["energy_balance_error"] < 0.01  # closes at every mushy width
    exact = result["exact_mm"][600.0]
    errors = [abs(fronts[d] - exact) for d in (7.0, 2.0, 0.5, 0.1)]
    assert errors == sorted(errors, reverse=True)  # monotone
    # At 0.5 mm the remaining gap is the grid's (see the grid-convergence test); under -m slow
    # the 0.25 mm grid must reach the 1 % of TC-6.
    assert errors[-1] / exact < 0.02


def test_tc3_line_sink_radius_temperature_and_sqrt_t_growth():
    result = line_sink(spacing_mm=0.5)
    assert result["exact_mm"][600.0] == pytest.approx(6.1369, abs=1e-3)
    assert result["radius_mm"][600.0] == pytest.approx(result["exact_mm"][600.0], abs=0.3)
    assert result["log_slope"] == pytest.approx(0.5, abs=0.02)
    # Three voxels from the sink (1.5 mm at 0.5 mm), against the exact profile.
    assert result["T_probe_c"][600.0] == pytest.approx(result["T_probe_exact_c"][600.0], abs=1.0)
    assert result["energy_balance_error"] < 0.01


@pytest.mark.slow
def test_tc1_full_resolution():
    result = planar_neumann(spacing_mm=0.25, times=(60.0, 600.0))
    assert abs(result["front_mm"][600.0] - result["exact_mm"][600.0]) <= 0.5
    assert result["T5_c"][600.0] == pytest.approx(-119.87, abs=1.5)


@pytest.mark.slow
def test_tc6_full_resolution_sharp_limit():
    result = planar_neumann(spacing_mm=0.25, d_t=0.1, times=(600.0,))
    assert abs(result["front_mm"][600.0] - result["exact_mm"][600.0]) / result["exact_mm"][600.0] < 0.01


@pytest.mark.slow
def test_tc3_full_resolution():
    result = line_sink(spacing_mm=0.25, times=(600.0, 3600.0), half_width_mm=30.0, probe_r_mm=1.0)
    assert result["radius_mm"][600.0] == pytest.approx(6.14, abs=0.3)
    assert result["radius_mm"][3600.0] == pytest.approx(15.03, abs=0.5)
    assert result["T_probe_c"][600.0] == pytest.approx(-7.2, abs=1.0)
    assert result["log_slope"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.slow
def test_tc4_steady_sphere_with_perfusion():
    result = steady_sphere(spacing_mm=1.0, half_width_mm=60.0)
    assert result["exact_mm"] == pytest.approx(12.370, abs=1e-2)
    assert result["radius_mm"] == pytest.approx(result["exact_mm"], rel=0.03)


def test_tc4_steady_sphere_coarse_and_monotone_in_perfusion():
    radii = {}
    for w in (1800.0, 7200.0):
        result = steady_sphere(spacing_mm=1.0, perfusion=w, half_width_mm=40.0)
        radii[w] = result["radius_mm"]
        # The fixed 37 °C faces 40 mm out cool the far field a little: 2.3 % small at W = 1800
        # (1.2 % with the faces 60 mm out, the slow test).
        assert result["radius_mm"] == pytest.approx(result["exact_mm"], rel=0.04)
    assert radii[7200.0] < radii[1800.0]
