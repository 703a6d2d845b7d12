"""The HTML report: its pictures exist and are valid PNGs, its tables carry the metric values, and
the pictures follow Slicer's display conventions."""

from __future__ import annotations

import re
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOImage import vtkPNGReader

from CryoAblationLogic.analysis.metrics import isotherm_metrics, masks_by_role, probe_geometry, probe_warnings
from CryoAblationLogic.core.isotherms import DEFAULT_ISOTHERMS_C
from CryoAblationLogic.report.document import write_report, write_result_report
from CryoAblationLogic.report.figures import (
    TARGET_COLOUR,
    Overlay,
    cutaway_view,
    draw_text,
    level_colour,
    nice_ticks,
    slice_view,
    text_size,
    write_png,
)


def read_png(path) -> np.ndarray:
    """Decode with VTK's PNG reader (an independent decoder), rows top to bottom."""
    reader = vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return pixels[::-1]


@pytest.fixture(scope="module")
def case(shapes):
    grid = shapes.cube_grid((30, 30, 30))
    x, _, _ = shapes.coordinates(grid)
    target = shapes.ball(grid, 10.0)
    field = shapes.radial_field(grid, ice_radius_mm=16.0)
    bowel = shapes.ball(grid, 5.0, centre_mm=(0.0, 20.0, 0.0))  # reached by the ice (16 > 15)
    image = (400 + 200 * target + 100 * np.cos(x / 7.0) - 250 * bowel).astype(np.float32)
    probes = [
        {"name": "P1", "tip_mm": [-6.0, 0.0, 20.0], "entry_mm": [-6.0, 0.0, -60.0], "active_length_mm": 25.0},
        {"name": "P2", "tip_mm": [6.0, 0.0, 20.0], "entry_mm": [6.0, 0.0, -60.0], "active_length_mm": 25.0},
    ]
    metrics = isotherm_metrics(field, grid, target, critical_masks={"Bowel": bowel})
    times = np.linspace(0.0, 600.0, 11)
    ice_history = {level: (times, np.linspace(0.0, 1.0, 11) * item.ice_volume_ml) for level, item in
                   ((i.level_c, i) for i in metrics.isotherms)}  # fmt: skip
    sensors = {"TC1": (times, 37.0 - 5.0 * times / 60.0), "TC2": (times, 37.0 - 2.0 * times / 60.0)}
    return {
        "grid": grid,
        "image": image,
        "field": field,
        "target": target,
        "critical": {"Bowel": bowel},
        "probes": probes,
        "metrics": metrics,
        "ice_history": ice_history,
        "sensors": sensors,
    }


@pytest.fixture(scope="module")
def report(case, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    warnings = probe_warnings(case["probes"], None, case["target"], case["critical"], {}, case["grid"])
    path = write_report(
        out,
        case["image"],
        case["grid"],
        case["field"],
        case["field"],
        case["target"],
        case["critical"],
        case["metrics"],
        case["probes"],
        case["ice_history"],
        case["sensors"],
        title="Test plan",
        probe_warnings=warnings,
    )
    return path, path.read_text(encoding="utf-8"), warnings


def test_report_references_only_existing_valid_png_pictures(report):
    path, page, _ = report
    assert path.name == "report.html"
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 6  # three slices, the 3D view, two plots
    for source in sources:
        picture = path.parent / source
        assert picture.is_file(), source
        data = picture.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 300 and height >= 300, source


def test_report_states_research_use_and_carries_the_table_values_and_warnings(report, case):
    _, page, probe_warning_list = report
    assert "Research software, not a medical device" in page
    assert "<title>Test plan</title>" in page
    for item in case["metrics"].isotherms:
        row = re.search(rf"<tr><td class=\"num\">{item.level_c:g}</td>(.*?)</tr>", page)
        assert row, item.level_c
        cells = re.findall(r">([^<]*)</td>", row.group(1))
        assert cells[0] == f"{item.target_coverage_percent:.1f}"
        assert cells[1] == f"{item.min_margin_mm:.1f}"
        assert cells[5] == f"{item.ice_volume_ml:.2f}"
    bowel = case["metrics"].critical("Bowel")
    assert bowel.reached_by_ice
    assert f'<td>Bowel</td><td class="num">{bowel.lowest_temperature_c:.1f}</td>' in page
    assert case["metrics"].warnings and probe_warning_list
    for warning in [*case["metrics"].warnings, *probe_warning_list]:
        assert warning.replace("'", "&#x27;") in page
    assert "<td>P1</td>" in page and "<td>P2</td>" in page


def test_png_writer_round_trips_through_an_independent_decoder(tmp_path):
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    write_png(tmp_path / "noise.png", picture)
    assert np.array_equal(read_png(tmp_path / "noise.png"), picture)


def test_slices_put_patient_right_on_the_left_and_anterior_or_superior_up(shapes):
    grid = shapes.cube_grid((20, 20, 20))
    blob = shapes.ball(grid, 4.0, centre_mm=(10.0, 10.0, 10.0))  # right, anterior, superior
    image = blob.astype(float)
    for plane, expected_left in (("axial", True), ("coronal", True), ("sagittal", True)):
        picture = slice_view(
            image, grid, "axial" if plane == "axial" else plane, (10.0, 10.0, 10.0), [], window=(0, 1)
        )
        body = picture[22 : 22 + 400].astype(int).sum(axis=2)  # the picture below the title line
        rows, cols = np.nonzero(body[:, :] > 600)
        assert rows.mean() < body.shape[0] / 2, f"{plane}: the blob should be in the upper half"
        # Axial and coronal: patient right on the left; sagittal: anterior on the left.
        assert (cols.mean() < picture.shape[1] / 2) == expected_left, plane


def test_isotherm_outlines_use_the_level_colours(case):
    overlays = [
        Overlay(case["field"], level, colour, f"{level:g} °C")
        for level, colour in ((level, level_colour(level)) for level in DEFAULT_ISOTHERMS_C)
    ]
    overlays.append(Overlay(case["target"], 0.5, TARGET_COLOUR, "target"))
    picture = slice_view(case["image"], case["grid"], "axial", (0.0, 0.0, 0.0), overlays)
    colours = {tuple(c) for c in picture.reshape(-1, 3)}
    for colour in [*(level_colour(level) for level in DEFAULT_ISOTHERMS_C), TARGET_COLOUR]:
        assert colour in colours


def test_cutaway_view_is_deterministic_and_shows_the_ice_and_the_cut(case):
    geometries = [probe_geometry(p) for p in case["probes"]]
    args = (case["field"], case["grid"], case["target"], [0.0, -20.0, -40.0])
    options = {"critical_masks": case["critical"], "probes": geometries, "size_px": 200}
    first = cutaway_view(*args, **options)
    second = cutaway_view(*args, **options)
    assert np.array_equal(first, second)
    body = first[22 : 22 + 200]
    background = np.all(body == 248, axis=2).mean()
    assert 0.2 < background < 0.95  # an object fills part of the view
    assert np.all(body == TARGET_COLOUR, axis=2).any()  # the target outline on the cut faces


@pytest.mark.parametrize(("low", "high"), [(0.0, 28.0), (-43.0, 37.0), (0.0, 0.37), (12.5, 13.0), (5.0, 5.0)])
def test_nice_ticks_cover_the_range_with_round_steps(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 2 <= len(ticks) <= 7
    step = np.diff(ticks)
    assert np.allclose(step, step[0])
    assert len(ticks) >= 4 or high - low == 0
    mantissa = step[0] / 10 ** np.floor(np.log10(step[0]) + 1e-9)
    assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5))


def test_nice_ticks_examples():
    assert nice_ticks(0.0, 28.0).tolist() == [0, 10, 20, 30]
    assert nice_ticks(-43.0, 37.0).tolist() == [-60, -40, -20, 0, 20, 40]


def test_report_without_ice_probes_structures_or_series_still_reads(case, tmp_path):
    warm = np.full(case["grid"].size, 37.0, dtype=np.float32)
    metrics = isotherm_metrics(warm, case["grid"], case["target"], levels_c=[0.0, -40.0])
    path = write_report(
        tmp_path, case["image"], case["grid"], warm, warm, case["target"], None, metrics, [], None, None
    )
    page = path.read_text(encoding="utf-8")
    for source in re.findall(r'<img src="([^"]+)"', page):
        assert (path.parent / source).is_file()
    assert "No time series were given." in page
    assert "never reaches -40 °C" in page
    assert '<td class="num">0</td><td class="num">0.0</td><td>—</td>' in page  # no margin without ice


def test_text_is_rendered_without_a_render_window():
    width, height = text_size("-20 °C", 13)
    assert 25 < width < 80 and 8 < height < 25
    canvas = np.full((30, 100, 3), 255, np.uint8)
    draw_text(canvas, "10 mm", 5, 5)
    assert (canvas < 128).any()  # dark glyph pixels on the white canvas


def test_result_report_computes_metrics_and_probe_checks_from_a_simulation_result(case, tmp_path):
    labels = np.where(case["target"], 3, np.where(case["critical"]["Bowel"], 5, 1)).astype(np.uint8)
    roles = masks_by_role(
        labels,
        {1: ("Fat", "fat", "organ"), 3: ("Tumor", "tumor", "target"), 5: ("Bowel", "muscle", "critical")},
    )
    assert np.array_equal(roles["target"]["Tumor"], case["target"])
    result = SimpleNamespace(
        grid=case["grid"],
        temperature_final=case["field"],
        min_temperature=case["field"],
        ice_volume_history=case["ice_history"],
        sensors=case["sensors"],
    )
    path, metrics, warnings = write_result_report(
        tmp_path,
        result,
        case["image"],
        roles["target"]["Tumor"],
        critical_masks=roles["critical"],
        probes=case["probes"],
    )
    assert metrics.as_rows() == case["metrics"].as_rows()
    assert warnings and all(w.startswith("Probe P") for w in warnings)
    page = path.read_text(encoding="utf-8")
    assert all(w in page for w in warnings)
