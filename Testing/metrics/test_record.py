"""The record: one HTML page with everything inside it and a PDF with the same content; what a
record of a plan and of a monitored procedure must state; ``cryoablation simulate`` writing it
when the case names target and structures; the progress bar."""

from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace

import numpy as np
import pypdf
import pytest

from CryoAblationLogic.cli.main import main
from CryoAblationLogic.core.about import __version__
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.progress import ProgressBar
from CryoAblationLogic.io.case_file import parse_case, save_case
from CryoAblationLogic.physics.probes import load_probe_catalog
from CryoAblationLogic.report.record import solver_settings, write_result_record

BOWEL_LABEL, TUMOUR_LABEL = 3, 2


def case_data(shapes):
    grid = shapes.cube_grid((30, 30, 30))
    labels = np.ones(grid.size, dtype=np.uint8)
    labels[shapes.ball(grid, 5.0, centre_mm=(0.0, 22.0, 0.0))] = BOWEL_LABEL
    labels[shapes.ball(grid, 8.0)] = TUMOUR_LABEL
    data = {
        "format": "cryoablation-case/1",
        "name": "ball phantom",
        "grid": grid.to_dict(),
        "tissue_map": {"labelmap": "labels.nrrd", "labels": {"1": "kidney", "2": "tumor", "3": "muscle"}},
        "probes": [
            {"name": "P1", "model": "argon-1.47mm", "tip_mm": [-5.0, 0.0, -12.0], "entry_mm": [-5, 0, 60]},
            {"name": "P2", "model": "argon-1.47mm", "tip_mm": [5.0, 0.0, -12.0], "entry_mm": [5, 0, 60]},
        ],
        "protocol": [
            {"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100},
            {"action": "thaw", "mode": "passive", "duration_s": 30, "probes": "all"},
        ],
        "sensors": [{"name": "TC1", "position_mm": [0.0, 12.0, 0.0]}],
        "structures": [
            {"label": TUMOUR_LABEL, "name": "Tumor", "role": "target"},
            {"label": BOWEL_LABEL, "name": "Bowel", "role": "critical", "type": "bowel"},
        ],
    }  # fmt: skip
    return data, labels


@pytest.fixture(scope="module")
def record(shapes, tmp_path_factory):
    data, labels = case_data(shapes)
    case = parse_case(data, arrays={"labels.nrrd": labels})
    field = shapes.radial_field(case.grid, 16.0)  # the bowel's surface at 17 mm: 1 mm from the ice
    t = np.linspace(0.0, 90.0, 4)
    result = SimpleNamespace(
        grid=case.grid, temperature_final=field + 10.0, min_temperature=field, simulated_s=90.0, wall_s=1.5,
        energy_balance_error=1e-6, steps=12,
        ice_volume_history={0.0: (t, t / 10), -20.0: (t, t / 20), -40.0: (t, t / 40)},
        sensors={"TC1": (t, 37.0 - t / 2)},
        probe_history={"P1": {"surface_c": np.array([37.0, -148.26]), "power_w": np.array([0.0, 30.54])}},
    )  # fmt: skip
    out = tmp_path_factory.mktemp("record")
    written = write_result_record(
        out, case, result, np.asarray(labels, np.float32), {"target": {"Tumor": labels == TUMOUR_LABEL},
        "critical": {"Bowel": labels == BOWEL_LABEL}}, structure_types={"Bowel": "bowel"},
        catalog=load_probe_catalog(), kind="Monitored procedure",
        events=[(0.0, "Freeze started (console)"), (65.0, "Thaw started")],
        observed={"TC1": (np.array([30.0, 60.0]), np.array([20.0, 8.0]))},
    )  # fmt: skip
    return {"written": written, "html": written.files.html.read_text(encoding="utf-8"), "out": out}


def test_the_html_needs_no_other_file(record):
    page = record["html"]
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) >= 8  # five slices, 3-D, two charts
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert "href=" not in page and "url(" not in page  # no style sheet or font beside it
    assert sorted(path.name for path in record["out"].iterdir()) == [
        "metrics.json",
        "report.html",
        "report.pdf",
    ]


def test_the_record_states_what_was_planned_and_how_it_was_computed(record):
    page = record["html"]
    for fact in (
        "ball phantom", f"CryoAblation {__version__}", "Monitored procedure",
        "Research software, not a medical device",
        "argon-1.47mm", "-5.0, 0.0, -12.0", "freeze, 100 % flow", "thaw (passive)", "1:00", "0:30",
        "61 × 61 × 61 voxels of 1 × 1 × 1 mm", "Initial temperature", "energy balance error",
        "Review and sign-off", "Planned by", "Reviewed by", "Signature",
    ):  # fmt: skip
        assert fact in page, fact
    # one sentence explains the volumes, once
    assert page.count("Volumes are those at or below each isotherm") == 1


def test_the_record_states_what_the_prediction_assumes(record, shapes):
    page = record["html"]
    for fact in (
        "2 (Tumor): tumor", "3 (Bowel): muscle",  # each label's material beside the structure it is
        "Material kidney", "perfusion 255000 W/(m³·K)", "latent heat", "freezing from -1 to -8 °C",
        "P1: surface -148.3 °C at the end, peak 30.5 W", "1:30 (min:s)", "(of the heat exchanged)",
        "TC1: -8.0 °C at 1:30 (min:s)",  # the sensor's 37 − t/2 at its last sample
    ):  # fmt: skip
        assert fact in page, fact
    assert "a first look" not in page  # a 1 mm grid is fine enough for decisions
    data, labels = case_data(shapes)
    data["grid"] = {**data["grid"], "spacing_mm": [2.0, 2.0, 2.0], "size": [31, 31, 31]}
    coarse = parse_case(data, arrays={"labels.nrrd": labels[::2, ::2, ::2]})
    (grid_row,) = [
        value for name, value in solver_settings(coarse, SimpleNamespace(simulated_s=60.0)) if name == "Grid"
    ]
    assert "coarser than 1 mm: a first look; use 1 mm or finer for decisions" in grid_row


def test_the_warnings_come_first_most_severe_first(record):
    page = record["html"]
    warnings = [w for w in record["written"].warnings]
    assert warnings[0].rule == "ice_edge_within_margin" and warnings[0].structure == "Bowel"
    rows = re.findall(r'<tr class="(critical|high|medium|note)">', page)
    assert rows == [w.severity for w in warnings]
    assert page.index("Warnings, most severe first") < page.index("Target coverage")
    assert "Bowel ends 1." in page


def test_a_monitored_procedure_shows_its_events_and_the_observed_course(record):
    page = record["html"]
    assert "Procedure events" in page and "1:05" in page and "Thaw started" in page
    assert "Observed vs predicted" in page
    # TC1 predicted 37 − t/2: 22 °C at 30 s and 7 °C at 60 s; measured 20 and 8
    assert re.search(r"<td>TC1</td><td>2</td><td>-0.5</td><td>2.0</td>", page)


def test_the_pdf_carries_the_same_record(record):
    reader = pypdf.PdfReader(io.BytesIO(record["written"].files.pdf.read_bytes()))
    first = reader.pages[0].extract_text()
    assert "Warnings, most severe first" in first and "Bowel ends" in first and "°C" in first
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Review and sign-off" in text and "argon-1.47mm" in text
    assert sum(len(page.images) for page in reader.pages) >= 8


def test_the_metrics_file_is_written_beside_the_record(record):
    data = json.loads((record["out"] / "metrics.json").read_text(encoding="utf-8"))
    assert data["case"] == "ball phantom" and data["warnings"][0]["rule"] == "ice_edge_within_margin"


def test_a_record_needs_a_target(shapes, tmp_path):
    data, labels = case_data(shapes)
    case = parse_case(data, arrays={"labels.nrrd": labels})
    result = SimpleNamespace(grid=case.grid, min_temperature=np.zeros(case.grid.size, np.float32))
    with pytest.raises(InputError, match="no target"):
        write_result_record(tmp_path, case, result, labels, {"critical": {}})


def test_case_structures_are_checked_by_key(shapes):
    data, labels = case_data(shapes)
    for change, key in (
        ({"label": 9, "name": "X", "role": "target"}, "structures[2].label"),
        ({"label": 1, "name": "X", "role": "danger"}, "structures[2].role"),
        ({"label": 1, "name": "", "role": "organ"}, "structures[2].name"),
        ({"label": 1, "name": "X", "role": "organ", "colour": "red"}, "structures[2].colour"),
    ):
        bad = {**data, "structures": [*data["structures"], change]}
        with pytest.raises(InputError) as raised:
            parse_case(bad, arrays={"labels.nrrd": labels})
        assert raised.value.key == key


def test_a_target_or_critical_structure_without_voxels_is_refused_before_computing(shapes):
    data, labels = case_data(shapes)
    data["tissue_map"]["labels"]["4"] = "fat"  # a label the map never holds
    for role in ("critical", "target"):
        bad = {**data, "structures": [*data["structures"], {"label": 4, "name": "Nerve", "role": role}]}
        with pytest.raises(InputError, match=r"'Nerve'.*has no voxel") as raised:
            parse_case(bad, arrays={"labels.nrrd": labels})
        assert raised.value.key == "structures[2].label"
    # an organ or vessel may lie outside the grid: nothing measures it
    fine = {**data, "structures": [*data["structures"], {"label": 4, "name": "Fat", "role": "organ"}]}
    assert [s.name for s in parse_case(fine, arrays={"labels.nrrd": labels}).structures][-1] == "Fat"


def test_simulate_writes_metrics_and_record_when_the_case_names_its_target(shapes, tmp_path, capsys):
    data, labels = case_data(shapes)
    case = parse_case(data, arrays={"labels.nrrd": labels})
    path = save_case(case, tmp_path / "case.cryo.json")
    assert main(["simulate", str(path), "--out", str(tmp_path / "result"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "warnings, most severe first" in printed
    for name in ("metrics.json", "report.html", "report.pdf", "summary.json"):
        assert (tmp_path / "result" / name).is_file()


def test_simulate_refuses_bad_safety_rules_before_computing(shapes, tmp_path, capsys):
    data, labels = case_data(shapes)
    path = save_case(parse_case(data, arrays={"labels.nrrd": labels}), tmp_path / "case.cryo.json")
    (tmp_path / "rules.json").write_text(json.dumps({"structure_margins_mm": {"bowel": -1}}))
    code = main(
        ["simulate", str(path), "--out", str(tmp_path / "r"), "--safety-rules", str(tmp_path / "rules.json")]
    )
    assert code == 2 and "structure_margins_mm.bowel" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_elapsed_time_and_time_left_on_a_terminal_only():
    stream = Terminal()
    with ProgressBar(100.0, "simulating", stream=stream) as bar:
        bar(0.5, 50.0)
        bar.update_to(40.0)  # never backwards
        bar(1.0, 100.0)
    text = stream.getvalue()
    assert "simulating" in text and "elapsed" in text and "left" in text and "100/100 s" in text
    quiet = io.StringIO()
    with ProgressBar(10.0, "replay", unit="messages", stream=quiet) as bar:
        bar.update_to(5)
    assert quiet.getvalue() == "" and not bar.enabled


def live_folder(shapes, folder):
    """A result folder as ``cryoablation monitor`` leaves it (live.mode.write_live_results)."""
    from CryoAblationLogic.io.result_folder import write_result_folder

    data, labels = case_data(shapes)
    case = parse_case(data, arrays={"labels.nrrd": labels})
    field = shapes.radial_field(case.grid, 16.0)
    t = np.array([0.0, 30.0, 60.0, 90.0])
    result = SimpleNamespace(
        grid=case.grid, temperature_final=field + 5.0, min_temperature=field, snapshots={}, simulated_s=90.0,
        wall_s=3.0, isotherm_volumes_ml={0.0: 1.0}, sensors={"TC1": (t, 37.0 - t / 2)},
        energy_balance_error=1e-5, probe_history={},
    )  # fmt: skip
    write_result_folder(result, folder, case)
    save_case(case, folder / "case.cryo.json")
    (folder / "ice_volume_history.csv").write_text(
        "time_s,volume_ml_at_0C,volume_ml_at_-20C,volume_ml_at_-40C\n0,0,0,0\n45,2.5,1,0.2\n90,5,2,0.5\n"
    )
    (folder / "sensor_readings.csv").write_text(
        "name,kind,time_s,measured_c,predicted_c,predicted_time_s,predicted_tissue_c\n"
        "TC1,thermocouple,30.0,23.0,22.0,30.0,\nTC1,thermocouple,60.0,6.0,7.0,60.0,\n"
    )
    (folder / "live_events.csv").write_text(
        'time_s,what,detail\n0.000,freeze,"{""probes"": ""all""}"\n65.000,thaw,"{}"\n'
    )
    return folder


def test_a_monitored_procedure_leaves_its_record_and_scene(shapes, tmp_path):
    pytest.importorskip("slicer", reason="the scene needs slicer-core")
    from CryoAblationLogic.scene.plan_report import write_procedure_report

    folder = live_folder(shapes, tmp_path / "live")
    record, scene_path = write_procedure_report(folder)
    page = record.files.html.read_text(encoding="utf-8")
    assert "Monitored procedure" in page and "Procedure events" in page and "1:05" in page
    assert "freeze (probes: all)" in page and "Observed vs predicted" in page
    assert re.search(r"<td>TC1</td><td>2</td><td>\+0.0</td><td>1.0</td>", page)
    assert record.files.pdf.is_file() and (folder / "metrics.json").is_file()
    assert scene_path == folder / "scene.mrb" and scene_path.stat().st_size > 0


def test_a_procedure_record_names_a_missing_file(tmp_path):
    from CryoAblationLogic.report.procedure import write_procedure_report

    with pytest.raises(InputError, match=r"case\.cryo\.json"):
        write_procedure_report(tmp_path)
