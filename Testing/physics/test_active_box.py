"""The active box: work is confined to the voxels that depart from their basal course."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics import simulation as sim_module
from CryoAblationLogic.physics.simulation import Simulation, simulate

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from cases import three_probe_kidney  # noqa: E402  (the benchmark plan, benchmarks/cases.py)


def _volume(box) -> int:
    lo, hi = box
    return int(np.prod(np.subtract(hi, lo)))


def test_the_box_shrinks_while_the_ice_thaws_and_grows_again_for_the_refreeze():
    # 10-min freeze, 8-min passive thaw, 10-min refreeze in perfused kidney, 2 mm grid.
    sim = Simulation(parse_case(three_probe_kidney(2.0)))
    start = _volume(sim.box)
    sim.advance_to(600.0)
    frozen = _volume(sim.box)
    sim.advance_to(1080.0)
    thawed = _volume(sim.box)
    sim.advance_to(1680.0)
    refrozen = _volume(sim.box)
    assert start < frozen and thawed < 0.6 * frozen and refrozen > 1.5 * thawed
    # It never shrinks below the box it started as, around the probes.
    (lo0, hi0), (lo, hi) = Simulation(parse_case(three_probe_kidney(2.0))).box, sim.box
    assert np.all(np.asarray(lo) <= lo0) and np.all(np.asarray(hi) >= hi0)


def test_shrinking_the_box_leaves_the_result_unchanged(monkeypatch):
    case = parse_case(three_probe_kidney(2.0))
    shrinking = simulate(case)
    monkeypatch.setattr(sim_module, "BOX_SHRINK_VOXELS", 10**6)  # never shrinks
    growing_only = simulate(case)
    # Voxels leave the box only within 0.05 K of their basal course.
    assert np.abs(shrinking.temperature_final - growing_only.temperature_final).max() < 0.1
    for level, volume in growing_only.isotherm_volumes_ml.items():
        assert shrinking.isotherm_volumes_ml[level] == pytest.approx(volume, rel=0.005)
