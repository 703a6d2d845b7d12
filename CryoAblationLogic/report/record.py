"""The record of a plan or a monitored procedure: one HTML page (pictures embedded, nothing beside
it) and the same content as a PDF, both from the template in :mod:`.record_template`.

PDF: xhtml2pdf (reportlab underneath) renders the template's HTML; it installs from PyPI alone.
WeasyPrint renders better CSS but needs the Pango system libraries, which a machine with only
Python and pip lacks. The PDF embeds DejaVu Sans (shipped with matplotlib) for °, −, ≥ and µ.

:func:`write_result_record` is the one call for a simulated case (``cryoablation simulate``, the
demo, the panel's export): metrics on the minimum-temperature map, warnings by severity,
``metrics.json``, pictures, ``report.html`` and ``report.pdf``.
"""

from __future__ import annotations

import base64
import datetime
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from CryoAblationLogic.analysis.coverage import DEFAULT_LEVELS_C, PlanMetrics, isotherm_metrics
from CryoAblationLogic.analysis.findings import PlanWarning, by_severity
from CryoAblationLogic.analysis.metrics import plan_warnings
from CryoAblationLogic.analysis.metrics_file import metrics_document, write_metrics_file
from CryoAblationLogic.analysis.placement import probe_geometry
from CryoAblationLogic.analysis.safety import SafetyRules, percent_text, structure_type
from CryoAblationLogic.core.about import RESEARCH_USE_NOTE, __version__
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import ProbeSpec, ProtocolStep
from CryoAblationLogic.report import pictures
from CryoAblationLogic.report.protection import NEAR_MM, ProtectionSummary, protection_summaries
from CryoAblationLogic.report.record_template import RECORD_TEMPLATE

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"
# The finest grid the benchmark plan needs for isotherm volumes within 3 % of a 0.5 mm grid's
# (docs/physics.md, "The grid"): coarser grids give a first look, and the record says so.
DECISION_SPACING_MM = 1.0


@dataclass
class RecordInputs:
    """Everything the record shows. ``structures`` maps a role ("target", "critical", "vessel") to
    {name: boolean mask on ``grid``}; ``events`` are (time s, text); ``observed`` sensor readings
    {name: (t_s, °C)} beside the predicted ``sensors``."""

    title: str
    case_id: str
    kind: str
    grid: Grid
    image: np.ndarray
    temperature_final: np.ndarray
    min_temperature: np.ndarray
    structures: Mapping[str, Mapping[str, np.ndarray]]
    probes: Sequence[ProbeSpec]
    protocol: Sequence[ProtocolStep]
    metrics: PlanMetrics
    warnings: Sequence[PlanWarning]
    rules: SafetyRules
    settings: Sequence[tuple[str, str]] = ()
    structure_types: Mapping[str, str] = field(default_factory=dict)
    ice_volume_history: Mapping[float, tuple[np.ndarray, np.ndarray]] | None = None
    sensors: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
    observed: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
    events: Sequence[tuple[float, str]] = ()
    protections: Sequence[ProtectionSummary] = ()  # thermal protection planned (warm catheters, regions)


@dataclass(frozen=True)
class RecordFiles:
    html: Path
    pdf: Path


@dataclass(frozen=True)
class ResultRecord:
    files: RecordFiles
    metrics_file: Path
    metrics: PlanMetrics
    warnings: list[PlanWarning]


def write_record(out_dir: str | Path, inputs: RecordInputs) -> RecordFiles:
    """Write ``report.html`` and ``report.pdf`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = _context(inputs)
    template = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
        RECORD_TEMPLATE
    )
    html_path = out / HTML_NAME
    html_path.write_text(template.render(**context, pdf=False), encoding="utf-8")
    pdf_path = out / PDF_NAME
    _write_pdf(template.render(**context, pdf=True, **_pdf_fonts()), pdf_path)
    return RecordFiles(html_path, pdf_path)


def write_result_record(
    out_dir: str | Path,
    case,
    result,
    image: np.ndarray,
    structures: Mapping[str, Mapping[str, np.ndarray]],
    *,
    structure_types: Mapping[str, str] | None = None,
    rules: SafetyRules | None = None,
    catalog: Mapping[str, object] | None = None,
    title: str = "CryoAblation plan record",
    kind: str = "Plan (simulation)",
    observed: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    events: Sequence[tuple[float, str]] = (),
    extra_settings: Sequence[tuple[str, str]] = (),
) -> ResultRecord:
    """Metrics, warnings, ``metrics.json`` and the record of a simulated ``case`` (a ``Case``)
    and its ``result`` (a ``SimulationResult``); see the module docstring."""
    rules = rules or SafetyRules()
    types = dict(structure_types or {})
    grid: Grid = result.grid
    targets = list(structures.get("target", {}).values())
    if not targets:
        raise InputError("structures", "the case names no target; metrics and the record need one")
    target = np.logical_or.reduce(targets)
    if not target.any():
        raise InputError("structures.target", "is empty on the simulation grid")
    critical = dict(structures.get("critical", {}))
    vessels = dict(structures.get("vessel", {}))
    levels = sorted(
        {*(float(v) for v in (case.outputs.isotherms_c or DEFAULT_LEVELS_C)), rules.ice_edge_c}, reverse=True
    )
    metrics = isotherm_metrics(
        result.min_temperature, grid, target, levels, critical, ice_edge_c=rules.ice_edge_c
    )
    warnings = plan_warnings(
        metrics,
        case.probes,
        catalog,
        target,
        critical,
        vessels,
        grid,
        rules=rules,
        structure_types=types,
        sources=case.sources,
        labels=case.tissue_labels,
        region_names={structure.label: structure.name for structure in case.structures},
    )
    case_id = case.name or "unnamed case"
    protections = protection_summaries(case, result.min_temperature, grid, critical)
    document = metrics_document(metrics, warnings, rules, case_name=case_id, structure_types=types)
    if protections:  # an added key (docs/metrics-format.md): only where the case plans protection
        document["protections"] = [item.to_dict() for item in protections]
    metrics_path = write_metrics_file(out_dir, document)
    settings = [*solver_settings(case, result), *extra_settings]
    inputs = RecordInputs(
        title=title,
        case_id=case_id,
        kind=kind,
        grid=grid,
        image=image,
        temperature_final=result.temperature_final,
        min_temperature=result.min_temperature,
        structures={"target": {name: m for name, m in structures.get("target", {}).items()}, **{
            role: dict(masks) for role, masks in structures.items() if role in ("critical", "vessel")
        }, **_protection_outlines(protections)},
        probes=[probe_geometry(probe, catalog) for probe in case.probes],
        protocol=case.protocol,
        metrics=metrics,
        warnings=warnings,
        rules=rules,
        settings=settings,
        structure_types=types,
        ice_volume_history=getattr(result, "ice_volume_history", None),
        sensors=getattr(result, "sensors", None),
        observed=observed,
        events=events,
        protections=protections,
    )  # fmt: skip
    files = write_record(out_dir, inputs)
    return ResultRecord(files, metrics_path, metrics, warnings)


def _protection_outlines(protections: Sequence[ProtectionSummary]) -> dict[str, dict[str, np.ndarray]]:
    """The measures as a role of the pictures' outlines (drawn dotted, in their own colour)."""
    masks = {f"{p.name} (warmed)": p.mask for p in protections if p.mask is not None and p.mask.any()}
    return {pictures.PROTECTION_ROLE: masks} if masks else {}


def solver_settings(case, result) -> list[tuple[str, str]]:
    """Grid and solver settings as (name, value) rows."""
    grid: Grid = case.grid
    spacing = " × ".join(f"{s:g}" for s in grid.spacing_mm)
    size = " × ".join(str(n) for n in grid.size)
    origin = ", ".join(f"{v:.1f}" for v in grid.origin_mm)
    coarse = (
        f" (coarser than {DECISION_SPACING_MM:g} mm: a first look; use {DECISION_SPACING_MM:g} mm or finer "
        "for decisions, docs/physics.md)"
        if max(grid.spacing_mm) > DECISION_SPACING_MM + 1e-9
        else ""
    )
    named = {s.label: s.name for s in getattr(case, "structures", ())}
    rows = [
        ("Grid", f"{size} voxels of {spacing} mm, first voxel centre at ({origin}) RAS mm{coarse}"),
        ("Initial temperature", f"{case.initial_temperature_c:g} °C"),
        (
            "Tissue",
            case.tissue
            or ", ".join(
                f"{label}{f' ({named[label]})' if label in named else ''}: {name}"
                for label, name in sorted(case.label_materials.items())
            ),
        ),
        *_material_rows(case),
        ("Boundaries", _boundaries_text(case)),
        ("Simulated time", f"{_min_s(result.simulated_s)} (min:s)"),
    ]  # fmt: skip
    steps = getattr(result, "steps", None)
    balance = getattr(result, "energy_balance_error", None)
    if steps or balance is not None:
        parts = [
            f"{steps} time steps" if steps else "",
            f"energy balance error {balance:.1e} (of the heat exchanged)" if balance is not None else "",
        ]
        rows.append(("Solver", ", ".join(part for part in parts if part)))
    history = getattr(result, "probe_history", None) or {}
    if history:
        rows.append(("Probes, as run", "; ".join(_probe_run_text(name, h) for name, h in history.items())))
    sensors = {
        name: series for name, series in (getattr(result, "sensors", None) or {}).items() if len(series[1])
    }
    if sensors:
        lowest = []
        for name, (times, values) in sensors.items():
            at = int(np.argmin(values))
            lowest.append(f"{name}: {float(values[at]):.1f} °C at {_min_s(float(times[at]))}")
        rows.append(("Sensors, lowest predicted", "; ".join(lowest) + " (min:s)"))
    wall_s = getattr(result, "wall_s", None)
    if wall_s is not None:
        rows.append(("Wall time", f"{wall_s:.1f} s"))
    return rows


def _material_rows(case) -> list[tuple[str, str]]:
    """Each material the case's tissue is made of, with the properties the solver used (the
    library's, or the case's own where it changes them): what the prediction assumes."""
    used = [case.tissue] if case.tissue else sorted(set(case.label_materials.values()))
    overrides = getattr(case, "material_overrides", {}) or {}
    rows = []
    for name in used:
        m = case.materials.get(name)
        if m is None:
            continue
        frozen = f"{m.k_frozen:g}" + (f"·(T_s/T)^{m.k_frozen_exponent:g}" if m.k_frozen_exponent else "")
        text = (
            f"k {m.k_unfrozen:g} / {frozen} W/(m·K), ρc {m.c_unfrozen / 1e6:.2f} / {m.c_frozen / 1e6:.2f} "
            f"MJ/(m³·K) unfrozen / frozen; perfusion {m.perfusion:g} W/(m³·K); latent heat "
            f"{m.latent_heat / 1e6:g} MJ/m³, freezing from {m.t_liquidus_c:g} to {m.t_solidus_c:g} °C"
        )
        rows.append((f"Material {name}", text + (" (set by the case)" if name in overrides else "")))
    return rows


def _probe_run_text(name: str, history: Mapping) -> str:
    surface, power = history.get("surface_c", ()), history.get("power_w", ())
    parts = [f"surface {float(surface[-1]):.1f} °C at the end" if len(surface) else ""]
    parts.append(f"peak {float(np.max(power)):.1f} W" if len(power) else "")
    return f"{name}: " + ", ".join(part for part in parts if part)


def _boundaries_text(case) -> str:
    raw = case.boundaries_raw
    if not raw:
        return f"all faces held at {case.initial_temperature_c:g} °C"
    parts = []
    for face, spec in raw.items():
        kind = spec.get("type", "?") if isinstance(spec, Mapping) else str(spec)
        value = (
            f" {spec['temperature_c']:g} °C" if isinstance(spec, Mapping) and "temperature_c" in spec else ""
        )
        parts.append(f"{face}: {kind}{value}")
    return "; ".join(parts)


def _context(inputs: RecordInputs) -> dict[str, object]:
    grid = inputs.grid
    target = np.logical_or.reduce(list(inputs.structures.get("target", {}).values()))
    levels = [item.level_c for item in inputs.metrics.isotherms]
    centre = grid.index_to_ras(np.argwhere(target).mean(axis=0))
    half_width = pictures.view_half_width_mm(inputs.min_temperature, max(levels), target, grid, centre)
    window = pictures.window_levels(inputs.image)
    planes = pictures.standard_planes(centre)
    for extra in (pictures.probe_plane(inputs.probes), pictures.across_probes_plane(inputs.probes)):
        if extra is not None:
            planes.append(extra)
    slice_pictures = []
    for plane in planes:
        figure = pictures.slice_figure(
            plane, grid, inputs.image, inputs.min_temperature, levels, inputs.structures, inputs.probes,
            half_width_mm=half_width, window=window,
        )  # fmt: skip
        where = "through the target centre" if plane.name in ("Axial", "Coronal", "Sagittal") else ""
        slice_pictures.append(_picture(figure, f"{plane.name} {where}".strip()))
    view3d = _picture(
        pictures.view_3d_figure(grid, inputs.min_temperature, levels, inputs.structures, inputs.probes),
        "3-D: isotherm surfaces of the lowest temperature reached, target, critical structures, probes.",
    )
    event_times = [time_s for time_s, _ in inputs.events] or [step.start_s for step in inputs.protocol[1:]]
    charts = []
    if inputs.ice_volume_history:
        charts.append(
            _picture(
                pictures.ice_volume_figure(inputs.ice_volume_history, event_times),
                "Volume at or below each isotherm; dotted lines: protocol steps or events.",
            )
        )
    if inputs.sensors:
        charts.append(
            _picture(
                pictures.sensor_figure(inputs.sensors, levels, inputs.observed, event_times),
                "Temperature at each sensor (the colours of Slicer's sensor chart); dashed: isotherm levels.",
            )
        )
    return {
        "title": inputs.title,
        "case_id": inputs.case_id,
        "kind": inputs.kind,
        "version": __version__,
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "research_note": RESEARCH_USE_NOTE,
        "warnings": [_warning_row(w) for w in by_severity(inputs.warnings)],
        "volume_sentence": _volume_sentence(inputs),
        "isotherm_columns": [
            "Isotherm (°C)", "Target covered (%)", "Min margin (mm)", "Surface not covered (%)",
            "Surface margin 0–5 mm (%)", "Surface margin ≥ 5 mm (%)", "Reached during the run (ml)",
            "At the end (ml)",
        ],
        "isotherm_rows": _isotherm_rows(inputs),
        "structure_rows": [
            [
                item.name,
                structure_type(item.name, inputs.structure_types.get(item.name)),
                _fmt(item.lowest_temperature_c),
                _fmt(item.distance_to_ice_edge_mm),
                _fmt(inputs.rules.margin_for(structure_type(item.name, inputs.structure_types.get(item.name))), 0),  # noqa: E501
                "yes" if item.reached_by_ice else "no",
            ]
            for item in inputs.metrics.critical_structures
        ],
        "slice_pictures": slice_pictures,
        "view3d": view3d,
        "charts": charts,
        "events": [{"time": _min_s(t), "text": text} for t, text in inputs.events],
        "observed_rows": _observed_rows(inputs),
        "probe_rows": [
            [
                p.name, p.model or "—", ", ".join(f"{v:.1f}" for v in p.tip_mm),
                ", ".join(f"{v:.1f}" for v in p.entry_mm), f"{p.active_length_mm:g}", _fmt(p.diameter_mm, 2),
            ]
            for p in inputs.probes
        ],
        "protocol_rows": [
            [
                str(n + 1), _min_s(step.start_s), _min_s(step.duration_s), _step_text(step),
                "all" if step.probes == "all" else ", ".join(step.probes),
            ]
            for n, step in enumerate(inputs.protocol)
        ],
        "settings": list(inputs.settings),
        "rules_text": _rules_text(inputs.rules),
        "protection_rows": [[p.measure, p.name, p.where, p.warming_text] for p in inputs.protections],
        "protection_nearby_rows": [
            [p.name, item.name, _fmt(item.distance_mm), _fmt(item.lowest_temperature_c)]
            for p in inputs.protections
            for item in p.nearby
        ],
        "protection_near_mm": f"{NEAR_MM:g}",
    }  # fmt: skip


def _picture(figure, caption: str) -> dict[str, str]:
    data = base64.b64encode(pictures.png_bytes(figure)).decode("ascii")
    return {"uri": f"data:image/png;base64,{data}", "caption": caption}


def _warning_row(warning: PlanWarning) -> dict[str, str]:
    unit = f" {warning.unit}" if warning.unit else ""
    return {
        "severity": warning.severity,
        "rule": warning.rule,
        "structure": warning.structure,
        "value_text": "—" if warning.value is None else f"{warning.value:.1f}{unit}",
        "threshold_text": "—" if warning.threshold is None else f"{warning.threshold:g}{unit}",
        "message": warning.message,
    }


def _volume_sentence(inputs: RecordInputs) -> str:
    return (
        f"Target volume {inputs.metrics.target_volume_ml:.2f} ml. Coverage and margins are measured on the "
        "lowest temperature each voxel reached; a margin is the signed distance from the target to the "
        "isotherm (negative where part of the target stays warmer). Volumes are those at or below each "
        "isotherm: the volume that reached it at any time during the run, and the volume at or below it "
        "at the end of the run."
    )


def _isotherm_rows(inputs: RecordInputs) -> list[list[str]]:
    rows = []
    voxel_ml = inputs.grid.voxel_volume_mm3 / 1000.0
    for item in inputs.metrics.isotherms:
        final_ml = float(np.count_nonzero(np.asarray(inputs.temperature_final) <= item.level_c)) * voxel_ml
        rows.append(
            [
                f"{item.level_c:g}",
                _percent(item.target_coverage_percent),
                _fmt(item.min_margin_mm),
                _percent(item.surface_not_covered_percent),
                _percent(item.surface_margin_0_to_5mm_percent),
                _percent(item.surface_margin_5mm_or_more_percent),
                _fmt(item.ice_volume_ml, 2),
                _fmt(final_ml, 2),
            ]
        )
    return rows


def _observed_rows(inputs: RecordInputs) -> list[list[str]]:
    rows = []
    for name, (t_obs, measured) in (inputs.observed or {}).items():
        predicted = (inputs.sensors or {}).get(name)
        if predicted is None or len(t_obs) == 0:
            rows.append([name, str(len(t_obs)), "—", "—"])
            continue
        model = np.interp(
            np.asarray(t_obs, float), np.asarray(predicted[0], float), np.asarray(predicted[1], float)
        )
        difference = np.asarray(measured, float) - model
        rows.append([name, str(len(t_obs)), f"{difference.mean():+.1f}", f"{np.abs(difference).max():.1f}"])
    return rows


def _step_text(step: ProtocolStep) -> str:
    if step.action == "freeze":
        return f"freeze, {step.flow_percent:g} % flow"
    if step.action == "thaw":
        return f"thaw ({step.mode})"
    return step.action


def _rules_text(rules: SafetyRules) -> str:
    margins = ", ".join(f"{kind} {mm:g} mm" for kind, mm in rules.structure_margins_mm.items())
    lethal = ", ".join(f"{v:g} °C" for v in rules.lethal_isotherms_c)
    return (
        f"ice edge {rules.ice_edge_c:g} °C; lethal isotherms {lethal}; the {rules.lethal_isotherm_c:g} °C "
        f"zone should cover the target + {rules.ablative_margin_mm:g} mm; the ice edge should lie "
        f"{rules.ice_margin_mm:g} mm beyond the target; safety margins of the ice edge from critical "
        f"structures by type: {margins}."
    )


def _min_s(seconds: float) -> str:
    """m:ss, the one time format of the record's tables (charts are in minutes)."""
    total = round(float(seconds))
    return f"{total // 60}:{total % 60:02d}"


def _percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else percent_text(value)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def _pdf_fonts() -> dict[str, str]:
    import matplotlib  # a dependency already: its DejaVu fonts have every glyph the record uses

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return {"font_regular": str(folder / "DejaVuSans.ttf"), "font_bold": str(folder / "DejaVuSans-Bold.ttf")}


def _write_pdf(html: str, path: Path) -> None:
    from xhtml2pdf import pisa  # reportlab loads fonts on import: only when a PDF is written

    # it logs each CSS property it leaves out (border-collapse) as a warning: not the user's concern
    logging.getLogger("xhtml2pdf").setLevel(logging.ERROR)
    with path.open("wb") as stream:
        status = pisa.CreatePDF(html, dest=stream, encoding="utf-8")
    if status.err:
        raise RuntimeError(f"the PDF record could not be written ({status.err} errors): {path}")
