"""The phantom registered in Slicer's SampleData is made locally and loads with Slicer's own readers.

Slicer's volume and segmentation storage nodes come from slicer-core (the same C++ readers Slicer
uses when SampleData loads the files).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from vtkmodules.util import numpy_support

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io import phantom
from CryoAblationLogic.scene import sample_data

slicer = pytest.importorskip("slicer", reason="slicer-core is needed to read the files the way Slicer does")


@pytest.fixture(scope="module")
def recipe():
    return sample_data.load_recipe()


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory, recipe):
    return sample_data.write_sample_files(tmp_path_factory.mktemp("sample"), recipe)


def test_recipe_names_the_sampledata_entry(recipe):
    assert recipe.category == "CryoAblation"
    assert recipe.sample_name and recipe.volume_node_name and recipe.segmentation_node_name
    assert recipe.volume_file.endswith(".nrrd") and recipe.segmentation_file.endswith(".seg.nrrd")
    assert recipe.spacing_mm > 0


def read_volume(path):
    scene = slicer.vtkMRMLScene()
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(volume) == 1
    return volume


def read_segmentation(path):
    scene = slicer.vtkMRMLScene()
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(segmentation) == 1
    return segmentation


def ijk_to_ras(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_volume_loads_where_the_phantom_is(sample_files, recipe):
    volume = read_volume(sample_files.volume)
    grid = phantom.make_grid(recipe.spacing_mm)
    expected = np.eye(4)
    expected[:3, :3] *= recipe.spacing_mm
    expected[:3, 3] = grid.origin_mm
    np.testing.assert_allclose(ijk_to_ras(volume), expected, atol=1e-6)
    assert volume.GetImageData().GetDimensions() == tuple(grid.size)


def test_segmentation_has_one_named_segment_per_label_with_the_phantom_voxels(sample_files, recipe):
    made = phantom.make_phantom(recipe.spacing_mm)
    segmentation = read_segmentation(sample_files.segmentation).GetSegmentation()
    names = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        names[segment.GetName()] = segment
    assert set(names) == {name for name, _material, _role in phantom.LABELS.values()}
    for label, (name, _material, _role) in phantom.LABELS.items():
        segment = names[name]
        assert segment.GetLabelValue() == label
        image = segment.GetRepresentation("Binary labelmap")
        values = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        assert int((values == label).sum()) == int((made.labels == label).sum()), name


def test_segments_carry_the_roles_and_materials_the_planner_reads(sample_files):
    from CryoAblationLogic.scene import inputs

    segmentation = read_segmentation(sample_files.segmentation)
    found = {info.name: (info.role, info.material) for info in inputs.segment_infos(segmentation)}
    assert found == {name: (role, material) for name, material, role in phantom.LABELS.values()}


def test_segment_geometry_matches_the_volume(sample_files):
    import vtk

    volume = read_volume(sample_files.volume)
    segment = read_segmentation(sample_files.segmentation).GetSegmentation().GetNthSegment(0)
    image = segment.GetRepresentation("Binary labelmap")
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    segment_matrix = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    np.testing.assert_allclose(segment_matrix, ijk_to_ras(volume), atol=1e-6)


def test_existing_files_are_kept_unless_overwritten(tmp_path, recipe):
    files = sample_data.write_sample_files(tmp_path, recipe)
    stamp = files.volume.stat().st_mtime_ns
    sample_data.write_sample_files(tmp_path, recipe)
    assert files.volume.stat().st_mtime_ns == stamp
    assert sample_data.sample_file_paths(tmp_path, recipe) == files


def test_bad_recipe_is_refused_with_the_missing_key(tmp_path):
    data = json.loads(sample_data.resource_path(*sample_data.RECIPE).read_text())
    del data["spacing_mm"]
    bad = tmp_path / "recipe.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="spacing_mm"):
        sample_data.load_recipe(bad)


def test_segmentation_writer_refuses_unnamed_labels_and_wrong_shapes(tmp_path):
    grid = Grid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (4, 4, 4))
    labels = np.zeros(grid.size, dtype=np.uint8)
    labels[1, 1, 1] = 7
    with pytest.raises(ValueError, match=r"\[7\]"):
        sample_data.write_segmentation_nrrd(tmp_path / "x.seg.nrrd", labels, grid, {1: "A"})
    with pytest.raises(ValueError, match="shape"):
        sample_data.write_segmentation_nrrd(tmp_path / "x.seg.nrrd", labels[:2], grid, {7: "A"})
