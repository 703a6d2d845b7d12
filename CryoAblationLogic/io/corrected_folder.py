"""The corrected prediction of ``analysis/ice_correction.py`` as a result folder.

The layout is the result folder of ``docs/case-format.md`` (``io/result_folder.py``), with the
band added: ``min_temperature.nrrd`` is the median of the posterior, ``min_temperature_p10.nrrd``
its cold side and ``min_temperature_p90.nrrd`` its warm side; ``summary.json`` gains a
``correction`` key (``Correction.to_dict()``: parameters, forecasts, metrics, departures).
The correction is taken by its attributes (io and analysis do not import each other).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from CryoAblationLogic.io.result_folder import write_result_folder
from CryoAblationLogic.io.volumes import write_nrrd


def write_corrected(correction, case, out_dir) -> Path:
    """Write ``correction`` (an ``analysis.ice_correction.Correction``) for ``case`` to ``out_dir``."""
    # numba kernels load with the solver module; only its result record is needed here
    from CryoAblationLogic.physics.simulation import SimulationResult

    grid = case.grid
    median = correction.min_temperature[50.0]
    result = SimulationResult(
        grid=grid,
        temperature_final=correction.temperature_final,
        min_temperature=median,
        snapshots={},
        sensors={},
        isotherm_volumes_ml={level: v["p50"] for level, v in correction.isotherm_volumes_ml.items()},
        ice_volume_history={},
        energy_balance_error=math.nan,
        wall_s=correction.update_s,
        simulated_s=float(case.duration_s),
    )
    out = write_result_folder(result, out_dir, case)
    write_nrrd(out / "min_temperature_p10.nrrd", correction.min_temperature[10.0].astype(np.float32), grid)
    write_nrrd(out / "min_temperature_p90.nrrd", correction.min_temperature[90.0].astype(np.float32), grid)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["correction"] = correction.to_dict()
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out
