"""Observed ice against predicted: volume, Dice, surface distances, and how close the observed
ice edge comes to each critical structure.

A 3-D observation is compared on the plan grid (the observed ice resampled there, in the plan
frame); a 2-D slice in its own plane, with the prediction (and the labels) resampled onto the
plane's pixels through the registration found for the slice. Distances are SimpleITK distance
maps in millimetres. On a slice the distances are in-plane: the structure may come closer out of
the plane, which a slice cannot show (the comparison says so).
SimpleITK (about 1 s to import) is imported inside the functions that use it, as in
``io/volumes.py``, so that ``cryoablation --help`` stays quick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.analysis.ice_observation import (
    IceObservation,
    affine_from_matrix,
    ice_on_grid,
    sitk_image,
)
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid

DEFAULT_MARGIN_MM = 5.0
ICE_EDGE_C = 0.0


def zone_on_image(
    temperature_c: np.ndarray,
    grid: Grid,
    observation: IceObservation,
    level_c: float = ICE_EDGE_C,
    default_c: float = 37.0,
) -> np.ndarray:
    """The predicted zone at or below ``level_c`` at the image's voxel centres (bool, image shape),
    looked up in the plan frame through the observation's registration (trilinear)."""
    values = _on_image(
        np.asarray(temperature_c, np.float32), grid, observation, linear=True, default=default_c
    )
    return values <= level_c


def labels_on_image(labels: np.ndarray, grid: Grid, observation: IceObservation) -> np.ndarray:
    """The plan's label map at the image's voxel centres (nearest voxel; 0 outside the grid)."""
    return np.rint(
        _on_image(np.asarray(labels, np.float32), grid, observation, linear=False, default=0.0)
    ).astype(np.int32)


def _on_image(field: np.ndarray, grid: Grid, observation: IceObservation, linear: bool, default: float):

    if field.shape != tuple(grid.size):
        raise InputError("grid", f"field of shape {field.shape} does not match the grid {grid.size}")
    source = sitk_image(field, grid.ijk_to_ras_matrix())
    reference = sitk_image(np.zeros(observation.label.shape, np.float32), observation.ijk_to_ras)
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    out = sitk.Resample(
        source,
        reference,
        affine_from_matrix(observation.image_to_plan),
        interpolator,
        float(default),
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def _mask_image(mask: np.ndarray, spacing):

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(mask, np.uint8).T))
    image.SetSpacing([float(s) for s in spacing])
    return image


def _distance(mask: np.ndarray, spacing) -> np.ndarray:
    """Signed distance (mm) to the mask's boundary, negative inside."""

    return sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            _mask_image(mask, spacing), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    ).T


def _surface(mask: np.ndarray, spacing) -> np.ndarray:

    return sitk.GetArrayFromImage(sitk.LabelContour(_mask_image(mask, spacing), fullyConnected=False)).T > 0


def _planar(mask: np.ndarray) -> np.ndarray:
    """Drop the one-voxel axis of a slice so that distances stay in its plane."""
    return mask[:, :, 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask


def overlap_metrics(observed: np.ndarray, predicted: np.ndarray, spacing_mm) -> dict:
    """Size, Dice and symmetric surface distances (mean, max) of two masks on one grid.

    ``volume_ml`` (observed) and ``predicted_volume_ml`` for 3-D masks; ``area_cm2`` and
    ``predicted_area_cm2`` for slices (``spacing_mm``: the mask's voxel size).
    """
    observed = _planar(np.asarray(observed, bool))
    predicted = _planar(np.asarray(predicted, bool))
    if observed.shape != predicted.shape:
        raise InputError(
            "predicted", f"shape {predicted.shape} does not match the observed ice {observed.shape}"
        )
    spacing = [float(s) for s in spacing_mm][: observed.ndim]
    cell = float(np.prod(spacing))
    n_obs, n_pred = int(np.count_nonzero(observed)), int(np.count_nonzero(predicted))
    both = int(np.count_nonzero(observed & predicted))
    result: dict = {}
    if observed.ndim == 3:
        result["volume_ml"] = round(n_obs * cell / 1000.0, 4)
        result["predicted_volume_ml"] = round(n_pred * cell / 1000.0, 4)
    else:
        result["area_cm2"] = round(n_obs * cell / 100.0, 4)
        result["predicted_area_cm2"] = round(n_pred * cell / 100.0, 4)
    result["dice"] = round(2.0 * both / (n_obs + n_pred), 4) if n_obs + n_pred else None
    if n_obs and n_pred:
        surface_obs, surface_pred = _surface(observed, spacing), _surface(predicted, spacing)
        to_pred = np.abs(_distance(predicted, spacing))[surface_obs]
        to_obs = np.abs(_distance(observed, spacing))[surface_pred]
        distances = np.concatenate([to_pred, to_obs])
        result["mean_surface_distance_mm"] = round(float(np.mean(distances)), 3)
        result["max_surface_distance_mm"] = round(float(np.max(distances)), 3)
    else:
        result["mean_surface_distance_mm"] = None
        result["max_surface_distance_mm"] = None
    return result


def structure_distances(
    ice: np.ndarray,
    labels: np.ndarray,
    spacing_mm,
    critical: Mapping[str, int],
    margin_mm: float | Mapping[str, float] = DEFAULT_MARGIN_MM,
) -> dict[str, dict]:
    """Distance (mm) from the ice edge to each critical structure (0 when the ice reaches into
    it, with the overlap), and a warning when it lies within the structure's margin."""
    ice = _planar(np.asarray(ice, bool))
    labels = _planar(np.asarray(labels))
    if ice.shape != labels.shape:
        raise InputError("labels", f"shape {labels.shape} does not match the ice {ice.shape}")
    spacing = [float(s) for s in spacing_mm][: ice.ndim]
    cell = float(np.prod(spacing))
    distance = _distance(ice, spacing) if np.any(ice) else None
    out: dict[str, dict] = {}
    for name, label in critical.items():
        margin = float(margin_mm[name] if isinstance(margin_mm, Mapping) else margin_mm)
        if not (math.isfinite(margin) and margin >= 0):
            raise InputError(f"margin_mm[{name}]", f"must be a number of millimetres ≥ 0, got {margin}")
        structure = labels == int(label)
        entry: dict = {"label": int(label), "margin_mm": margin}
        if not np.any(structure):
            entry.update(distance_mm=None, warning=None, note="not in the field of view")
        elif distance is None:
            entry.update(distance_mm=None, warning=None, note="no ice observed")
        else:
            overlap = int(np.count_nonzero(structure & ice))
            nearest = max(0.0, float(np.min(distance[structure])))
            entry["distance_mm"] = round(nearest, 2)
            if ice.ndim == 3:
                entry["frozen_ml"] = round(overlap * cell / 1000.0, 4)
            else:
                entry["frozen_cm2"] = round(overlap * cell / 100.0, 4)
            if overlap:
                entry["warning"] = f"{name}: the observed ice reaches into it"
            elif nearest < margin:
                entry["warning"] = (
                    f"{name}: observed ice edge {nearest:.1f} mm away, within its {margin:g} mm margin"
                )
            else:
                entry["warning"] = None
        out[name] = entry
    return out


def compare_with_prediction(
    observation: IceObservation,
    temperature_c: np.ndarray,
    grid: Grid,
    labels: np.ndarray | None = None,
    critical: Mapping[str, int] | None = None,
    margin_mm: float | Mapping[str, float] = DEFAULT_MARGIN_MM,
    level_c: float = ICE_EDGE_C,
) -> dict:
    """Observed against predicted (``temperature_c`` on the plan ``grid``, the field at the
    image's time) and distances to the critical structures (``labels`` on the plan grid).

    Returns a JSON-ready dict: ``kind``, ``where`` (plan grid or slice plane), the overlap
    metrics, ``structures`` and ``warnings``.
    """
    temperature_c = np.asarray(temperature_c, float)
    if temperature_c.shape != tuple(grid.size):
        raise InputError(
            "temperature", f"shape {temperature_c.shape} does not match the plan grid {grid.size}"
        )
    if labels is not None and np.shape(labels) != tuple(grid.size):
        raise InputError("labels", f"shape {np.shape(labels)} does not match the plan grid {grid.size}")
    if observation.kind == "volume":
        observed = ice_on_grid(observation, grid).astype(bool)
        predicted = temperature_c <= level_c
        spacing = grid.spacing_mm
        structure_labels = labels
        where = "plan grid"
    else:
        observed = observation.label.astype(bool)
        predicted = zone_on_image(temperature_c, grid, observation, level_c)
        spacing = observation.spacing_mm
        structure_labels = labels_on_image(labels, grid, observation) if labels is not None else None
        where = "slice plane (in-plane distances)"
    result = {"kind": observation.kind, "where": where, "level_c": level_c}
    result.update(overlap_metrics(observed, predicted, spacing))
    structures = {}
    if critical:
        if structure_labels is None:
            raise InputError("labels", "critical structures need the plan's label map")
        structures = structure_distances(observed, structure_labels, spacing, critical, margin_mm)
    result["structures"] = structures
    result["warnings"] = [entry["warning"] for entry in structures.values() if entry.get("warning")]
    result["registration"] = {
        "motion_mm": [round(float(v), 2) for v in observation.motion_mm],
        "image_to_plan": [[round(float(v), 6) for v in row] for row in observation.image_to_plan],
    }
    result["noise_sigma"] = round(observation.noise_sigma, 3)
    result["notes"] = list(observation.notes)
    return result
