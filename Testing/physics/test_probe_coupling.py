"""Sub-voxel probes: the well-model constant, smooth weights, and no jumps when a probe moves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics.probe_coupling import (
    KERNEL_EQUIVALENT_RADIUS,
    SPHERE_KERNEL_EQUIVALENT_RADIUS,
    probe_stencil,
)
from CryoAblationLogic.physics.simulation import Simulation


def test_equivalent_radius_of_the_kernel():
    """r_eq/R = exp ∬ K K ln|x − y| for K ∝ (1 − ρ²)², by Newton's theorem for the 2-D log potential."""

    def kernel(r):
        return (1 - r * r) ** 2 * 3 / math.pi  # normalised: ∫ K 2πr dr = 1

    def potential(r):  # mean of ln|x − y| over the kernel, at distance r from the centre
        inner = quad(lambda p: kernel(p) * 2 * math.pi * p, 0, r)[0] if r > 0 else 0.0
        outer = quad(lambda p: kernel(p) * math.log(p) * 2 * math.pi * p, r, 1)[0]
        return math.log(r) * inner + outer if r > 0 else outer

    mean = quad(lambda r: kernel(r) * potential(r) * 2 * math.pi * r, 0, 1, limit=200)[0]
    assert KERNEL_EQUIVALENT_RADIUS == pytest.approx(math.exp(mean), abs=1e-4)


def test_equivalent_radius_of_the_spherical_kernel():
    """R/r_eq = ∬ K K / |x − y| for K ∝ (1 − r²)² in 3-D, by Newton's shell theorem."""

    def kernel(r):
        return (1 - r * r) ** 2 * 105 / (32 * math.pi)  # ∫ K 4πr² dr = 1

    def potential(r):
        inner = quad(lambda s: kernel(s) * 4 * math.pi * s * s, 0, r)[0] / r if r > 0 else 0.0
        return inner + quad(lambda s: kernel(s) * 4 * math.pi * s, r, 1)[0]

    mean = quad(lambda r: kernel(r) * potential(r) * 4 * math.pi * r * r, 0, 1, limit=200)[0]
    assert SPHERE_KERNEL_EQUIVALENT_RADIUS == pytest.approx(1.0 / mean, abs=1e-4)


def test_stencil_weights_sum_to_one_and_follow_the_probe():
    grid = Grid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (20, 20, 40))
    previous = None
    for offset in np.linspace(0.0, 1.0, 11):
        stencil = probe_stencil(grid, (10.0 + offset, 10.0, 5.0), (10.0 + offset, 10.0, 35.0), 0.735)
        assert stencil.weight.sum() == pytest.approx(1.0)
        assert stencil.equivalent_radius_mm > 0.735
        x = np.unravel_index(stencil.flat_index, grid.size)[0]
        assert float(stencil.weight @ x) == pytest.approx(10.0 + offset, abs=0.02)
        dense = np.zeros(grid.voxel_count)
        dense[stencil.flat_index] = stencil.weight
        if previous is not None:
            assert np.abs(dense - previous).sum() < 0.25  # a tenth of a voxel changes little
        previous = dense


def _freeze_single_probe(offset_mm: float, spacing_mm: float = 1.0, duration_s: float = 240.0):
    half = 15.0
    n = round(2 * half / spacing_mm) + 1
    case = parse_case(
        {
            "format": "cryoablation-case/1",
            "grid": {
                "origin_mm": [-half, -half, -20.0],
                "spacing_mm": spacing_mm,
                "size": [n, n, int(40 / spacing_mm) + 1],
            },
            "initial_temperature_c": 37.0,
            "tissue": "gel",
            "probes": [
                {
                    "name": "P",
                    "model": "argon-1.47mm",
                    "tip_mm": [offset_mm, 0.0, -15.0],
                    "entry_mm": [offset_mm, 0.0, 30.0],
                }
            ],
            "protocol": [
                {"action": "freeze", "duration_s": duration_s, "probes": "all", "flow_percent": 100}
            ],
        }
    )
    simulation = Simulation(case)
    simulation.advance_to(duration_s)
    field = simulation.temperature_c
    frozen = 1.0 - np.clip((field + 1.0) / 0.9, 0.0, 1.0)  # gel: solidus −1, liquidus −0.1 °C
    x = case.grid.axis_mm(0)[:, None, None]
    volume = float(frozen.sum()) * spacing_mm**3
    centroid = float((frozen * x).sum() / frozen.sum())
    return volume, centroid


def test_results_move_smoothly_with_sub_voxel_probe_motion():
    results = [(offset, *_freeze_single_probe(offset)) for offset in (0.0, 0.25, 0.5)]
    volumes = np.array([r[1] for r in results])
    assert volumes.max() - volumes.min() < 0.02 * volumes.mean()
    for offset, _, centroid in results:
        assert centroid == pytest.approx(offset, abs=0.1)


@pytest.mark.slow
def test_ice_volume_is_grid_independent():
    coarse, _ = _freeze_single_probe(0.0, spacing_mm=1.0, duration_s=600.0)
    fine, _ = _freeze_single_probe(0.0, spacing_mm=0.5, duration_s=600.0)
    assert abs(coarse - fine) < 0.08 * fine
