"""The scanner simulator (``cryoablation simulate-scanner``): real-time slices and volumes as an MR
scanner gives them, with their true geometry, baselines before the first freeze, seeded and
deterministic; the truth's perturbations set by flags; the truth run written on the plan's grid.

A short protocol (10 s lead-in, 30 s freeze, 24 s thaw, 30 s freeze: 94 s) on the 3 mm demo grid
keeps each procedure to a few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from CryoAblationLogic.cli.main import main as cli_main
from CryoAblationLogic.igtl.messages import ImageMessage, QueryMessage, StatusMessage, StringMessage
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.live.synthetic import SyntheticProcedure, SyntheticSettings

SHORT = {"spacing_mm": 3.0, "protocol_scale": 0.05, "lead_in_s": 10.0, "slice_interval_s": 30.0}
SLICES = ["MR Slice across", "MR Slice along-1", "MR Slice along-2"]


def served(settings: SyntheticSettings) -> list[tuple[float, object]]:
    procedure = SyntheticProcedure(settings)
    return [(t, message) for t, messages in procedure.timeline() for message in messages]


@pytest.fixture(scope="module")
def procedure_messages():
    settings = SyntheticSettings(**SHORT, volume_interval_s=60.0, seed=3)
    return settings, served(settings)


def test_baselines_come_first_then_slices_every_interval_and_volumes_every_few_minutes(procedure_messages):
    _, messages = procedure_messages
    images = [(t, m.device_name) for t, m in messages if isinstance(m, ImageMessage)]
    first_freeze = next(
        n
        for n, (_, m) in enumerate(messages)
        if isinstance(m, StatusMessage) and m.status_message.startswith("FREEZE")
    )
    baselines = [
        m.device_name for n, (_, m) in enumerate(messages) if isinstance(m, ImageMessage) and n < first_freeze
    ]
    assert sorted(baselines) == sorted(["MR Volume", *SLICES])  # one of each geometry, before any ice
    assert [t for t, name in images if name == "MR Slice across"] == [0.0, 30.0, 60.0, 90.0]
    assert [t for t, name in images if name == "MR Volume"] == [0.0, 60.0, 94.0]  # and one at the end


def test_images_carry_their_true_geometry_noise_and_the_probes_voids(procedure_messages):
    settings, messages = procedure_messages
    slices = [m for _, m in messages if isinstance(m, ImageMessage) and m.device_name in SLICES]
    for message in slices[:3]:
        assert message.voxels.shape == (54, 54, 1) and message.voxels.dtype == np.int16
        spacing = np.linalg.norm(message.axes_mm, axis=0)
        np.testing.assert_allclose(spacing, [1.5, 1.5, 5.0], atol=1e-9)  # 1.5 × 1.5 mm, 5 mm thick
    volume = next(m for _, m in messages if isinstance(m, ImageMessage) and m.device_name == "MR Volume")
    np.testing.assert_allclose(np.linalg.norm(volume.axes_mm, axis=0), [settings.volume_spacing_mm] * 3)
    # Rician noise at SNR 15: the tissue signal (~900) varies by tens between neighbouring pixels,
    # and the across-plane baseline cuts the three shafts: voids far below the tissue signal.
    across = slices[0].voxels[:, :, 0].astype(float)
    tissue = np.median(across)
    assert 20 < np.std(np.diff(across, axis=0)) < 0.3 * tissue
    assert np.count_nonzero(across < 0.3 * tissue) >= 3 * 4  # each shaft void is ≥ 2 pixels across


def test_the_console_answers_a_state_query_with_every_probe_s_state_now():
    """``GET_STATUS`` (of ``Cryo`` or of every device), which live mode sends on every connect: the
    STATUS ``Cryo`` of each probe as it is at that point of the procedure (off in the lead-in,
    freezing during the first freeze); other requests get no answer."""
    procedure = SyntheticProcedure(SyntheticSettings(**SHORT, volume_interval_s=600.0, seed=5))
    query = QueryMessage(prefix="GET", data_type="STATUS", device_name="Cryo")
    probes = len(procedure.truth.probes)
    timeline = iter(procedure.timeline())
    t, _ = next(timeline)
    assert t == 0.0
    assert [m.status_message for m in procedure.answer(query)] == [f"OFF {n}" for n in range(1, probes + 1)]
    while t < SHORT["lead_in_s"] + 1.0:  # into the first freeze
        t, _ = next(timeline)
    answer = procedure.answer(QueryMessage(prefix="GET", data_type="STATUS", device_name=""))
    assert [(m.device_name, m.status_message) for m in answer] == [
        ("Cryo", f"FREEZE {n} 100%") for n in range(1, probes + 1)
    ]
    assert procedure.answer(QueryMessage(prefix="GET", data_type="TRANSFORM", device_name="Cryo")) == []
    assert procedure.answer(QueryMessage(prefix="GET", data_type="STATUS", device_name="MR")) == []
    assert procedure.answer(StringMessage("GET", device_name="Cryo")) == []


def test_the_same_seed_serves_the_same_procedure_and_another_seed_another():
    settings = SyntheticSettings(**SHORT, volume_interval_s=600.0, seed=5)
    first = [m.voxels.tobytes() for _, m in served(settings) if isinstance(m, ImageMessage)]
    again = [m.voxels.tobytes() for _, m in served(settings) if isinstance(m, ImageMessage)]
    other = [
        m.voxels.tobytes()
        for _, m in served(SyntheticSettings(**SHORT, volume_interval_s=600.0, seed=6))
        if isinstance(m, ImageMessage)
    ]
    assert first == again
    assert first != other


def test_the_truths_perturbations_follow_the_flags():
    exact = SyntheticProcedure(
        SyntheticSettings(**SHORT, property_spread=0.0, insertion_error_mm=0.0, insertion_error_deg=0.0)
    )
    for planned, true in zip(exact.plan.probes, exact.truth.probes, strict=True):
        np.testing.assert_allclose(true.tip_mm, planned.tip_mm, atol=1e-9)
        np.testing.assert_allclose(true.entry_mm, planned.entry_mm, atol=1e-9)
    assert exact.truth.materials == exact.plan.materials
    off = SyntheticProcedure(
        SyntheticSettings(**SHORT, property_spread=0.3, insertion_error_mm=4.0, insertion_error_deg=5.0)
    )
    tips = [
        np.linalg.norm(np.subtract(t.tip_mm, p.tip_mm))
        for t, p in zip(off.truth.probes, off.plan.probes, strict=True)
    ]
    assert 0.5 < np.sqrt(np.mean(np.square(tips))) < 12.0  # RMS 4 mm, three probes
    conductivities = [
        off.truth.materials[name].k_unfrozen / off.plan.materials[name].k_unfrozen
        for name in off.plan.materials
        if off.truth.materials[name] != off.plan.materials[name]
    ]
    assert conductivities and all(0.7 - 1e-9 <= k <= 1.3 + 1e-9 for k in conductivities)


def test_the_truth_is_written_as_a_result_folder_on_the_plans_grid(tmp_path):
    procedure = SyntheticProcedure(SyntheticSettings(**SHORT, volume_interval_s=600.0, seed=2))
    for _ in procedure.timeline():
        pass
    out = procedure.write_truth(tmp_path / "truth")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulated_s"] == pytest.approx(procedure.end_s)
    assert summary["truth"]["seed"] == 2 and len(summary["truth"]["probes"]) == 3
    for name in ("temperature_final.nrrd", "min_temperature.nrrd"):
        _, grid = read_nrrd(out / name)
        assert grid.size == procedure.plan.grid.size
        np.testing.assert_allclose(grid.origin_mm, procedure.plan.grid.origin_mm, atol=1e-6)
        np.testing.assert_allclose(grid.spacing_mm, procedure.plan.grid.spacing_mm, atol=1e-6)
    final, _ = read_nrrd(out / "temperature_final.nrrd")
    np.testing.assert_allclose(final, procedure.simulation.temperature_c, atol=1e-4)
    assert summary["isotherms"]["0"]["volume_ml"] > 0.1  # the truth froze
    assert (out / "case.cryo.json").is_file()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--property-spread", "0.95"),
        ("--insertion-error-mm", "-1"),
        ("--insertion-error-deg", "90"),
        ("--slice-interval-s", "0"),
        ("--snr", "nan"),
        ("--breathing-mm", "50"),
    ],
)
def test_bad_simulator_flags_exit_2_naming_them(tmp_path, monkeypatch, capsys, flag, value):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["simulate-scanner", "--port", "0", flag, value, "--wait-s", "0.1"]) == 2
    assert flag in capsys.readouterr().err
