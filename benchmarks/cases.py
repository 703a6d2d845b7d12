"""Benchmark cases of issue 3 (speed goals), built in code so that they need no data files."""

from __future__ import annotations

import numpy as np

REFERENCE_PROTOCOL = [
    {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
    {"action": "thaw", "mode": "passive", "duration_s": 480, "probes": "all"},
    {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
]


def three_probe_kidney(spacing_mm: float = 1.0, protocol=None) -> dict:
    """Three argon-1.47mm probes 15 mm apart (a triangle) in perfused kidney, 96×96×112 mm box."""
    extent = np.array([95.0, 95.0, 111.0])  # 96×96×112 voxels at 1 mm
    size = [round(e / spacing_mm) + 1 for e in extent]
    origin = [-0.5 * e for e in extent]
    circumradius = 15.0 / np.sqrt(3.0)
    probes = []
    for index, angle in enumerate((90.0, 210.0, 330.0)):
        a = np.deg2rad(angle)
        x, y = circumradius * np.cos(a), circumradius * np.sin(a)
        probes.append(
            {
                "name": f"P{index + 1}",
                "model": "argon-1.47mm",
                "tip_mm": [round(x, 4), round(y, 4), -20.0],
                "entry_mm": [round(x, 4), round(y, 4), 50.0],
            }
        )
    return {
        "format": "cryoablation-case/1",
        "name": "benchmark: three 17 G probes 15 mm apart in perfused kidney, 10-8-10",
        "grid": {"origin_mm": origin, "spacing_mm": spacing_mm, "size": size},
        "initial_temperature_c": 37.0,
        "tissue": "kidney",
        "probes": probes,
        "protocol": protocol or REFERENCE_PROTOCOL,
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": []},
    }
