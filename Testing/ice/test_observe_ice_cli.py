"""``cryoablation observe-ice``: files in, label maps and comparison.json out, a short table
printed; bad inputs exit 2 naming the option, and nothing is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BALL_CENTER_MM, ball_probe

from CryoAblationLogic.cli.main import main
from CryoAblationLogic.io import mr_synthesis as mr
from CryoAblationLogic.io.volumes import read_nrrd, write_nrrd

BOWEL_LABEL = 5


@pytest.fixture(scope="module")
def files(tmp_path_factory, ball_case):
    grid, field, probes = ball_case
    root = tmp_path_factory.mktemp("observe")
    result = root / "result"
    write_nrrd(result / "temperature_final.nrrd", field.astype(np.float32), grid)
    write_nrrd(result / "temperature_600s.nrrd", field.astype(np.float32), grid)
    (result / "summary.json").write_text(json.dumps({"snapshots": {"600": "temperature_600s.nrrd"}}))
    # A bowel loop 3 mm outside the ice ball's 12 mm edge, lateral (R) to it.
    x, y, _z = np.meshgrid(*(grid.axis_mm(a) for a in range(3)), indexing="ij")
    labels = np.ones(grid.size, np.uint8)
    labels[(x - (BALL_CENTER_MM[0] + 20.0)) ** 2 + (y - BALL_CENTER_MM[1]) ** 2 <= 5.0**2] = BOWEL_LABEL
    write_nrrd(root / "labels.nrrd", labels, grid)
    probe = ball_probe()
    case = {
        "format": "cryoablation-case/1",
        "grid": grid.to_dict(),
        "initial_temperature_c": 37.0,
        "tissue": "fat",
        "probes": [
            {
                "name": "P1",
                "model": probe.model,
                "tip_mm": list(probe.tip_mm),
                "entry_mm": list(probe.entry_mm),
            }
        ],
        "protocol": [{"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100}],
    }
    (root / "case.cryo.json").write_text(json.dumps(case))
    warm = np.full(grid.size, 37.0)
    shift = (0.0, 1.0, 2.0)
    mr.write_mr_image(root / "baseline.nrrd", mr.render_volume(warm, grid, probes, snr=15.0, seed=1))
    mr.write_mr_image(
        root / "image.nrrd", mr.render_volume(field, grid, probes, shift_mm=shift, snr=15.0, seed=2)
    )
    plane = mr.probe_cluster_planes(probes)[1]
    mr.write_mr_image(
        root / "slice_baseline.nrrd", mr.render_slice(plane, warm, grid, probes, snr=15.0, seed=3)
    )
    mr.write_mr_image(root / "slice.nrrd", mr.render_slice(plane, field, grid, probes, snr=15.0, seed=4))
    return root


def test_a_volume_is_observed_compared_and_written(files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "observe-ice",
            *("--baseline", str(files / "baseline.nrrd"), "--image", str(files / "image.nrrd")),
            *("--result", str(files / "result"), "--case", str(files / "case.cryo.json")),
            *(
                "--labels",
                str(files / "labels.nrrd"),
                "--critical",
                f"Bowel={BOWEL_LABEL}",
                "--margin-mm",
                "5",
            ),
            *("--out", str(out)),
        ]
    )
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["kind"] == "volume"
    assert comparison["dice"] >= 0.9
    assert comparison["volume_ml"] == pytest.approx(comparison["predicted_volume_ml"], rel=0.15)
    assert comparison["mean_surface_distance_mm"] < 1.0
    bowel = comparison["structures"]["Bowel"]
    assert bowel["distance_mm"] == pytest.approx(3.0, abs=1.5)  # the ice edge is 3 mm from the bowel
    assert comparison["warnings"] and "Bowel" in comparison["warnings"][0]
    assert np.allclose(comparison["registration"]["motion_mm"], [0.0, 1.0, 2.0], atol=0.6)
    ice = mr.read_mr_image(out / "ice.nrrd")
    image = mr.read_mr_image(files / "image.nrrd")
    assert ice.array.shape == image.array.shape and np.allclose(ice.ijk_to_ras, image.ijk_to_ras)
    on_grid, grid = read_nrrd(out / "ice_on_plan_grid.nrrd")
    _, result_grid = read_nrrd(files / "result" / "temperature_final.nrrd")
    assert grid == result_grid and set(np.unique(on_grid)) <= {0, 1}
    printed = capsys.readouterr().out
    assert "Dice" in printed and "WARNING" in printed and "Bowel" in printed


def test_a_slice_without_the_case_is_seeded_at_the_predicted_core(files, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "observe-ice",
            *("--baseline", str(files / "slice_baseline.nrrd"), "--image", str(files / "slice.nrrd")),
            *("--result", str(files / "result"), "--time-s", "600", "--out", str(out)),
        ]
    )
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["kind"] == "slice" and "area_cm2" in comparison
    assert comparison["dice"] >= 0.9
    assert any("seeded at the prediction" in note for note in comparison["notes"])


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"--image": "missing.nrrd"}, "--image"),
        ({"--baseline": "slice_baseline.nrrd"}, "--baseline"),  # not the same position as the image
        ({"--critical": "Bowel"}, "--critical"),
        ({"--critical": "Bowel=5", "--labels": None}, "--labels"),
        ({"--time-s": "123"}, "--time-s"),
        ({"--margin-mm": "-2"}, "--margin-mm"),
        ({"--result": "nowhere"}, "--result"),
        ({"--labels": "slice.nrrd"}, "--labels"),  # not on the result's grid
    ],
)
def test_bad_inputs_exit_2_naming_the_option(files, tmp_path, capsys, change, option):
    options = {
        "--baseline": "baseline.nrrd",
        "--image": "image.nrrd",
        "--result": "result",
        "--case": "case.cryo.json",
        "--labels": "labels.nrrd",
    }
    options.update(change)
    argv = ["observe-ice", "--out", str(tmp_path / "out")]
    for key, value in options.items():
        if value is None:
            continue
        is_path = key in {"--baseline", "--image", "--result", "--case", "--labels"}
        argv += [key, str(files / value) if is_path else value]
    assert main(argv) == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
