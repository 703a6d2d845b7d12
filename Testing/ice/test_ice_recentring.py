"""Re-centring the correction's ensemble on what the images showed (``analysis/ice_correction.py``,
``IceCorrector.recentred``): an iterative ensemble smoother for a truth the first ensemble's
prior does not cover.

The demo plan on a 3 mm grid, its protocol at a quarter of its durations (150 s freeze, 120 s
thaw, 150 s freeze), 16 members, observed directly through the truth's 0 °C zone (no MR): the
estimator, not the segmentation. A re-centring costs one ensemble's solver runs (a few seconds
here).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import procedures as pr
import pytest

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics
from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, IceCorrector, Recentring
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.live.synthetic import plan_case

MEMBERS = 16
IMAGE_TIMES_S = (60.0, 120.0, 150.0, 330.0, 420.0)  # the first freeze ends at 150 s
# Observed directly, the ice near the probes is not hidden as an MR image hides it: nothing is
# unresolved (unresolved_radius_mm 0), and the first image (60 s) shows where the far probe is not.
SETTINGS = CorrectionSettings(
    members=MEMBERS,
    snapshot_every_s=15.0,
    recentre_generations=2,
    recentre_shift=0.0,
    unresolved_radius_mm=0.0,
)


def run(case, cooling=None, times_s=IMAGE_TIMES_S):
    """The 0 °C zone at each time (label maps on the plan grid) and the minimum field at the end."""
    return pr.scaled_run(case, cooling or {}, times_s)


def moved(case, probe: int, by_mm):
    spec = case.probes[probe]
    shifted = replace(
        spec, tip_mm=tuple(np.add(spec.tip_mm, by_mm)), entry_mm=tuple(np.add(spec.entry_mm, by_mm))
    )
    return replace(case, probes=[*case.probes[:probe], shifted, *case.probes[probe + 1 :]])


@pytest.fixture(scope="module")
def plan():
    case = plan_case(3.0, protocol_scale=0.25)
    corrector = IceCorrector(case, SETTINGS)
    corrector.prepare()
    return case, corrector


def test_the_re_centred_ensemble_is_drawn_around_the_posterior(plan):
    """After the images of the first freeze of a truth cooling at 75 %: the next generation's
    centre is the posterior mean (cooling scales, tip offsets, to 1e-4 as the correction rounds
    them); its members scatter around that centre with the placement prior's spread (2 mm RMS
    per tip: each axis's sample σ of 16 members within 0.5–1.6 × 2/√3 mm, the χ range of 15
    degrees of freedom), not the posterior's; the cooling σ at most the prior's 0.15 and the tissue
    windows within the prior's support. The draw is seeded: the same posterior, the same members."""
    case, corrector = plan
    zones, _ = run(case, {p.name: 0.75 for p in case.probes})
    corrector.reset()
    for t in IMAGE_TIMES_S[:3]:
        correction = corrector.update(t, zones[t])
    successor = corrector.recentred()
    centre = successor.centre
    assert successor.generation == centre.generation == 1 and not successor.prepared
    assert (centre.images, centre.time_s) == (3, 150.0)
    for p, probe in enumerate(case.probes):
        assert centre.cooling[p] == pytest.approx(
            correction.parameters[f"cooling_scale:{probe.name}"]["mean"], abs=1e-4
        )
        for a, axis in enumerate("RAS"):
            expected = correction.parameters[f"tip_offset_{axis}:{probe.name}"]["mean"]
            assert centre.tip_shift_mm[p][a] == pytest.approx(expected, abs=1e-4)
    assert all(0 < sigma <= SETTINGS.cooling_sigma for sigma in centre.cooling_sigma)
    for low, high in centre.conductivity:
        assert 1 - SETTINGS.conductivity_spread <= low < high <= 1 + SETTINGS.conductivity_spread
    for low, high in centre.perfusion:
        assert 1 - SETTINGS.perfusion_spread <= low < high <= 1 + SETTINGS.perfusion_spread

    names, _, values, cases = successor.draw_parameters()
    column = {name: j for j, name in enumerate(names)}
    prior_sigma = SETTINGS.insertion_error_mm / math.sqrt(3.0)
    for p, probe in enumerate(case.probes):
        for a, axis in enumerate("RAS"):
            offsets = values[:, column[f"tip_offset_{axis}:{probe.name}"]]
            assert 0.5 * prior_sigma <= offsets.std(ddof=1) <= 1.6 * prior_sigma
            # the members' mean within 3 standard errors of the centre
            assert abs(offsets.mean() - centre.tip_shift_mm[p][a]) <= 3 * prior_sigma / math.sqrt(MEMBERS)
        member_tips = np.array([c.probes[p].tip_mm for c, _ in cases])
        np.testing.assert_allclose(
            member_tips - np.asarray(probe.tip_mm),
            values[:, [column[f"tip_offset_{a}:{probe.name}"] for a in "RAS"]],
            atol=1e-9,
        )
    again = corrector.recentred()
    assert again.centre == centre
    assert np.array_equal(again.draw_parameters()[2], values)


def test_assimilating_again_gives_the_posterior_of_the_same_images_fed_afresh(plan):
    """The re-centred generation, prepared, takes the previous one's kept images (their rays and
    observed edges: nothing is segmented again): its posterior is bit for bit the one a freshly
    prepared ensemble of the same centre reaches when the same images are fed to it one by one."""
    case, corrector = plan
    zones, _ = run(moved(case, 0, (4.0, 0.0, 0.0)))
    corrector.reset()
    for t in IMAGE_TIMES_S[:3]:
        corrector.update(t, zones[t])
    successor = corrector.recentre_now()
    fresh = IceCorrector(case, SETTINGS, centre=successor.centre)
    fresh.prepare()
    # (what it reports as the parameters' prior means is its own draw's, not the first generation's)
    fresh.first_prior_mean = successor.first_prior_mean
    for t in IMAGE_TIMES_S[:3]:
        fed = fresh.update(t, zones[t])
    assert np.array_equal(successor.coefficients, fresh.coefficients)
    assert successor.reassimilated == 3 and len(successor.images) == 3
    taken = successor.correction(IMAGE_TIMES_S[2], fed.metrics)
    assert taken.to_dict() == {
        **fed.to_dict(),
        "update_s": taken.to_dict()["update_s"],
        "ensemble": taken.to_dict()["ensemble"],
        "notes": taken.notes,
    }
    assert np.array_equal(taken.min_temperature[50.0], fed.min_temperature[50.0])
    # both go on alike
    for t in IMAGE_TIMES_S[3:]:
        a, b = successor.update(t, zones[t]), fresh.update(t, zones[t])
    assert np.array_equal(a.min_temperature[10.0], b.min_temperature[10.0])
    assert a.to_dict()["ensemble"]["generation"] == 1
    assert a.to_dict()["ensemble"]["images_reassimilated"] == 3


def test_a_probe_8_mm_off_is_reached_by_the_re_centred_ensemble_not_by_the_plan_s(plan):
    """One probe 8 mm off its plan (4 σ of the 2 mm RMS insertion prior on one axis): the plan's
    ensemble, combined linearly, ends with that probe's offset under 2 mm and its −40 °C surface
    about 1.6 mm (mean surface distance) from the truth's; re-centred after the first freeze's
    images (twice, each on the posterior before it), the offset ends beyond 3.5 mm and the
    surface within 1.0 mm, at least 0.5 mm nearer than the plan's ensemble."""
    case, corrector = plan
    zones, truth_min = run(moved(case, 0, (8.0, 0.0, 0.0)))

    def msd(field) -> float:
        return overlap_metrics(field <= -40.0, truth_min <= -40.0, case.grid.spacing_mm)[
            "mean_surface_distance_mm"
        ]

    corrector.reset()
    for t in IMAGE_TIMES_S:
        first = corrector.update(t, zones[t])
    correcting = pr.Correcting(corrector)  # re-centred in line where the rule asks, as the validation
    for t in IMAGE_TIMES_S:
        correcting(t, "volume", zones[t])
    final = correcting.corrections[-1]
    # within 30 s of the first freeze's end, then at it
    assert [t for t, _ in correcting.recentred] == [120.0, 150.0]
    assert correcting.corrector.generation == 2
    reached = final.parameters["tip_offset_R:P1"]["mean"]
    assert first.parameters["tip_offset_R:P1"]["mean"] < 2.0
    assert reached > 3.5, reached
    assert msd(final.min_temperature[50.0]) <= min(1.0, msd(first.min_temperature[50.0]) - 0.5)
    assert final.to_dict()["ensemble"]["generation"] == 2
    assert any("re-centred" in note for note in final.notes)


def test_the_rule_waits_for_a_volume_after_the_first_freeze_and_a_moved_posterior(plan):
    """No re-centring before the first freeze has (nearly) ended, after the generations allowed,
    when the posterior moved less than ``recentre_shift`` prior spreads, or with 0 generations
    (the first ensemble throughout). The defaults: at most 2, when the posterior moved more than
    1 prior spread (docs/live-link.md says on which seeds this was chosen)."""
    case, corrector = plan
    zones, _ = run(moved(case, 0, (4.0, 0.0, 0.0)))
    assert corrector.first_freeze_end_s() == 150.0
    corrector.reset()
    corrector.update(60.0, zones[60.0])
    assert corrector.posterior_shift() > 0 and not corrector.recentring_due()  # 60 s: still freezing
    corrector.update(150.0, zones[150.0])
    assert corrector.recentring_due()
    default = corrector.settings
    try:
        corrector.settings = replace(default, recentre_shift=corrector.posterior_shift() + 0.1)
        assert not corrector.recentring_due()
        corrector.settings = replace(default, recentre_generations=0)
        assert not corrector.recentring_due()
    finally:
        corrector.settings = default
    assert (CorrectionSettings().recentre_generations, CorrectionSettings().recentre_shift) == (2, 1.0)
    with pytest.raises(InputError, match="recentre_generations"):
        replace(default, recentre_generations=-1).check()
    with pytest.raises(InputError, match="recentre_shift"):
        replace(default, recentre_shift=math.nan).check()


def test_a_journaled_centre_round_trips_and_a_damaged_one_is_refused_by_field(plan):
    case, corrector = plan
    zones, _ = run(case)
    corrector.reset()
    corrector.update(150.0, zones[150.0])
    centre = corrector.recentred().centre
    data = centre.to_dict()
    assert Recentring.from_dict(data, len(case.probes), len(corrector._materials()), "note") == centre
    for key, bad in (
        ("cooling", [1.0]),
        ("tilt", "x"),
        ("perfusion", [[0.5, math.inf]] * 9),
        ("generation", 0),
    ):
        with pytest.raises(InputError, match=rf"note: centre\.{key}"):
            Recentring.from_dict({**data, key: bad}, len(case.probes), len(corrector._materials()), "note")
