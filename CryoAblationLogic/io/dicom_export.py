"""DICOM out: an MR series for a volume on a case grid, and the results computed on it as a
segmentation (DICOM SEG, highdicom), an RT Structure Set (pydicom) and parametric maps
(highdicom) that reference that series.

Geometry: the grid is Slicer's RAS; DICOM is LPS (:mod:`CryoAblationLogic.core.coordinates`).
Slices are the grid's k planes; within a slice, a row runs along +i (RAS +x, LPS −x) and a
column along +j (RAS +y, LPS −y), so the Image Orientation (Patient) is (−1, 0, 0, 0, −1, 0) and
pixel (row r, column c) of slice k is voxel (c, r, k). Every object shares the series' study,
patient and Frame of Reference.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import contourpy
import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from CryoAblationLogic.core.about import __version__
from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import ROLE_COLOURS, level_colour

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
ROW_DIRECTION_LPS = (-1.0, 0.0, 0.0)  # +i
COLUMN_DIRECTION_LPS = (0.0, -1.0, 0.0)  # +j
MANUFACTURER = "CryoAblation (research software)"
MODEL = "CryoAblation"
SERIAL = "none"

# Private codes (coding scheme "99CRYO"): DICOM has no concept for an isotherm's region.
ICE_CATEGORY = hd.sr.CodedConcept("ICE", "99CRYO", "Cryoablation ice region")
CELSIUS = hd.sr.CodedConcept("Cel", "UCUM", "degree Celsius")
TEMPERATURE = hd.sr.CodedConcept("246508008", "SCT", "Temperature")
CATEGORY_BY_ROLE = {
    "target": hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
    "critical": hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure"),
    "vessel": hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure"),
}
TYPE_BY_ROLE = {
    "target": hd.sr.CodedConcept("108369006", "SCT", "Neoplasm"),
    "critical": hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
    "vessel": hd.sr.CodedConcept("59820001", "SCT", "Blood vessel"),
}
RT_TYPE_BY_ROLE = {"target": "GTV", "critical": "AVOIDANCE", "vessel": "ORGAN", "isotherm": "TREATED_VOLUME"}


@dataclass(frozen=True)
class Patient:
    """Who and which study the series belongs to (the demo's phantom gets a made-up identity)."""

    name: str = "Phantom^Renal"
    patient_id: str = "CRYO-PHANTOM"
    study_description: str = "Cryoablation plan"
    study_uid: str = ""
    frame_of_reference_uid: str = ""


@dataclass(frozen=True)
class Region:
    """One region to export: a boolean mask on the series' grid, its role ("target", "critical",
    "vessel" or "isotherm") and a display colour (RGB 0–1)."""

    name: str
    role: str
    mask: np.ndarray
    colour: tuple[float, float, float]


def write_mr_series(
    out_dir: str | Path,
    image: np.ndarray,
    grid: Grid,
    patient: Patient = Patient(),
    *,
    series_description: str = "T1w GRE phantom",
) -> list[Dataset]:
    """Write one file per slice (``MR_0001.dcm`` …) and return the datasets (slice order, inferior
    first). The image is stored as unsigned 16 bit: values are rounded and clipped to 0–65535."""
    array = np.asarray(image, dtype=float)
    if array.shape != tuple(grid.size):
        raise InputError("image", f"has shape {array.shape}, the grid is {tuple(grid.size)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study_uid = patient.study_uid or generate_uid()
    frame_uid = patient.frame_of_reference_uid or generate_uid()
    series_uid = generate_uid()
    now = datetime.datetime.now(datetime.UTC)
    pixels = np.clip(np.rint(array), 0, 65535).astype(np.uint16)
    datasets = []
    for k in range(grid.size[2]):
        ds = _base_dataset(MR_IMAGE_STORAGE, patient, study_uid, now)
        ds.Modality = "MR"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = series_description
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "GR"
        ds.SequenceVariant = "SP"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.EchoTime = 2.5
        ds.RepetitionTime = 6.0
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = 1.5
        ds.ImagePositionPatient = [float(v) for v in grid.index_to_ras((0, 0, k)) * RAS_LPS_FLIP]
        ds.ImageOrientationPatient = [*ROW_DIRECTION_LPS, *COLUMN_DIRECTION_LPS]
        ds.PixelSpacing = [float(grid.spacing_mm[1]), float(grid.spacing_mm[0])]  # row, column spacing
        ds.SliceThickness = float(grid.spacing_mm[2])
        ds.SpacingBetweenSlices = float(grid.spacing_mm[2])
        ds.SliceLocation = float(grid.index_to_ras((0, 0, k))[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = grid.size[1], grid.size[0]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        low, high = np.percentile(pixels, [1, 99])
        ds.WindowCenter = float((low + high) / 2)
        ds.WindowWidth = float(max(high - low, 1))
        ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
        ds.save_as(out / f"MR_{k + 1:04d}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return datasets


def write_segmentation(path: str | Path, series: Sequence[Dataset], regions: Sequence[Region]) -> Path:
    """The regions as one binary DICOM SEG referencing ``series`` (empty frames omitted)."""
    if not regions:
        raise InputError("regions", "nothing to export")
    frames = np.stack([_frames(region.mask, series) for region in regions], axis=-1).astype(np.uint8)
    descriptions = []
    algorithm = hd.AlgorithmIdentificationSequence(
        name="CryoAblation isotherms",
        family=hd.sr.CodedConcept("ICE-SIM", "99CRYO", "Bioheat simulation"),
        version=__version__,
    )
    for number, region in enumerate(regions, start=1):
        automatic = region.role == "isotherm"
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=region.name,
                segmented_property_category=ICE_CATEGORY if automatic else CATEGORY_BY_ROLE[region.role],
                segmented_property_type=(
                    hd.sr.CodedConcept(f"ICE{number}", "99CRYO", region.name)
                    if automatic
                    else TYPE_BY_ROLE[region.role]
                ),
                algorithm_type="AUTOMATIC" if automatic else "MANUAL",
                algorithm_identification=algorithm if automatic else None,
                display_color=hd.color.CIELabColor.from_rgb(*(round(255 * c) for c in region.colour)),
            )
        )
    seg = hd.seg.Segmentation(
        source_images=list(series),
        pixel_array=frames,
        segmentation_type="BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=100,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL,
        software_versions=__version__,
        device_serial_number=SERIAL,
        series_description="Cryoablation target, structures and isotherms",
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def write_parametric_map(
    path: str | Path,
    series: Sequence[Dataset],
    field_c: np.ndarray,
    *,
    label: str,
    explanation: str,
    series_number: int,
) -> Path:
    """A temperature field (°C, float32) as a DICOM parametric map referencing ``series``."""
    field = np.asarray(field_c, dtype=np.float32)
    frames = _frames(field, series)
    low, high = float(field.min()), float(field.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=label[:16],
        lut_explanation=explanation[:64],
        unit=CELSIUS,
        value_range=(low, high),
        slope=1.0,
        intercept=0.0,
        quantity_definition=TEMPERATURE,
    )
    pmap = hd.pm.ParametricMap(
        source_images=list(series),
        pixel_array=frames,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL,
        software_versions=__version__,
        device_serial_number=SERIAL,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.content.VOILUTTransformation(window_center=-20.0, window_width=120.0)],
        series_description=explanation[:64],
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pmap.save_as(path)
    return path


def write_rt_structure_set(path: str | Path, series: Sequence[Dataset], regions: Sequence[Region]) -> Path:
    """The regions as closed planar contours on the series' slices, in an RT Structure Set that
    references the series (one contour per outline and slice; holes as separate contours)."""
    if not regions:
        raise InputError("regions", "nothing to export")
    first = series[0]
    grid = series_grid(series)
    ds = _base_dataset(
        RT_STRUCTURE_SET_STORAGE,
        Patient(str(first.PatientName), first.PatientID, first.get("StudyDescription", "")),
        first.StudyInstanceUID,
        datetime.datetime.now(datetime.UTC),
        study_date=first.StudyDate,
        study_time=first.StudyTime,
        study_id=first.get("StudyID", "1"),
    )
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 200
    ds.SeriesDescription = "Cryoablation target, structures and isotherms"
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "Cryoablation"
    ds.StructureSetDate = ds.ContentDate
    ds.StructureSetTime = ds.ContentTime
    contour_images = DicomSequence([_image_reference(image) for image in series])
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = contour_images
    study_ref = Dataset()
    # Detached Study Management (retired), the class RT systems expect in this reference
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])
    ds.StructureSetROISequence = DicomSequence()
    ds.ROIContourSequence = DicomSequence()
    ds.RTROIObservationsSequence = DicomSequence()
    for number, region in enumerate(regions, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = region.name
        roi.ROIGenerationAlgorithm = "AUTOMATIC" if region.role == "isotherm" else "MANUAL"
        ds.StructureSetROISequence.append(roi)
        contours = Dataset()
        contours.ReferencedROINumber = number
        contours.ROIDisplayColor = [round(255 * c) for c in region.colour]
        contours.ContourSequence = DicomSequence()
        for k, polygon in _outlines(region.mask, grid):
            item = Dataset()
            item.ContourImageSequence = DicomSequence([_image_reference(series[k])])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(polygon)
            item.ContourData = [round(float(v), 3) for v in polygon.ravel()]
            contours.ContourSequence.append(item)
        ds.ROIContourSequence.append(contours)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = RT_TYPE_BY_ROLE[region.role]
        observation.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(observation)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def series_grid(series: Sequence[Dataset]) -> Grid:
    """The case grid of a series written by :func:`write_mr_series` (checks its orientation)."""
    first = series[0]
    orientation = [float(v) for v in first.ImageOrientationPatient]
    if not np.allclose(orientation, [*ROW_DIRECTION_LPS, *COLUMN_DIRECTION_LPS], atol=1e-4):
        raise InputError("ImageOrientationPatient", f"{orientation} is not the case grid's orientation")
    origin = np.asarray([float(v) for v in first.ImagePositionPatient]) * RAS_LPS_FLIP
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    if len(series) > 1:
        z = [float(ds.ImagePositionPatient[2]) for ds in series]
        slice_spacing = float(np.median(np.diff(z)))
    else:
        slice_spacing = float(first.get("SliceThickness", 1.0))
    return Grid(
        tuple(float(v) for v in origin),
        (column_spacing, row_spacing, slice_spacing),
        (int(first.Columns), int(first.Rows), len(series)),
    )


def _frames(volume: np.ndarray, series: Sequence[Dataset]) -> np.ndarray:
    """A volume [i, j, k] as frames (slice, row, column) in the series' order."""
    array = np.asarray(volume)
    expected = (int(series[0].Columns), int(series[0].Rows), len(series))
    if array.shape != expected:
        raise InputError("mask", f"has shape {array.shape}, the series is {expected} (columns, rows, slices)")
    return np.ascontiguousarray(array.transpose(2, 1, 0))


def _outlines(mask: np.ndarray, grid: Grid):
    """(slice index, LPS polygon (n, 3)) for each closed outline of the mask, slice by slice."""
    array = np.asarray(mask, dtype=bool)
    for k in np.flatnonzero(array.any(axis=(0, 1))):
        plane = np.pad(array[:, :, k].T.astype(np.float64), 1)  # rows j, columns i; closed at the edges
        generator = contourpy.contour_generator(z=plane, line_type=contourpy.LineType.Separate)
        for line in generator.lines(0.5):
            points = np.asarray(line)[:-1] - 1.0  # drop the repeated closing point; undo the padding
            if len(points) < 3:
                continue
            ijk = np.column_stack([points[:, 0], points[:, 1], np.full(len(points), float(k))])
            yield int(k), grid.index_to_ras(ijk) * RAS_LPS_FLIP


def _image_reference(image: Dataset) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = image.SOPClassUID
    reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return reference


def _base_dataset(
    sop_class: str,
    patient: Patient,
    study_uid: str,
    now: datetime.datetime,
    *,
    study_date: str | None = None,
    study_time: str | None = None,
    study_id: str = "1",
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_date or now.strftime("%Y%m%d")
    ds.StudyTime = study_time or now.strftime("%H%M%S")
    ds.StudyID = study_id
    ds.StudyDescription = patient.study_description
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL
    ds.SoftwareVersions = __version__
    return ds


@dataclass(frozen=True)
class DicomResult:
    mr_series: Path
    segmentation: Path
    rt_structure_set: Path
    temperature_map: Path
    min_temperature_map: Path


def write_result_dicom(
    out_dir: str | Path,
    image: np.ndarray,
    grid: Grid,
    temperature_final: np.ndarray,
    min_temperature: np.ndarray,
    structures: Mapping[str, Mapping[str, np.ndarray]],
    levels_c: Sequence[float],
    patient: Patient = Patient(),
) -> DicomResult:
    """The image as an MR series in ``out_dir/mr/``, and referencing it: ``seg.dcm`` and
    ``rtstruct.dcm`` (target, critical structures, vessels, and the isotherms of the lowest
    temperature reached), ``temperature_final_pm.dcm`` and ``min_temperature_pm.dcm``."""
    out = Path(out_dir)
    series = write_mr_series(out / "mr", image, grid, patient)
    regions = [
        Region(name, role, np.asarray(mask, dtype=bool), ROLE_COLOURS[role])
        for role in ("target", "critical", "vessel")
        for name, mask in structures.get(role, {}).items()
        if np.asarray(mask).any()
    ]
    field = np.asarray(min_temperature)
    regions += [
        Region(f"Isotherm {level:g} °C", "isotherm", field <= level, level_colour(level))
        for level in sorted(levels_c, reverse=True)
        if (field <= level).any()
    ]
    return DicomResult(
        mr_series=out / "mr",
        segmentation=write_segmentation(out / "seg.dcm", series, regions),
        rt_structure_set=write_rt_structure_set(out / "rtstruct.dcm", series, regions),
        temperature_map=write_parametric_map(
            out / "temperature_final_pm.dcm", series, temperature_final,
            label="T final", explanation="Temperature at the end of the run", series_number=300,
        ),
        min_temperature_map=write_parametric_map(
            out / "min_temperature_pm.dcm", series, min_temperature,
            label="T min", explanation="Lowest temperature reached during the run", series_number=301,
        ),
    )  # fmt: skip
