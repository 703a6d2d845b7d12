"""DICOM in for the command line: an MR series (SimpleITK) as an image on a case grid, and the
target and structures drawn on it from a DICOM SEG or an RT Structure Set (pydicom) as masks.

The case grid's axes are RAS (:mod:`CryoAblationLogic.core.grid`); a series whose slices are
axis-aligned in any order or sense (axial, coronal, sagittal; flipped) is permuted and flipped onto
it exactly. Oblique series are refused: they need resampling, which changes the voxels the
structures were drawn on. Inside Slicer, the DICOM module loads these objects instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath

from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def read_mr_series(folder: str | Path, series_uid: str | None = None) -> tuple[np.ndarray, Grid, str]:
    """The series in ``folder`` as (image float32 [i, j, k], grid, series instance UID)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(str(folder), "not a folder of DICOM files")
    reader = sitk.ImageSeriesReader()
    uids = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not uids:
        raise InputError(str(folder), "holds no DICOM image series")
    if series_uid is None:
        if len(uids) > 1:
            raise InputError(
                str(folder), f"holds {len(uids)} series; choose one with --series-uid: {', '.join(uids)}"
            )
        series_uid = uids[0]
    elif series_uid not in uids:
        raise InputError("--series-uid", f"{series_uid} is not in {folder}")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_uid))
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(str(folder), f"the series could not be read: {error}") from error
    array, grid = _to_case_grid(image, str(folder))
    return array.astype(np.float32), grid, series_uid


def _to_case_grid(image: sitk.Image, key: str) -> tuple[np.ndarray, Grid]:
    """Permute and flip an ITK image (LPS) onto a RAS-aligned grid."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)  # columns: index axes in LPS
    ras_direction = direction * RAS_LPS_FLIP[:, None]
    axis_of = np.abs(ras_direction).argmax(axis=0)  # which RAS axis each index axis runs along
    if sorted(axis_of.tolist()) != [0, 1, 2] or not np.allclose(
        np.abs(ras_direction).max(axis=0), 1.0, atol=1e-4
    ):
        raise InputError(key, "is an oblique acquisition; resample it onto axis-aligned slices first")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # [index0, index1, index2]
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin_ras = np.asarray(image.GetOrigin(), dtype=float) * RAS_LPS_FLIP
    order = np.argsort(axis_of)  # index axis for R, A, S
    array = array.transpose(order)
    spacing = spacing[order]
    signs = np.sign(ras_direction[axis_of[order], order])
    size = np.asarray(array.shape)
    for axis in range(3):
        if signs[axis] < 0:  # this axis runs towards −RAS: flip it, and the origin moves to its far end
            array = np.flip(array, axis=axis)
            origin_ras[axis] -= spacing[axis] * (size[axis] - 1)
    grid = Grid(
        tuple(float(v) for v in origin_ras), tuple(float(v) for v in spacing), tuple(int(n) for n in size)
    )
    return np.ascontiguousarray(array), grid


def read_structures(path: str | Path, grid: Grid) -> dict[str, np.ndarray]:
    """Masks {name: bool array on ``grid``} from a DICOM SEG or an RT Structure Set file."""
    dataset, sop_class = _structures_file(path, pixels=True)
    if sop_class == SEG_STORAGE:
        return _segmentation_masks(dataset, grid, str(path))
    return _structure_set_masks(dataset, grid, str(path))


def _structures_file(path: str | Path, pixels: bool):
    """(dataset, SOP class) of a DICOM SEG or RT Structure Set file; ``InputError`` for anything
    else (``pixels``: read the pixel data too)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=not pixels)
    except pydicom.errors.InvalidDicomError as error:
        # pydicom's text ends by suggesting force=True, an option of its own, not of this command
        raise InputError(str(path), "not a DICOM file (no DICOM preamble or header)") from error
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class not in (SEG_STORAGE, RT_STRUCTURE_SET_STORAGE):
        raise InputError(str(path), f"is neither a DICOM SEG nor an RT Structure Set (SOP class {sop_class})")
    return dataset, sop_class


# What marks a region as predicted ice, not anatomy: the category our DICOM SEG gives isotherms
# (io/dicom_export.ICE_CATEGORY) and the RT ROI type of a treated volume (any planning system's).
PREDICTED_SEG_CATEGORY = ("ICE", "99CRYO")
PREDICTED_RT_TYPES = ("TREATED_VOLUME",)


def predicted_regions(path: str | Path) -> set[str]:
    """Names of the segments or ROIs of a DICOM SEG or RT Structure Set that are predicted ice (the
    isotherms a simulation exported, a treated volume), not anatomy to plan around (its header
    only is read)."""
    dataset, sop_class = _structures_file(path, pixels=False)
    found = set()
    if sop_class == SEG_STORAGE:
        for item in dataset.get("SegmentSequence", []):
            for code in item.get("SegmentedPropertyCategoryCodeSequence", []):
                if (str(code.get("CodeValue", "")), str(code.get("CodingSchemeDesignator", ""))) == (
                    PREDICTED_SEG_CATEGORY
                ):
                    found.add(str(item.SegmentLabel))
    else:
        names = {int(roi.ROINumber): str(roi.ROIName) for roi in dataset.get("StructureSetROISequence", [])}
        for observation in dataset.get("RTROIObservationsSequence", []):
            if str(observation.get("RTROIInterpretedType", "")) in PREDICTED_RT_TYPES:
                number = int(observation.ReferencedROINumber)
                if number in names:
                    found.add(names[number])
    return found


def _segmentation_masks(dataset, grid: Grid, key: str) -> dict[str, np.ndarray]:
    names = {int(item.SegmentNumber): str(item.SegmentLabel) for item in dataset.SegmentSequence}
    if dataset.get("SegmentationType", "BINARY") != "BINARY":
        raise InputError(key, "only binary segmentations are read (fractional ones need a threshold)")
    frames = dataset.pixel_array.reshape(int(dataset.get("NumberOfFrames", 1)), dataset.Rows, dataset.Columns)
    shared = dataset.SharedFunctionalGroupsSequence[0]
    masks = {name: np.zeros(grid.size, dtype=bool) for name in names.values()}
    for index, group in enumerate(dataset.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = np.asarray(group.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        orientation_group = group if "PlaneOrientationSequence" in group else shared
        orientation = np.asarray(
            orientation_group.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float
        )
        measures = group if "PixelMeasuresSequence" in group else shared
        row_spacing, column_spacing = (float(v) for v in measures.PixelMeasuresSequence[0].PixelSpacing)
        rows, columns = np.nonzero(frames[index])
        if len(rows) == 0:
            continue
        lps = (
            position
            + columns[:, None] * column_spacing * orientation[:3]
            + rows[:, None] * row_spacing * orientation[3:]
        )
        _set_voxels(masks[names[number]], grid, lps * RAS_LPS_FLIP, f"{key}: segment {names[number]!r}")
    return masks


def _structure_set_masks(dataset, grid: Grid, key: str) -> dict[str, np.ndarray]:
    names = {int(roi.ROINumber): str(roi.ROIName) for roi in dataset.StructureSetROISequence}
    masks = {name: np.zeros(grid.size, dtype=bool) for name in names.values()}
    i, j = np.meshgrid(np.arange(grid.size[0]), np.arange(grid.size[1]), indexing="ij")
    centres = np.column_stack([i.ravel(), j.ravel()]).astype(float)
    for roi in dataset.ROIContourSequence:
        name = names[int(roi.ReferencedROINumber)]
        for contour in roi.get("ContourSequence", []):
            if contour.ContourGeometricType != "CLOSED_PLANAR":
                continue
            lps = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            ijk = grid.ras_to_index(lps * RAS_LPS_FLIP)
            k = np.rint(ijk[:, 2])
            if np.ptp(ijk[:, 2]) > 0.01 or np.abs(ijk[:, 2] - k).max() > 0.1:
                raise InputError(f"{key}: ROI {name!r}", "a contour does not lie on a slice of the series")
            k = int(k[0])
            if not 0 <= k < grid.size[2]:
                raise InputError(f"{key}: ROI {name!r}", "a contour lies outside the series")
            inside = PolygonPath(ijk[:, :2]).contains_points(centres).reshape(grid.size[0], grid.size[1])
            masks[name][:, :, k] ^= inside  # even-odd: a contour inside another is a hole
    return masks


def _set_voxels(mask: np.ndarray, grid: Grid, ras: np.ndarray, key: str) -> None:
    ijk = grid.ras_to_index(ras)
    nearest = np.rint(ijk)
    if np.abs(ijk - nearest).max() > 0.1:
        raise InputError(key, "its pixels do not lie on the voxels of the series (another grid?)")
    nearest = nearest.astype(int)
    if (nearest < 0).any() or (nearest >= np.asarray(grid.size)).any():
        raise InputError(key, "reaches outside the series")
    mask[tuple(nearest.T)] = True
