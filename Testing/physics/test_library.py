"""Material library and probe catalog: complete, sourced, and calibrated on other data than checked."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.physics.materials import load_material_library
from CryoAblationLogic.physics.probes import load_probe_catalog

REQUIRED_MATERIALS = ("liver", "kidney", "prostate", "muscle", "fat", "tumor", "blood", "gel", "water")


def test_library_has_the_required_materials_with_sources():
    library = load_material_library()
    for name in REQUIRED_MATERIALS:
        assert name in library
        assert library[name].source, f"{name} has no cited source"
    assert library["gel"].perfusion == 0.0
    assert library["kidney"].perfusion > library["liver"].perfusion > library["muscle"].perfusion
    # Both presets of docs/physics.md §1.1.
    assert (library["tissue-deng-liu"].t_solidus_c, library["tissue-deng-liu"].latent_heat) == (-8.0, 2.5e8)
    assert (library["tissue-rabin"].t_solidus_c, library["tissue-rabin"].latent_heat) == (-22.0, 3.0e8)


@pytest.mark.parametrize("name", REQUIRED_MATERIALS)
def test_enthalpy_is_continuous_and_increasing(name):
    material = load_material_library()[name]
    temperatures = np.linspace(-190, 60, 2001)
    enthalpy = np.array([material.enthalpy(t) for t in temperatures])
    assert np.all(np.diff(enthalpy) > 0)
    jump = np.max(np.abs(np.diff(enthalpy)))
    assert jump < (material.latent_heat / max(material.t_liquidus_c - material.t_solidus_c, 0.1) + 5e6) * 0.2


def test_catalog_entries_name_calibration_and_check_data():
    catalog = load_probe_catalog()
    for name, gauge, diameter in (("argon-1.47mm", "17G", 1.47), ("argon-2.4mm", "13G", 2.4)):
        assert catalog[name].gauge == gauge and catalog[name].diameter_mm == diameter
    # The kinds users know: MR-conditional 17 G needles and the Endocare-kind 1.7 and 2.4 mm probes.
    for name in ("mr-17g-rod", "mr-17g-sphere", "mr-17g-seed", "mr-2.1mm-force", "argon-1.7mm"):
        assert name in catalog
    for name, model in catalog.items():
        assert model.active_length_mm > 0 and model.tip_length_mm >= 0 and model.tip_geometry
        assert model.calibrated_on.get("data") and model.calibrated_on.get("fitted")
        assert model.calibrated_on.get("setup"), f"{name} does not say how the experiment was modelled"
        assert model.maker.get("kind") and model.maker.get("data"), (
            f"{name} does not say what maker data exists"
        )
        calibration = model.calibrated_on["data"]
        if not model.checked_against:
            # Allowed only where the catalog says that no check data could be found.
            assert "not" in model.maker["data"], f"{name} names no check data and does not say why"
        for check in model.checked_against:
            assert check["data"] != calibration, f"{name} is checked against its own calibration data"
            assert check.get("test"), "each check names the test that runs it"
            assert "Littrup" not in check["data"] or "multi-probe figures are held out" in check["data"]
