"""A result folder (``docs/case-format.md``) back into a scene: runs made with ``cryoablation simulate``
(or on another machine) are viewed and measured in Slicer like runs made from the scene."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from CryoAblationLogic.analysis.metrics import ice_volume_history
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.result_folder import RESULT_FORMAT
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.results import ResultNodes, show_result


@dataclass
class FolderResult:
    """What :func:`.results.show_result` needs, read from a result folder."""

    grid: Grid
    simulated_s: float
    temperature_final: np.ndarray
    min_temperature: np.ndarray
    snapshots: dict[float, np.ndarray]
    sensors: dict[str, tuple[np.ndarray, np.ndarray]]
    isotherm_volumes_ml: dict[float, float]
    ice_volume_history: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def read_result_folder(folder: str | Path) -> FolderResult:
    """Read ``summary.json`` and the NRRD fields of a result folder (checked against each other).

    The ice-ball volume history is recounted from the saved fields (snapshots and the final one),
    the only times a result folder keeps whole fields for.
    """
    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise InputError(str(summary_path), "not found: not a result folder")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(str(summary_path), f"not valid JSON: {error}") from error
    if summary.get("format") != RESULT_FORMAT:
        raise InputError("summary.format", f"must be {RESULT_FORMAT!r}")
    grid = Grid.from_dict(summary["grid"], "summary.grid")
    final = _field(folder / "temperature_final.nrrd", grid)
    minimum = _field(folder / "min_temperature.nrrd", grid)
    snapshots = {
        float(time_s): _field(folder / name, grid) for time_s, name in summary.get("snapshots", {}).items()
    }
    simulated_s = float(summary["simulated_s"])
    levels = [float(level) for level in summary.get("isotherms", {})]
    history = ice_volume_history({**snapshots, simulated_s: final}, grid, levels) if levels else {}
    sensors = {
        name: (np.asarray(values["t_s"], dtype=float), np.asarray(values["temperature_c"], dtype=float))
        for name, values in summary.get("sensors", {}).items()
    }
    volumes = {
        float(level): float(values["volume_ml"]) for level, values in summary.get("isotherms", {}).items()
    }
    return FolderResult(grid, simulated_s, final, minimum, snapshots, sensors, volumes, history)


def import_result_folder(scene, folder: str | Path, parameters: P.ParameterNode | None = None) -> ResultNodes:
    """Show a result folder in the scene (temperature volumes, isotherms, playback, plots)."""
    return show_result(scene, parameters or P.get_parameter_node(scene), read_result_folder(folder))


def _field(path: Path, grid: Grid) -> np.ndarray:
    field_values, field_grid = read_nrrd(path)
    if field_grid.size != grid.size or not np.allclose(field_grid.origin_mm, grid.origin_mm, atol=1e-4):
        raise InputError(str(path), f"its grid {field_grid} differs from the summary's {grid}")
    return field_values.astype(np.float32, copy=False)
