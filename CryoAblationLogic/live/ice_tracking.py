"""The ice in every live MR image, against the prediction at that time (Slicer-free).

An :class:`IceTracker` belongs to a live session (:class:`~.mode.LiveSession` with
``track_ice=True``). For each :class:`~.console.ScannerImage` the session receives:

- **before any probe has frozen** the image becomes the baseline of its geometry (its voxel grid:
  size and IJK→RAS matrix; a later pre-freeze image of the same geometry replaces it);
- **once freezing has begun** the ice is segmented against the baseline of the same geometry
  (:func:`~CryoAblationLogic.analysis.ice_observation.observe_ice`, seeded by the probes as
  placed), compared with the predicted 0 °C zone of the solver's field at that moment
  (:func:`~CryoAblationLogic.analysis.ice_comparison.compare_with_prediction`: volume, Dice,
  mean/max surface distance, for a slice in its own plane) and the distance from the observed ice
  edge to each critical structure of the case, with a warning inside its safety margin (the margins
  of :mod:`~CryoAblationLogic.analysis.safety`, by structure type);
- the observed ice is resampled on the plan grid into the **observed ice map**: every voxel holds
  what the latest image that covered it showed (a volume covers the grid, a slice its sheet);
- the observation goes to each of ``listeners`` and to the optional ``corrector`` (the parameter
  correction of issue 14: an object with ``update(time_s, observation) -> correction``), whose
  latest correction the session's outputs write through ``write_corrected``.

An image that cannot be used (no baseline of its geometry, a size or matrix no MR image has,
colour or complex voxels, outside the plan grid, a segmentation fault) gets a record with
``status`` "refused" and the reason; nothing a peer sends ends the session. Memory stays bounded:
at most ``max_geometries`` baselines, ``max_records`` records (further ones are counted) and
``label_budget_bytes`` of per-image label maps kept for the output files (bit-packed; beyond it the
record stays, its file is not written and the record says so).

Deterministic: a record depends only on the images and the session's state when each arrives, so
a replay of the journal gives the same records and files.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.analysis.ice_comparison import compare_with_prediction
from CryoAblationLogic.analysis.ice_observation import (
    IceObservation,
    IceSettings,
    ice_on_grid,
    observe_ice,
    sitk_image,
)
from CryoAblationLogic.analysis.safety import SafetyRules, structure_type
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.plan import Case
from CryoAblationLogic.io.volumes import write_nrrd
from CryoAblationLogic.live.console import ScannerImage

DEFAULT_MAX_IMAGE_VOXELS = 16 * 1024**2  # a 256 × 256 × 256 volume: no MR frame is larger
DEFAULT_MAX_GEOMETRIES = 16  # baselines kept: three planes and a volume need four
DEFAULT_MAX_RECORDS = 10_000  # an image every 20 s for two days
DEFAULT_LABEL_BUDGET_BYTES = 256 * 1024**2  # bit-packed per-image label maps kept for the files
MIN_SPACING_MM, MAX_SPACING_MM = 0.01, 100.0
GEOMETRY_TOLERANCE_MM = 0.01  # matrix entries this close: the same geometry (the scanner's rounding)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TrackingSettings:
    ice: IceSettings = field(default_factory=IceSettings)
    max_image_voxels: int = DEFAULT_MAX_IMAGE_VOXELS
    max_geometries: int = DEFAULT_MAX_GEOMETRIES
    max_records: int = DEFAULT_MAX_RECORDS
    label_budget_bytes: int = DEFAULT_LABEL_BUDGET_BYTES


@dataclass
class IceRecord:
    """What became of one image. ``time_s``: its procedure time (sender stamp); ``predicted_time_s``:
    the solver time of the prediction it was compared with; ``comparison``: the dict of
    :func:`~CryoAblationLogic.analysis.ice_comparison.compare_with_prediction` (observed images)."""

    index: int  # images received before this one
    time_s: float
    device: str
    kind: str  # "volume" or "slice" (or "unknown" for an image refused before it was read)
    status: str  # "baseline", "observed" or "refused"
    reason: str | None = None
    predicted_time_s: float | None = None
    comparison: dict | None = None
    file: str | None = None  # observed/… label map in the image's geometry, when kept
    observed_on_grid_ml: float | None = None  # the observed ice resampled on the plan grid

    def to_dict(self) -> dict:
        data: dict = {
            "index": self.index,
            "time_s": round(self.time_s, 3),
            "device": self.device,
            "kind": self.kind,
            "status": self.status,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.status == "observed":
            data["predicted_time_s"] = round(float(self.predicted_time_s or 0.0), 3)
            data["observed_on_grid_ml"] = self.observed_on_grid_ml
            data["file"] = self.file
            data.update(_series_values(self.comparison or {}))
        return data


def _series_values(comparison: dict) -> dict:
    """The comparison's numbers for the series (the registration matrix and notes stay out)."""
    keys = (
        "volume_ml",
        "predicted_volume_ml",
        "area_cm2",
        "predicted_area_cm2",
        "dice",
        "mean_surface_distance_mm",
        "max_surface_distance_mm",
    )
    data = {key: comparison[key] for key in keys if key in comparison}
    data["motion_mm"] = comparison.get("registration", {}).get("motion_mm")
    data["structures"] = {
        name: {k: entry.get(k) for k in ("distance_mm", "margin_mm", "warning") if k in entry}
        for name, entry in comparison.get("structures", {}).items()
    }
    data["warnings"] = list(comparison.get("warnings", []))
    return data


@dataclass
class _Baseline:
    voxels: np.ndarray  # float32 [i, j, k]
    ijk_to_ras: np.ndarray
    time_s: float
    device: str


@dataclass
class _KeptLabel:
    packed: np.ndarray
    shape: tuple[int, ...]
    ijk_to_ras: np.ndarray
    file: str

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)

    def label(self) -> np.ndarray:
        count = int(np.prod(self.shape))
        return np.unpackbits(self.packed, count=count).reshape(self.shape)


def critical_structures(case: Case, rules: SafetyRules | None = None) -> tuple[dict, dict]:
    """(name → label, name → safety margin mm) of the case's critical structures."""
    rules = rules or SafetyRules()
    structures = [s for s in case.structures if s.role == "critical"]
    critical = {s.name: int(s.label) for s in structures}
    margins = {s.name: rules.margin_for(structure_type(s.name, s.kind)) for s in structures}
    return critical, margins


def image_problem(voxels, ijk_to_ras, max_voxels: int = DEFAULT_MAX_IMAGE_VOXELS) -> str | None:
    """Why an image cannot be an MR magnitude frame to segment, or None."""
    voxels = np.asarray(voxels)
    if voxels.ndim == 4 and voxels.shape[3] == 1:
        voxels = voxels[..., 0]
    if voxels.ndim != 3:
        return f"voxels of shape {voxels.shape}: an MR frame has one value per voxel [i, j, k]"
    if voxels.dtype.kind not in "iuf":
        return f"voxels of type {voxels.dtype}: an MR magnitude image holds real numbers"
    if voxels.size == 0 or voxels.size > max_voxels:
        return f"{voxels.size} voxels: an MR frame to segment holds 1 … {max_voxels} voxels"
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        return "its IJK→RAS matrix is not a finite 4×4 matrix"
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing < MIN_SPACING_MM) or np.any(spacing > MAX_SPACING_MM):
        return (
            f"voxel spacing {np.round(spacing, 4).tolist()} mm lies outside "
            f"{MIN_SPACING_MM:g} … {MAX_SPACING_MM:g} mm"
        )
    if abs(np.linalg.det(matrix[:3, :3] / spacing)) < 1e-3:
        return "its axes are (nearly) collinear"
    if voxels.dtype.kind == "f" and not np.all(np.isfinite(voxels)):
        return "its voxels hold values that are not finite"
    if voxels.shape[2] == 1 and min(voxels.shape[:2]) < 8:
        return f"a slice of {voxels.shape[0]} × {voxels.shape[1]} pixels: at least 8 × 8 are needed"
    if voxels.shape[2] > 1 and min(voxels.shape) < 4:
        return f"a volume of {voxels.shape}: at least 4 voxels along every axis are needed"
    return None


def _corners(shape, matrix: np.ndarray) -> np.ndarray:
    extent = [(0, n - 1) for n in shape]
    corners = np.array([[i, j, k, 1.0] for i in extent[0] for j in extent[1] for k in extent[2]])
    return (corners @ matrix.T)[:, :3]


class IceTracker:
    """The observed ice of a live session (see the module docstring).

    ``listeners``: callables ``(record, observation)`` told of every observed image;
    ``corrector``: an object with ``update(time_s, observation) -> correction`` (None: none).
    """

    def __init__(self, case: Case, settings: TrackingSettings | None = None, corrector=None):
        self.settings = settings or TrackingSettings()
        self.settings.ice.check()
        self.grid = case.grid
        self.labels = case.tissue_labels
        self.critical, self.margins = critical_structures(case)
        if self.critical and self.labels is None:
            self.critical, self.margins = {}, {}
        self.listeners: list[Callable[[IceRecord, IceObservation], None]] = []
        self.corrector = corrector
        self.correction = None  # the corrector's latest answer
        self.correction_time_s: float | None = None
        self.correction_faults = 0
        self.correction_history: list[dict] = []  # volumes and forecasts after each image, for charts
        self.baselines: list[_Baseline] = []
        self.records: list[IceRecord] = []
        self.counts = {"baseline": 0, "observed": 0, "refused": 0}
        self.images = 0
        self.ice_map = np.zeros(self.grid.size, np.uint8)  # latest observation of each voxel
        self.seen = np.zeros(self.grid.size, bool)  # voxels some image covered
        self.latest: IceRecord | None = None  # the latest observed image
        self.latest_observation: IceObservation | None = None
        self.kept: list[_KeptLabel] = []
        self.kept_bytes = 0

    # --- one image --------------------------------------------------------------------------------

    def process(
        self,
        image: ScannerImage,
        *,
        time_s: float,
        freezing_started: bool,
        case: Case,
        temperature_c: np.ndarray,
        predicted_time_s: float,
    ) -> IceRecord:
        """The record of ``image`` (procedure time ``time_s``) with the session's state: whether a
        probe has frozen, the case as placed (its probes seed the ice), the predicted field at
        ``predicted_time_s``. Never raises for what the image holds."""
        index = self.images
        self.images += 1
        device = str(image.device_name)[:64]
        problem = image_problem(image.voxels, image.ijk_to_ras, self.settings.max_image_voxels)
        if problem is None and not self._overlaps_grid(image):
            problem = "it lies outside the plan's grid"
        if problem is not None:
            return self._keep(IceRecord(index, time_s, device, "unknown", "refused", problem))
        voxels = np.asarray(image.voxels)
        if voxels.ndim == 4:
            voxels = voxels[..., 0]
        matrix = np.asarray(image.ijk_to_ras, dtype=np.float64)
        kind = "slice" if voxels.shape[2] == 1 else "volume"
        if not freezing_started:
            self._set_baseline(voxels, matrix, time_s, device)
            if len(self.baselines) > self.settings.max_geometries:
                self.baselines.pop()
                reason = f"more than {self.settings.max_geometries} image geometries: no baseline kept"
                return self._keep(IceRecord(index, time_s, device, kind, "refused", reason))
            return self._keep(IceRecord(index, time_s, device, kind, "baseline"))
        baseline = self._baseline_for(voxels.shape, matrix)
        if baseline is None:
            reason = (
                "no baseline: no image of this geometry (size and position) arrived before the first freeze"
            )
            return self._keep(IceRecord(index, time_s, device, kind, "refused", reason))
        try:
            observation = observe_ice(
                baseline.voxels,
                baseline.ijk_to_ras,
                voxels.astype(np.float32),
                matrix,
                case.probes,
                self.settings.ice,
            )
            comparison = compare_with_prediction(
                observation,
                temperature_c,
                self.grid,
                self.labels if self.critical else None,
                self.critical,
                self.margins,
            )
            on_grid = ice_on_grid(observation, self.grid)
            cover = ice_on_grid(replace(observation, label=np.ones_like(observation.label)), self.grid) > 0
        except InputError as error:
            return self._keep(IceRecord(index, time_s, device, kind, "refused", f"{error}"[:300]))
        except Exception as error:  # a fault in segmenting one image costs that image only
            return self._keep(IceRecord(index, time_s, device, kind, "refused", f"fault: {error!r}"[:300]))
        self.ice_map[cover] = on_grid[cover]
        self.seen |= cover
        record = IceRecord(
            index,
            time_s,
            device,
            kind,
            "observed",
            predicted_time_s=float(predicted_time_s),
            comparison=comparison,
            observed_on_grid_ml=self._ml(on_grid),
        )
        self._keep_label(record, observation)
        self._keep(record)
        self.latest = record
        self.latest_observation = observation
        for listener in list(self.listeners):
            listener(record, observation)
        if self.corrector is not None:
            try:
                self.correction = self.corrector.update(time_s, observation)
                self.correction_time_s = time_s
                self.correction_history.append(_correction_entry(time_s, self.correction))
            except Exception as error:  # the corrector's fault must not cost the observation
                self.correction_faults += 1
                record.reason = f"corrector fault: {error!r}"[:300]
        return record

    def _overlaps_grid(self, image: ScannerImage) -> bool:
        voxels = np.asarray(image.voxels)
        corners = _corners(voxels.shape[:3], np.asarray(image.ijk_to_ras, dtype=np.float64))
        grid_corners = _corners(self.grid.size, self.grid.ijk_to_ras_matrix())
        low, high = grid_corners.min(axis=0), grid_corners.max(axis=0)
        return bool(np.all(corners.max(axis=0) >= low) and np.all(corners.min(axis=0) <= high))

    def _baseline_for(self, shape, matrix: np.ndarray) -> _Baseline | None:
        for baseline in self.baselines:
            if baseline.voxels.shape == tuple(shape) and np.allclose(
                baseline.ijk_to_ras, matrix, rtol=0.0, atol=GEOMETRY_TOLERANCE_MM
            ):
                return baseline
        return None

    def _set_baseline(self, voxels: np.ndarray, matrix: np.ndarray, time_s: float, device: str) -> None:
        new = _Baseline(voxels.astype(np.float32), matrix.copy(), time_s, device)
        for n, baseline in enumerate(self.baselines):
            if baseline.voxels.shape == new.voxels.shape and np.allclose(
                baseline.ijk_to_ras, matrix, rtol=0.0, atol=GEOMETRY_TOLERANCE_MM
            ):
                self.baselines[n] = new
                return
        self.baselines.append(new)

    def _keep(self, record: IceRecord) -> IceRecord:
        self.counts[record.status] += 1
        if len(self.records) < self.settings.max_records:
            self.records.append(record)
        return record

    def _keep_label(self, record: IceRecord, observation: IceObservation) -> None:
        stem = _UNSAFE.sub("_", record.device) or "image"
        name = f"ice_{record.index:05d}_{record.time_s:09.2f}s_{stem}.nrrd"
        packed = np.packbits(observation.label.astype(bool))
        if self.kept_bytes + packed.nbytes > self.settings.label_budget_bytes:
            record.reason = "label map not kept: the budget for per-image files is spent"
            return
        self.kept.append(_KeptLabel(packed, observation.label.shape, observation.ijk_to_ras.copy(), name))
        self.kept_bytes += packed.nbytes
        record.file = f"observed/{name}"

    # --- reading ------------------------------------------------------------------------------------

    def _ml(self, mask: np.ndarray) -> float:
        return round(float(np.count_nonzero(mask)) * self.grid.voxel_volume_mm3 / 1000.0, 4)

    @property
    def observed_ml(self) -> float:
        """Volume (ml) of the observed ice map."""
        return self._ml(self.ice_map)

    def warnings(self) -> list[str]:
        """The warnings of the latest observed image."""
        return list((self.latest.comparison or {}).get("warnings", [])) if self.latest else []

    def status_line(self) -> str:
        """One line for the monitor: images, the latest observation against the prediction."""
        c = self.counts
        text = (
            f"images {self.images} ({c['baseline']} baseline, {c['observed']} observed, "
            f"{c['refused']} refused)"
        )
        latest = self.latest
        if latest is not None and latest.comparison is not None:
            comparison = latest.comparison
            dice = comparison.get("dice")
            size = (
                f"{comparison['volume_ml']:.2f} ml (predicted {comparison['predicted_volume_ml']:.2f})"
                if "volume_ml" in comparison
                else f"{comparison['area_cm2']:.2f} cm² (predicted {comparison['predicted_area_cm2']:.2f})"
            )
            text += (
                f"; {latest.device} at {latest.time_s:.0f} s: ice {size}, Dice "
                f"{'–' if dice is None else f'{dice:.2f}'}"
            )
            warnings = comparison.get("warnings") or []
            if warnings:
                text += "; WARNING " + "; ".join(warnings)
        return text

    def summary(self) -> dict:
        """JSON-ready: counts, the series of records, the observed ice map's volume."""
        return {
            "images": self.images,
            "counts": dict(self.counts),
            "records_not_kept": max(0, self.images - len(self.records)),
            "ice_final": "observed/ice_final.nrrd",
            "ice_final_volume_ml": round(self.observed_ml, 4),
            "seen_volume_ml": self._ml(self.seen),
            "latest_warnings": self.warnings(),
            "series": [record.to_dict() for record in self.records],
            "corrections": list(self.correction_history),
        }

    def write(self, folder: str | Path) -> Path:
        """``folder/ice_final.nrrd`` (the observed ice map on the plan grid, 1 = frozen), one label
        map per observed image in its own geometry and ``observations.csv``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_nrrd(folder / "ice_final.nrrd", self.ice_map, self.grid)
        for kept in self.kept:
            image = sitk_image(kept.label(), kept.ijk_to_ras)
            sitk.WriteImage(image, str(folder / Path(kept.file).name), True)
        _write_series_csv(folder / "observations.csv", self.records)
        return folder


def _correction_entry(time_s: float, correction) -> dict:
    """What a chart of the correction over time needs: its isotherm volumes (ml, p10/p50/p90) and
    forecasts (s) after the image at ``time_s`` (not the fields: those are kept for the latest only)."""
    volumes = getattr(correction, "isotherm_volumes_ml", {}) or {}
    return {
        "time_s": round(float(time_s), 3),
        "isotherm_volumes_ml": {f"{float(level):g}": dict(v) for level, v in volumes.items()},
        "forecasts": dict(getattr(correction, "forecasts", {}) or {}),
    }


def _write_series_csv(path: Path, records: list[IceRecord]) -> None:
    columns = [
        "time_s",
        "device",
        "kind",
        "status",
        "predicted_time_s",
        "volume_ml",
        "predicted_volume_ml",
        "area_cm2",
        "predicted_area_cm2",
        "dice",
        "mean_surface_distance_mm",
        "max_surface_distance_mm",
        "warnings",
        "reason",
    ]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for record in records:
            row = record.to_dict()
            values = []
            for column in columns:
                value = row.get(column)
                if column == "warnings":
                    value = "; ".join(value or [])
                values.append("" if value is None else (f"{value:g}" if isinstance(value, float) else value))
            writer.writerow(values)


def procedure_time(image: ScannerImage, origin_s: float | None, clock_s: float) -> float:
    """The image's procedure time: its sender stamp from the console's origin (the clock when
    either is unknown or not a time)."""
    stamp = image.acquisition_time_s
    if origin_s is None or stamp is None or not math.isfinite(stamp) or not stamp:
        return float(clock_s)
    value = float(stamp) - float(origin_s)
    return value if math.isfinite(value) and abs(value) < 1e7 else float(clock_s)
