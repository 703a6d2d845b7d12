"""Grids and NRRD files: voxel (i,j,k) at origin + ijk·spacing in RAS, stored the way Slicer does."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.volumes import read_nrrd, write_nrrd


def test_grid_from_case_dict_accepts_scalar_or_vector_spacing():
    grid = Grid.from_dict({"origin_mm": [-40, -40, -50], "spacing_mm": 1.0, "size": [81, 81, 101]})
    assert grid.spacing_mm == (1.0, 1.0, 1.0)
    assert grid.voxel_count == 81 * 81 * 101
    np.testing.assert_allclose(grid.index_to_ras([40, 40, 50]), [0, 0, 0])
    anisotropic = Grid.from_dict({"origin_mm": [0, 0, 0], "spacing_mm": [0.5, 0.5, 2], "size": [4, 4, 4]})
    np.testing.assert_allclose(anisotropic.ras_to_index([1.0, 1.0, 4.0]), [2, 2, 2])


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"origin_mm": [0, 0], "spacing_mm": 1, "size": [4, 4, 4]}, "grid.origin_mm"),
        ({"origin_mm": [0, 0, 0], "spacing_mm": -1, "size": [4, 4, 4]}, "grid.spacing_mm"),
        ({"origin_mm": [0, 0, 0], "spacing_mm": 1, "size": [4, 4.5, 4]}, "grid.size"),
        ({"origin_mm": [0, 0, 0], "spacing_mm": 1}, "grid.size"),
        ({"origin_mm": [0, 0, 0], "spacing_mm": 1, "size": [4, 4, 4], "extra": 1}, "grid.extra"),
    ],
)
def test_invalid_grid_is_refused_naming_the_key(data, key):
    with pytest.raises(InputError) as error:
        Grid.from_dict(data)
    assert error.value.key == key


def test_nrrd_round_trip_keeps_values_and_placement(tmp_path):
    grid = Grid((-10.0, 5.0, 2.5), (0.5, 1.0, 2.0), (6, 5, 4))
    field = np.arange(grid.voxel_count, dtype=np.float32).reshape(grid.size)
    path = write_nrrd(tmp_path / "field.nrrd", field, grid)
    back, back_grid = read_nrrd(path)
    assert back_grid == grid
    np.testing.assert_array_equal(back, field)


def test_nrrd_header_is_lps_as_slicer_writes_it(tmp_path):
    grid = Grid((-10.0, 5.0, 2.5), (0.5, 1.0, 2.0), (6, 5, 4))
    path = write_nrrd(tmp_path / "field.nrrd", np.zeros(grid.size, np.float32), grid, compress=False)
    header = path.read_bytes().split(b"\n\n", 1)[0].decode()
    assert "space: left-posterior-superior" in header
    assert "space directions: (-0.5,0,0) (0,-1,0) (0,0,2)" in header
    assert "space origin: (10,-5,2.5)" in header


def test_reading_a_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_nrrd(tmp_path / "missing.nrrd")
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: float\n")
    with pytest.raises(InputError, match="not a readable image"):
        read_nrrd(broken)
