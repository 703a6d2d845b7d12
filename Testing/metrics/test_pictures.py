"""The record's pictures: what each figure holds (isotherm outlines in the level colours, the
temperature colour bar in °C, the probes, the structures, a 10 mm scale bar), Slicer's display
orientation, the planes along and across the probes, and the charts in minutes."""

from __future__ import annotations

import io

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.image import imread
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from CryoAblationLogic.analysis.placement import probe_geometry
from CryoAblationLogic.core.isotherms import (
    ROLE_COLOURS,
    SENSOR_COLOURS,
    TEMPERATURE_ANCHORS,
    TEMPERATURE_WINDOW_C,
    level_colour,
)
from CryoAblationLogic.report import pictures

LEVELS = (0.0, -20.0, -40.0)


@pytest.fixture(scope="module")
def plan(shapes):
    grid = shapes.cube_grid((30, 30, 20))
    x, _, _ = shapes.coordinates(grid)
    probes = [
        probe_geometry({"name": name, "tip_mm": [dx, 0.0, -12.0], "entry_mm": [dx, 0.0, 60.0],
                        "active_length_mm": 20.0, "tip_length_mm": 4.0})
        for name, dx in (("P1", -6.0), ("P2", 6.0))
    ]  # fmt: skip
    return {
        "grid": grid,
        "image": (400 + 50 * np.cos(x / 6.0)).astype(np.float32),
        "field": shapes.radial_field(grid, 18.0),
        "structures": {
            "target": {"Tumor": shapes.ball(grid, 8.0)},
            "critical": {"Bowel": shapes.ball(grid, 5.0, centre_mm=(0.0, 22.0, 0.0))},
            "vessel": {"Vessel": shapes.ball(grid, 3.0, centre_mm=(-14.0, -10.0, 0.0))},
        },
        "probes": probes,
    }


def axial_figure(plan, centre=(0.0, 0.0, 0.0)):
    plane = pictures.standard_planes(centre)[0]
    return pictures.slice_figure(
        plane, plan["grid"], plan["image"], plan["field"], LEVELS, plan["structures"], plan["probes"],
        half_width_mm=28.0,
    )  # fmt: skip


def same_colour(a, b) -> bool:
    return np.allclose(mcolors.to_rgb(a), b, atol=1e-3)


def test_a_slice_outlines_each_isotherm_in_its_level_colour_and_each_structure_in_its_role_colour(plan):
    figure = axial_figure(plan)
    axes = figure.axes[0]
    contour_colours = [c.get_edgecolor()[0][:3] for c in axes.collections if isinstance(c, ContourSet)]
    for level in LEVELS:
        assert any(same_colour(colour, level_colour(level)) for colour in contour_colours), level
    for role in ("target", "critical", "vessel"):
        assert any(same_colour(colour, ROLE_COLOURS[role]) for colour in contour_colours), role
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend[:3] == ["0 °C", "-20 °C", "-40 °C"] and {"Tumor", "Bowel", "Vessel"} <= set(legend)


def test_a_slice_has_the_temperature_wash_with_a_colour_bar_in_celsius_and_a_scale_bar(plan):
    figure = axial_figure(plan)
    axes, bar = figure.axes
    assert "°C" in bar.get_ylabel()
    wash = axes.images[1]
    assert wash.get_clim() == TEMPERATURE_WINDOW_C  # the window of Slicer's temperature colour table
    for temperature, rgb in TEMPERATURE_ANCHORS:  # and its colours
        position = (temperature - TEMPERATURE_WINDOW_C[0]) / (
            TEMPERATURE_WINDOW_C[1] - TEMPERATURE_WINDOW_C[0]
        )
        assert wash.get_cmap()(position)[:3] == pytest.approx(rgb, abs=0.02)  # 256 entries: 0.8 °C each
    bars = [artist for artist in axes.artists if isinstance(artist, AnchoredSizeBar)]
    assert len(bars) == 1 and bars[0].txt_label.get_text() == "10 mm"


def test_probes_are_drawn_in_every_view_and_named(plan):
    planes = [*pictures.standard_planes((0.0, 0.0, 0.0)), pictures.across_probes_plane(plan["probes"])]
    for plane in planes:
        figure = pictures.slice_figure(
            plane, plan["grid"], plan["image"], plan["field"], LEVELS, plan["structures"], plan["probes"],
            half_width_mm=28.0,
        )  # fmt: skip
        axes = figure.axes[0]
        active = [line for line in axes.lines if same_colour(line.get_color(), pictures.ACTIVE_COLOUR)]
        assert active, plane.name
        names = {text.get_text() for text in axes.texts}
        if plane.name != "Coronal":  # the coronal slice shows the shafts end-on from the tip side
            assert {"P1", "P2"} <= names, plane.name


def test_slices_show_the_patients_right_on_the_left_and_superior_or_anterior_up(plan, shapes):
    grid = plan["grid"]
    x, y, z = shapes.coordinates(grid)
    axial, coronal, sagittal = pictures.standard_planes((0.0, 0.0, 0.0))
    across, _ = pictures.sample_plane(x, grid, axial, 20.0, 1.0)
    assert across[10, 0] == pytest.approx(20.0) and across[10, -1] == pytest.approx(-20.0)  # R (+x) left
    up, _ = pictures.sample_plane(y, grid, axial, 20.0, 1.0)
    assert up[-1, 10] == pytest.approx(20.0)  # the last row (top, origin="lower") is anterior
    up, _ = pictures.sample_plane(z, grid, coronal, 15.0, 1.0)
    assert up[-1, 10] == pytest.approx(15.0)  # superior up
    across, _ = pictures.sample_plane(y, grid, sagittal, 15.0, 1.0)
    assert across[10, 0] == pytest.approx(15.0)  # anterior on the left, as in Slicer's sagittal view


def test_the_probe_planes_hold_the_probes_and_cut_across_them(plan):
    along = pictures.probe_plane(plan["probes"])
    for probe in plan["probes"]:
        for point in probe.active_segment_mm():
            assert abs((point - along.centre_mm) @ along.normal) < 1e-6  # both probes lie in the plane
    assert along.v @ plan["probes"][0].direction == pytest.approx(1.0)  # shafts point up
    across = pictures.across_probes_plane(plan["probes"])
    assert abs(across.normal @ plan["probes"][0].direction) == pytest.approx(1.0)
    assert pictures.probe_plane([]) is None


def test_pictures_are_hi_dpi(plan):
    picture = imread(io.BytesIO(pictures.png_bytes(axial_figure(plan))))
    assert picture.shape[1] >= 1000


def test_the_3d_view_shows_isotherm_and_structure_surfaces_probes_and_a_scale_bar(plan):
    figure = pictures.view_3d_figure(plan["grid"], plan["field"], LEVELS, plan["structures"], plan["probes"])
    axes = figure.axes[0]
    surfaces = [c for c in axes.collections if isinstance(c, Poly3DCollection)]
    colours = [tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in surfaces]
    for rgb in [level_colour(level) for level in LEVELS] + [ROLE_COLOURS["target"]]:
        assert tuple(np.round(rgb, 3)) in colours
    assert any(text.get_text() == "10 mm" for text in axes.texts)
    assert {"P1", "P2"} <= {text.get_text() for text in axes.texts}


def test_charts_are_in_minutes_with_the_level_and_sensor_colours():
    t = np.linspace(0.0, 1200.0, 5)
    volumes = pictures.ice_volume_figure({0.0: (t, t / 100), -40.0: (t, t / 300)}, events_s=[600.0])
    axes = volumes.axes[0]
    assert axes.get_xlabel() == "Time (min)" and axes.lines[0].get_xdata()[-1] == pytest.approx(20.0)
    assert same_colour(axes.lines[0].get_color(), level_colour(0.0))
    sensors = pictures.sensor_figure(
        {"TC1": (t, 37 - t / 20), "TC2": (t, 37 - t / 40)},
        LEVELS,
        observed={"TC1": (np.array([300.0]), np.array([20.0]))},
    )
    axes = sensors.axes[0]
    assert axes.get_xlabel() == "Time (min)" and axes.get_ylabel() == "Temperature (°C)"
    lines = {line.get_label(): line for line in axes.lines}
    assert same_colour(lines["TC1 (predicted)"].get_color(), SENSOR_COLOURS[0])
    assert same_colour(lines["TC2 (predicted)"].get_color(), SENSOR_COLOURS[1])
    assert lines["TC1 (measured)"].get_marker() == "o"
