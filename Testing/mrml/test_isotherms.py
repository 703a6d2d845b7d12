"""Isotherm segments are smooth closed surfaces contoured from the field, one per level of an
editable colour table, with the volume the field encloses."""

from __future__ import annotations

import numpy as np
import pytest
from scene_testing import BALL_CENTER_MM, isotherm_radius, radial_field
from vtkmodules.util import numpy_support
from vtkmodules.vtkFiltersCore import vtkFeatureEdges

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.scene import colors, isotherms
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb, save_scene_mrb


def surface_radii(surface) -> np.ndarray:
    points = numpy_support.vtk_to_numpy(surface.GetPoints().GetData())
    return np.linalg.norm(points - BALL_CENTER_MM, axis=1)


@pytest.mark.parametrize("level", [0.0, -20.0, -40.0])
def test_contour_is_a_smooth_sphere_of_the_analytic_radius(small_grid, level):
    field = radial_field(small_grid, 20.0)
    surface = isotherms.contour_isotherm(field, small_grid, level)
    radii = surface_radii(surface)
    expected = isotherm_radius(level, 20.0)
    # Contoured, not thresholded: every vertex lies on the true sphere to a small fraction of a
    # voxel (a voxel staircase would put vertices up to half a voxel diagonal, 0.87 mm, off).
    assert np.max(np.abs(radii - expected)) < 0.15
    volume = isotherms.surface_volume_ml(surface)
    # flat facets cut inside the sphere: allow a shell of 0.1 mm over its area
    shell_ml = 4 * np.pi * expected**2 * 0.1 / 1000
    assert volume == pytest.approx(4 / 3 * np.pi * expected**3 / 1000, abs=shell_ml)


def test_segment_volume_agrees_with_voxel_count_within_one_voxel_layer(small_grid):
    field = radial_field(small_grid, 20.0)
    surface = isotherms.contour_isotherm(field, small_grid, -20.0)
    voxel_ml = np.count_nonzero(field <= -20.0) * small_grid.voxel_volume_mm3 / 1000
    area_mm2 = 4 * np.pi * isotherm_radius(-20.0, 20.0) ** 2
    layer_ml = area_mm2 * small_grid.spacing_mm[0] / 1000
    assert abs(isotherms.surface_volume_ml(surface) - voxel_ml) < layer_ml


def test_ice_touching_the_grid_edge_still_gives_a_closed_surface():
    grid = Grid((-5.0, -5.0, -5.0), (1.0, 1.0, 1.0), (11, 11, 11))
    field = np.full(grid.size, -30.0, dtype=np.float32)  # all frozen
    surface = isotherms.contour_isotherm(field, grid, 0.0)
    # the surface closes through the warm padding layer around the grid
    assert isotherms.surface_volume_ml(surface) > 1.0
    edges = vtkFeatureEdges()
    edges.SetInputData(surface)
    edges.BoundaryEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.NonManifoldEdgesOff()
    edges.Update()
    assert edges.GetOutput().GetNumberOfCells() == 0  # no open boundary


def test_no_ice_gives_empty_segments_that_survive_saving(tmp_path, scene, small_grid):
    node = isotherms.create_isotherm_segmentation(scene)
    table = colors.create_isotherm_color_table(scene)
    volumes = isotherms.update_isotherm_segmentation(
        node, np.full(small_grid.size, 37.0, np.float32), small_grid, colors.isotherm_levels(table)
    )
    assert volumes == {0.0: 0.0, -20.0: 0.0, -40.0: 0.0}
    assert node.GetSegmentation().GetNumberOfSegments() == 3
    app = create_scene_app()
    load_scene_mrb(app.scene, save_scene_mrb(scene, tmp_path / "empty.mrb"))
    loaded = app.scene.GetFirstNodeByName(node.GetName())
    assert isotherms.segmentation_levels(loaded) == [0.0, -20.0, -40.0]
    assert isotherms.surface_volume_ml(isotherms.isotherm_surface(loaded, -40.0)) == 0.0


def test_segmentation_follows_the_editable_level_table(scene, small_grid):
    table = colors.create_isotherm_color_table(scene)
    assert [level for level, _ in colors.isotherm_levels(table)] == [0.0, -20.0, -40.0]
    node = isotherms.create_isotherm_segmentation(scene)
    field = radial_field(small_grid, 20.0)
    isotherms.update_isotherm_segmentation(node, field, small_grid, colors.isotherm_levels(table))
    segmentation = node.GetSegmentation()
    assert [segmentation.GetSegment(i).GetName() for i in segmentation.GetSegmentIDs()] == [
        "0 °C",
        "-20 °C",
        "-40 °C",
    ]
    assert segmentation.GetSourceRepresentationName() == "Closed surface"
    display = node.GetDisplayNode()
    assert display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    assert display.GetPreferredDisplayRepresentationName2D() == "Closed surface"

    # the user edits the table: −20 becomes −15 and −40 goes away
    colors.set_isotherm_levels(table, [0.0, -15.0])
    volumes = isotherms.update_isotherm_segmentation(node, field, small_grid, colors.isotherm_levels(table))
    assert isotherms.segmentation_levels(node) == [0.0, -15.0]
    assert volumes[-15.0] == pytest.approx(4 / 3 * np.pi * isotherm_radius(-15.0, 20.0) ** 3 / 1000, rel=0.03)


def test_level_table_with_a_non_temperature_name_is_refused(scene):
    table = colors.create_isotherm_color_table(scene)
    table.SetColorName(1, "lethal")
    with pytest.raises(InputError, match="lethal"):
        colors.isotherm_levels(table)
    with pytest.raises(InputError, match="repeat"):
        colors.create_isotherm_color_table(scene, [0.0, 0.0])


def test_temperature_table_marks_freezing(scene):
    table = colors.get_or_create_temperature_color_table(scene)
    assert colors.get_or_create_temperature_color_table(scene) is table  # one per scene
    entry = colors.temperature_table_entry(0.0)
    rgba = [0.0] * 4
    table.GetColor(entry, rgba)
    assert rgba[:3] == list(colors.FREEZING_MARK_RGB)
    cold, warm = [0.0] * 4, [0.0] * 4
    table.GetColor(colors.temperature_table_entry(-100.0), cold)
    table.GetColor(colors.temperature_table_entry(30.0), warm)
    assert cold[2] > cold[0] and warm[0] > warm[2]  # diverging: blue when cold, red when warm
