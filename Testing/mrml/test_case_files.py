"""A plan exported from the scene is a valid case file (JSON + label map); importing a case file
builds the plan in a scene; export → import → export gives the same case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.scene import case_io, inputs
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene


@pytest.fixture
def exported(scene_app, tmp_path):
    parameters = build_phantom_scene(scene_app.scene, scene_app.segmentations_logic, spacing_mm=3.0)
    parameters.update_settings(
        boundaries={"default": {"type": "fixed", "temperature_c": 37.0}, "z-": {"type": "adiabatic"}}
    )
    path = case_io.export_case(scene_app.scene, tmp_path / "plan.cryo.json", parameters)
    return scene_app, parameters, path


def test_exported_case_loads_with_the_solver(exported):
    scene_app, parameters, path = exported
    assert (path.parent / "plan.labels.nrrd").is_file()
    case = load_case(path)
    scene_case = case_io.build_case(scene_app.scene, parameters)
    assert case.grid == scene_case.grid
    np.testing.assert_array_equal(case.tissue_labels, scene_case.arrays["labels"])
    assert [probe.name for probe in case.probes] == ["P1", "P2", "P3"]
    labels, grid = read_nrrd(path.parent / "plan.labels.nrrd")  # the way Slicer would read it
    assert grid == scene_case.grid
    np.testing.assert_array_equal(labels, scene_case.arrays["labels"])


def test_export_import_export_round_trip(exported, tmp_path):
    _, _, path = exported
    first = json.loads(path.read_text())

    app = create_scene_app()
    parameters = case_io.import_case(app.scene, path)
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    roles = {info.name: (info.role, info.material) for info in inputs.segment_infos(segmentation)}
    assert roles["Tumor"] == ("target", "tumor") and roles["Bowel"] == ("critical", "muscle")
    assert len(parameters.probes()) == 3

    again = case_io.export_case(app.scene, tmp_path / "again" / "plan.cryo.json", parameters)
    second = json.loads(again.read_text())
    assert second == first
    first_labels, _ = read_nrrd(path.parent / first["tissue_map"]["labelmap"])
    second_labels, _ = read_nrrd(again.parent / second["tissue_map"]["labelmap"])
    np.testing.assert_array_equal(first_labels, second_labels)


def test_invalid_case_file_changes_nothing(tmp_path, scene):
    bad = tmp_path / "bad.cryo.json"
    bad.write_text(json.dumps({"format": "cryoablation-case/1", "grid": {"origin_mm": [0, 0, 0]}}))
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="grid"):
        case_io.import_case(scene, bad)
    assert scene.GetNumberOfNodes() == count


def test_export_refuses_a_plan_the_solver_would_reject(exported, tmp_path):
    scene_app, parameters, _ = exported
    parameters.update_settings(background_material="unobtainium")
    with pytest.raises(InputError, match="unobtainium"):
        case_io.export_case(scene_app.scene, tmp_path / "other.cryo.json", parameters)
    assert not (tmp_path / "other.cryo.json").exists()
