"""``cryoablation monitor --out DIR`` against ``cryoablation simulate-scanner`` on loopback (two
processes): the plan following the console in ``DIR/predicted/``, the ice observed in every MR
image in ``DIR/observed/`` and the observed-vs-predicted series in ``DIR/summary.json``; the truth
written by ``--truth-out`` on the plan's grid; ``cryoablation replay`` of the journal reproduces
the observed outputs exactly; with ``--correct`` (a small ensemble, drawn around the poses the
console reports) the corrected result and its band in ``DIR/corrected/``, which the replay
reproduces too (the same poses and kept images, from the journal's notes).

Coarse grid (3 mm), a short protocol (10 s lead-in, 120 s freeze, 96 s thaw, 120 s freeze: 346 s)
served 20 times faster than real time, slices every 40 s and a volume every 120 s of procedure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from live_testing import free_port

from CryoAblationLogic.cli.main import main as cli_main
from CryoAblationLogic.io.mr_synthesis import read_mr_image
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.live.journal import read_journal

REPO = Path(__file__).resolve().parents[2]
PLAN = ["--spacing-mm", "3", "--protocol-scale", "0.2", "--lead-in-s", "10"]
IMAGING = ["--slice-interval-s", "40", "--volume-interval-s", "120", "--seed", "11"]
CORRECTION = ["--correct", "--ensemble-members", "8"]  # a small ensemble: the wiring, not the accuracy


def command(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "CryoAblationLogic", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_the_monitor_writes_predicted_observed_and_the_series_and_replay_reproduces_them(tmp_path):
    port = free_port()
    truth_dir, out = tmp_path / "truth", tmp_path / "live"
    scanner = command(
        "simulate-scanner",
        "--port",
        str(port),
        "--acceleration",
        "20",
        *PLAN,
        *IMAGING,
        "--truth-out",
        str(truth_dir),
    )
    monitor = command(
        "monitor",
        "--port",
        str(port),
        "--out",
        str(out),
        *PLAN,
        "--stop-on-disconnect",
        "--wall-clock-after",
        "0",
        "--update-interval-s",
        "5",
        "--no-record",
        *CORRECTION,
    )
    monitor_output, _ = monitor.communicate(timeout=400)
    scanner_output, _ = scanner.communicate(timeout=60)
    assert monitor.returncode == 0, monitor_output
    assert scanner.returncode == 0, scanner_output
    assert "observed ice: images 31 (4 baseline, 27 observed, 0 refused)" in monitor_output

    # DIR/predicted: the result folder of docs/case-format.md, as before under DIR
    predicted = json.loads((out / "predicted" / "summary.json").read_text())
    assert predicted["format"] == "cryoablation-result/1" and predicted["live"]["images"] == 31
    final, grid = read_nrrd(out / "predicted" / "temperature_final.nrrd")

    # DIR/observed: the observed ice map on the plan grid, a label map per image, the series
    ice, ice_grid = read_nrrd(out / "observed" / "ice_final.nrrd")
    assert ice_grid == grid and set(np.unique(ice)) <= {0, 1}
    summary = json.loads((out / "summary.json").read_text())
    observed = summary["observed"]
    assert observed["counts"] == {"baseline": 4, "observed": 27, "refused": 0}
    series = [row for row in observed["series"] if row["status"] == "observed"]
    assert [row["time_s"] for row in series if row["kind"] == "volume"] == [120.0, 240.0, 346.0]
    for row in series:
        assert (out / row["file"]).is_file()
        assert abs(row["predicted_time_s"] - row["time_s"]) <= 5.0  # the solver's last update before it
    end = series[-1]
    assert end["kind"] == "volume" and end["dice"] >= 0.8  # the plan follows the true placement
    # the end volume is the latest image of (nearly) every voxel: the map is its ice
    assert abs(end["observed_on_grid_ml"] - observed["ice_final_volume_ml"]) < 0.3
    assert summary["predicted"]["isotherms"] == predicted["isotherms"]

    # DIR/corrected: the corrected result folder with its band, and the correction in the summary
    correction = summary["correction"]
    assert correction["time_s"] == end["time_s"] and correction["faults"] == 0
    assert correction["valid"] and correction["departures"] == []  # the console kept to the plan
    assert set(correction["forecasts"]) and all("p50" in f for f in correction["forecasts"].values())
    corrected = json.loads((out / "corrected" / "summary.json").read_text())
    assert corrected["format"] == "cryoablation-result/1"
    p10, p10_grid = read_nrrd(out / "corrected" / "min_temperature_p10.nrrd")
    p90, _ = read_nrrd(out / "corrected" / "min_temperature_p90.nrrd")
    assert p10_grid == grid and np.all(p10 <= p90 + 1e-6)  # p10 is the band's cold side
    # the ensemble was prepared again on the poses the console reported (the truth's placement,
    # with the tracking prior) in its own process; the images before it was ready were kept and
    # taken in when it was, so every observed image is corrected from
    journal = out / "journal" / "procedure.jsonl"
    notes = [r for r in read_journal(journal).records if r["kind"] == "live"]
    ready = [r["detail"] for r in notes if r["note"] == "correction_ready"]
    # (the plan's ensemble, prepared at once, may be ready before the console's poses come)
    assert ready[-1]["placement"] == "reported" and all(r["placement"] == "planned" for r in ready[:-1])
    assert "images_skipped" not in ready[-1]
    # re-centrings (at most 2 by default), each asked before it was installed; the correction
    # says which generation answered (one installed after the last image answers nothing)
    asked = [r["detail"]["generation"] for r in notes if r["note"] == "correction_recentring"]
    installed = [r["detail"]["generation"] for r in notes if r["note"] == "correction_recentred"]
    assert asked[: len(installed)] == installed == list(range(1, len(installed) + 1)) and len(asked) <= 2
    assert correction["ensemble"]["generation"] in (len(installed), max(0, len(installed) - 1))
    assert ready[-1]["images_kept"] >= 0
    assert correction["images"] == 27
    assert "corrected after 27 images" in monitor_output
    placement = correction["placement"]
    assert placement["centre"] == "reported" and placement["tip_error_mm"] == 0.5
    truth_probes = json.loads((truth_dir / "case.cryo.json").read_text())["probes"]
    for probe in truth_probes:  # the console reports the truth's poses (float32 on the wire)
        np.testing.assert_allclose(placement["probes"][probe["name"]]["tip_mm"], probe["tip_mm"], atol=2e-3)

    # the truth on the plan's grid; the observed ice at the end agrees with its 0 °C zone
    truth, truth_grid = read_nrrd(truth_dir / "temperature_final.nrrd")
    assert truth_grid == grid
    assert (truth_dir / "min_temperature.nrrd").is_file() and (truth_dir / "summary.json").is_file()
    assert dice(ice.astype(bool), truth <= 0.0) >= 0.85

    # every image was fed (none coalesced): the journal's IMAGE records are the series
    assert len(read_journal(journal).messages("IMAGE")) == len(observed["series"]) == 31

    # replay: the same observed outputs, voxel for voxel, and the same series
    again = tmp_path / "replayed"
    assert cli_main(["replay", str(journal), "--out", str(again), *CORRECTION]) == 0
    replayed = json.loads((again / "summary.json").read_text())
    for entry in (replayed, summary):  # how long the last update took is the machine's, not the correction's
        del entry["correction"]["update_s"]
    assert replayed == summary
    for name in ("min_temperature_p10.nrrd", "min_temperature_p90.nrrd", "min_temperature.nrrd"):
        np.testing.assert_array_equal(
            read_nrrd(out / "corrected" / name)[0], read_nrrd(again / "corrected" / name)[0], err_msg=name
        )
    for path in sorted((out / "observed").glob("*.nrrd")):
        first, second = read_mr_image(path), read_mr_image(again / "observed" / path.name)
        np.testing.assert_array_equal(first.array, second.array, err_msg=path.name)
        np.testing.assert_array_equal(first.ijk_to_ras, second.ijk_to_ras, err_msg=path.name)
    assert (out / "observed" / "observations.csv").read_text() == (
        again / "observed" / "observations.csv"
    ).read_text()
    np.testing.assert_array_equal(final, read_nrrd(again / "predicted" / "temperature_final.nrrd")[0])
