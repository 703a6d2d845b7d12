"""Helpers for the solver tests: small case builders (dicts in case-file form)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # analytic.py, cases.py (import-mode=importlib has no package)


@pytest.fixture
def gel_case_dict() -> dict:
    """The example of docs/case-format.md on a smaller grid."""
    return {
        "format": "cryoablation-case/1",
        "grid": {"origin_mm": [-20.0, -20.0, -30.0], "spacing_mm": 2.0, "size": [21, 21, 31]},
        "initial_temperature_c": 37.0,
        "boundaries": {"default": {"type": "fixed", "temperature_c": 37.0}, "z-": {"type": "adiabatic"}},
        "materials": {
            "gel": {
                "k_unfrozen": 0.57,
                "k_frozen": 2.2,
                "c_unfrozen": 4.1e6,
                "c_frozen": 1.9e6,
                "latent_heat": 3.0e8,
                "t_liquidus_c": -0.1,
                "t_solidus_c": -1.0,
                "perfusion": 0.0,
                "metabolic": 0.0,
                "blood_temperature_c": 37.0,
            }
        },
        "tissue": "gel",
        "probes": [{"name": "P1", "model": "argon-1.47mm", "tip_mm": [0, 0, -15], "entry_mm": [0, 0, 25]}],
        "sources": [],
        "protocol": [
            {"action": "freeze", "duration_s": 120, "probes": "all", "flow_percent": 100},
            {"action": "thaw", "mode": "passive", "duration_s": 60, "probes": "all"},
            {"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100},
        ],
        "sensors": [{"name": "TC1", "position_mm": [6, 0, 0]}],
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": [120, 240]},
    }
