"""One monitored procedure in pictures: the ice observed in the MR images against the plan's
prediction, the corrected prediction with its band and, for a simulated procedure, the truth.

Reads what ``cryoablation monitor --out DIR`` wrote (``DIR/summary.json``, ``DIR/predicted/``,
``DIR/observed/``, ``DIR/corrected/``) and optionally the truth result folder of
``cryoablation simulate-scanner --truth-out`` (on the plan's grid), and draws with the record's
helpers (:mod:`CryoAblationLogic.report.pictures`):

- slices (axial, coronal, sagittal through the probe cluster) at one image time: the MR image of
  that time when the folder holds one, the observed ice outline, the predicted 0 °C and −40 °C
  outlines, the corrected −40 °C outline over its p10–p90 band, and the truth's 0 °C and −40 °C;
  line style says the source (observed: thick solid, predicted: dashed, corrected: solid,
  truth: dotted) and colour the level, so the legend reads in grey print too;
- a chart over time: observed against predicted ice volume and Dice, the corrected −40 °C volume
  with its band and the forecast times after each image;
- a table of the final fitted parameters, forecasts and (with the truth) how far each lies from it.

The predicted, corrected and truth fields are each folder's lowest temperature reached (the end of
the monitored procedure): the captions say so when the chosen image is an earlier one. The MR
images themselves live in the monitor's journal (live layer): the caller passes those of the time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from CryoAblationLogic.analysis.forecast_text import chance_percent, forecast_words
from CryoAblationLogic.analysis.grid_geometry import trilinear_at_indices
from CryoAblationLogic.analysis.ice_comparison import overlap_metrics
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import level_colour, sensor_colour
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.mr_synthesis import read_mr_image
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.report import pictures

MONITOR_FORMAT = "cryoablation-monitor/1"
FREEZING_C, LETHAL_C = 0.0, -40.0
OBSERVED_COLOUR = (1.0, 0.85, 0.0)  # yellow: apart from the isotherm colours on a grey MR image
TIME_TOLERANCE_S = 0.5  # an image "at" a time: the series keeps times to the millisecond
PARALLEL_COS = 0.995  # a slice image lies in a view when their normals agree within ~6°
# line style per source (what the legend says); the colour is the level's
STYLES = {
    "observed": {"ls": "-", "lw": 2.6},
    "predicted": {"ls": (0, (5, 2.5)), "lw": 1.6},
    "corrected": {"ls": "-", "lw": 1.4},
    "truth": {"ls": (0, (1, 1.6)), "lw": 1.9},
}
BAND_ALPHA = 0.28


@dataclass
class MonitorOutput:
    """A monitor output folder, read and checked."""

    folder: Path
    summary: dict
    grid: Grid
    predicted_min_c: np.ndarray
    observed_final: np.ndarray  # bool, plan grid
    series: list[dict]  # the observed images (status "observed")
    corrected: dict[str, np.ndarray] = field(default_factory=dict)  # "p10", "p50", "p90" (°C)
    probes: list = field(default_factory=list)  # as finally placed (predicted/case.cryo.json)

    @property
    def correction(self) -> dict | None:
        return self.summary.get("correction")

    @property
    def image_times_s(self) -> list[float]:
        return sorted({float(row["time_s"]) for row in self.series})

    def rows_at(self, time_s: float) -> list[dict]:
        return [row for row in self.series if abs(float(row["time_s"]) - time_s) <= TIME_TOLERANCE_S]


def _read_json(path: Path, key: str) -> dict:
    if not path.is_file():
        raise InputError(key, f"not found: {path} (is this a `cryoablation monitor --out` folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(key, f"not readable JSON ({error})") from error
    if not isinstance(data, dict):
        raise InputError(key, "must hold a JSON object")
    return data


def _field(path: Path, key: str, grid: Grid | None = None) -> tuple[np.ndarray, Grid]:
    if not path.is_file():
        raise InputError(key, f"not found: {path}")
    try:
        array, file_grid = read_nrrd(path)
    except InputError:
        raise
    except Exception as error:  # a damaged file: say which, not how the reader failed inside
        raise InputError(key, f"not a readable NRRD volume ({error})") from error
    if grid is not None and file_grid != grid:
        raise InputError(
            key,
            f"lies on another grid ({file_grid.size} voxels of {file_grid.spacing_mm} mm at "
            f"{file_grid.origin_mm}) than the monitor's plan ({grid.size} of {grid.spacing_mm} mm at "
            f"{grid.origin_mm}): pictures compare voxel for voxel",
        )
    return np.asarray(array), file_grid


def load_monitor_output(folder: str | Path) -> MonitorOutput:
    """Read ``cryoablation monitor --out`` output; a folder that is not one, or lacks the observed
    ice, is an InputError naming the file or key."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("MONITOR_DIR", f"not a folder: {folder}")
    summary = _read_json(folder / "summary.json", "summary.json")
    if summary.get("format") != MONITOR_FORMAT:
        raise InputError(
            "summary.json: format",
            f"is {summary.get('format')!r}, not {MONITOR_FORMAT!r} (a monitor output folder's summary)",
        )
    observed = summary.get("observed")
    if not isinstance(observed, dict) or not isinstance(observed.get("series"), list):
        raise InputError(
            "summary.json: observed", "holds no observed-ice series (the monitor ran with --no-ice?)"
        )
    series = [row for row in observed["series"] if isinstance(row, dict) and row.get("status") == "observed"]
    for index, row in enumerate(series):
        if not isinstance(row.get("time_s"), (int, float)):
            raise InputError(f"summary.json: observed.series[{index}].time_s", "must be a number of seconds")
    if not series:
        raise InputError("summary.json: observed.series", "holds no observed image (no ice to draw)")
    predicted, grid = _field(folder / "predicted" / "min_temperature.nrrd", "predicted/min_temperature.nrrd")
    ice, _ = _field(folder / "observed" / "ice_final.nrrd", "observed/ice_final.nrrd", grid)
    output = MonitorOutput(folder, summary, grid, predicted.astype(np.float32), ice > 0.5, series)
    output.probes = _placed_probes(folder / "predicted" / "case.cryo.json")
    if output.correction is not None:
        for name, file in (
            ("p50", "min_temperature"),
            ("p10", "min_temperature_p10"),
            ("p90", "min_temperature_p90"),
        ):
            output.corrected[name] = _field(
                folder / "corrected" / f"{file}.nrrd", f"corrected/{file}.nrrd", grid
            )[0].astype(np.float32)
    return output


def _placed_probes(path: Path) -> list:
    """The probes of the monitor's case as finally placed; none when it has no readable case
    (the pictures then go without probes)."""
    if not path.is_file():
        return []
    try:
        return list(load_case(path).probes)
    except InputError:
        return []


def load_truth(folder: str | Path, grid: Grid) -> tuple[np.ndarray, dict]:
    """The truth's lowest temperature (°C, the monitor's plan grid) and its summary."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("--truth", f"not a folder: {folder}")
    summary = _read_json(folder / "summary.json", "truth summary.json")
    array, _ = _field(folder / "min_temperature.nrrd", "truth min_temperature.nrrd", grid)
    return array.astype(np.float32), summary


def choose_time(output: MonitorOutput, time_s: float | None) -> float:
    """The image time to draw: ``time_s`` when an observed image has it, the last by default."""
    times = output.image_times_s
    if time_s is None:
        return times[-1]
    if not np.isfinite(time_s):
        raise InputError("--time", f"must be a number of seconds, got {time_s}")
    if not output.rows_at(time_s):
        shown = ", ".join(f"{t:g}" for t in times[:8]) + (" …" if len(times) > 8 else "")
        raise InputError("--time", f"no observed image at {time_s:g} s (images at {shown} s)")
    return next(t for t in times if abs(t - time_s) <= TIME_TOLERANCE_S)


# --- images of one time ------------------------------------------------------------------------


@dataclass
class PlacedImage:
    """An image in its own geometry (a label map or an MR image) to be sampled on view planes."""

    array: np.ndarray
    ijk_to_ras: np.ndarray
    name: str

    @property
    def is_slice(self) -> bool:
        return self.array.shape[2] == 1

    def normal(self) -> np.ndarray:
        axis = self.ijk_to_ras[:3, 2]
        return axis / np.linalg.norm(axis)

    def lies_in(self, plane: pictures.Plane) -> bool:
        """A volume lies in every view; a slice only in the view of its own plane."""
        if not self.is_slice:
            return True
        thickness = float(np.linalg.norm(self.ijk_to_ras[:3, 2]))
        offset = float((plane.centre_mm - self.ijk_to_ras[:3, 3]) @ self.normal())
        return abs(float(self.normal() @ plane.normal)) >= PARALLEL_COS and abs(offset) <= thickness / 2

    def sample(self, points_ras: np.ndarray, linear: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Values at RAS points (nearest voxel: a label map's own edges; ``linear``: an MR image's
        grey levels, trilinear), and where the points lie within the image."""
        homogeneous = np.c_[points_ras, np.ones(len(points_ras))]
        ijk = (np.linalg.inv(self.ijk_to_ras) @ homogeneous.T)[:3].T
        shape = np.asarray(self.array.shape[:3])
        inside = np.all((ijk >= -0.5) & (ijk <= shape - 0.5), axis=1)
        if linear:
            values = trilinear_at_indices(np.asarray(self.array, np.float32), ijk)
            return values, inside
        nearest = np.clip(np.rint(ijk).astype(np.int64), 0, shape - 1)
        values = self.array[nearest[:, 0], nearest[:, 1], nearest[:, 2]]
        return values, inside


def observed_images_at(output: MonitorOutput, time_s: float) -> list[PlacedImage]:
    """The observed ice label maps of the images at ``time_s`` (1 = frozen), in their geometry."""
    placed = []
    for row in output.rows_at(time_s):
        file = row.get("file")
        if not file:
            continue
        image = read_mr_image(output.folder / file, f"summary.json: observed file {file}")
        placed.append(PlacedImage(image.array > 0.5, image.ijk_to_ras, image.name))
    return placed


# --- the slice pictures -------------------------------------------------------------------------


def view_centre_mm(output: MonitorOutput) -> np.ndarray:
    """The centre of the probe cluster: the real-time slices' common centre where the series has
    slices (the scanner places them through the cluster), else the predicted −40 °C zone's."""
    for row in output.series:
        if row.get("kind") == "slice" and row.get("file"):
            image = read_mr_image(output.folder / row["file"], f"observed file {row['file']}")
            n = np.asarray(image.array.shape[:2]) - 1
            return (image.ijk_to_ras @ np.array([n[0] / 2, n[1] / 2, 0.0, 1.0]))[:3]
    cold = np.argwhere(output.predicted_min_c <= LETHAL_C)
    if len(cold) == 0:
        cold = np.argwhere(output.predicted_min_c <= FREEZING_C)
    if len(cold) == 0:
        return output.grid.index_to_ras((np.asarray(output.grid.size) - 1) / 2.0)
    return output.grid.index_to_ras(cold.mean(axis=0))


def _stroke(colour) -> list:
    """A dark edge under a light line, so that it stands out on any grey."""
    return [
        patheffects.Stroke(linewidth=STYLES["observed"]["lw"] + 1.2, foreground=(0, 0, 0, 0.6)),
        patheffects.Normal(),
    ]


def _contour(axes, steps, field, level, colour, style) -> bool:
    """The ``level`` outline of a field sampled on the picture; False when none crosses it."""
    finite = field[np.isfinite(field)]
    if finite.size == 0 or not finite.min() <= level <= finite.max() or finite.min() == finite.max():
        return False
    axes.contour(
        steps, steps, field, levels=[level], colors=[colour], linewidths=style["lw"], linestyles=[style["ls"]]
    )
    return True


def ice_slice_figure(
    plane: pictures.Plane,
    output: MonitorOutput,
    time_s: float,
    *,
    half_width_mm: float,
    observed: Sequence[PlacedImage] = (),
    mr_images: Sequence[PlacedImage] = (),
    truth_min_c: np.ndarray | None = None,
) -> tuple[Figure, dict]:
    """One view (see the module docstring) and what it shows: {source: drawn?}."""
    grid = output.grid
    pixel_mm = max(0.25, min(grid.spacing_mm) / 3.0)
    steps = np.arange(-half_width_mm, half_width_mm + 1e-9, pixel_mm)
    a, b = np.meshgrid(steps, steps)
    points = (plane.centre_mm + a[..., None] * plane.u + b[..., None] * plane.v).reshape(-1, 3)
    extent = (steps[0], steps[-1], steps[0], steps[-1])

    def on_plane(volume):
        return pictures.sample_plane(volume, grid, plane, half_width_mm, pixel_mm)

    figure = Figure(figsize=(7.6, 5.0), dpi=pictures.DPI)
    axes = figure.add_axes((0.01, 0.02, 0.64, 0.87))  # the legend beside it: the ice stays in view
    axes.set_facecolor((0.12, 0.12, 0.12))  # no image here
    shows: dict[str, bool] = {}
    mr = [image for image in mr_images if image.lies_in(plane)]
    if mr:
        values, inside = mr[0].sample(points, linear=True)
        picture = np.where(inside, values, np.nan).reshape(a.shape)
        low, high = pictures.window_levels(values[inside]) if inside.any() else (0.0, 1.0)
        axes.imshow(
            picture, cmap="gray", vmin=low, vmax=high, origin="lower", extent=extent, interpolation="bilinear"
        )
    shows["mr_image"] = bool(mr)

    handles = []
    if output.corrected:
        cold, inside = on_plane(output.corrected["p10"])
        warm, _ = on_plane(output.corrected["p90"])
        band = inside & (cold <= LETHAL_C) & ~(warm <= LETHAL_C)  # lethal in some members, not all
        colour = level_colour(LETHAL_C)
        if band.any():
            axes.contourf(
                steps,
                steps,
                band.astype(float),
                levels=[0.5, 1.5],
                colors=[colour],
                alpha=BAND_ALPHA,
                hatches=["////"],
            )
        handles.append(
            Patch(
                facecolor=(*colour, BAND_ALPHA),
                edgecolor=colour,
                hatch="////",
                label="corrected −40 °C: p10–p90 band",
            )
        )
        shows["corrected_band"] = bool(band.any())
        median, _ = on_plane(output.corrected["p50"])
        shows["corrected_-40"] = _contour(
            axes, steps, np.where(inside, median, np.nan), LETHAL_C, colour, STYLES["corrected"]
        )
        handles.append(Line2D([], [], color=colour, **STYLES["corrected"], label="corrected −40 °C (median)"))

    sources = [("predicted", output.predicted_min_c)]
    if truth_min_c is not None:
        sources.append(("truth", truth_min_c))
    for source, volume in sources:
        sampled, inside = on_plane(volume)
        sampled = np.where(inside, sampled, np.nan)
        for level in (FREEZING_C, LETHAL_C):
            colour = level_colour(level)
            shows[f"{source}_{level:g}"] = _contour(axes, steps, sampled, level, colour, STYLES[source])
            handles.append(Line2D([], [], color=colour, **STYLES[source], label=f"{source} {_level(level)}"))

    shows["observed"] = False
    for image in observed:
        if not image.lies_in(plane):
            continue
        values, inside = image.sample(points)
        mask = np.where(inside, values.astype(float), np.nan).reshape(a.shape)
        if _contour(axes, steps, mask, 0.5, OBSERVED_COLOUR, STYLES["observed"]):
            shows["observed"] = True
            for collection in axes.collections[-1:]:
                collection.set_path_effects(_stroke(OBSERVED_COLOUR))
    observed_label = "observed ice (MR)" if shows["observed"] else "observed ice: no image in this plane"
    handles.insert(
        0,
        Line2D(
            [],
            [],
            color=OBSERVED_COLOUR,
            **STYLES["observed"],
            label=observed_label,
            path_effects=_stroke(OBSERVED_COLOUR),
        ),
    )

    if output.probes and pictures.draw_probes(axes, plane, output.probes, half_width_mm):
        handles.append(Line2D([], [], color=pictures.ACTIVE_COLOUR, lw=3, label="probe (active part)"))
    axes.set_xlim(extent[0], extent[1])
    axes.set_ylim(extent[2], extent[3])
    axes.set_xticks([])
    axes.set_yticks([])
    end = output.summary.get("procedure_time_s")
    when = f"image at {time_s:.0f} s"
    if end is not None and abs(float(end) - time_s) > TIME_TOLERANCE_S + 5.0:
        when += f"\nlines: the lowest temperature by the end ({float(end):.0f} s)"
    axes.set_title(f"{plane.name} through the probe cluster — {when}", fontsize=9)
    pictures.orientation_labels(axes, plane.labels)
    pictures.add_scale_bar(axes)
    order = [
        "observed",
        "predicted 0",
        "truth 0",
        "predicted −40",
        "corrected −40 °C (",
        "corrected −40 °C:",
        "truth −40",
    ]
    handles.sort(key=lambda h: next((n for n, key in enumerate(order) if h.get_label().startswith(key)), 99))
    legend = axes.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        frameon=False,
        handlelength=3.6,
        alignment="left",
    )
    legend.set_title("line style: source\ncolour: isotherm", prop={"size": 7.5})
    return figure, shows


def _level(level_c: float) -> str:
    return f"{level_c:g} °C".replace("-", "−")


# --- the chart and the table --------------------------------------------------------------------


def _minutes(values) -> np.ndarray:
    return np.asarray(values, dtype=float) / 60.0


def ice_chart_figure(output: MonitorOutput, truth_summary: dict | None = None) -> Figure:
    """Over time (min): observed vs predicted ice volume (3-D images) with the corrected −40 °C
    volume by the protocol's end and its band; Dice of observed vs predicted (slices and
    volumes); forecast times; the freezes shaded."""
    figure = Figure(figsize=(9.6, 8.2), dpi=pictures.DPI)
    volume_axes, dice_axes, forecast_axes = figure.subplots(3, 1, sharex=True)
    freezes = freeze_periods_s(output)
    for axes in (volume_axes, dice_axes, forecast_axes):
        for start, stop in freezes:
            axes.axvspan(start / 60.0, stop / 60.0, color="0.85", lw=0, zorder=0)
    volumes = [row for row in output.series if row.get("volume_ml") is not None]
    freezing, lethal = level_colour(FREEZING_C), level_colour(LETHAL_C)
    history_ml = predicted_volume_history(output)
    if history_ml:
        t = _minutes(history_ml["time_s"])
        for level in (FREEZING_C, LETHAL_C):
            if level in history_ml:
                volume_axes.plot(
                    t,
                    history_ml[level],
                    color=level_colour(level),
                    **STYLES["predicted"],
                    label=f"predicted {_level(level)}, now",
                )
    if volumes:
        t = _minutes([row["time_s"] for row in volumes])
        if not history_ml:
            predicted = [row.get("predicted_volume_ml") for row in volumes]
            volume_axes.plot(
                t,
                predicted,
                color=freezing,
                **STYLES["predicted"],
                marker="o",
                ms=4,
                label="predicted 0 °C, at each 3-D image",
            )
        volume_axes.plot(
            t,
            [row["volume_ml"] for row in volumes],
            "s",
            color=OBSERVED_COLOUR,
            mec="black",
            ms=7,
            label="observed ice, 3-D images",
        )
    history = _correction_history(output)
    end = _minutes(output.summary.get("procedure_time_s") or output.image_times_s[-1])
    if history:
        t = _minutes([entry["time_s"] for entry in history])
        band = [(entry.get("isotherm_volumes_ml") or {}).get(f"{LETHAL_C:g}") or {} for entry in history]
        volume_axes.fill_between(
            t,
            [_number(v.get("p90")) for v in band],
            [_number(v.get("p10")) for v in band],
            color=lethal,
            alpha=BAND_ALPHA,
            hatch="////",
            lw=0,
            label="corrected −40 °C by the end: p10–p90",
        )
        volume_axes.plot(
            t,
            [_number(v.get("p50")) for v in band],
            color=lethal,
            **STYLES["corrected"],
            label="corrected −40 °C by the end (median)",
        )
    if truth_summary:
        for level, marker in ((FREEZING_C, "*"), (LETHAL_C, "P")):
            entry = (truth_summary.get("isotherms") or {}).get(f"{level:g}")
            if isinstance(entry, dict) and entry.get("volume_ml") is not None:
                volume_axes.plot(
                    [end],
                    [entry["volume_ml"]],
                    marker,
                    color=level_colour(level),
                    mec="black",
                    ms=11,
                    ls="none",
                    label=f"truth {_level(level)} at the end",
                )
    volume_axes.set_ylabel("Volume (ml)")
    volume_axes.set_title("Ice volume: observed, predicted, corrected (grey: freezing)", fontsize=10)
    volume_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    volume_axes.grid(alpha=0.3)

    for kind, marker, label in (("slice", "o", "real-time slices (in-plane)"), ("volume", "s", "3-D images")):
        rows = [row for row in output.series if row.get("kind") == kind and row.get("dice") is not None]
        if rows:
            dice_axes.plot(
                _minutes([r["time_s"] for r in rows]),
                [r["dice"] for r in rows],
                marker=marker,
                ls="-" if kind == "volume" else "none",
                color="black" if kind == "volume" else "0.5",
                ms=5 if kind == "volume" else 3,
                label=label,
            )
    dice_axes.set_ylim(0.0, 1.02)
    dice_axes.set_ylabel("Dice, observed vs predicted 0 °C")
    dice_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    dice_axes.grid(alpha=0.3)

    styles = ["-", "--", "-.", ":"]
    if history:
        events = sorted({event for entry in history for event in entry.get("forecasts", {})})
        t = _minutes([entry["time_s"] for entry in history])
        for index, event in enumerate(events):
            values = [(entry.get("forecasts") or {}).get(event) or {} for entry in history]
            median = _minutes([_number(v.get("p50")) for v in values])
            colour = sensor_colour(index)
            label = forecast_name(event)
            if np.all(np.isnan(median)):
                label += ":\n" + _unseen_words(values[-1])
            forecast_axes.fill_between(
                t,
                _minutes([_number(v.get("p10")) for v in values]),
                _minutes([_number(v.get("p90")) for v in values]),
                color=colour,
                alpha=0.2,
                lw=0,
            )
            forecast_axes.plot(
                t, median, color=colour, ls=styles[index % len(styles)], marker=".", label=label
            )
        forecast_axes.plot(t, t, color="0.4", lw=0.8, label="now (forecast = image time)")
        forecast_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        forecast_axes.text(
            0.5,
            0.5,
            "no correction in this monitor output (run monitor --correct)",
            ha="center",
            va="center",
            transform=forecast_axes.transAxes,
            fontsize=8,
        )
    forecast_axes.set_ylabel("Forecast time (min)")
    forecast_axes.set_title("Forecasts after each image (median; band p10–p90)", fontsize=10)
    forecast_axes.set_xlabel("Procedure time of the image (min)")
    forecast_axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def predicted_volume_history(output: MonitorOutput) -> dict:
    """``predicted/ice_volume_history.csv`` as {"time_s": [...], level °C: [ml, ...]}; empty when
    the folder has none or it cannot be read (the chart then shows the series' values)."""
    path = output.folder / "predicted" / "ice_volume_history.csv"
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            rows = list(csv.DictReader(stream))
        history: dict = {"time_s": [float(row["time_s"]) for row in rows]}
        for level in (FREEZING_C, LETHAL_C):
            column = f"volume_ml_at_{level:g}C"
            if rows and column in rows[0]:
                history[level] = [float(row[column]) for row in rows]
    except (OSError, KeyError, ValueError):
        return {}
    return history if history["time_s"] else {}


def forecast_name(event: str) -> str:
    """A forecast's event in words ("ice_reaches:Bowel" → "0 °C edge reaches Bowel")."""
    if event == "lethal_covers_target":
        return "−40 °C covers target + margin"
    if event.startswith("ice_reaches:"):
        return f"0 °C edge reaches {event.split(':', 1)[1]}"
    return event


def freeze_periods_s(output: MonitorOutput) -> list[tuple[float, float]]:
    """When any probe froze (s), from the console's probe states in ``predicted/summary.json``;
    none when the summary does not say."""
    path = output.folder / "predicted" / "summary.json"
    try:
        notes = json.loads(path.read_text(encoding="utf-8"))["live"]["notes"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    freezing: set = set()
    periods, start = [], None
    for note in notes if isinstance(notes, list) else []:
        if not isinstance(note, dict) or note.get("what") != "probe_state":
            continue
        if note.get("action") == "freeze":
            freezing.add(note.get("probe"))
        else:
            freezing.discard(note.get("probe"))
        time_s = _number(note.get("time_s"))
        if freezing and start is None:
            start = time_s
        elif not freezing and start is not None:
            periods.append((start, time_s))
            start = None
    if start is not None:
        periods.append((start, float(output.summary.get("procedure_time_s") or start)))
    return periods


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else np.nan


def _correction_history(output: MonitorOutput) -> list[dict]:
    """The correction after each image (summary's ``observed.corrections``), or the final one."""
    history = (output.summary.get("observed") or {}).get("corrections")
    if isinstance(history, list) and history:
        return [entry for entry in history if isinstance(entry, dict) and "time_s" in entry]
    correction = output.correction
    if isinstance(correction, dict) and correction.get("time_s") is not None:
        return [correction]
    return []


def comparison_with_truth(output: MonitorOutput, truth_min_c: np.ndarray) -> dict:
    """Observed ice vs the truth's 0 °C zone (Dice, mean surface distance) and the predicted and
    corrected −40 °C zones vs the truth's (mean surface distance, mm), at the end."""
    spacing = output.grid.spacing_mm
    truth_ice, truth_lethal = truth_min_c <= FREEZING_C, truth_min_c <= LETHAL_C
    observed = overlap_metrics(output.observed_final, truth_ice, spacing)
    result = {
        "observed_vs_truth_0C": {
            "dice": observed["dice"],
            "mean_surface_distance_mm": observed["mean_surface_distance_mm"],
        },
        "predicted_vs_truth_0C": _pick(
            overlap_metrics(output.predicted_min_c <= FREEZING_C, truth_ice, spacing)
        ),
        "predicted_vs_truth_-40C": _pick(
            overlap_metrics(output.predicted_min_c <= LETHAL_C, truth_lethal, spacing)
        ),
    }
    if output.corrected:
        result["corrected_vs_truth_-40C"] = _pick(
            overlap_metrics(output.corrected["p50"] <= LETHAL_C, truth_lethal, spacing)
        )
    return result


def _pick(metrics: dict) -> dict:
    return {key: metrics[key] for key in ("dice", "mean_surface_distance_mm", "max_surface_distance_mm")}


def _unseen_words(forecast: dict) -> str:
    """A forecast whose median does not see the event, in the words of the monitor's and the panel's
    lines: "not within the protocol (14 % chance it does, p10 26.6 min)"."""
    never = _number(forecast.get("p_never"))
    if not 0.0 <= never <= 1.0:  # no chance (or none that is one) in the summary: only the median's word
        return "not within the protocol"
    p10 = _number(forecast.get("p10"))
    times = {"p50": None, "p_never": never, "p10": None if np.isnan(p10) else p10}
    return forecast_words(times, lambda t: f"{t / 60:.1f} min")


def _forecast_cells(forecast: dict) -> list[str]:
    """Median and p10–p90 in minutes (or "not within the protocol"), and the chance that the event
    happens within the protocol (the status lines' wording: never 0 % or 100 % unless certain)."""
    median = _number(forecast.get("p50"))
    never = _number(forecast.get("p_never"))
    chance = chance_percent(1.0 - never) if 0.0 <= never <= 1.0 else "—"
    low, high = _number(forecast.get("p10")) / 60, _number(forecast.get("p90")) / 60
    if np.isnan(median):
        return ["not within the protocol", "—" if np.isnan(low) else f"p10 {_fmt(low, 1)} min", chance]
    band = f"{_fmt(low, 1)} – {_fmt(high, 1)} min" if not np.isnan(high) else f"from {_fmt(low, 1)} min"
    return [f"{median / 60:.1f} min", band, chance]


def _fmt(value, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}{unit}"


def correction_table_figure(output: MonitorOutput, truth_comparison: dict | None = None) -> Figure:
    """The final fitted parameters (mean, p10–p90 against the prior), the forecasts and, with the
    truth, the comparison numbers, as tables."""
    correction = output.correction or {}
    parameters = correction.get("parameters") or {}
    forecasts = correction.get("forecasts") or {}
    blocks: list[tuple[str, list[str], list[list[str]]]] = []
    if parameters:
        rows = [
            [
                name,
                _fmt(p.get("mean"), 3),
                f"{_fmt(p.get('p10'), 3)} – {_fmt(p.get('p90'), 3)}",
                _fmt(p.get("prior_mean"), 3),
                str(p.get("unit") or ""),
            ]
            for name, p in parameters.items()
        ]
        blocks.append(
            ("Fitted parameters", ["parameter", "posterior mean", "p10 – p90", "prior mean", "unit"], rows)
        )
    if forecasts:
        rows = [[forecast_name(event), *_forecast_cells(f)] for event, f in forecasts.items()]
        blocks.append(("Forecasts", ["event", "median", "p10 – p90", "chance within the protocol"], rows))
    if truth_comparison:
        names = {
            "observed_vs_truth_0C": "observed ice vs truth 0 °C",
            "predicted_vs_truth_0C": "predicted 0 °C vs truth",
            "predicted_vs_truth_-40C": "predicted −40 °C vs truth",
            "corrected_vs_truth_-40C": "corrected −40 °C (median) vs truth",
        }
        rows = [
            [names[key], _fmt(v.get("dice"), 3), _fmt(v.get("mean_surface_distance_mm"), 2, " mm")]
            for key, v in truth_comparison.items()
        ]
        blocks.append(
            ("Against the truth, at the end", ["comparison", "Dice", "mean surface distance"], rows)
        )
    if not blocks:
        blocks.append(
            ("Correction", ["note"], [["no correction in this monitor output (run monitor --correct)"]])
        )
    row_in, title_in = 0.21, 0.38  # inches: a table row, a block's title
    height_in = sum(title_in + row_in * (len(rows) + 1) for _, _, rows in blocks) + 0.45
    figure = Figure(figsize=(7.6, height_in), dpi=pictures.DPI)
    canvas = figure.add_axes((0, 0, 1, 1))  # axes fractions = figure fractions
    canvas.axis("off")
    top = 1.0 - 0.4 / height_in
    for title, header, rows in blocks:
        canvas.text(0.03, top - 0.12 / height_in, title, fontsize=9.5, fontweight="bold", va="top")
        top -= title_in / height_in
        share = row_in * (len(rows) + 1) / height_in
        widths = [0.34] + [0.6 / (len(header) - 1)] * (len(header) - 1) if len(header) > 1 else [0.94]
        table = canvas.table(
            cellText=rows,
            colLabels=header,
            cellLoc="left",
            colWidths=widths,
            bbox=(0.03, top - share, 0.94, share),
        )
        table.auto_set_font_size(False)
        table.set_fontsize(7.5)
        for (row, _), cell in table.get_celld().items():
            cell.set_edgecolor("0.75")
            if row == 0:
                cell.set_facecolor((0.9, 0.9, 0.9))
                cell.set_text_props(fontweight="bold")
        top -= share
    time_s = correction.get("time_s")
    if time_s is not None:
        figure.suptitle(
            f"Correction after {correction.get('images', '?')} images (at {time_s:.0f} s)"
            + ("" if correction.get("valid", True) else " — NOT VALID: protocol departure"),
            fontsize=10,
            y=1.0 - 0.08 / height_in,
            va="top",
        )
    return figure


# --- all of it ------------------------------------------------------------------------------------


def write_ice_pictures(
    monitor_dir: str | Path,
    out_dir: str | Path,
    *,
    truth_dir: str | Path | None = None,
    time_s: float | None = None,
    mr_images: Sequence[PlacedImage] = (),
    dpi: int = pictures.DPI,
) -> dict:
    """Write the pictures of a monitored procedure to ``out_dir`` and ``out_dir/pictures.json`` (the
    index: each file and what it shows, the chosen time and, with a truth, the comparison)."""
    output = load_monitor_output(monitor_dir)
    truth_min_c, truth_summary = (None, None)
    if truth_dir is not None:
        truth_min_c, truth_summary = load_truth(truth_dir, output.grid)
    time_s = choose_time(output, time_s)
    observed = _volumes_first(observed_images_at(output, time_s))
    mr_images = _volumes_first(mr_images)
    centre = view_centre_mm(output)
    zone = output.predicted_min_c <= FREEZING_C
    zone |= output.observed_final
    if truth_min_c is not None:
        zone |= truth_min_c <= FREEZING_C
    half_width = _half_width_mm(zone, output.grid, centre)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for plane in pictures.standard_planes(centre):
        figure, shows = ice_slice_figure(
            plane,
            output,
            time_s,
            half_width_mm=half_width,
            observed=observed,
            mr_images=mr_images,
            truth_min_c=truth_min_c,
        )
        name = f"slice_{plane.name.lower()}.png"
        (out / name).write_bytes(pictures.png_bytes(figure, dpi))
        entries.append(
            {
                "file": name,
                "kind": "slice",
                "plane": plane.name,
                "time_s": time_s,
                "shows": sorted(key for key, drawn in shows.items() if drawn),
                "description": f"{plane.name} slice through the probe cluster, image of {time_s:.0f} s: "
                + _slice_contents(shows, corrected=bool(output.corrected), truth=truth_min_c is not None),
            }
        )
    (out / "ice_over_time.png").write_bytes(pictures.png_bytes(ice_chart_figure(output, truth_summary), dpi))
    entries.append(
        {
            "file": "ice_over_time.png",
            "kind": "chart",
            "description": "observed vs predicted ice volume and Dice over time"
            + (
                ", corrected −40 °C volume with its band, forecast times"
                if output.corrected
                else " (no correction in this monitor output)"
            ),
        }
    )
    comparison = comparison_with_truth(output, truth_min_c) if truth_min_c is not None else None
    (out / "correction.png").write_bytes(pictures.png_bytes(correction_table_figure(output, comparison), dpi))
    entries.append(
        {
            "file": "correction.png",
            "kind": "table",
            "description": (
                "final fitted parameters and forecasts"
                if output.correction
                else "no correction in this monitor output (run monitor --correct)"
            )
            + (", and the comparison with the truth" if comparison else ""),
        }
    )
    index = {
        "format": "cryoablation-ice-pictures/1",
        "monitor": str(Path(monitor_dir)),
        "truth": str(Path(truth_dir)) if truth_dir is not None else None,
        "time_s": time_s,
        "centre_ras_mm": [round(float(v), 2) for v in centre],
        "pictures": entries,
        "comparison_with_truth": comparison,
    }
    (out / "pictures.json").write_text(
        json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return index


def _slice_contents(shows: dict[str, bool], corrected: bool, truth: bool) -> str:
    """What a slice picture holds, in words, from what it drew (``shows``) and what the monitor
    output had: a correction or a truth that the output lacks is not promised."""
    parts = ["observed ice" if shows.get("observed") else "no observed ice in this plane"]
    parts.append("predicted 0/−40 °C")
    if corrected:
        parts.append("corrected −40 °C with its p10–p90 band")
    if truth:
        parts.append("truth 0/−40 °C")
    text = ", ".join(parts)
    return text if corrected else text + " (no correction in this monitor output)"


def _volumes_first(images: Sequence[PlacedImage]) -> list[PlacedImage]:
    """A 3-D image of the time where there is one (it lies in every view; a slice taken at the
    same moment would draw a second outline of the same ice), else the slices."""
    volumes = [image for image in images if not image.is_slice]
    return volumes or list(images)


def _half_width_mm(zone: np.ndarray, grid: Grid, centre: np.ndarray) -> float:
    """The ice from the view centre plus 10 mm of surroundings; at least 20 mm."""
    region = np.argwhere(zone)
    if len(region) == 0:
        return 20.0
    reach = np.abs(grid.index_to_ras(region) - centre).max()
    return max(20.0, float(reach) + 10.0)
