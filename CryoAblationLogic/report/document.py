"""The HTML plan report: summary, slice pictures, a 3D cutaway, metric tables, warnings and plots.

``write_report`` writes ``report.html`` and its pictures (PNG, in ``report_files/``) into a folder;
the page is self-contained apart from those pictures and opens in any browser. No Slicer, no
matplotlib: pictures come from :mod:`.report_images`.
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from CryoAblationLogic.analysis.metrics import (
    CRITICAL_COLUMNS,
    DEFAULT_LEVELS_C,
    ISOTHERM_COLUMNS,
    PlanMetrics,
    ProbeGeometry,
    isotherm_metrics,
    probe_geometry,
)
from CryoAblationLogic.analysis.metrics import probe_warnings as check_probes
from CryoAblationLogic.core.about import RESEARCH_USE_NOTE, __version__
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.report.figures import (
    CRITICAL_COLOUR,
    SERIES_COLOURS,
    TARGET_COLOUR,
    Overlay,
    Series,
    cutaway_view,
    level_colour,
    line_plot,
    slice_view,
    window_levels,
    write_png,
)

REPORT_NAME = "report.html"
FILES_FOLDER = "report_files"

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1400px; color: #222; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 3px; margin-top: 28px; }
.note { background: #fff4e0; border-left: 5px solid #f0a020; padding: 8px 12px; }
.warnings li { color: #a00000; margin: 3px 0; } .ok { color: #006000; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #bbb; padding: 4px 9px; }
th { background: #eef2f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 6px 10px 6px 0; vertical-align: top; }
figcaption { font-size: 90%; color: #555; max-width: 440px; }
.meta { color: #666; font-size: 90%; }
"""


def write_report(  # the agreed cross-area signature (docs/architecture.md, issue 4)
    out_dir: str | Path,
    image: np.ndarray,
    grid: Grid,
    temperature_final: np.ndarray,
    min_temperature: np.ndarray,
    target_mask: np.ndarray,
    critical_masks: Mapping[str, np.ndarray] | None,
    metrics: PlanMetrics,
    probes: Sequence[object],
    ice_volume_history: Mapping[float, tuple[np.ndarray, np.ndarray]] | None,
    sensor_history: Mapping[str, tuple[np.ndarray, np.ndarray]] | None,
    title: str = "CryoAblation plan report",
    *,
    probe_warnings: Sequence[str] = (),
    catalog: Mapping[str, object] | None = None,
    case_name: str | None = None,
) -> Path:
    """Write ``out_dir/report.html`` (and its pictures) and return its path.

    ``metrics`` should come from the minimum-temperature map (the lethal view); the slice outlines
    and the 3D view show ``min_temperature`` too, and the end-of-run ice volumes come from
    ``temperature_final``. ``probes`` are probe records as :func:`.metrics.probe_geometry` reads
    them (``catalog`` fills in lengths from a ``model``); ``probe_warnings`` (from
    :func:`.metrics.probe_warnings`) are listed with the metric warnings.
    """
    shape = tuple(grid.size)
    for key, array in (
        ("image", image),
        ("temperature_final", temperature_final),
        ("min_temperature", min_temperature),
        ("target_mask", target_mask),
    ):
        if np.shape(array) != shape:
            raise InputError(key, f"has shape {np.shape(array)}, the grid is {shape}")
    target_mask = np.asarray(target_mask, dtype=bool)
    if not target_mask.any():
        raise InputError("target_mask", "is empty")
    critical = {name: np.asarray(mask, dtype=bool) for name, mask in (critical_masks or {}).items()}
    for name, mask in critical.items():
        if mask.shape != shape:
            raise InputError(f"critical_masks[{name!r}]", f"has shape {mask.shape}, the grid is {shape}")
    geometries = [_report_probe(probe, catalog, index) for index, probe in enumerate(probes)]

    out = Path(out_dir)
    files = out / FILES_FOLDER
    files.mkdir(parents=True, exist_ok=True)
    levels = [item.level_c for item in metrics.isotherms]
    centre = grid.index_to_ras(np.argwhere(target_mask).mean(axis=0))

    # Pictures.
    overlays = [
        Overlay(min_temperature, level, level_colour(level, index), f"{level:g} °C")
        for index, level in enumerate(levels)
    ]
    overlays.append(Overlay(target_mask, 0.5, TARGET_COLOUR, "target"))
    overlays += [Overlay(mask, 0.5, CRITICAL_COLOUR, name) for name, mask in critical.items()]
    window = window_levels(np.asarray(image, dtype=float))
    half_width = _view_half_width(min_temperature, max(levels), target_mask, grid, centre)
    pictures: dict[str, str] = {}
    for plane in ("axial", "coronal", "sagittal"):
        picture = slice_view(
            np.asarray(image, dtype=float),
            grid,
            plane,
            centre,
            overlays,
            probes=geometries,
            window=window,
            half_width_mm=half_width,
        )
        pictures[plane] = _save(files, f"{plane}.png", picture)
    pictures["view3d"] = _save(
        files,
        "view3d.png",
        cutaway_view(min_temperature, grid, target_mask, levels, critical_masks=critical, probes=geometries),
    )
    if ice_volume_history:
        series = []
        for index, (level, (t_s, volume_ml)) in enumerate(sorted(ice_volume_history.items(), reverse=True)):
            series.append(
                Series(
                    f"{float(level):g} °C",
                    np.asarray(t_s) / 60.0,
                    np.asarray(volume_ml),
                    level_colour(float(level), index),
                )
            )
        plot = line_plot(series, "Volume at or below each isotherm", "Time (min)", "Volume (ml)")
        pictures["ice_volume"] = _save(files, "ice_volume.png", plot)
    if sensor_history:
        series = [
            Series(
                name,
                np.asarray(t_s) / 60.0,
                np.asarray(temperature),
                SERIES_COLOURS[index % len(SERIES_COLOURS)],
            )
            for index, (name, (t_s, temperature)) in enumerate(sensor_history.items())
        ]
        guides = [(level, level_colour(level, index)) for index, level in enumerate(levels)]
        plot = line_plot(
            series, "Sensor temperatures", "Time (min)", "Temperature (°C)", horizontal_lines=guides
        )
        pictures["sensors"] = _save(files, "sensors.png", plot)

    # Page.
    warnings = [*metrics.warnings, *probe_warnings]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(case_name) + " — " if case_name else ""}CryoAblation {__version__}, '
        f"generated {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        '<p class="note"><strong>Research software, not a medical device.</strong> '
        f"{_e(RESEARCH_USE_NOTE)}</p>",
        "<h2>Summary</h2>",
        _summary(metrics, temperature_final, grid, levels, len(geometries)),
        "<h2>Warnings</h2>",
        _warnings_html(warnings),
        "<h2>Slices through the target centre</h2>",
        "<p>Isotherm outlines of the lowest temperature each voxel reached (the minimum-temperature map), "
        "target and critical structures over the image; probes drawn where they pass within a voxel of "
        "the slice.</p>",
        *(
            _figure(pictures[plane], f"{plane.capitalize()} slice")
            for plane in ("axial", "coronal", "sagittal")
        ),
        "<h2>3D view</h2>",
        _figure(
            pictures["view3d"],
            "Ice ball (the warmest isotherm of the minimum-temperature map) with the octant facing the "
            "viewer cut away at the target centre; cut faces coloured by isotherm band, target outlined.",
        ),
        "<h2>Target coverage by isotherm</h2>",
        f"<p>Target volume {metrics.target_volume_ml:.2f} ml. Margins are signed distances from the target "
        "to the isotherm: negative where part of the target stays warmer. Surface fractions (QAM style) are "
        "area-weighted over the target surface.</p>",
        _table(ISOTHERM_COLUMNS, metrics.as_rows()),
    ]
    if metrics.critical_structures:
        parts += ["<h2>Critical structures</h2>", _table(CRITICAL_COLUMNS, metrics.critical_rows())]
    if geometries:
        parts += ["<h2>Probes</h2>", _probe_table(geometries)]
    parts.append("<h2>Over time</h2>")
    if "ice_volume" in pictures:
        parts.append(_figure(pictures["ice_volume"], "Volume at or below each isotherm over the run."))
    if "sensors" in pictures:
        parts.append(
            _figure(pictures["sensors"], "Temperature at each sensor; isotherm levels as thin lines.")
        )
    if "ice_volume" not in pictures and "sensors" not in pictures:
        parts.append("<p>No time series were given.</p>")
    parts.append("</body></html>")
    report = out / REPORT_NAME
    report.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return report


def write_result_report(
    out_dir: str | Path,
    result: object,
    image: np.ndarray,
    target_mask: np.ndarray,
    *,
    critical_masks: Mapping[str, np.ndarray] | None = None,
    vessel_masks: Mapping[str, np.ndarray] | None = None,
    probes: Sequence[object] = (),
    catalog: Mapping[str, object] | None = None,
    levels_c: Sequence[float] = DEFAULT_LEVELS_C,
    title: str = "CryoAblation plan report",
    case_name: str | None = None,
) -> tuple[Path, PlanMetrics, list[str]]:
    """Metrics, probe checks and the report for a simulation result in one call (the demo's path).

    ``result`` is a ``SimulationResult`` (or anything with ``grid``, ``temperature_final``,
    ``min_temperature``, ``ice_volume_history`` and ``sensors``). Metrics are taken on the
    minimum-temperature map. Returns (report path, metrics, probe warnings).
    """
    grid = result.grid
    critical = dict(critical_masks or {})
    metrics = isotherm_metrics(result.min_temperature, grid, target_mask, levels_c, critical)
    warnings = (
        check_probes(probes, catalog, target_mask, critical, vessel_masks or {}, grid) if probes else []
    )
    path = write_report(
        out_dir,
        image,
        grid,
        result.temperature_final,
        result.min_temperature,
        target_mask,
        critical,
        metrics,
        probes,
        getattr(result, "ice_volume_history", None),
        getattr(result, "sensors", None),
        title=title,
        probe_warnings=warnings,
        catalog=catalog,
        case_name=case_name,
    )
    return path, metrics, warnings


def _view_half_width(
    temperature: np.ndarray, level: float, target: np.ndarray, grid: Grid, centre: np.ndarray
) -> float:
    """Half width (mm) of the slice windows: the ice (at the warmest level) and the target, from
    the target centre, plus 15 mm of surroundings; at least 30 mm."""
    region = np.argwhere((np.asarray(temperature) <= level) | target)
    reach = np.abs(grid.index_to_ras(region) - centre).max()
    return max(30.0, float(reach) + 15.0)


def _report_probe(probe: object, catalog: Mapping[str, object] | None, index: int) -> ProbeGeometry:
    """Probe geometry for drawing; a probe without a known active length is drawn as a bare shaft."""
    try:
        return probe_geometry(probe, catalog, key=f"probes[{index}]")
    except InputError as error:
        if not error.key.endswith(".active_length_mm"):
            raise
        shaft = probe_geometry({**_as_mapping(probe), "active_length_mm": 1e-9}, None, key=f"probes[{index}]")
        return ProbeGeometry(shaft.name, shaft.tip_mm, shaft.entry_mm, 0.0, shaft.tip_length_mm)


def _as_mapping(probe: object) -> dict:
    if isinstance(probe, Mapping):
        return dict(probe)
    return {
        name: getattr(probe, name, None)
        for name in ("name", "tip_mm", "entry_mm", "active_length_mm", "tip_length_mm")
    }


def _save(folder: Path, name: str, picture: np.ndarray) -> str:
    write_png(folder / name, picture)
    return f"{FILES_FOLDER}/{name}"


def _e(text: object) -> str:
    return html.escape(str(text))


def _number(value: object, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return _e(value)


def _table(columns: Mapping[str, str], rows: Sequence[Mapping[str, object]]) -> str:
    head = "".join(f"<th>{_e(title)}</th>" for title in columns.values())
    body = []
    for row in rows:
        cells = []
        for key in columns:
            value = row[key]
            digits = 0 if key in {"level_c", "ice_edge_c"} else 2 if key == "ice_volume_ml" else 1
            css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            cells.append(f"<td{css}>{_number(value, digits)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _probe_table(probes: Sequence[ProbeGeometry]) -> str:
    rows = []
    for probe in probes:
        tip = ", ".join(f"{v:.1f}" for v in probe.tip_mm)
        entry = ", ".join(f"{v:.1f}" for v in probe.entry_mm)
        active = f"{probe.active_length_mm:g}" if probe.active_length_mm > 0 else "—"
        rows.append(
            f"<tr><td>{_e(probe.name)}</td><td>{tip}</td><td>{entry}</td>"
            f'<td class="num">{active}</td><td class="num">{probe.tip_length_mm:g}</td></tr>'
        )
    head = (
        "<tr><th>Probe</th><th>Tip (RAS mm)</th><th>Entry (RAS mm)</th><th>Active length (mm)</th>"
        "<th>Tip to active segment (mm)</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _summary(
    metrics: PlanMetrics, temperature_final: np.ndarray, grid: Grid, levels: list[float], probes: int
) -> str:
    items = [f"<li>Target volume {metrics.target_volume_ml:.2f} ml; {probes} probe(s).</li>"]
    for item in metrics.isotherms:
        margin = (
            "no isotherm" if item.min_margin_mm is None else f"minimum margin {item.min_margin_mm:.1f} mm"
        )
        final_ml = (
            float(np.count_nonzero(np.asarray(temperature_final) <= item.level_c))
            * grid.voxel_volume_mm3
            / 1000
        )
        items.append(
            f"<li><strong>{item.level_c:g} °C</strong>: covers {item.target_coverage_percent:.1f} % of the "
            f"target, {margin}; {item.ice_volume_ml:.2f} ml reached this temperature during the run, "
            f"{final_ml:.2f} ml is at or below it at the end.</li>"
        )
    for structure in metrics.critical_structures:
        distance = (
            "no ice"
            if structure.distance_to_ice_edge_mm is None
            else f"{structure.distance_to_ice_edge_mm:.1f} mm"
        )
        state = "reached by the ice" if structure.reached_by_ice else "clear of the ice"
        items.append(
            f"<li>{_e(structure.name)}: {state}, lowest temperature {structure.lowest_temperature_c:.1f} °C, "
            f"distance to the {structure.ice_edge_c:g} °C isotherm {distance}.</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def _warnings_html(warnings: Sequence[str]) -> str:
    if not warnings:
        return '<p class="ok">No warnings.</p>'
    return '<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"


def _figure(source: str, caption: str) -> str:
    return (
        f'<figure><img src="{_e(source)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'
    )
