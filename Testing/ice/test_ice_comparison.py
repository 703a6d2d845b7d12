"""Observed against predicted: volume, Dice, mean/max surface distance, and the distance from the
observed ice edge to each critical structure with a warning inside its margin."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.analysis.ice_comparison import overlap_metrics, structure_distances
from CryoAblationLogic.core.errors import InputError

SPACING = (0.5, 0.5, 0.5)


def ball(radius_mm: float, centre=(0.0, 0.0, 0.0), half_mm: float = 20.0) -> np.ndarray:
    axis = np.arange(-half_mm, half_mm + 1e-9, SPACING[0])
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius_mm**2


def test_concentric_balls_give_the_analytic_dice_and_surface_distance():
    observed, predicted = ball(10.0), ball(11.0)
    metrics = overlap_metrics(observed, predicted, SPACING)
    assert metrics["dice"] == pytest.approx(2 * 10**3 / (10**3 + 11**3), abs=0.01)
    assert metrics["mean_surface_distance_mm"] == pytest.approx(1.0, abs=0.25)  # half a voxel
    assert metrics["max_surface_distance_mm"] == pytest.approx(1.0, abs=0.5)
    assert metrics["volume_ml"] == pytest.approx(4 / 3 * np.pi * 1000 / 1000, rel=0.02)
    assert metrics["predicted_volume_ml"] == pytest.approx(4 / 3 * np.pi * 1331 / 1000, rel=0.02)


def test_identical_masks_agree_perfectly_and_empty_ones_say_so():
    mask = ball(8.0)
    metrics = overlap_metrics(mask, mask, SPACING)
    assert metrics["dice"] == 1.0 and metrics["max_surface_distance_mm"] == 0.0
    empty = overlap_metrics(np.zeros_like(mask), mask, SPACING)
    assert empty["dice"] == 0.0 and empty["mean_surface_distance_mm"] is None


def test_slices_are_measured_in_their_plane_as_areas():
    disc = ball(10.0)[:, :, 40:41]  # the equatorial plane, one voxel thick
    metrics = overlap_metrics(disc, disc, SPACING)
    assert metrics["area_cm2"] == pytest.approx(np.pi * 100 / 100, rel=0.02)
    assert "volume_ml" not in metrics


def test_distance_to_a_structure_and_the_margin_warning():
    ice = ball(10.0)
    labels = np.zeros(ice.shape, np.int32)
    labels[ball(4.0, centre=(18.0, 0.0, 0.0))] = 5  # nearest point 14 mm from the centre: 4 mm gap
    within = structure_distances(ice, labels, SPACING, {"Bowel": 5}, margin_mm=5.0)["Bowel"]
    assert within["distance_mm"] == pytest.approx(4.0, abs=0.5)
    assert "within its 5 mm margin" in within["warning"]
    clear = structure_distances(ice, labels, SPACING, {"Bowel": 5}, margin_mm={"Bowel": 3.0})["Bowel"]
    assert clear["warning"] is None and clear["margin_mm"] == 3.0


def test_ice_reaching_into_a_structure_is_a_warning_with_the_frozen_volume():
    ice = ball(10.0)
    labels = np.zeros(ice.shape, np.int32)
    labels[ball(4.0, centre=(12.0, 0.0, 0.0))] = 5
    entry = structure_distances(ice, labels, SPACING, {"Bowel": 5})["Bowel"]
    assert entry["distance_mm"] == 0.0 and entry["frozen_ml"] > 0
    assert "reaches into" in entry["warning"]


def test_structures_out_of_view_or_without_ice_are_reported_not_guessed():
    labels = np.zeros((81, 81, 81), np.int32)
    labels[0:3, 0:3, 0:3] = 5
    report = structure_distances(ball(10.0), labels, SPACING, {"Bowel": 5, "Vessel": 4})
    assert report["Vessel"]["distance_mm"] is None and "field of view" in report["Vessel"]["note"]
    no_ice = structure_distances(np.zeros_like(labels, bool), labels, SPACING, {"Bowel": 5})
    assert no_ice["Bowel"]["note"] == "no ice observed"
    with pytest.raises(InputError, match="margin_mm"):
        structure_distances(ball(10.0), labels, SPACING, {"Bowel": 5}, margin_mm=-1.0)
