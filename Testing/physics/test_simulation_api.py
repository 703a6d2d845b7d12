"""The Simulation / simulate / preview API, live control, results folder and the command line."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from CryoAblationLogic.cli.main import main
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.io.result_folder import write_result_folder
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.physics.simulation import Simulation, SimulationCancelled, preview, simulate


@pytest.fixture
def gel_case(gel_case_dict):
    return parse_case(gel_case_dict)


def test_simulate_result_is_complete_deterministic_and_balanced(gel_case):
    first = simulate(gel_case)
    second = simulate(gel_case)
    assert np.array_equal(first.temperature_final, second.temperature_final)
    assert first.simulated_s == 240.0
    assert first.temperature_final.dtype == np.float32 and first.temperature_final.shape == (21, 21, 31)
    assert np.all(first.min_temperature <= first.temperature_final)
    assert set(first.snapshots) == {120.0, 240.0}
    assert np.array_equal(first.snapshots[240.0], first.temperature_final)
    assert (
        first.isotherm_volumes_ml[0.0]
        > first.isotherm_volumes_ml[-20.0]
        > first.isotherm_volumes_ml[-40.0]
        > 0
    )
    t, volume = first.ice_volume_history[0.0]
    assert t[0] == 0.0 and t[-1] == 240.0 and volume[-1] == pytest.approx(first.isotherm_volumes_ml[0.0])
    times, values = first.sensors["TC1"]
    assert times[-1] == 240.0 and values[0] == pytest.approx(37.0) and values.min() < 37.0
    assert first.energy_balance_error < 1e-3
    assert first.min_temperature.min() < -50.0  # voxels near the probe (2 mm grid)


def test_probe_surface_reaches_argon_temperatures_and_passive_thaw_takes_no_heat(gel_case):
    simulation = Simulation(gel_case)
    simulation.advance_to(120.0)
    history = simulation.probe_history["P1"]
    assert history["surface_c"][-1] < -100.0 and history["power_w"][-1] > 0
    simulation.advance_to(150.0)
    assert simulation.probe_history["P1"]["power_w"][-1] == 0.0


def test_live_mode_overrides_the_protocol(gel_case):
    protocol_run = Simulation(gel_case)
    live = Simulation(gel_case)
    for simulation in (protocol_run, live):
        simulation.advance_to(60.0)
    live.set_probe_state("P1", "off")
    protocol_run.advance(60.0)
    live.advance(60.0)
    assert live.time_s == 120.0
    assert live.temperature_c.min() > protocol_run.temperature_c.min() + 20.0
    assert live.probe_state("P1") == ("off", 0.0, None)
    live.set_probe_state("P1", "thaw", mode="active")
    before = live.temperature_c.min()
    live.advance(30.0)
    assert live.temperature_c.min() > before  # the probe heats
    live.set_probe_state("P1", "freeze", flow_percent=50)
    live.advance(30.0)
    assert live.probe_history["P1"]["power_w"][-1] > 0
    with pytest.raises(InputError):
        live.set_probe_state("P9", "off")
    with pytest.raises(InputError):
        live.set_probe_state("P1", "boil")


def test_lower_flow_makes_a_smaller_ice_ball(gel_case_dict):
    volumes = []
    for flow in (100, 40):
        data = copy.deepcopy(gel_case_dict)
        data["protocol"] = [{"action": "freeze", "duration_s": 180, "probes": "all", "flow_percent": flow}]
        data["outputs"]["snapshot_times_s"] = []
        volumes.append(simulate(parse_case(data)).isotherm_volumes_ml[0.0])
    assert volumes[1] < volumes[0]


def test_progress_and_cancel(gel_case):
    fractions = []
    simulate(gel_case, progress=lambda f, t: fractions.append(f))
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    with pytest.raises(SimulationCancelled):
        simulate(gel_case, cancel=lambda: True)


def test_preview_is_coarse_and_short(gel_case):
    result = preview(gel_case, spacing_mm=4.0, duration_s=120.0)
    assert result.grid.spacing_mm == (4.0, 4.0, 4.0)
    assert result.simulated_s == 120.0
    assert result.isotherm_volumes_ml[0.0] > 0


def test_a_grid_too_large_for_memory_is_refused_before_allocating(gel_case_dict):
    data = copy.deepcopy(gel_case_dict)
    data["grid"] = {"origin_mm": [-20.0, -20.0, -30.0], "spacing_mm": 0.01, "size": [4000, 4000, 6000]}
    case = parse_case(data)
    with pytest.raises(InputError) as error:
        Simulation(case)
    assert error.value.key == "grid.size" and "GB" in error.value.reason


def test_result_folder_matches_the_contract(gel_case, tmp_path):
    result = simulate(gel_case)
    out = write_result_folder(result, tmp_path / "result", gel_case)
    names = {p.name for p in out.iterdir()}
    assert names == {
        "summary.json",
        "temperature_final.nrrd",
        "min_temperature.nrrd",
        "temperature_120s.nrrd",
        "temperature_240s.nrrd",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == "cryoablation-result/1"
    assert summary["simulated_s"] == 240.0
    assert set(summary["isotherms"]) == {"0", "-20", "-40"}
    assert summary["isotherms"]["0"]["volume_ml"] == pytest.approx(result.isotherm_volumes_ml[0.0], abs=1e-3)
    assert summary["sensors"]["TC1"]["t_s"][-1] == 240.0
    assert summary["grid"] == gel_case.grid.to_dict()
    field, grid = read_nrrd(out / "temperature_final.nrrd")
    assert grid.size == gel_case.grid.size
    assert np.allclose(grid.origin_mm, gel_case.grid.origin_mm) and np.allclose(
        grid.spacing_mm, gel_case.grid.spacing_mm
    )
    assert np.allclose(field, result.temperature_final)


def test_cli_simulate_writes_results(gel_case_dict, tmp_path, capsys):
    case_path = tmp_path / "case.cryo.json"
    case_path.write_text(json.dumps(gel_case_dict))
    assert main(["simulate", str(case_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "summary.json").is_file()
    assert "results written" in capsys.readouterr().out


def test_cli_simulate_invalid_input_exits_2_naming_the_key(gel_case_dict, tmp_path, capsys):
    data = copy.deepcopy(gel_case_dict)
    data["protocol"][0]["flow_percent"] = 150
    case_path = tmp_path / "bad.cryo.json"
    case_path.write_text(json.dumps(data))
    assert main(["simulate", str(case_path), "--out", str(tmp_path / "out")]) == 2
    assert "protocol[0].flow_percent" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_demo_writes_case_and_results(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--spacing-mm", "3"]) == 0
    assert (tmp_path / "case.cryo.json").is_file() and (tmp_path / "labels.nrrd").is_file()
    summary = json.loads((tmp_path / "result" / "summary.json").read_text())
    assert summary["simulated_s"] == 1680.0
    assert summary["isotherms"]["0"]["volume_ml"] > 1.0
    assert str(tmp_path / "result") in capsys.readouterr().out
