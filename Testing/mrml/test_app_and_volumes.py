"""The headless scene is set up like Slicer's, saves as .mrb and loads back; fields ↔ volume nodes."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.scene import volumes
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb, save_scene_mrb


def test_scene_has_slicer_default_nodes_and_logics(scene_app):
    scene = scene_app.scene
    for name in ("Volumes", "Segmentations", "Markups", "Sequences", "Tables", "Plots", "Colors"):
        assert scene_app.logic(name) is scene_app.app_logic.GetModuleLogic(name)
    assert scene.GetFirstNodeByClass("vtkMRMLCrosshairNode") is not None
    assert scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None  # default colour nodes
    assert scene.GetNodeByID("vtkMRMLInteractionNodeSingleton") is not None


def test_field_to_volume_node_keeps_values_and_placement(scene):
    grid = Grid((-10.0, 5.0, 2.5), (1.0, 2.0, 0.5), (4, 5, 6))
    field = np.arange(np.prod(grid.size), dtype=np.float32).reshape(grid.size)
    node = volumes.add_volume_node(scene, "field", field, grid)
    back, back_grid = volumes.volume_field(node)
    assert back_grid == grid
    np.testing.assert_array_equal(back, field)
    # voxel (1, 2, 3) lies at origin + ijk * spacing in RAS
    ras = volumes.ijk_to_ras(node) @ np.array([1, 2, 3, 1.0])
    np.testing.assert_allclose(ras[:3], [-9.0, 9.0, 4.0])


def test_flipped_volume_resamples_onto_ras_grid(scene):
    grid = Grid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (5, 6, 7))
    field = np.random.default_rng(1).integers(0, 9, grid.size).astype(np.int16)
    node = volumes.add_volume_node(scene, "flipped", np.flip(field, axis=0), grid)
    # make i run towards −R: the same voxels now start at x = 4 and go left
    matrix = grid.ijk_to_ras_matrix()
    matrix[0, 0] = -1.0
    matrix[0, 3] = 4.0
    node.SetIJKToRASMatrix(volumes.matrix_to_vtk(matrix))
    array, own_grid = volumes.volume_field(node)
    assert own_grid == grid
    np.testing.assert_array_equal(array, field)
    np.testing.assert_array_equal(volumes.resample_volume(node, grid, label_map=True), field)


def test_mrb_round_trip_keeps_volume_markups_and_attributes(tmp_path, scene_app):
    scene = scene_app.scene
    grid = Grid((-3.0, -3.0, -3.0), (1.5, 1.5, 1.5), (5, 5, 5))
    field = np.linspace(-50, 37, 125, dtype=np.float32).reshape(grid.size)
    volumes.add_volume_node(scene, "temperature", field, grid)
    line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "P1")
    line.AddControlPointWorld([1.0, 2.0, 3.0], "tip")
    line.AddControlPointWorld([1.0, 2.0, 50.0], "entry")
    line.SetAttribute("CryoAblation.ProbeModel", "argon-1.47mm")
    path = save_scene_mrb(scene, tmp_path / "scene.mrb")

    loaded_app = create_scene_app()  # keep the app alive: it owns the cache folder .mrb unpacks into
    loaded = loaded_app.scene
    load_scene_mrb(loaded, path)
    volume = loaded.GetFirstNodeByName("temperature")
    back, back_grid = volumes.volume_field(volume)
    assert back_grid == grid
    np.testing.assert_array_equal(back, field)
    probe = loaded.GetFirstNodeByName("P1")
    assert probe.GetAttribute("CryoAblation.ProbeModel") == "argon-1.47mm"
    entry = np.zeros(3)
    probe.GetNthControlPointPositionWorld(1, entry)
    np.testing.assert_allclose(entry, [1.0, 2.0, 50.0])


def test_missing_mrb_is_an_input_error(tmp_path, scene):
    with pytest.raises(InputError, match="not found"):
        load_scene_mrb(scene, tmp_path / "absent.mrb")
    with pytest.raises(ValueError, match=r"\.mrb"):
        save_scene_mrb(scene, tmp_path / "scene.zip")
