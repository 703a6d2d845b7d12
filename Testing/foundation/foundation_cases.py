"""A small valid case for the case-file tests (imported by the tests and the conftest)."""

from __future__ import annotations


def small_case() -> dict:
    """A valid case on an 11³ grid of 2 mm voxels: one probe, a sensor, two snapshots."""
    return {
        "format": "cryoablation-case/1",
        "grid": {"origin_mm": [-10.0, -10.0, -10.0], "spacing_mm": 2.0, "size": [11, 11, 11]},
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
        "probes": [
            {
                "name": "P1",
                "model": "argon-1.47mm",
                "tip_mm": [0, 0, -8],
                "entry_mm": [0, 0, 30],
                "active_length_mm": 10.0,
            }
        ],
        "sources": [{"type": "sphere", "center_mm": [5, 5, 5], "radius_mm": 1.0, "temperature_c": -20.0}],
        "protocol": [
            {"action": "freeze", "duration_s": 30, "probes": "all", "flow_percent": 100},
            {"action": "thaw", "mode": "passive", "duration_s": 10, "probes": ["P1"]},
            {"action": "off", "duration_s": 10},
        ],
        "sensors": [{"name": "TC1", "position_mm": [4, 0, 0]}],
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": [30, 50]},
    }
