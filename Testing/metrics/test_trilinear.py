"""Trilinear sampling at voxel indices (``analysis/grid_geometry.trilinear_at_indices``), which the
metrics and the ice pictures use instead of SciPy (a test dependency only: a pip install of
CryoAblation does not bring it)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from CryoAblationLogic.analysis.grid_geometry import trilinear_at_indices


@pytest.mark.parametrize("shape", [(7, 5, 4), (9, 6, 1)], ids=["volume", "one-voxel slice"])
def test_it_agrees_with_scipys_linear_interpolation_clamped_at_the_edges(shape):
    """Within 1e-5 (float32 data) of ``map_coordinates(order=1, mode="nearest")``, for points
    inside, on the outer voxel centres and up to two voxels beyond them."""
    rng = np.random.default_rng(5)
    field = rng.normal(size=shape).astype(np.float32)
    ijk = rng.uniform(-2.0, np.array(shape) + 1.0, size=(500, 3))
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1).T
    ijk = np.vstack([ijk, corners])
    expected = map_coordinates(field, ijk.T, order=1, mode="nearest")
    assert np.allclose(trilinear_at_indices(field, ijk), expected, atol=1e-5)


def test_a_linear_field_is_reproduced_exactly_between_voxel_centres():
    i, j, k = np.indices((6, 6, 6), dtype=float)
    field = 2.0 * i - 3.0 * j + 0.5 * k + 7.0
    points = np.array([[0.25, 4.5, 2.75], [3.0, 3.0, 3.0], [4.99, 0.01, 5.0]])
    expected = 2.0 * points[:, 0] - 3.0 * points[:, 1] + 0.5 * points[:, 2] + 7.0
    assert np.allclose(trilinear_at_indices(field, points), expected, atol=1e-12)
