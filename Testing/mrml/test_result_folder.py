"""A result folder written by the command line shows up in the scene like a run made there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.result_folder import write_result_folder
from CryoAblationLogic.physics.simulation import simulate
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene import tables
from CryoAblationLogic.scene.case_io import build_case
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
from CryoAblationLogic.scene.result_io import import_result_folder, read_result_folder
from CryoAblationLogic.scene.volumes import volume_field


def test_cli_result_folder_into_the_scene(tmp_path, scene_app):
    scene = scene_app.scene
    parameters = build_phantom_scene(scene, scene_app.segmentations_logic, spacing_mm=3.0)
    parameters.update_settings(
        protocol=[{"action": "freeze", "duration_s": 90, "probes": "all", "flow_percent": 100}],
        snapshot_times_s=[45.0],
        roi_margin_mm=10.0,
    )
    case = build_case(scene, parameters).parse()
    result = simulate(case)
    write_result_folder(result, tmp_path / "result", case)

    loaded = read_result_folder(tmp_path / "result")
    assert loaded.grid == result.grid
    np.testing.assert_allclose(loaded.temperature_final, result.temperature_final)
    assert sorted(loaded.snapshots) == [45.0]
    assert loaded.isotherm_volumes_ml[0.0] == pytest.approx(result.isotherm_volumes_ml[0.0], abs=1e-3)
    # the recounted ice volume at the end is the solver's own
    assert loaded.ice_volume_history[0.0][1][-1] == pytest.approx(result.isotherm_volumes_ml[0.0], abs=1e-3)

    nodes = import_result_folder(scene, tmp_path / "result", parameters)
    np.testing.assert_allclose(volume_field(nodes.min_temperature)[0], result.min_temperature)
    assert nodes.temperature_sequence.GetNumberOfDataNodes() == 2  # 45 s and the end
    assert tables.table_column(nodes.ice_volume_table, "Time") == [0.75, 1.5]  # minutes
    assert nodes.sensor_chart.GetNumberOfPlotSeriesNodes() == len(result.sensors)
    assert parameters.get(P.TEMPERATURE_VOLUME) is nodes.temperature


def test_not_a_result_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a result folder"):
        read_result_folder(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match=r"summary\.format"):
        read_result_folder(tmp_path)
