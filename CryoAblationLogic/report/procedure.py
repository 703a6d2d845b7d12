"""The record of a monitored procedure, from the result folder ``cryoablation monitor`` writes
(``live.mode.write_live_results``): the prediction at the end, the events applied (``live_events.csv``),
the sensors measured beside predicted (``sensor_readings.csv``), the ice volume at every update
(``ice_volume_history.csv``) and the case as finally placed (``case.cryo.json``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from CryoAblationLogic.analysis.metrics import case_structures
from CryoAblationLogic.analysis.safety import SafetyRules
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.report.record import ResultRecord, write_result_record


def write_procedure_report(
    result_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    image: np.ndarray | None = None,
    rules: SafetyRules | None = None,
    catalog=None,
    title: str = "CryoAblation procedure record",
) -> ResultRecord | None:
    """``metrics.json``, ``report.html`` and ``report.pdf`` of a monitored procedure into
    ``out_dir`` (default: the result folder). ``image`` on the case grid for the pictures (default:
    the tissue label map). None when the case names no target (no ``structures``)."""
    folder = Path(result_dir)
    case = load_case(_need(folder / "case.cryo.json"))
    structures, types = case_structures(case)
    if not structures.get("target"):
        return None
    summary = json.loads(_need(folder / "summary.json").read_text(encoding="utf-8"))
    final, grid = read_nrrd(_need(folder / "temperature_final.nrrd"))
    minimum, _ = read_nrrd(_need(folder / "min_temperature.nrrd"))
    if grid != case.grid:
        raise InputError(str(folder), f"the fields lie on {grid}, the case on {case.grid}")
    live = summary.get("live", {})
    result = SimpleNamespace(
        grid=grid,
        temperature_final=final,
        min_temperature=minimum,
        simulated_s=float(summary["simulated_s"]),
        wall_s=float(summary.get("wall_s", 0.0)),
        energy_balance_error=summary.get("energy_balance_error"),
        sensors={
            name: (np.asarray(v["t_s"], dtype=float), np.asarray(v["temperature_c"], dtype=float))
            for name, v in summary.get("sensors", {}).items()
        },
        ice_volume_history=_volume_history(folder / "ice_volume_history.csv"),
    )
    if result.energy_balance_error is None:
        del result.energy_balance_error
    settings = [("Procedure time", f"{float(live.get('procedure_time_s', result.simulated_s)):.0f} s")]
    for key in ("console_messages", "images", "updates", "sensor_readings"):
        if key in live:
            settings.append((key.replace("_", " ").capitalize(), str(live[key])))
    if image is None:
        image = np.asarray(case.tissue_labels, dtype=np.float32)
    return write_result_record(
        out_dir or folder,
        case,
        result,
        image,
        structures,
        structure_types=types,
        rules=rules,
        catalog=catalog,
        title=title,
        kind="Monitored procedure",
        observed=_observed(folder / "sensor_readings.csv"),
        events=_events(folder / "live_events.csv"),
        extra_settings=settings,
    )


def _need(path: Path) -> Path:
    if not path.is_file():
        raise InputError(str(path), "not found: not a result folder of a monitored procedure")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _volume_history(path: Path) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    rows = _rows(path)
    if not rows:
        return {}
    t = np.array([float(row["time_s"]) for row in rows])
    history = {}
    for column in rows[0]:
        if column.startswith("volume_ml_at_") and column.endswith("C"):
            level = float(column[len("volume_ml_at_") : -1])
            history[level] = (t, np.array([float(row[column]) for row in rows]))
    return history


def _observed(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    readings: dict[str, list[tuple[float, float]]] = {}
    for row in _rows(path):
        readings.setdefault(row["name"], []).append((float(row["time_s"]), float(row["measured_c"])))
    return {
        name: (np.array([t for t, _ in values]), np.array([c for _, c in values]))
        for name, values in readings.items()
    }


def _events(path: Path) -> list[tuple[float, str]]:
    events = []
    for row in _rows(path):
        try:
            detail = json.loads(row.get("detail") or "{}")
        except json.JSONDecodeError:
            detail = {}
        text = row["what"].replace("_", " ")
        if isinstance(detail, dict) and detail:
            text += " (" + ", ".join(f"{key}: {value}" for key, value in sorted(detail.items())) + ")"
        events.append((float(row["time_s"]), text))
    return events
