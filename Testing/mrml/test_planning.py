"""Planning in the scene: the parameter node, probes as line nodes with needles that follow them,
segment roles and materials, and the case the scene describes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from vtkmodules.util import numpy_support

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io import phantom
from CryoAblationLogic.scene import case_io, inputs, probes
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.colors import create_isotherm_color_table
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene

# A catalog entry as the solver's ProbeModel has it (docs/architecture.md): enough for the needle geometry.
CATALOG = {
    "test-17G": SimpleNamespace(name="test-17G", diameter_mm=1.5, active_length_mm=30.0, tip_length_mm=5.0)
}


def test_parameter_node_is_the_module_singleton_with_typed_settings(scene):
    parameters = P.get_parameter_node(scene)
    assert P.get_parameter_node(scene).node is parameters.node
    assert parameters.node.GetSingletonTag() == "CryoAblation"
    assert parameters.settings() == P.PlanSettings()
    parameters.update_settings(grid_spacing_mm=1.5, boundaries={"default": {"type": "adiabatic"}})
    settings = parameters.settings()
    assert settings.grid_spacing_mm == 1.5 and isinstance(settings.grid_spacing_mm, float)
    assert settings.boundaries == {"default": {"type": "adiabatic"}}
    # One parameter per field, numbers as Slicer's parameterNodeWrapper writes them.
    assert parameters.node.GetParameter("preview_spacing_mm") == "2.0"
    assert parameters.node.GetParameter("preview_enabled") == "False"
    parameters.node.SetParameter("preview_spacing_mm", "coarse")
    with pytest.raises(InputError, match=r"preview_spacing_mm.*not a float"):
        parameters.settings()
    parameters.node.SetParameter("boundaries", "{broken")
    with pytest.raises(InputError, match=r"boundaries.*not valid JSON"):
        parameters.settings()


def test_a_scene_saved_with_json_settings_still_opens(scene):
    """Scenes saved before one scheme held every setting as JSON under ``Settings.``; they are read,
    and written back in the one scheme."""
    parameters = P.get_parameter_node(scene)
    node = parameters.node
    for name in ("grid_spacing_mm", "preview_spacing_mm", "protocol"):
        node.UnsetParameter(name)
    node.SetParameter("Settings.grid_spacing_mm", "1.5")
    node.SetParameter("Settings.preview_spacing_mm", "3")
    node.SetParameter("Settings.protocol", '[{"action": "freeze", "duration_s": 60, "probes": "all"}]')
    settings = parameters.settings()
    assert (settings.grid_spacing_mm, settings.preview_spacing_mm) == (1.5, 3.0)
    assert settings.protocol == [{"action": "freeze", "duration_s": 60, "probes": "all"}]
    parameters.set_settings(settings)
    assert node.GetParameter("preview_spacing_mm") == "3.0" and not node.GetParameter("Settings.protocol")


def test_parameter_node_references_nodes_by_role(scene):
    parameters = P.get_parameter_node(scene)
    first = probes.add_probe(scene, "P1", [0, 0, 0], [0, 0, 50], "test-17G")
    second = probes.add_probe(scene, "P2", [10, 0, 0], [10, 0, 50], "test-17G")
    parameters.add(P.PROBE, first)
    parameters.add(P.PROBE, second)
    parameters.add(P.PROBE, first)  # once only
    assert [node.GetName() for node in parameters.probes()] == ["P1", "P2"]
    parameters.remove(P.PROBE, first)
    assert [node.GetName() for node in parameters.probes()] == ["P2"]
    table = create_isotherm_color_table(scene)
    parameters.set(P.ISOTHERM_LEVELS, table)
    assert parameters.get(P.ISOTHERM_LEVELS) is table


def test_probe_line_has_tip_first_and_plan_attributes(scene):
    node = probes.add_probe(
        scene, "P1", [1, 2, 3], [1, 2, 83], "test-17G", protocol_group="A", diameter_mm=2.0
    )
    tip, entry = probes.probe_tip_entry(node)
    np.testing.assert_allclose(tip, [1, 2, 3])
    np.testing.assert_allclose(entry, [1, 2, 83])
    assert probes.is_probe(node) and probes.probe_group(node) == "A"
    assert probes.probe_case_entry(node) == {
        "name": "P1",
        "model": "test-17G",
        "tip_mm": [1.0, 2.0, 3.0],
        "entry_mm": [1.0, 2.0, 83.0],
        "diameter_mm": 2.0,
    }
    assert probes.probe_nodes(scene) == [node]
    with pytest.raises(InputError, match="coincide"):
        probes.add_probe(scene, "P2", [0, 0, 0], [0, 0, 0], "test-17G")


def model_bounds(model) -> np.ndarray:
    points = numpy_support.vtk_to_numpy(model.GetPolyData().GetPoints().GetData())
    return np.array([points.min(axis=0), points.max(axis=0)])


def test_needle_models_follow_the_dragged_probe(scene):
    node = probes.add_probe(scene, "P1", [0, 0, 0], [0, 0, 80], "test-17G")
    moved = []
    follower = probes.NeedleFollower(CATALOG, on_probe_moved=moved.append)
    follower.follow(node)
    needle = node.GetNodeReference(probes.NEEDLE_REFERENCE)
    zone = node.GetNodeReference(probes.ACTIVE_ZONE_REFERENCE)
    bounds = model_bounds(needle)
    np.testing.assert_allclose(bounds[:, 2], [0, 80], atol=1e-6)  # tip to entry
    np.testing.assert_allclose(bounds[1, :2] - bounds[0, :2], [1.5, 1.5], atol=0.02)  # the diameter
    np.testing.assert_allclose(model_bounds(zone)[:, 2], [5, 35], atol=1e-6)  # after the 5 mm tip, 30 mm long

    node.SetNthControlPointPositionWorld(probes.TIP_INDEX, [10.0, 0.0, 0.0])  # drag the tip
    assert moved and moved[-1] is node
    bounds = model_bounds(needle)
    assert bounds[1, 0] == pytest.approx(10.0 + 0.75, abs=0.05)
    follower.stop()
    count = len(moved)
    node.SetNthControlPointPositionWorld(probes.TIP_INDEX, [20.0, 0.0, 0.0])
    assert len(moved) == count  # no longer followed
    probes.remove_probe(node)
    assert scene.GetNodeByID(needle.GetID()) is None


@pytest.fixture
def phantom_scene(scene_app):
    parameters = build_phantom_scene(scene_app.scene, scene_app.segmentations_logic, spacing_mm=2.0)
    return scene_app.scene, parameters


def test_phantom_segments_carry_roles_and_materials(phantom_scene):
    _, parameters = phantom_scene
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    infos = {info.name: info for info in inputs.segment_infos(segmentation)}
    assert {name: (info.material, info.role) for name, info in infos.items()} == {
        name: (material, role) for name, material, role in phantom.LABELS.values()
    }
    with pytest.raises(InputError, match="role"):
        inputs.set_segment_role(segmentation, infos["Fat"].segment_id, "lung")


def test_scene_case_holds_the_plan(phantom_scene):
    scene, parameters = phantom_scene
    scene_case = case_io.build_case(scene, parameters)
    data = scene_case.data
    reference = phantom.make_phantom(2.0)
    assert data["grid"] == reference.grid.to_dict()
    labels = scene_case.arrays["labels"]
    for label, (name, material, _) in phantom.LABELS.items():
        case_label = next(value for value, info in scene_case.label_segments.items() if info.name == name)
        assert data["tissue_map"]["labels"][str(case_label)] == material
        np.testing.assert_array_equal(labels == case_label, reference.labels == label)
    assert data["tissue_map"]["labels"]["0"] == "fat"  # the background material
    assert [p["name"] for p in data["probes"]] == ["P1", "P2", "P3"]
    assert data["probes"][0]["tip_mm"] == phantom.demo_probe_plan()[0]["tip_mm"]
    assert data["protocol"] == phantom.demo_protocol()
    assert [s["name"] for s in data["sensors"]] == ["TC1", "TC2"]
    assert data["outputs"] == {"isotherms_c": [0.0, -20.0, -40.0], "snapshot_times_s": [600.0, 1680.0]}


def test_protocol_may_name_probe_groups(phantom_scene):
    scene, parameters = phantom_scene
    p1 = parameters.probes()[0]
    probes.set_probe_model(p1, "argon-1.47mm", protocol_group="first")
    parameters.update_settings(
        protocol=[
            {"action": "freeze", "duration_s": 60, "probes": ["first"], "flow_percent": 100},
            {"action": "freeze", "duration_s": 60, "probes": ["P2", "P3"], "flow_percent": 50},
        ]
    )
    protocol = case_io.build_case(scene, parameters).data["protocol"]
    assert protocol[0]["probes"] == ["P1"] and protocol[1]["probes"] == ["P2", "P3"]
    parameters.update_settings(protocol=[{"action": "freeze", "duration_s": 60, "probes": ["P9"]}])
    with pytest.raises(InputError, match=r"protocol\[0\]\.probes"):
        case_io.build_case(scene, parameters)


def test_roi_grid_covers_target_and_probe_tips_only(phantom_scene):
    scene, parameters = phantom_scene
    parameters.update_settings(roi_margin_mm=15.0)
    grid = case_io.build_case(scene, parameters).grid
    full = phantom.make_grid(2.0)
    assert np.prod(grid.size) < 0.5 * np.prod(full.size)
    for probe in parameters.probes():
        assert grid.contains_ras(probes.probe_tip_entry(probe)[0])
    reference = phantom.make_phantom(2.0)
    tumour_ras = reference.grid.index_to_ras(np.argwhere(reference.labels == 3))
    grid_low = np.asarray(grid.origin_mm)
    grid_high = grid_low + np.asarray(grid.spacing_mm) * (np.asarray(grid.size) - 1)
    assert np.all(grid_low <= tumour_ras.min(axis=0) - 15.0 + 1e-6)  # the margin around the target
    assert np.all(grid_high >= tumour_ras.max(axis=0) + 15.0 - 2.0)  # (the far side snaps to the grid)


def test_cached_image_labels_cut_to_the_region_equal_fresh_labels(phantom_scene):
    scene, parameters = phantom_scene
    cache: dict = {}
    whole = case_io.build_case(scene, parameters, labels_cache=cache)
    cut = case_io.build_case(scene, parameters, labels_cache=cache, roi_margin_mm=10.0)
    fresh = case_io.build_case(scene, parameters, roi_margin_mm=10.0)
    assert cut.grid == fresh.grid and cut.grid != whole.grid
    np.testing.assert_array_equal(cut.arrays["labels"], fresh.arrays["labels"])
    assert cut.data["tissue_map"] == fresh.data["tissue_map"]


def test_finer_grid_resamples_labels_nearest_neighbour(phantom_scene):
    scene, parameters = phantom_scene
    parameters.update_settings(grid_spacing_mm=1.0)
    scene_case = case_io.build_case(scene, parameters)
    assert scene_case.grid.spacing_mm == (1.0, 1.0, 1.0)
    labels = scene_case.arrays["labels"]
    assert set(np.unique(labels).tolist()) <= set(scene_case.label_segments)  # no blended labels
    coarse = case_io.build_case(scene, parameters, spacing_mm=2.0).arrays["labels"]
    np.testing.assert_array_equal(labels[::2, ::2, ::2], coarse)  # shared voxel centres agree


def test_segment_without_material_is_refused(phantom_scene):
    scene, parameters = phantom_scene
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    fat = next(info for info in inputs.segment_infos(segmentation) if info.name == "Fat")
    segmentation.GetSegmentation().GetSegment(fat.segment_id).RemoveTag(inputs.MATERIAL_TAG)
    with pytest.raises(InputError, match=r"segment Fat\.material"):
        case_io.build_case(scene, parameters)


def test_missing_image_volume_is_refused(scene):
    with pytest.raises(InputError, match="InputVolume"):
        case_io.build_case(scene, P.get_parameter_node(scene))
