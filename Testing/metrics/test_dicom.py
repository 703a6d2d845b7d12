"""DICOM out and in: an MR series, a SEG, an RT Structure Set and parametric maps written on a case
grid read back with independent readers (SimpleITK, pydicom, highdicom) at the grid's geometry
to 0.1 mm, and a case built from them on the command line."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from CryoAblationLogic.cli.main import main
from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.dicom_export import (
    Region,
    write_mr_series,
    write_result_dicom,
    write_rt_structure_set,
    write_segmentation,
)
from CryoAblationLogic.io.dicom_import import read_mr_series, read_structures

GEOMETRY_TOL_MM = 0.1


@pytest.fixture(scope="module")
def scene(shapes, tmp_path_factory):
    """A 1 × 1.5 × 2 mm grid off the origin (so that a swapped axis or sign shows), a target ball,
    a bowel ball beside it and a radial ice ball; all written as DICOM."""
    grid = Grid((-20.0, -31.5, 6.0), (1.0, 1.5, 2.0), (41, 31, 17))
    x, y, z = shapes.coordinates(grid)
    centre = (-2.0, -7.5, 22.0)  # on a voxel centre: the digital ball is symmetric about it
    r = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    target = r <= 8.0
    bowel = (x - 12.0) ** 2 + (y + 8.0) ** 2 + (z - 22.0) ** 2 <= 25.0
    temperature = (8.0 * (r - 11.0)).astype(np.float32)  # 0 °C at 11 mm, −40 °C at 6 mm
    image = (300 + 200 * target + 50 * np.cos(x / 5.0) + 3 * z).astype(np.float32)
    out = tmp_path_factory.mktemp("dicom")
    files = write_result_dicom(
        out, image, grid, temperature + 5.0, temperature,
        {"target": {"Tumor": target}, "critical": {"Bowel": bowel}}, [0.0, -20.0, -40.0],
    )  # fmt: skip
    return {"grid": grid, "target": target, "bowel": bowel, "temperature": temperature, "image": image,
            "files": files, "out": out, "centre": centre}  # fmt: skip


def test_the_mr_series_reads_back_in_simpleitk_at_the_grid_in_lps(scene):
    grid = scene["grid"]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(scene["files"].mr_series)))
    image = reader.Execute()
    # ITK's origin is the first voxel centre in LPS: RAS with x and y negated
    assert np.allclose(image.GetOrigin(), np.asarray(grid.origin_mm) * RAS_LPS_FLIP, atol=GEOMETRY_TOL_MM)
    assert np.allclose(image.GetSpacing(), grid.spacing_mm, atol=1e-6)
    assert image.GetSize() == grid.size
    voxels = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    # stored as unsigned 16 bit: the image to the nearest integer, in the grid's index order
    assert np.array_equal(voxels, np.rint(scene["image"]))
    # back on the case grid, the same voxel is at the same RAS point
    array, read_grid, _ = read_mr_series(scene["files"].mr_series)
    assert np.allclose(read_grid.origin_mm, grid.origin_mm, atol=GEOMETRY_TOL_MM)
    assert read_grid.size == grid.size and np.array_equal(array, np.rint(scene["image"]))


def test_a_flipped_or_reordered_series_lands_on_the_same_ras_grid(scene, tmp_path):
    """A series stored with rows running to the patient's right (LPS +x) and slices from head to
    feet reads onto the same RAS voxels."""
    grid = scene["grid"]
    array = np.rint(scene["image"]).astype(np.uint16)
    flipped = sitk.GetImageFromArray(array[::-1, :, ::-1].transpose(2, 1, 0))  # +LPS x, −S slices
    flipped.SetSpacing(grid.spacing_mm)
    far_corner = grid.index_to_ras((grid.size[0] - 1, 0, grid.size[2] - 1))
    flipped.SetOrigin(tuple(far_corner * RAS_LPS_FLIP))
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, -1))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = pydicom.uid.generate_uid()
    for k in range(flipped.GetDepth()):
        piece = flipped[:, :, k]
        for tag, value in (
            ("0008|0060", "MR"), ("0020|000e", series_uid), ("0020|0013", str(k + 1)),
            ("0020|0037", "1\\0\\0\\0\\-1\\0"),
            ("0020|0032", "\\".join(str(v) for v in flipped.TransformIndexToPhysicalPoint((0, 0, k)))),
        ):  # fmt: skip
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"slice{k:03d}.dcm"))
        writer.Execute(piece)
    read, read_grid, _ = read_mr_series(tmp_path)
    assert np.allclose(read_grid.origin_mm, grid.origin_mm, atol=GEOMETRY_TOL_MM)
    assert np.allclose(read_grid.spacing_mm, grid.spacing_mm, atol=1e-4)
    assert np.array_equal(read, array)


def test_the_segmentation_references_the_series_and_holds_the_masks_at_their_places(scene):
    files, grid = scene["files"], scene["grid"]
    seg = hd.seg.segread(files.segmentation)
    series = [pydicom.dcmread(path) for path in sorted(files.mr_series.glob("*.dcm"))]
    assert seg.FrameOfReferenceUID == series[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == series[0].StudyInstanceUID
    referenced = {
        item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced <= {ds.SOPInstanceUID for ds in series}
    labels = [item.SegmentLabel for item in seg.SegmentSequence]
    assert labels == ["Tumor", "Bowel", "Isotherm 0 °C", "Isotherm -20 °C", "Isotherm -40 °C"]
    # every frame sits on an MR slice: same position to 0.1 mm
    slice_positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in series])
    for group in seg.PerFrameFunctionalGroupsSequence:
        position = np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient])
        assert np.min(np.linalg.norm(slice_positions - position, axis=1)) <= GEOMETRY_TOL_MM
    masks = read_structures(files.segmentation, grid)
    assert np.array_equal(masks["Tumor"], scene["target"])
    assert np.array_equal(masks["Bowel"], scene["bowel"])
    assert np.array_equal(masks["Isotherm -40 °C"], scene["temperature"] <= -40.0)


def test_the_structure_set_contours_lie_on_the_slices_around_the_masks(scene):
    files, grid = scene["files"], scene["grid"]
    rt = pydicom.dcmread(files.rt_structure_set)
    series = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in files.mr_series.glob("*.dcm")}
    names = [roi.ROIName for roi in rt.StructureSetROISequence]
    assert names[:2] == ["Tumor", "Bowel"]
    assert [o.RTROIInterpretedType for o in rt.RTROIObservationsSequence][:2] == ["GTV", "AVOIDANCE"]
    tumour = rt.ROIContourSequence[0]
    for contour in tumour.ContourSequence:
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        image = series[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
        assert np.allclose(points[:, 2], float(image.ImagePositionPatient[2]), atol=GEOMETRY_TOL_MM)
    # the outline through the target's centre slice is centred on the target (RAS → LPS)
    k_centre = round(float(grid.ras_to_index(scene["centre"])[2]))
    z_centre = grid.index_to_ras((0, 0, k_centre))[2]
    middle = [c for c in tumour.ContourSequence if abs(float(c.ContourData[2]) - z_centre) < GEOMETRY_TOL_MM]
    points = np.asarray(middle[0].ContourData, dtype=float).reshape(-1, 3)
    centroid_ras = points.mean(axis=0) * RAS_LPS_FLIP
    assert np.allclose(centroid_ras[:2], scene["centre"][:2], atol=GEOMETRY_TOL_MM)
    masks = read_structures(files.rt_structure_set, grid)
    assert np.array_equal(masks["Tumor"], scene["target"])
    assert np.array_equal(masks["Bowel"], scene["bowel"])


def test_the_parametric_maps_hold_the_temperatures_in_celsius(scene):
    files = scene["files"]
    for path, expected in ((files.min_temperature_map, scene["temperature"]),
                           (files.temperature_map, scene["temperature"] + 5.0)):  # fmt: skip
        pmap = pydicom.dcmread(path)
        mapping = pmap.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "Cel"
        frames = pmap.pixel_array.reshape(len(pmap.PerFrameFunctionalGroupsSequence), pmap.Rows, pmap.Columns)
        assert np.allclose(frames.transpose(2, 1, 0), expected, atol=1e-5)


def test_structures_are_refused_on_another_grid_and_other_files_by_name(scene, tmp_path):
    other = Grid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (41, 31, 17))
    with pytest.raises(InputError, match=r"do not lie on the voxels|outside"):
        read_structures(scene["files"].segmentation, other)
    series_file = next(scene["files"].mr_series.glob("*.dcm"))
    with pytest.raises(InputError, match="neither a DICOM SEG nor an RT Structure Set"):
        read_structures(series_file, scene["grid"])
    (tmp_path / "x.dcm").write_text("not dicom")
    with pytest.raises(InputError, match="not a DICOM file"):
        read_structures(tmp_path / "x.dcm", scene["grid"])
    with pytest.raises(InputError, match="holds no DICOM image series"):
        read_mr_series(tmp_path)


def test_export_refuses_masks_of_another_shape(scene, tmp_path):
    series = write_mr_series(tmp_path / "mr", scene["image"], scene["grid"])
    with pytest.raises(InputError, match="mask"):
        write_segmentation(
            tmp_path / "s.dcm", series, [Region("x", "target", np.ones((3, 3, 3), bool), (1, 0, 0))]
        )
    with pytest.raises(InputError, match="nothing to export"):
        write_rt_structure_set(tmp_path / "r.dcm", series, [])


@pytest.mark.parametrize("source", ["seg", "rtstruct"])
def test_case_from_dicom_builds_a_case_with_roles_materials_and_the_image(scene, tmp_path, source, capsys):
    code = _from_dicom(scene, tmp_path, "--role", "Bowel=critical:bowel", source=source)
    printed = capsys.readouterr()
    assert code == 0, printed.err
    case = load_case(tmp_path / "case" / "case.cryo.json")
    roles = {s.name: (s.role, s.kind) for s in case.structures}
    assert roles == {"Tumor": ("target", None), "Bowel": ("critical", "bowel")}
    # the isotherms exported with the result are predicted ice, not anatomy: left out, and said so
    assert "not used: Isotherm -20 °C, Isotherm -40 °C, Isotherm 0 °C (predicted ice" in printed.out
    tumour_label = next(s.label for s in case.structures if s.name == "Tumor")
    assert case.label_materials[tumour_label] == "tumor" and case.label_materials[0] == "kidney"
    # the cut grid keeps the series' voxels: the tumour's centre voxel stays at the same RAS point
    tumour = case.tissue_labels == tumour_label
    centroid = case.grid.index_to_ras(np.argwhere(tumour).mean(axis=0))
    assert np.allclose(centroid, scene["centre"], atol=GEOMETRY_TOL_MM)
    assert (tmp_path / "case" / "image.nrrd").is_file()


def test_case_from_dicom_names_what_is_wrong(scene, tmp_path, capsys):
    (tmp_path / "plan.json").write_text(json.dumps({"probes": []}))
    code = main([
        "case-from-dicom", "--mr", str(scene["files"].mr_series), "--seg", str(scene["files"].segmentation),
        "--plan", str(tmp_path / "plan.json"), "--tissue", "kidney", "--out", str(tmp_path / "case"),
    ])  # fmt: skip
    assert code == 2 and "protocol" in capsys.readouterr().err
    (tmp_path / "plan.json").write_text(json.dumps({"probes": [], "protocol": []}))
    code = main([
        "case-from-dicom", "--mr", str(scene["files"].mr_series), "--seg", str(scene["files"].segmentation),
        "--plan", str(tmp_path / "plan.json"), "--tissue", "kidney", "--role", "Liver=target",
        "--out", str(tmp_path / "case"),
    ])  # fmt: skip
    assert code == 2 and "no segment named 'Liver'" in capsys.readouterr().err
    files = scene["files"]
    for option, value in (("--tissue", "liverx"), ("--material", "Tumor=tumour-x")):
        code = main([
            "case-from-dicom", "--mr", str(files.mr_series), "--seg", str(files.segmentation),
            "--plan", str(tmp_path / "plan.json"), "--tissue", "kidney", option, value,
            "--out", str(tmp_path / "case"),
        ])  # fmt: skip
        assert code == 2 and f"{option}" in capsys.readouterr().err


def _from_dicom(scene, tmp_path, *extra, source="seg"):
    """case-from-dicom on the scene's series and its SEG (or RT Structure Set), one probe and a
    1-min freeze, a 5 mm margin; ``extra`` options after."""
    plan = {
        "probes": [
            {"name": "P1", "model": "argon-1.47mm", "tip_mm": [-17.0, -8.0, 22.0], "entry_mm": [80, -8, 22]}
        ],
        "protocol": [{"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100}],
    }  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    path = scene["files"].segmentation if source == "seg" else scene["files"].rt_structure_set
    return main([
        "case-from-dicom", "--mr", str(scene["files"].mr_series), f"--{source}", str(path),
        "--plan", str(tmp_path / "plan.json"), "--tissue", "kidney", "--margin-mm", "5",
        "--out", str(tmp_path / "case"), *extra,
    ])  # fmt: skip


def test_an_organ_gives_way_to_the_target_inside_it_and_the_overlap_is_said(scene, tmp_path, capsys):
    # the 0 °C ball (r ≤ 11 mm) holds the whole tumour (r ≤ 8 mm): named an organ, it keeps the shell
    code = _from_dicom(scene, tmp_path, "--role", "Isotherm 0 °C=organ")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    case = load_case(tmp_path / "case" / "case.cryo.json")
    label = {s.name: s.label for s in case.structures}
    assert np.count_nonzero(case.tissue_labels == label["Tumor"]) == np.count_nonzero(scene["target"])
    assert np.count_nonzero(case.tissue_labels == label["Isotherm 0 °C"]) > 0
    assert f"overlap: {np.count_nonzero(scene['target'])} voxels of 'Isotherm 0 °C' are given to 'Tumor'" in (
        printed.out
    )


def test_a_target_wholly_under_a_critical_structure_is_refused_before_a_case_is_written(
    scene, tmp_path, capsys
):
    # a critical structure keeps its voxels: the tumour inside the 0 °C ball would be left with none
    code = _from_dicom(scene, tmp_path, "--role", "Isotherm 0 °C=critical")
    assert code == 2 and "segment 'Tumor': lies wholly within" in capsys.readouterr().err
    assert not (tmp_path / "case" / "case.cryo.json").exists()


def test_more_segments_than_a_byte_of_labels_are_refused(scene, tmp_path, capsys, monkeypatch):
    from CryoAblationLogic.io import dicom_import

    grid = scene["grid"]
    many = {f"S{n}": np.zeros(grid.size, bool) for n in range(256)}
    for mask in many.values():
        mask[0, 0, 0] = True
    monkeypatch.setattr(dicom_import, "read_structures", lambda path, grid: many)
    assert _from_dicom(scene, tmp_path) == 2
    assert "holds 256 segments; a case takes at most 255" in capsys.readouterr().err
