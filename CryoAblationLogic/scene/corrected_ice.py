"""The corrected prediction (``analysis/ice_correction.py``) in the scene, shown like the planned
isotherms (SlicerRT Isodose style: ordinary nodes in the live folder, the isotherm colours of
``core/isotherms.py``), and the forecast for the Monitor section:

- **Corrected isotherms** (segmentation): −40, −20 and 0 °C of the posterior median (p50) of the
  minimum temperature, contoured by the helpers that draw the planned isotherms
  (:func:`.isotherms.update_isotherm_segmentation`);
- **Corrected −40 °C band (p10–p90)** (segmentation): two closed surfaces, the −40 °C surface of
  the band's cold side (p10: where the lethal zone may reach) and of its warm side (p90: what it
  reaches almost surely). Two outlines read best in slice views: the band is the ring between
  them, drawn over the MR image without hiding it, as the planned isotherms are; a filled label
  volume of the band would cover the very image the radiologist watches and show staircases;
- **Corrected minimum temperature** (volume, °C): the p50 field, in the temperature colours;
- **Forecast** (table): one row per event (the −40 °C zone covers the target plus margin; the 0 °C
  edge reaches each critical structure): p10 / p50 / p90 procedure time in mm:ss and in s, the
  chance that it does not happen within the protocol ("never", %), and when it was issued;
- **Correction parameters** (table): name, posterior mean, p10, p90, prior mean, unit.

The worker process (:mod:`.live_process`) sends a correction as :func:`correction_payload`
(float32 fields, only when they changed); :class:`CorrectedIceView` puts it on the nodes, in place.
:class:`~CryoAblationLogic.live.late_correction.GatedCorrector` is the corrector that live mode in
the panel plugs into the session (its ensemble prepared while the links already run).
"""

from __future__ import annotations

import math

import numpy as np
from slicer import vtkSegmentation

from CryoAblationLogic.analysis.forecast_text import forecast_words
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.isotherms import level_colour
from CryoAblationLogic.scene import colors, isotherms, tables, volumes

CORRECTED_ISOTHERMS_NAME = "Corrected isotherms"
CORRECTED_BAND_NAME = "Corrected −40 °C band (p10–p90)"
CORRECTED_MIN_TEMPERATURE_NAME = "Corrected minimum temperature"
FORECAST_TABLE_NAME = "Forecast"
PARAMETERS_TABLE_NAME = "Correction parameters"
CORRECTED_LEVELS_C = (-40.0, -20.0, 0.0)
BAND_LEVEL_C = -40.0
BAND_SEGMENTS = {10.0: ("band_p10", "−40 °C cold side (p10)"), 90.0: ("band_p90", "−40 °C warm side (p90)")}
MEMBERS_RANGE = (8, 512)


def check_members(members) -> int:
    """The ensemble size the panel asks for, checked as the CLI checks ``--ensemble-members``."""
    low, high = MEMBERS_RANGE
    if isinstance(members, bool) or not isinstance(members, int) or not low <= members <= high:
        raise InputError("ensemble_members", f"must be an integer in [{low}, {high}], got {members!r}")
    return members


# --- time as the operator reads it ------------------------------------------------------------


def mm_ss(seconds: float | None) -> str:
    """Procedure time as m:ss ("-" for none)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def event_label(event: str, margin_mm: float) -> str:
    if event == "lethal_covers_target":
        return f"−40 °C covers target + {margin_mm:g} mm"
    if event.startswith("ice_reaches:"):
        return f"ice reaches {event.split(':', 1)[1]}"
    return event


# --- what the worker sends --------------------------------------------------------------------


def placement_rows(placement: dict) -> dict:
    """Rows of the parameters table for the probe poses the ensemble was drawn around: each tip
    coordinate (RAS mm) as its mean and prior mean, its prior's 10th–90th percentile as p10/p90."""
    half = 1.2816 * float(placement.get("tip_error_mm", 0.0)) / 3**0.5  # per axis, normal prior
    unit = f"mm ({placement.get('centre', '?')} pose)"
    rows = {}
    for name, pose in (placement.get("probes") or {}).items():
        for axis, value in zip("RAS", pose["tip_mm"], strict=True):
            row = {"mean": value, "p10": value - half, "p90": value + half, "prior_mean": value, "unit": unit}
            rows[f"ensemble_tip_{axis}:{name}"] = row
    return rows


def correction_payload(correction, sent_fields: dict | None = None, margin_mm: float = 5.0) -> dict:
    """A correction as the worker sends it: numbers as they are, the p10/p50/p90 fields as float32
    and only those that differ from ``sent_fields`` (percentile → the field last sent; updated)."""
    fields = {}
    sent = sent_fields if sent_fields is not None else {}
    for q, array in correction.min_temperature.items():
        array = np.asarray(array, np.float32)
        last = sent.get(q)
        if last is None or not np.array_equal(last, array):
            fields[q] = array
            sent[q] = array
    return {
        "time_s": float(correction.time_s),
        "images": int(correction.images),
        "parameters": correction.parameters,
        "isotherm_volumes_ml": dict(correction.isotherm_volumes_ml),
        "forecasts": correction.forecasts,
        "departures": list(correction.departures),
        "notes": list(correction.notes),
        "metrics": dict(correction.metrics),
        "margin_mm": float(margin_mm),
        "fields": fields,
        "placement": dict(getattr(correction, "placement", {}) or {}),  # the ensemble's probe poses
        "ensemble": dict(getattr(correction, "ensemble", {}) or {}),  # its generation (re-centrings)
    }


def status_line(payload: dict, departures: list[str] | None = None, kept: int = 0) -> str:
    """One line for the Monitor section: when and from how many images, each forecast's median
    with its band (or "not within the protocol" with the chance that it happens all the same),
    and plainly when the correction is not valid."""
    departures = list(departures if departures is not None else payload["departures"])
    parts = [f"Correction at {mm_ss(payload['time_s'])} from {payload['images']} images"]
    generation = (payload.get("ensemble") or {}).get("generation", 0)
    if generation:
        parts[0] += f", ensemble re-centred ({generation})"
    if kept:
        parts[0] += f" ({kept} of them kept while the ensemble was prepared)"
    for event, times in payload["forecasts"].items():
        label = event_label(event, payload.get("margin_mm", 5.0))
        words = forecast_words(times, mm_ss)
        parts.append(f"{label}: {words}" if times.get("p50") is None else f"{label} {words}")
    line = "; ".join(parts)
    if departures:
        line = (
            "Correction NOT VALID: the console departs from the planned protocol the ensemble ran ("
            + "; ".join(departures[:3])
            + (" …" if len(departures) > 3 else "")
            + "). "
            + line
        )
    return line


# --- the scene nodes --------------------------------------------------------------------------


class CorrectedIceView:
    """The corrected prediction in ``scene`` under the folder ``folder`` (nodes of an earlier
    live session of the same names are reused). :meth:`show` takes a payload; fields it leaves
    out keep their last values."""

    def __init__(self, scene, grid, folder: str):
        self.scene = scene
        self.grid = grid
        self.folder = folder
        self.isotherm_node = tables.node_named(scene, "vtkMRMLSegmentationNode", CORRECTED_ISOTHERMS_NAME)
        self.band_node = tables.node_named(scene, "vtkMRMLSegmentationNode", CORRECTED_BAND_NAME)
        self.volume_node = tables.node_named(scene, "vtkMRMLScalarVolumeNode", CORRECTED_MIN_TEMPERATURE_NAME)
        self.forecast_table = tables.node_named(scene, "vtkMRMLTableNode", FORECAST_TABLE_NAME)
        self.parameters_table = tables.node_named(scene, "vtkMRMLTableNode", PARAMETERS_TABLE_NAME)
        self.fields: dict[float, np.ndarray] = {}
        self.payload: dict | None = None
        self.volumes_ml: dict[float, float] = {}

    def show(self, payload: dict) -> None:
        """Put a correction (:func:`correction_payload`) on the nodes; nothing into a closing scene."""
        if self.scene.IsClosing():
            return
        self.fields.update(payload["fields"])
        self.payload = payload
        if payload["fields"] and 50.0 in self.fields:
            self._show_fields()
        self._show_forecast(payload)
        self._show_parameters(payload)

    def _segmentation(self, name: str):
        node = isotherms.create_isotherm_segmentation(self.scene, name)
        node.SetName(name)
        tables.put_in_folder(self.scene, self.folder, [node])
        return node

    def _show_fields(self) -> None:
        median = self.fields[50.0]
        if self.volume_node is None:
            self.volume_node = volumes.add_volume_node(
                self.scene, CORRECTED_MIN_TEMPERATURE_NAME, median, self.grid
            )
            colors.show_with_temperature_colors(self.scene, self.volume_node)
            tables.put_in_folder(self.scene, self.folder, [self.volume_node])
        else:
            volumes.set_volume_field(self.volume_node, median, self.grid)
        if self.isotherm_node is None:
            self.isotherm_node = self._segmentation(CORRECTED_ISOTHERMS_NAME)
        levels = [(level, level_colour(level)) for level in CORRECTED_LEVELS_C]
        self.volumes_ml = isotherms.update_isotherm_segmentation(
            self.isotherm_node, median, self.grid, levels
        )
        if self.band_node is None:
            self.band_node = self._segmentation(CORRECTED_BAND_NAME)
        self._show_band()

    def _show_band(self) -> None:
        node = self.band_node
        segmentation = node.GetSegmentation()
        rgb = level_colour(BAND_LEVEL_C)
        was_modifying = node.StartModify()
        try:
            for q, (segment_id, name) in BAND_SEGMENTS.items():
                if q not in self.fields:
                    continue
                surface = isotherms.contour_isotherm(self.fields[q], self.grid, BAND_LEVEL_C)
                # the cold side paler: the outer outline is where the lethal zone may reach
                shade = [c + (1.0 - c) * 0.5 for c in rgb] if q == 10.0 else list(rgb)
                segment = segmentation.GetSegment(segment_id)
                if segment is None:
                    node.AddSegmentFromClosedSurfaceRepresentation(surface, name, shade, segment_id)
                else:
                    segment.RemoveAllRepresentations()
                    segment.AddRepresentation(isotherms.CLOSED_SURFACE, surface)
            segmentation.InvokeEvent(vtkSegmentation.SourceRepresentationModified)
        finally:
            node.EndModify(was_modifying)

    def _table(self, current, name: str):
        if current is None:
            current = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
            tables.put_in_folder(self.scene, self.folder, [current])
        return current

    def _show_forecast(self, payload: dict) -> None:
        self.forecast_table = self._table(self.forecast_table, FORECAST_TABLE_NAME)
        forecasts = payload["forecasts"]
        events = list(forecasts)
        margin = payload.get("margin_mm", 5.0)
        columns = [tables.Column("Event", [event_label(e, margin) for e in events])]
        for p in ("p10", "p50", "p90"):
            columns.append(
                tables.Column(p, [mm_ss(forecasts[e][p]) for e in events], "m:ss", "procedure time")
            )
        for p in ("p10", "p50", "p90"):
            columns.append(tables.Column(f"{p} s", [forecasts[e][p] for e in events], "s", "procedure time"))
        columns.append(
            tables.Column(
                "Never",
                [100.0 * forecasts[e]["p_never"] for e in events],
                "%",
                "chance that it does not happen within the protocol",
            )
        )
        columns.append(tables.Column("Issued at", [mm_ss(payload["time_s"])] * len(events), "m:ss"))
        tables.set_table_columns(self.forecast_table, columns)

    def _show_parameters(self, payload: dict) -> None:
        self.parameters_table = self._table(self.parameters_table, PARAMETERS_TABLE_NAME)
        parameters = {**payload["parameters"], **placement_rows(payload.get("placement") or {})}
        names = list(parameters)
        columns = [tables.Column("Name", names)]
        for key, title in (("mean", "Mean"), ("p10", "p10"), ("p90", "p90"), ("prior_mean", "Prior mean")):
            columns.append(tables.Column(title, [parameters[n][key] for n in names]))
        columns.append(tables.Column("Unit", [parameters[n]["unit"] for n in names]))
        tables.set_table_columns(self.parameters_table, columns)
