"""Validation of the observed ice on seeded synthetic procedures (issue 14): the demo plan's truth
(properties ±30 %, insertion errors 2 mm / 3°) imaged with noise, probe voids and breathing
shifts; observed ice against the truth's 0 °C zone, Dice ≥ 0.90 on 3-D volumes and ≥ 0.85 on
slices. The default run checks two procedures at the end of the first freeze; the full set
(20 procedures, five image times through both freezes) is ``-m slow`` and
``Testing/ice/verify_ice.py`` prints its table.
The segmentation was tuned on other seeds (``procedures.TUNING_SEEDS``) than these.
"""

from __future__ import annotations

import procedures as pr
import pytest


def check(rows: list[pr.ImageRow]) -> None:
    for row in rows:
        limit = pr.DICE_VOLUME_MIN if row.kind == "volume" else pr.DICE_SLICE_MIN
        assert row.dice >= limit, (
            f"seed {row.seed}, {row.time_s:g} s, {row.kind}: Dice {row.dice:.3f} < {limit}"
        )
    volumes = [row for row in rows if row.kind == "volume"]
    assert all(row.registration_error_mm < 1.0 for row in volumes), "breathing shifts are found within 1 mm"


def test_tuning_and_validation_seeds_are_disjoint():
    assert not set(pr.TUNING_SEEDS) & set(pr.VALIDATION_SEEDS)
    assert set(pr.QUICK_SEEDS) <= set(pr.VALIDATION_SEEDS)
    assert len(pr.VALIDATION_SEEDS) >= 20


@pytest.mark.parametrize("seed", pr.QUICK_SEEDS)
def test_observed_ice_matches_the_truth_at_the_end_of_the_first_freeze(seed):
    rows = pr.run_procedure(seed, times_s=(600.0,))
    assert [row.kind for row in rows] == ["volume", "across", "along-1", "along-2"]
    check(rows)


@pytest.mark.slow
def test_observed_ice_matches_the_truth_over_twenty_procedures():
    for seed in pr.VALIDATION_SEEDS:
        check(pr.run_procedure(seed))


@pytest.mark.slow
def test_a_plane_beside_the_probes_sees_their_ice_through_the_thaw():
    """Stress-tuning seed 304 (probes 5 mm / 6° off the plan): its ``along-2`` plane passes
    beside the probes, so their ice crosses it off their axes. Through the thaw and into the
    second freeze the slices found no ice there (Dice 0 at each of these times) until a void
    component near a freezing segment's in-plane trace counted too (``observe_ice``, step 4);
    since, 0.74–0.97. A regression check on a tuning seed: the 0.7 floor is below the issue's
    0.85 because ice that thaws to 3.5–6.5 cm² in a 5 mm slab has a wide partial-volume rim."""
    times = (850.0, 1000.0, 1080.0, 1140.0, 1200.0)
    rows = pr.run_procedure(304, times_s=times, procedure_set=pr.STRESS_TUNING)
    beside = [row for row in rows if row.kind == "along-2"]
    assert [row.time_s for row in beside] == list(times)
    for row in beside:
        assert row.truth_size >= 3.0  # cm²: ice to be found in every one of them
        assert row.dice >= 0.7, f"{row.time_s:g} s: Dice {row.dice:.3f}"
