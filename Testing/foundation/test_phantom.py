"""The built-in phantom: anatomy where the module docstring says, deterministic, MR-like."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.io import phantom as ph


@pytest.fixture(scope="module")
def phantom():
    return ph.make_phantom(spacing_mm=1.0)


def test_tumour_volume_matches_a_24_mm_sphere_within_a_voxel_layer(phantom):
    volume_mm3 = np.count_nonzero(phantom.labels == 3) * phantom.grid.voxel_volume_mm3
    expected = 4.0 / 3.0 * np.pi * ph.TUMOR_RADIUS_MM**3
    shell = 4.0 * np.pi * ph.TUMOR_RADIUS_MM**2 * 1.0  # one 1 mm voxel layer
    assert abs(volume_mm3 - expected) < shell


def test_every_label_has_a_material_and_a_role(phantom):
    present = set(np.unique(phantom.labels).tolist())
    assert present == set(ph.LABELS)
    roles = {role for _, _, role in ph.LABELS.values()}
    assert {"target", "critical", "vessel", "organ"} <= roles


def test_phantom_is_deterministic_and_vessels_are_dark(phantom):
    again = ph.make_phantom(spacing_mm=1.0)
    np.testing.assert_array_equal(again.image, phantom.image)
    fat = np.median(phantom.image[phantom.labels == 1])
    vessel = np.median(phantom.image[phantom.labels == 4])
    assert fat > 5 * vessel  # T1w GRE: fat bright, flowing blood a void


def test_demo_plan_probes_are_15_mm_apart_and_inside_the_field_of_view(phantom):
    probes = ph.demo_probe_plan()
    tips = np.array([p["tip_mm"] for p in probes])
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.linalg.norm(tips[a] - tips[b]) == pytest.approx(ph.PROBE_SPACING_MM, abs=0.01)
    for probe in probes:
        assert phantom.grid.contains_ras(probe["tip_mm"])
    assert sum(step["duration_s"] for step in ph.demo_protocol()) == 1680
