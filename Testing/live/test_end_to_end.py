"""The commands end to end on loopback: a synthetic procedure served → ``cryoablation monitor``
(a separate process) → journal → ``cryoablation replay`` gives the same isotherms; a monitor
killed mid-procedure loses nothing it received; ``--duration`` and SIGINT stop it cleanly.

Coarse grid (3 mm) and a short, accelerated protocol (10 s lead-in, 30 s freeze, 24 s thaw, 30 s
freeze, served ten times faster than real time) keep each run to a few seconds of procedure work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from CryoAblationLogic.cli.main import main as cli_main
from CryoAblationLogic.igtl.transport import Server
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.live.journal import read_journal
from CryoAblationLogic.live.simulator import ConsoleSimulator, probe_pose
from CryoAblationLogic.live.synthetic import SyntheticProcedure, SyntheticSettings, serve

# the phantom's volume with every other update (the scanner's slices and volumes: test_monitor_ice.py)
SETTINGS = SyntheticSettings(
    spacing_mm=3.0,
    protocol_scale=0.05,
    lead_in_s=10.0,
    acceleration=10.0,
    update_interval_s=0.5,
    imaging="phantom",
)
PLAN_OPTIONS = ["--spacing-mm", "3", "--protocol-scale", "0.05", "--lead-in-s", "10"]
REPO = Path(__file__).resolve().parents[2]


class ServedProcedure:
    """The synthetic procedure served from a thread of this process, every message sent logged."""

    def __init__(self, settings: SyntheticSettings = SETTINGS):
        self.procedure = SyntheticProcedure(settings)
        self.server = Server(0)
        self.server.start()
        self.sent: list[tuple[float, str, str, int]] = []  # (monotonic s, type, device, time stamp)
        send = self.server.send

        def logged_send(message, connection_id=None, stamp=True):
            count = send(message, connection_id, stamp)
            if count:
                self.sent.append(
                    (time.monotonic(), message.message_type, message.device_name, message.timestamp_raw)
                )
            return count

        self.server.send = logged_send
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            serve(self.procedure, self.server, wait_s=120.0, linger_s=0.5, log=lambda text: None)
        finally:
            self.server.stop()

    @property
    def port(self) -> int:
        return self.server.port


def monitor(port: int, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "CryoAblationLogic", "monitor", "--port", str(port), "--out", str(out)]
    return subprocess.Popen(
        [*command, *PLAN_OPTIONS, *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def field(path: Path) -> np.ndarray:
    loaded = read_nrrd(path)
    return np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded)


def incoming(journal_path: Path) -> list[tuple[str, str, int]]:
    return [
        (r["message_type"], r["device_name"], r["timestamp_raw"])
        for r in read_journal(journal_path).records
        if r["kind"] == "message" and r["direction"] == "in"
    ]


def test_simulator_monitor_journal_replay_give_the_same_isotherms(tmp_path):
    served = ServedProcedure()
    out = tmp_path / "live"
    process = monitor(
        served.port, out, "--stop-on-disconnect", "--wall-clock-after", "0", "--update-interval-s", "5"
    )
    output, _ = process.communicate(timeout=240)
    served.thread.join(30)
    assert process.returncode == 0, output
    assert "peer disconnected" in output
    journal = out / "journal" / "procedure.jsonl"

    # the journal holds every message served, in order, images beside it
    assert incoming(journal) == [(kind, name, stamp) for _, kind, name, stamp in served.sent]
    contents = read_journal(journal)
    images = contents.messages("IMAGE", "MR Image")
    assert len(images) >= 5
    first, _ = contents.image(images[0])
    last, _ = contents.image(images[-1])
    assert first.dtype == np.int16 and np.count_nonzero(last < 0.1 * first) > np.count_nonzero(
        first < 0.1 * first
    )

    assert cli_main(["replay", str(journal), "--out", str(tmp_path / "replayed")]) == 0
    for name in (
        "temperature_final.nrrd",
        "min_temperature.nrrd",
        "temperature_40s.nrrd",
        "temperature_94s.nrrd",
    ):
        np.testing.assert_array_equal(
            field(out / "predicted" / name), field(tmp_path / "replayed" / "predicted" / name), err_msg=name
        )
    assert (out / "predicted" / "ice_volume_history.csv").read_text() == (
        tmp_path / "replayed" / "predicted" / "ice_volume_history.csv"
    ).read_text()
    summary = json.loads((out / "predicted" / "summary.json").read_text())
    replayed = json.loads((tmp_path / "replayed" / "predicted" / "summary.json").read_text())
    assert summary["isotherms"] == replayed["isotherms"] and summary["isotherms"]["0"]["volume_ml"] > 0.5
    notes = [(n["what"], n.get("probe"), n.get("action")) for n in summary["live"]["notes"]]
    assert notes.count(("probe_moved", "P1", None)) == 1  # placement measured before the freeze
    assert ("probe_state", "P3", "thaw") in notes
    thaw_times = [n["time_s"] for n in summary["live"]["notes"] if n.get("action") == "thaw"]
    assert thaw_times == [pytest.approx(40.0, abs=1e-4)] * 3

    # the prediction differs from the "truth" the simulator served, but not wildly
    truth_volume = served.procedure.simulation.isotherm_volumes_ml()[0.0]
    predicted = summary["isotherms"]["0"]["volume_ml"]
    assert predicted != truth_volume and 0.3 < predicted / truth_volume < 3.0
    readings = (out / "predicted" / "sensor_readings.csv").read_text().splitlines()
    assert any(line.startswith("TumorCenter,sensor,") for line in readings)

    # the monitor leaves the procedure's record beside its results: metrics, report, scene
    assert "record written to" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["level_c"] for row in metrics["isotherms"]] == [0.0, -20.0, -40.0]
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "scene.mrb").stat().st_size > 0


def test_a_monitor_killed_mid_procedure_loses_nothing_it_received(tmp_path):
    served = ServedProcedure()
    out = tmp_path / "live"
    process = monitor(served.port, out, "--wall-clock-after", "0", "--update-interval-s", "5", "--fsync")
    journal = out / "journal" / "procedure.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(served.sent) < 120:
        time.sleep(0.1)
    killed_at = time.monotonic()
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    served.thread.join(60)

    received = incoming(journal)
    sent = [(kind, name, stamp) for _, kind, name, stamp in served.sent]
    assert received == sent[: len(received)], "the journal is the start of what was sent, in order, no gaps"
    sent_well_before = sum(1 for when, *_ in served.sent if when < killed_at - 2.0)
    assert len(received) >= sent_well_before > 50
    assert not (out / "summary.json").exists()  # killed: no chance to write results ...
    assert (
        cli_main(["replay", str(journal), "--out", str(tmp_path / "replayed")]) == 0
    )  # ... the journal has them
    summary = json.loads((tmp_path / "replayed" / "predicted" / "summary.json").read_text())
    assert summary["live"]["console_messages"] == sum(
        1 for kind, name, _ in received if name != "MR" and kind != "IMAGE"
    )


def _console_peer() -> ConsoleSimulator:
    from CryoAblationLogic.io.phantom import demo_probe_plan

    poses = [probe_pose(p["tip_mm"], p["entry_mm"]) for p in demo_probe_plan()]
    console = ConsoleSimulator(poses, port=0, update_interval_s=0.2)
    console.start()
    return console


def _stopped_cleanly(out: Path, output: str) -> dict:
    records = read_journal(out / "journal" / "procedure.jsonl").records
    assert records[-1]["kind"] == "live" and records[-1]["note"] == "stop", output
    assert (out / "summary.json").is_file()
    summary = json.loads((out / "predicted" / "summary.json").read_text())
    for name in (
        "temperature_final.nrrd",
        "min_temperature.nrrd",
        "ice_volume_history.csv",
        "sensor_readings.csv",
    ):
        assert (out / "predicted" / name).is_file(), name
    return summary


def test_duration_stops_the_monitor_cleanly_with_its_files_written(tmp_path):
    console = _console_peer()
    try:
        process = monitor(console.port, tmp_path / "out", "--duration", "4", "--compress-images")
        output, _ = process.communicate(timeout=120)
    finally:
        console.stop()
    assert process.returncode == 0, output
    assert "stopped (duration 4 s)" in output
    summary = _stopped_cleanly(tmp_path / "out", output)
    assert summary["live"]["console_messages"] > 5 and summary["simulated_s"] > 1.0


def test_sigint_stops_the_monitor_cleanly_with_its_files_written(tmp_path):
    console = _console_peer()
    try:
        process = monitor(console.port, tmp_path / "out")
        journal = tmp_path / "out" / "journal" / "procedure.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 30):
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        console.stop()
    assert process.returncode == 0, output
    assert "stopped (SIGINT)" in output
    _stopped_cleanly(tmp_path / "out", output)


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["monitor", "--out", "x"], "--port"),
        (["monitor", "--port", "1", "--out", "x", "--duration", "0"], "--duration"),
        (["monitor", "--port", "1", "--out", "x", "--wall-clock-after", "-1"], "--wall-clock-after"),
        (["monitor", "--port", "1", "--out", "x", "--journal", "j.txt", "--duration", "1"], "--journal"),
        (["monitor", "--port", "99999", "--out", "x"], "--port: 99999 is not a TCP port"),
        (["monitor", "--listen", "-1", "--out", "x"], "--listen: -1 is not a TCP port"),
        (["replay", "missing.jsonl", "--out", "x"], "journal not found"),
        (["replay", "missing.jsonl", "--out", "x", "--ensemble-members", "3"], "--ensemble-members"),
        (["simulate-scanner", "--spacing-mm", "9"], "--spacing-mm"),
        (["simulate-scanner", "--acceleration", "0"], "--acceleration"),
        (["simulate-scanner", "--connect", "nowhere"], "--connect"),
    ],
)
def test_bad_arguments_exit_2_naming_them(tmp_path, monkeypatch, capsys, argv, key):
    monkeypatch.chdir(tmp_path)
    assert cli_main(argv) == 2
    assert key in capsys.readouterr().err
    assert not (tmp_path / "x" / "summary.json").exists()


def test_a_link_is_said_to_be_waited_for_only_after_its_disconnection_was_said():
    from types import SimpleNamespace

    from CryoAblationLogic.cli.monitor import still_waiting

    down = SimpleNamespace(
        connected=False, host="127.0.0.1", port=18944, last_failure="refused", attempts_failed=3
    )
    links = {"console": down}
    # dropped, but its last messages (and then its disconnection) are still queued: nothing yet
    assert still_waiting(links, {"console": "connected"}) == []
    assert still_waiting(links, {"console": "disconnected"}) == [
        "  still waiting for console at 127.0.0.1:18944 (3 attempts, refused)"
    ]
    assert still_waiting(links, {}) != []  # never connected: waited for from the start
    assert still_waiting({"console": SimpleNamespace(connected=True)}, {}) == []
