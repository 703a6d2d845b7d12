"""Thermal protection in the record (issue 13): the measures a plan takes to spare a structure are
stated in the report (HTML and PDF) and in ``metrics.json``, each with the critical structures near
it and the lowest temperature each reached.

The field is the analytic ice ball of the metrics tests (T = 3 °C/mm · (r − 16 mm), 1 mm grid),
so every lowest temperature and distance is known exactly at the voxel centres:

- a 6 mm saline pocket (label 4, y 10–16 mm) lies 1 mm from the bowel (a 5 mm ball at y = 22 mm,
  its nearest voxel at r = 17 mm: 3 °C);
- a 4 mm warm catheter along z at (8, −22) lies 3 mm from a nerve (a 3 mm ball at (0, −22, 0): the
  nearest voxel centre is 5 mm from the catheter's axis, 2 mm its radius), whose nearest voxel to
  the ice is at r = 19 mm: 9 °C. The bowel is 30 mm and more from the catheter: not near it.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pypdf
import pytest

from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.report.protection import NEAR_MM, protection_summaries
from CryoAblationLogic.report.record import write_result_record

KIDNEY, TUMOUR, BOWEL, POCKET, NERVE = 1, 2, 3, 4, 5
CATHETER = {
    "type": "warm_line", "name": "Urethral warmer", "start_mm": [8.0, -22.0, -25.0],
    "end_mm": [8.0, -22.0, 25.0], "diameter_mm": 4.0, "temperature_c": 42.0,
}  # fmt: skip
POCKET_SOURCE = {
    "type": "warm_region", "name": "Saline pocket", "purpose": "warm_fluid", "label": POCKET,
    "power_w_per_ml": 3.0,
}  # fmt: skip


def protected_case(shapes, sources):
    grid = shapes.cube_grid((30, 30, 30))
    labels = np.full(grid.size, KIDNEY, dtype=np.uint8)
    labels[shapes.ball(grid, 5.0, centre_mm=(0.0, 22.0, 0.0))] = BOWEL
    labels[shapes.ball(grid, 3.0, centre_mm=(0.0, 13.0, 0.0))] = POCKET
    labels[shapes.ball(grid, 3.0, centre_mm=(0.0, -22.0, 0.0))] = NERVE
    labels[shapes.ball(grid, 8.0)] = TUMOUR
    data = {
        "format": "cryoablation-case/1",
        "name": "protected ball phantom",
        "grid": grid.to_dict(),
        "tissue_map": {
            "labelmap": "labels.nrrd",
            "labels": {"1": "kidney", "2": "tumor", "3": "muscle", "4": "saline", "5": "muscle"},
        },
        "probes": [
            {"name": "P1", "model": "argon-1.47mm", "tip_mm": [0.0, 0.0, -12.0], "entry_mm": [0, 0, 60]}
        ],
        "sources": sources,
        "protocol": [{"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100}],
        "structures": [
            {"label": TUMOUR, "name": "Tumor", "role": "target"},
            {"label": BOWEL, "name": "Bowel", "role": "critical", "type": "bowel"},
            {"label": NERVE, "name": "Nerve", "role": "critical", "type": "nerve"},
        ],
    }
    return parse_case(data, arrays={"labels.nrrd": labels}), labels


def write(shapes, out, sources):
    case, labels = protected_case(shapes, sources)
    field = shapes.radial_field(case.grid, 16.0)
    result = SimpleNamespace(
        grid=case.grid, temperature_final=field + 5.0, min_temperature=field, simulated_s=60.0
    )
    masks = {
        "target": {"Tumor": labels == TUMOUR},
        "critical": {"Bowel": labels == BOWEL, "Nerve": labels == NERVE},
    }
    record = write_result_record(
        out,
        case,
        result,
        np.asarray(labels, np.float32),
        masks,
        structure_types={"Bowel": "bowel", "Nerve": "nerve"},
    )
    return record, json.loads(record.metrics_file.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def protected(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("protected-record")
    record, metrics = write(shapes, out, [CATHETER, POCKET_SOURCE])
    return {"record": record, "metrics": metrics, "html": record.files.html.read_text(encoding="utf-8")}


def test_metrics_json_lists_each_measure_with_the_structures_near_it(protected):
    catheter, pocket = protected["metrics"]["protections"]
    assert catheter == {
        "type": "warm_line", "measure": "Warm catheter", "name": "Urethral warmer",
        "where": "from (8.0, -22.0, -25.0) to (8.0, -22.0, 25.0) RAS mm, Ø 4 mm", "temperature_c": 42.0,
        "critical_structures_nearby": [{"name": "Nerve", "distance_mm": 3.0, "lowest_temperature_c": 9.0}],
    }  # fmt: skip
    assert pocket == {
        "type": "warm_region", "measure": "Warm-fluid region", "name": "Saline pocket",
        "where": "tissue-map label 4 (saline)", "power_w_per_ml": 3.0,
        "critical_structures_nearby": [{"name": "Bowel", "distance_mm": 1.0, "lowest_temperature_c": 3.0}],
    }  # fmt: skip


def test_the_lowest_temperatures_are_those_of_critical_structures(protected):
    # The same number as the file's critical_structures: one measurement, stated twice.
    lowest = {s["name"]: s["lowest_temperature_c"] for s in protected["metrics"]["critical_structures"]}
    for measure in protected["metrics"]["protections"]:
        for near in measure["critical_structures_nearby"]:
            assert near["lowest_temperature_c"] == pytest.approx(lowest[near["name"]], abs=0.01)


def test_the_html_record_has_a_thermal_protection_section(protected):
    page = protected["html"]
    section = page.split("<h2>Thermal protection</h2>", 1)[1].split("<h2>", 1)[0]
    for text in (
        "<td>Warm catheter</td><td>Urethral warmer</td>",
        "<td>held at 42 °C</td>",
        "<td>Warm-fluid region</td><td>Saline pocket</td>",
        "<td>heated at 3 W/ml</td>",
        f"within {NEAR_MM:g} mm of a measure",
        '<td>Saline pocket</td><td>Bowel</td><td class="num">1.0</td><td class="num">3.0</td>',
        '<td>Urethral warmer</td><td>Nerve</td><td class="num">3.0</td><td class="num">9.0</td>',
    ):
        assert text in section, text
    assert "<td>Urethral warmer</td><td>Bowel</td>" not in section  # 30 mm away: not near


def test_the_pdf_record_states_the_protection_too(protected):
    reader = pypdf.PdfReader(io.BytesIO(protected["record"].files.pdf.read_bytes()))
    text = " ".join(page.extract_text() for page in reader.pages)
    for words in ("Thermal protection", "Urethral warmer", "Saline pocket", "held at 42 °C"):
        assert words in text, words


def test_a_plan_without_protection_keeps_its_record_and_metrics_as_before(shapes, tmp_path):
    record, metrics = write(shapes, tmp_path, [])
    assert "protections" not in metrics
    assert "Thermal protection" not in record.files.html.read_text(encoding="utf-8")


def test_skin_warming_is_named_by_its_structure_when_the_case_gives_no_name(shapes):
    skin = {"type": "warm_region", "purpose": "skin_warming", "label": BOWEL, "temperature_c": 40.0}
    case, labels = protected_case(shapes, [skin])
    field = shapes.radial_field(case.grid, 16.0)
    (summary,) = protection_summaries(
        case, field, case.grid, {"Bowel": labels == BOWEL, "Nerve": labels == NERVE}
    )
    assert (summary.measure, summary.name, summary.where) == (
        "Skin warming",
        "Bowel",
        "tissue-map label 3 (Bowel, muscle)",
    )
    # the warmed structure itself is at distance 0; the nerve is 34 mm away
    assert [(near.name, near.distance_mm) for near in summary.nearby] == [("Bowel", 0.0)]


def test_the_pictures_outline_each_measure(shapes):
    """The slices outline the warmed region and the catheter (dotted magenta): the masks they draw
    are the pocket's voxels and the catheter's (4 mm across on a 1 mm grid)."""
    case, labels = protected_case(shapes, [CATHETER, POCKET_SOURCE])
    field = shapes.radial_field(case.grid, 16.0)
    catheter, pocket = protection_summaries(case, field, case.grid, {"Bowel": labels == BOWEL})
    assert np.array_equal(pocket.mask, labels == POCKET)
    ras = case.grid.index_to_ras(np.argwhere(catheter.mask).astype(float))
    to_axis = np.hypot(ras[:, 0] - 8.0, ras[:, 1] + 22.0)
    # Rounded ends, as the solver holds a catheter's voxels: 2 mm beyond each end point.
    assert to_axis.max() <= 2.0 and np.ptp(ras[:, 2]) == pytest.approx(54.0)
    # 13 voxel centres within 2 mm of the axis on each of the 51 slices from z = −25 to 25 mm; in
    # each cap 9 at 1 mm beyond the end (within √3 mm of it) and 1 at 2 mm.
    assert catheter.mask.sum() == 13 * 51 + 2 * (9 + 1)


def test_the_record_says_the_dotted_outlines_are_the_protection(protected):
    assert "thermal protection dotted in magenta" in protected["html"]
