"""The result folder of a simulation, exactly as ``docs/case-format.md`` describes it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.volumes import write_nrrd

RESULT_FORMAT = "cryoablation-result/1"


def _level_key(level: float) -> str:
    """Isotherm keys as written in case files: ``"0"``, ``"-20"``, ``"-2.5"``."""
    return f"{level:g}"


def snapshot_label(time_s: float) -> str:
    """A snapshot time as written in file names and summary keys: ``600``, ``600.5``, ``1234.567``.

    Whole seconds are written without a decimal point (``temperature_600s.nrrd``); other times in
    the shortest form that reads back as the same number, so two different times never share a
    file name (``:g`` kept six digits: 1234.567 s and 1234.571 s were both ``1234.57``).
    """
    time_s = float(time_s)
    return str(int(time_s)) if time_s.is_integer() else repr(time_s)


def snapshot_filename(time_s: float) -> str:
    return f"temperature_{snapshot_label(time_s)}s.nrrd"


def summary_dict(result, case=None) -> dict:
    summary = {
        "format": RESULT_FORMAT,
        "simulated_s": float(result.simulated_s),
        "wall_s": round(float(result.wall_s), 3),
        "grid": result.grid.to_dict(),
        "isotherms": {
            _level_key(level): {"volume_ml": round(float(volume), 4)}
            for level, volume in result.isotherm_volumes_ml.items()
        },
        "sensors": {
            name: {
                "t_s": [round(float(t), 3) for t in times],
                "temperature_c": [round(float(v), 3) for v in values],
            }
            for name, (times, values) in result.sensors.items()
        },
        "energy_balance_error": float(result.energy_balance_error)
        if math.isfinite(result.energy_balance_error)
        else None,
    }
    summary["snapshots"] = {snapshot_label(t): snapshot_filename(t) for t in sorted(result.snapshots)}
    if result.probe_history:
        summary["probes"] = {
            name: {
                "final_surface_temperature_c": round(float(h["surface_c"][-1]), 2)
                if len(h["surface_c"])
                else None,
                "peak_power_w": round(float(np.max(h["power_w"])), 3) if len(h["power_w"]) else None,
            }
            for name, h in result.probe_history.items()
        }
    if case is not None and case.name:
        summary["case"] = case.name
    return summary


def write_result_folder(result, out_dir, case=None) -> Path:
    """Write summary.json, temperature_final.nrrd, min_temperature.nrrd and the snapshots."""
    for name in ("temperature_final", "min_temperature"):
        # A field with NaN would report 0 ml of ice: refuse it rather than write a wrong result.
        if not np.all(np.isfinite(getattr(result, name))):
            raise InputError(
                "case", f"the simulated {name.replace('_', ' ')} holds non-finite values; nothing was written"
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = result.grid
    write_nrrd(out / "temperature_final.nrrd", result.temperature_final.astype(np.float32), grid)
    write_nrrd(out / "min_temperature.nrrd", result.min_temperature.astype(np.float32), grid)
    for time_s, field in sorted(result.snapshots.items()):
        write_nrrd(out / snapshot_filename(time_s), field.astype(np.float32), grid)
    summary = summary_dict(result, case)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out
