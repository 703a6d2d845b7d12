"""``cryoablation ice-pictures``: a monitored procedure drawn from its output folder.

The monitor folders are built here on a coarse grid (3 mm, 40 mm across) with known shapes: the
predicted ice a sphere of 12 mm radius (0 °C) with a −40 °C core of 6 mm, the observed ice a
sphere of 10 mm, the corrected −40 °C 7 mm (band 5–9 mm), the truth 11 mm / 6.5 mm. Outlines are
checked against those masks to within one picture pixel plus one voxel (the masks are voxelised).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from CryoAblationLogic.cli.main import main as cli_main
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import level_colour
from CryoAblationLogic.io.mr_synthesis import MRImage, write_mr_image
from CryoAblationLogic.io.volumes import write_nrrd
from CryoAblationLogic.report import ice_pictures, pictures

GRID = Grid((-21.0, -21.0, -21.0), (3.0, 3.0, 3.0), (15, 15, 15))
CENTRE = np.zeros(3)
IMAGE_TIMES_S = (120.0, 240.0)


def radius_mm(grid: Grid = GRID) -> np.ndarray:
    ijk = np.indices(grid.size).reshape(3, -1).T
    return np.linalg.norm(grid.index_to_ras(ijk) - CENTRE, axis=1).reshape(grid.size)


def field_c(ice_mm: float, lethal_mm: float, grid: Grid = GRID) -> np.ndarray:
    """A lowest-temperature field: 0 °C at ``ice_mm``, −40 °C at ``lethal_mm`` from the centre
    (linear in the radius between, 37 °C far out)."""
    r = radius_mm(grid)
    slope = 40.0 / (ice_mm - lethal_mm)
    return np.clip((r - ice_mm) * slope, -150.0, 37.0).astype(np.float32)


def write_monitor(folder: Path, *, correction: bool = True) -> Path:
    """A monitor output folder as `cryoablation monitor --out --correct` writes it (the parts
    the pictures read): a 3-D image at each of IMAGE_TIMES_S with its observed label map."""
    (folder / "predicted").mkdir(parents=True)
    write_nrrd(folder / "predicted" / "min_temperature.nrrd", field_c(12.0, 6.0), GRID)
    observed = (radius_mm() <= 10.0).astype(np.uint8)
    write_nrrd(folder / "observed" / "ice_final.nrrd", observed, GRID)
    series = []
    for index, time_s in enumerate(IMAGE_TIMES_S):
        name = f"observed/ice_{index:05d}_{time_s:09.2f}s_MR_Volume.nrrd"
        grown = (radius_mm() <= 10.0 * time_s / IMAGE_TIMES_S[-1]).astype(np.float32)
        write_mr_image(folder / name, MRImage(grown, GRID.ijk_to_ras_matrix(), time_s, "volume"))
        ml = float(grown.sum()) * 27.0 / 1000.0
        series.append({
            "index": index, "time_s": time_s, "device": "MR Volume", "kind": "volume", "status": "observed",
            "predicted_time_s": time_s, "file": name, "volume_ml": ml, "predicted_volume_ml": ml * 1.1,
            "dice": 0.9, "mean_surface_distance_mm": 1.0,
        })  # fmt: skip
    history = [
        {
            "time_s": t,
            "isotherm_volumes_ml": {
                "-40": {"p10": 2.0 + t / 100, "p50": 1.4 + t / 100, "p90": 1.0 + t / 100}
            },
            "forecasts": {
                "-40 °C covers the target + margin": {"p10": 500.0, "p50": 560.0 - t / 10, "p90": 640.0}
            },
        }
        for t in IMAGE_TIMES_S
    ]
    summary = {
        "format": "cryoablation-monitor/1",
        "procedure_time_s": IMAGE_TIMES_S[-1],
        "observed": {"series": [{"index": 0, "time_s": 0.0, "status": "baseline"}, *series]},
        "correction": None,
    }
    if correction:
        summary["observed"]["corrections"] = history
        summary["correction"] = {
            "time_s": IMAGE_TIMES_S[-1],
            "images": 2,
            "valid": True,
            "parameters": {
                "conductivity_scale": {"mean": 1.1, "p10": 1.0, "p90": 1.2, "unit": "", "prior_mean": 1.0}
            },
            "forecasts": history[-1]["forecasts"],
        }
        for name, (ice, lethal) in {
            "min_temperature": (13.0, 7.0),
            "min_temperature_p10": (15.0, 9.0),  # the cold side: larger zones
            "min_temperature_p90": (11.0, 5.0),
        }.items():
            write_nrrd(folder / "corrected" / f"{name}.nrrd", field_c(ice, lethal), GRID)
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def write_truth(folder: Path, grid: Grid = GRID) -> Path:
    folder.mkdir(parents=True)
    write_nrrd(folder / "min_temperature.nrrd", field_c(10.0, 6.5, grid), grid)
    (folder / "summary.json").write_text(
        json.dumps({"format": "cryoablation-result/1", "isotherms": {"0": {"volume_ml": 4.2}}}),
        encoding="utf-8",
    )
    return folder


def test_the_command_writes_every_picture_it_lists_with_and_without_a_truth(tmp_path, capsys):
    monitor = write_monitor(tmp_path / "monitor")
    truth = write_truth(tmp_path / "truth")
    assert (
        cli_main(
            [
                "ice-pictures",
                str(monitor),
                "--truth",
                str(truth),
                "--out",
                str(tmp_path / "with"),
                "--dpi",
                "60",
            ]
        )
        == 0
    )
    index = json.loads((tmp_path / "with" / "pictures.json").read_text(encoding="utf-8"))
    assert index["time_s"] == IMAGE_TIMES_S[-1]  # the last image by default
    files = [entry["file"] for entry in index["pictures"]]
    assert len(files) == 5 and sorted(p.name for p in (tmp_path / "with").glob("*.png")) == sorted(files)
    for name in files:
        assert (tmp_path / "with" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axial = next(e for e in index["pictures"] if e.get("plane") == "Axial")
    assert {"observed", "predicted_0", "predicted_-40", "corrected_-40", "corrected_band"} <= set(
        axial["shows"]
    )
    assert {"truth_0", "truth_-40"} <= set(axial["shows"])
    assert "mr_image" not in axial["shows"]  # no journal in this folder: no MR image, and it says so
    # the observed ice is the truth's 0 °C zone (both 10 mm spheres): Dice 1 on the grid
    assert index["comparison_with_truth"]["observed_vs_truth_0C"]["dice"] == 1.0
    assert "observed_vs_truth_0C: Dice 1.000" in capsys.readouterr().out

    # without a truth: the same pictures, no truth lines, no comparison
    assert (
        cli_main(
            ["ice-pictures", str(monitor), "--time", "120", "--out", str(tmp_path / "without"), "--dpi", "60"]
        )
        == 0
    )
    index = json.loads((tmp_path / "without" / "pictures.json").read_text(encoding="utf-8"))
    assert index["time_s"] == 120.0 and index["truth"] is None and index["comparison_with_truth"] is None
    for entry in index["pictures"]:
        assert (tmp_path / "without" / entry["file"]).is_file()
        assert not any(key.startswith("truth") for key in entry.get("shows", []))


def test_a_monitor_without_a_correction_is_drawn_without_corrected_lines(tmp_path):
    monitor = write_monitor(tmp_path / "monitor", correction=False)
    assert cli_main(["ice-pictures", str(monitor), "--out", str(tmp_path / "out"), "--dpi", "60"]) == 0
    index = json.loads((tmp_path / "out" / "pictures.json").read_text(encoding="utf-8"))
    slices = [entry for entry in index["pictures"] if entry["kind"] == "slice"]
    assert slices and all(not any(k.startswith("corrected") for k in e["shows"]) for e in slices)
    # what each file is said to show is what it shows: no corrected isotherm, band or fitted parameters
    for entry in index["pictures"]:
        assert "corrected" not in entry["description"] and "fitted" not in entry["description"]
        assert "no correction in this monitor output" in entry["description"]


def contour_vertices(axes, colour) -> np.ndarray:
    """The picture coordinates (mm from the centre) of every contour line drawn in ``colour``."""
    points = []
    for collection in axes.collections:
        colours = collection.get_edgecolor()
        if len(colours) and np.allclose(colours[0][:3], colour, atol=1e-3):
            for path in collection.get_paths():
                points.append(path.vertices)
    return np.concatenate(points) if points else np.empty((0, 2))


@pytest.mark.parametrize("plane_index", [0, 1, 2])
def test_outlines_lie_on_the_edges_of_the_masks_they_show(tmp_path, plane_index):
    monitor = ice_pictures.load_monitor_output(write_monitor(tmp_path / "monitor"))
    observed = ice_pictures.observed_images_at(monitor, IMAGE_TIMES_S[-1])
    plane = pictures.standard_planes(CENTRE)[plane_index]
    figure, shows = ice_pictures.ice_slice_figure(
        plane, monitor, IMAGE_TIMES_S[-1], half_width_mm=20.0, observed=observed
    )
    axes = figure.axes[0]
    assert shows["observed"] and shows["predicted_0"] and shows["corrected_-40"]
    pixel_mm = 1.0  # the picture samples every 1 mm on a 3 mm grid
    voxel_half_diagonal = np.sqrt(2.0) * 1.5  # a voxelised sphere's edge lies within this of the radius

    # the observed outline: on the edge of the observed mask (a voxelised 10 mm sphere)
    vertices = contour_vertices(axes, ice_pictures.OBSERVED_COLOUR)
    assert len(vertices) > 20
    label = observed[0]
    for x, y in vertices:
        point = CENTRE + x * plane.u + y * plane.v
        around = np.array(
            [
                point + dx * plane.u + dy * plane.v
                for dx in (-pixel_mm, 0, pixel_mm)
                for dy in (-pixel_mm, 0, pixel_mm)
            ]
        )
        values, _ = label.sample(around)
        assert values.min() != values.max(), f"({x:.1f}, {y:.1f}) mm is not within a pixel of the ice edge"
    r = np.hypot(vertices[:, 0], vertices[:, 1])
    assert np.all(np.abs(r - 10.0) <= voxel_half_diagonal + pixel_mm)

    # the predicted 0 °C (dashed) at 12 mm; the −40 °C lines (predicted 6 mm, corrected 7 mm) inside
    r0 = np.hypot(*contour_vertices(axes, level_colour(0.0)).T)
    assert r0.size and np.all(np.abs(r0 - 12.0) <= 1.0)  # a linear field: the contour is sub-voxel
    r40 = np.hypot(*contour_vertices(axes, level_colour(-40.0)).T)
    assert r40.size and r40.min() >= 6.0 - 1.0 and r40.max() <= 9.0 + 1.0 + pixel_mm


def test_bad_input_gets_an_error_naming_the_file_or_key(tmp_path, capsys):
    not_monitor = tmp_path / "not_monitor"
    not_monitor.mkdir()
    assert cli_main(["ice-pictures", str(not_monitor), "--out", str(tmp_path / "a")]) == 2
    assert "summary.json" in capsys.readouterr().err

    (not_monitor / "summary.json").write_text(
        json.dumps({"format": "cryoablation-result/1"}), encoding="utf-8"
    )
    assert cli_main(["ice-pictures", str(not_monitor), "--out", str(tmp_path / "a")]) == 2
    assert "summary.json: format" in capsys.readouterr().err

    monitor = write_monitor(tmp_path / "monitor")
    other = Grid((-20.0, -21.0, -21.0), (2.0, 2.0, 2.0), (20, 20, 20))
    truth = write_truth(tmp_path / "truth", other)
    assert cli_main(["ice-pictures", str(monitor), "--truth", str(truth), "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert "truth min_temperature.nrrd" in error and "another grid" in error

    assert cli_main(["ice-pictures", str(monitor), "--time", "130", "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err
    assert "--time" in error and "no observed image at 130 s" in error and "120, 240" in error
    assert not (tmp_path / "c").exists()  # nothing written on an error

    (monitor / "observed" / "ice_final.nrrd").unlink()
    assert cli_main(["ice-pictures", str(monitor), "--out", str(tmp_path / "d")]) == 2
    assert "observed/ice_final.nrrd" in capsys.readouterr().err


def test_a_forecast_the_median_does_not_see_is_worded_as_on_the_monitor_and_the_panel(tmp_path):
    """The chart's legend and the forecast table say the chance that the event happens within the
    protocol, in percent, as the monitor's and the panel's lines do; never "P 0.86" of the
    opposite event, and a chance that is not one in the summary is not shown at all."""
    monitor = write_monitor(tmp_path / "monitor")
    summary = json.loads((monitor / "summary.json").read_text(encoding="utf-8"))
    unseen = {"p10": 1596.0, "p50": None, "p90": None, "p_never": 0.86}
    for entry in summary["observed"]["corrections"]:
        entry["forecasts"]["ice_reaches:Bowel"] = unseen
    target = "-40 °C covers the target + margin"
    summary["correction"]["forecasts"] = {
        target: {**summary["correction"]["forecasts"][target], "p_never": 0.0},  # certain
        "ice_reaches:Bowel": unseen,
        "ice_reaches:Nerve": {"p10": None, "p50": None, "p90": None, "p_never": 7.0},  # not a chance
    }
    (monitor / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    output = ice_pictures.load_monitor_output(monitor)

    legend = [t.get_text() for ax in ice_pictures.ice_chart_figure(output).axes for t in (
        ax.get_legend().get_texts() if ax.get_legend() else [])]  # fmt: skip
    assert "0 °C edge reaches Bowel:\nnot within the protocol (14 % chance it does, p10 26.6 min)" in legend

    table = ice_pictures.correction_table_figure(output).axes[0].tables[1]
    rows = {}
    for (row, column), cell in table.get_celld().items():
        rows.setdefault(row, {})[column] = cell.get_text().get_text()
    assert rows[0][3] == "chance within the protocol"
    by_event = {cells[0]: [cells[c] for c in (1, 2, 3)] for row, cells in rows.items() if row}
    assert by_event["0 °C edge reaches Bowel"] == ["not within the protocol", "p10 26.6 min", "14 %"]
    assert by_event["0 °C edge reaches Nerve"] == ["not within the protocol", "—", "—"]
    assert by_event[target] == ["8.9 min", "8.3 – 10.7 min", "100 %"]  # 536 s (500–640 s)
