"""The record's pictures, drawn with matplotlib (Agg, no display): slices, a 3-D view and charts.

- Slices: the image with the lowest temperature each voxel reached as a colour wash (the colour
  map of :mod:`CryoAblationLogic.core.isotherms`, the one Slicer's temperature volumes use, with a
  colour bar in °C), the isotherms outlined in their level colours, target, critical structures
  and vessels outlined in their segment colours, every probe drawn (solid where it lies within
  2 mm of the slice, dashed where it passes in front or behind), a 10 mm scale bar and the
  patient directions at the edges. Display conventions follow Slicer's slice views: axial and
  coronal show the patient's right on the left; sagittal shows anterior on the left.
- 3-D: the isotherm and structure surfaces (VTK flying edges, as the metrics take them) drawn
  with matplotlib's 3-D axes. VTK's own offscreen render window works on this machine only by
  falling back from X to EGL (with a warning), and a clean CI machine has neither; its pixels also
  depend on the OpenGL driver. matplotlib draws the same picture everywhere.
- Charts: ice volume per isotherm and sensor temperatures over time, in minutes.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`png_bytes` renders one at the
record's resolution.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl

mpl.use("Agg")  # no display: pictures are files

import matplotlib.colors as mcolors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkQuadricDecimation

from CryoAblationLogic.analysis.grid_geometry import _bounding_box, _trilinear, _vtk_image
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import (
    ROLE_COLOURS,
    TEMPERATURE_ANCHORS,
    TEMPERATURE_WINDOW_C,
    level_colour,
    sensor_colour,
)
from CryoAblationLogic.core.plan import ProbeSpec

DPI = 200  # hi-DPI: a 5-inch picture is 1000 px wide
SCALE_BAR_MM = 10.0
IN_PLANE_MM = 2.0  # a probe closer than this to the slice is drawn solid
WASH_BELOW_C = 30.0  # the temperature wash shows tissue cooled below this
WASH_ALPHA = 0.55
PROBE_COLOUR = (0.1, 0.1, 0.1)
ACTIVE_COLOUR = (0.0, 0.75, 0.3)
PROTECTION_ROLE = "protection"  # thermal protection: warmed regions and catheters, outlined dotted
PROTECTION_COLOUR = (0.95, 0.2, 0.6)  # magenta: apart from the roles and isotherms (as the panel's lines)


def temperature_colormap() -> mcolors.LinearSegmentedColormap:
    """Slicer's temperature colour table as a matplotlib colour map over TEMPERATURE_WINDOW_C."""
    low, high = TEMPERATURE_WINDOW_C
    stops = [((t - low) / (high - low), rgb) for t, rgb in TEMPERATURE_ANCHORS]
    return mcolors.LinearSegmentedColormap.from_list("cryoablation_temperature", stops)


@dataclass(frozen=True)
class Plane:
    """A slice: its centre, the world directions of the picture's right (``u``) and up (``v``)
    axes (RAS, unit, orthogonal), and the patient directions at the picture's left/right/bottom/top."""

    name: str
    centre_mm: np.ndarray
    u: np.ndarray
    v: np.ndarray
    labels: tuple[str, str, str, str]

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.u, self.v)


def standard_planes(centre_mm: Sequence[float]) -> list[Plane]:
    """Axial, coronal and sagittal planes through a point, oriented as in Slicer."""
    c = np.asarray(centre_mm, dtype=float)
    return [
        Plane("Axial", c, np.array([-1.0, 0, 0]), np.array([0, 1.0, 0]), ("R", "L", "P", "A")),
        Plane("Coronal", c, np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]), ("R", "L", "I", "S")),
        Plane("Sagittal", c, np.array([0, -1.0, 0]), np.array([0, 0, 1.0]), ("A", "P", "I", "S")),
    ]


def probe_plane(probes: Sequence[ProbeSpec]) -> Plane | None:
    """The plane that holds the probes best: through the centre of their active segments, with
    the mean shaft direction up and the spread of the segments across. None without probes."""
    if not probes:
        return None
    centres = np.array([np.mean(p.active_segment_mm(), axis=0) for p in probes])
    up = np.mean([p.direction for p in probes], axis=0)
    up /= np.linalg.norm(up)
    spread = centres - centres.mean(axis=0)
    spread -= np.outer(spread @ up, up)
    if len(probes) > 1 and np.linalg.norm(spread) > 1e-6:
        across = np.linalg.svd(spread)[2][0]
    else:
        across = np.cross(up, [0.0, 0.0, 1.0])
        if np.linalg.norm(across) < 1e-6:
            across = np.cross(up, [0.0, 1.0, 0.0])
    across -= (across @ up) * up
    across /= np.linalg.norm(across)
    if across[0] > 0:  # the patient's right on the left, as in the axial and coronal views
        across = -across
    return Plane("Along the probes", centres.mean(axis=0), across, up, ("", "", "", ""))


def across_probes_plane(probes: Sequence[ProbeSpec]) -> Plane | None:
    """The plane across the probes at the middle of their active segments (the ice's widest
    cross-section), seen from the probes' entry side. None without probes."""
    along = probe_plane(probes)
    if along is None:
        return None
    return Plane("Across the probes", along.centre_mm, along.u, np.cross(along.v, along.u), ("", "", "", ""))


def sample_plane(
    volume: np.ndarray, grid: Grid, plane: Plane, half_width_mm: float, pixel_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """The volume on the plane (trilinear), rows bottom to top; and a mask of pixels on the grid."""
    steps = np.arange(-half_width_mm, half_width_mm + 1e-9, pixel_mm)
    a, b = np.meshgrid(steps, steps)  # a along u (columns), b along v (rows)
    points = plane.centre_mm + a[..., None] * plane.u + b[..., None] * plane.v
    flat = points.reshape(-1, 3)
    ijk = grid.ras_to_index(flat)
    inside = np.all((ijk >= -0.5) & (ijk <= np.asarray(grid.size) - 0.5), axis=1)
    values = _trilinear(np.asarray(volume, dtype=np.float32), grid, flat)
    return values.reshape(a.shape), inside.reshape(a.shape)


def slice_figure(
    plane: Plane,
    grid: Grid,
    image: np.ndarray,
    temperature_c: np.ndarray,
    levels_c: Sequence[float],
    structures: Mapping[str, Mapping[str, np.ndarray]],
    probes: Sequence[ProbeSpec],
    *,
    half_width_mm: float,
    window: tuple[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """One slice (see the module docstring). ``structures`` maps a role ("target", "critical",
    "vessel") to {name: mask}; ``temperature_c`` is what the wash and the isotherms show."""
    pixel_mm = max(0.25, min(grid.spacing_mm) / 2.0)
    extent = (-half_width_mm, half_width_mm, -half_width_mm, half_width_mm)
    picture, inside = sample_plane(image, grid, plane, half_width_mm, pixel_mm)
    temperature, _ = sample_plane(temperature_c, grid, plane, half_width_mm, pixel_mm)
    low, high = window or window_levels(image)

    figure = Figure(figsize=(5.2, 4.6), dpi=DPI)
    axes = figure.add_axes((0.02, 0.08, 0.78, 0.84))
    axes.set_facecolor("black")  # outside the simulated grid
    gray = np.where(inside, picture, np.nan)
    axes.imshow(
        gray, cmap="gray", vmin=low, vmax=high, origin="lower", extent=extent, interpolation="bilinear"
    )
    wash = np.ma.masked_where(~inside | (temperature >= WASH_BELOW_C), temperature)
    cold = axes.imshow(
        wash,
        cmap=temperature_colormap(),
        vmin=TEMPERATURE_WINDOW_C[0],
        vmax=TEMPERATURE_WINDOW_C[1],
        alpha=WASH_ALPHA,
        origin="lower",
        extent=extent,
        interpolation="bilinear",
    )
    handles = []
    steps = np.arange(-half_width_mm, half_width_mm + 1e-9, pixel_mm)
    field = np.where(inside, temperature, np.nan)
    for level in sorted(levels_c, reverse=True):
        if np.nanmin(field) <= level <= np.nanmax(field):
            axes.contour(
                steps,
                steps,
                field,
                levels=[level],
                colors=[level_colour(level)],
                linewidths=1.6,
                linestyles="solid",
            )
        handles.append(Line2D([], [], color=level_colour(level), lw=1.6, label=f"{level:g} °C"))
    for role, style in (("target", "-"), ("critical", "-"), ("vessel", "--"), (PROTECTION_ROLE, ":")):
        colour = PROTECTION_COLOUR if role == PROTECTION_ROLE else ROLE_COLOURS[role]
        for name, mask in structures.get(role, {}).items():
            sampled, _ = sample_plane(mask.astype(np.float32), grid, plane, half_width_mm, pixel_mm)
            if sampled.max() >= 0.5 > sampled.min():
                axes.contour(
                    steps, steps, sampled, levels=[0.5], colors=[colour], linewidths=1.3, linestyles=style,
                )  # fmt: skip
                handles.append(Line2D([], [], color=colour, lw=1.3, ls=style, label=name))
    drew_probe = draw_probes(axes, plane, probes, half_width_mm)
    if drew_probe:
        handles.append(Line2D([], [], color=ACTIVE_COLOUR, lw=3, label="probe (active)"))
    axes.set_xlim(extent[0], extent[1])
    axes.set_ylim(extent[2], extent[3])
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title or plane.name, fontsize=10)
    orientation_labels(axes, plane.labels)
    add_scale_bar(axes)
    axes.legend(handles=handles, loc="upper left", fontsize=6.5, framealpha=0.75, borderaxespad=0.3)
    bar_axes = figure.add_axes((0.83, 0.12, 0.035, 0.76))
    bar = figure.colorbar(cold, cax=bar_axes)
    bar.set_label("Lowest temperature reached (°C)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    for level in levels_c:
        bar.ax.axhline(level, color=level_colour(level), lw=2)
    return figure


def add_scale_bar(axes) -> None:
    """A 10 mm scale bar, white on a dark patch, at the lower right of a slice in mm."""
    scale_bar = AnchoredSizeBar(
        axes.transData, SCALE_BAR_MM, f"{SCALE_BAR_MM:g} mm", "lower right", pad=0.3, color="white",
        frameon=True, size_vertical=0.6, fontproperties={"size": 8},
    )  # fmt: skip
    scale_bar.patch.set_facecolor((0, 0, 0, 0.6))
    scale_bar.patch.set_edgecolor("none")
    axes.add_artist(scale_bar)


def draw_probes(axes, plane: Plane, probes: Sequence[ProbeSpec], half_width_mm: float) -> bool:
    """Each probe's shaft and active segment projected on the plane: solid within IN_PLANE_MM of
    it, dashed and lighter farther away; the name at the tip. True when any was drawn."""
    drew = False
    for probe in probes:
        tip = np.asarray(probe.tip_mm, dtype=float)
        entry = np.asarray(probe.entry_mm, dtype=float)
        start, end = probe.active_segment_mm()
        for a, b, colour, width in ((tip, entry, PROBE_COLOUR, 1.2), (start, end, ACTIVE_COLOUR, 3.0)):
            samples = np.linspace(a, b, 200)
            offset = samples - plane.centre_mm
            x, y, depth = offset @ plane.u, offset @ plane.v, offset @ plane.normal
            near = np.abs(depth) <= IN_PLANE_MM
            for selection, style, alpha in ((near, "-", 1.0), (~near, (0, (2, 2)), 0.6)):
                if selection.any():
                    axes.plot(
                        np.where(selection, x, np.nan), np.where(selection, y, np.nan),
                        color=colour, lw=width, ls=style, alpha=alpha, solid_capstyle="butt",
                    )  # fmt: skip
                    drew = True
        crossing = _crossing(plane, tip, entry)
        if crossing is not None:  # a probe across the slice shows as a dot where it passes
            along = float(np.linalg.norm(crossing - tip))
            active = probe.tip_length_mm <= along <= probe.tip_length_mm + probe.active_length_mm
            offset = crossing - plane.centre_mm
            axes.plot(offset @ plane.u, offset @ plane.v, "o", ms=5, mec="white", mew=0.6,
                      color=ACTIVE_COLOUR if active else PROBE_COLOUR)  # fmt: skip
            drew = True
        tip_xy = (tip - plane.centre_mm) @ plane.u, (tip - plane.centre_mm) @ plane.v
        if abs(tip_xy[0]) < half_width_mm and abs(tip_xy[1]) < half_width_mm:
            axes.plot(*tip_xy, marker="v" if plane.v[2] > 0.5 else "o", color=ACTIVE_COLOUR, ms=4)
            axes.annotate(
                probe.name, tip_xy, xytext=(3, -9), textcoords="offset points", fontsize=7, color="white",
                bbox={"boxstyle": "round,pad=0.15", "fc": (0, 0, 0, 0.55), "ec": "none"},
            )  # fmt: skip
    return drew


def _crossing(plane: Plane, tip: np.ndarray, entry: np.ndarray) -> np.ndarray | None:
    """Where the shaft crosses the plane at more than 30° (else None: it lies along the plane)."""
    axis = entry - tip
    length = float(np.linalg.norm(axis))
    facing = float(axis @ plane.normal) / length
    if abs(facing) < 0.5:
        return None
    t = float((plane.centre_mm - tip) @ plane.normal) / float(axis @ plane.normal)
    return tip + t * axis if 0.0 <= t <= 1.0 else None


def orientation_labels(axes, labels: tuple[str, str, str, str]) -> None:
    left, right, bottom, top = labels
    style = {"transform": axes.transAxes, "color": "yellow", "fontsize": 8, "fontweight": "bold"}
    for text, x, y, ha, va in (
        (left, 0.01, 0.5, "left", "center"),
        (right, 0.99, 0.5, "right", "center"),
        (bottom, 0.5, 0.01, "center", "bottom"),
        (top, 0.5, 0.99, "center", "top"),
    ):
        if text:
            axes.text(x, y, text, ha=ha, va=va, **style)


def window_levels(image: np.ndarray) -> tuple[float, float]:
    """Display window of an image: its 1st to 99th percentile."""
    values = np.asarray(image, dtype=float)
    low, high = np.percentile(values, [1.0, 99.0])
    return float(low), float(high if high > low else low + 1.0)


def view_half_width_mm(
    temperature_c: np.ndarray, level_c: float, target: np.ndarray, grid: Grid, centre_mm: Sequence[float]
) -> float:
    """Half width of the slice windows: the ice (at ``level_c``) and the target from the centre,
    plus 12 mm of surroundings; at least 30 mm."""
    region = np.argwhere((np.asarray(temperature_c) <= level_c) | target)
    reach = np.abs(grid.index_to_ras(region) - np.asarray(centre_mm)).max()
    return max(30.0, float(reach) + 12.0)


def surface_mesh(
    volume: np.ndarray, grid: Grid, level: float, max_triangles: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Triangles of the ``level`` surface of a field or a float mask (RAS mm): (points, triangles)."""
    array = np.asarray(volume, dtype=np.float32)
    image = _vtk_image(array, grid.origin_mm, grid.spacing_mm)
    contour = vtkFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, float(level))
    contour.ComputeNormalsOff()
    contour.ComputeScalarsOff()
    contour.Update()
    surface = contour.GetOutput()
    if surface.GetNumberOfPoints() == 0:
        return None
    if max_triangles and surface.GetNumberOfCells() > max_triangles:  # a picture needs fewer
        decimate = vtkQuadricDecimation()
        decimate.SetInputData(surface)
        decimate.SetTargetReduction(1.0 - max_triangles / surface.GetNumberOfCells())
        decimate.Update()
        surface = decimate.GetOutput()
    points = vtk_to_numpy(surface.GetPoints().GetData()).astype(float)
    triangles = vtk_to_numpy(surface.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return points, triangles


def view_3d_figure(
    grid: Grid,
    temperature_c: np.ndarray,
    levels_c: Sequence[float],
    structures: Mapping[str, Mapping[str, np.ndarray]],
    probes: Sequence[ProbeSpec],
    *,
    max_triangles: int = 12000,
) -> Figure:
    """The isotherm surfaces (translucent, level colours), the target and the critical structures
    near the ice, and the probes, seen from the front-left, with a 10 mm scale bar along R–L."""
    figure = Figure(figsize=(5.6, 5.0), dpi=DPI)
    axes = figure.add_subplot(projection="3d")
    target = next(iter(structures.get("target", {}).values()), None)
    warmest = max(levels_c)
    ice = np.asarray(temperature_c) <= warmest
    focus = ice | (target if target is not None else False)
    box = _bounding_box(focus) if focus.any() else tuple(slice(0, n) for n in grid.size)
    low = grid.index_to_ras([s.start for s in box]) - 10.0
    high = grid.index_to_ras([s.stop - 1 for s in box]) + 10.0
    handles = []
    layers: list[tuple[np.ndarray, float, tuple, float, str]] = [
        (
            np.asarray(temperature_c),
            level,
            level_colour(level),
            0.18 if level == warmest else 0.3,
            f"{level:g} °C",
        )
        for level in sorted(levels_c, reverse=True)
    ]
    for role in ("target", "critical", "vessel"):
        for name, mask in structures.get(role, {}).items():
            layers.append(
                (mask.astype(np.float32), 0.5, ROLE_COLOURS[role], 0.55 if role == "target" else 0.35, name)
            )
    for volume, level, colour, alpha, label in layers:
        mesh = surface_mesh(volume, grid, level, max_triangles)
        if mesh is None:
            continue
        points, triangles = mesh
        centroids = points[triangles].mean(axis=1)
        keep = np.all((centroids >= low) & (centroids <= high), axis=1)
        triangles = triangles[keep]
        if len(triangles) == 0:
            continue
        collection = Poly3DCollection(points[triangles], facecolor=(*colour, alpha), edgecolor="none")
        axes.add_collection3d(collection)
        handles.append(Line2D([], [], color=colour, lw=6, alpha=min(1.0, alpha + 0.3), label=label))
    for probe in probes:
        tip, entry = np.asarray(probe.tip_mm), np.asarray(probe.entry_mm)
        shaft_end = tip + probe.direction * min(np.linalg.norm(entry - tip), 60.0)
        axes.plot(*zip(tip, shaft_end, strict=True), color=PROBE_COLOUR, lw=1.2)
        start, end = probe.active_segment_mm()
        axes.plot(*zip(start, end, strict=True), color=ACTIVE_COLOUR, lw=3.0)
        axes.text(*shaft_end, probe.name, fontsize=7)
    if probes:
        handles.append(Line2D([], [], color=ACTIVE_COLOUR, lw=3, label="probe (active)"))
    # Scale bar: 10 mm along the R–L axis at the lower front corner.
    corner = np.array([high[0], low[1], low[2]])
    axes.plot([corner[0], corner[0] - SCALE_BAR_MM], [corner[1]] * 2, [corner[2]] * 2, color="black", lw=2.5)
    axes.text(corner[0] - SCALE_BAR_MM / 2, corner[1], corner[2] - 3, f"{SCALE_BAR_MM:g} mm", fontsize=7)
    axes.set_xlim(high[0], low[0])  # patient's right on the left, as seen from the front
    axes.set_ylim(low[1], high[1])
    axes.set_zlim(low[2], high[2])
    axes.set_box_aspect(tuple(high - low))
    axes.view_init(elev=20, azim=-60)
    axes.set_xlabel("R–L (mm)", fontsize=7)
    axes.set_ylabel("P–A (mm)", fontsize=7)
    axes.set_zlabel("I–S (mm)", fontsize=7)
    axes.tick_params(labelsize=6)
    axes.legend(handles=handles, loc="upper left", fontsize=6.5)
    axes.set_title("3-D: isotherms of the lowest temperature reached", fontsize=10)
    return figure


def ice_volume_figure(
    history: Mapping[float, tuple[np.ndarray, np.ndarray]], events_s: Sequence[float] = ()
) -> Figure:
    """Volume at or below each isotherm over time (minutes), in the level colours."""
    figure = Figure(figsize=(5.6, 3.4), dpi=DPI)
    axes = figure.add_subplot()
    for level, (t_s, volume_ml) in sorted(history.items(), reverse=True):
        axes.plot(
            np.asarray(t_s) / 60.0,
            volume_ml,
            color=level_colour(float(level)),
            lw=1.8,
            label=f"≤ {float(level):g} °C",
        )
    for time_s in events_s:
        axes.axvline(time_s / 60.0, color="0.6", lw=0.8, ls=":")
    axes.set_xlabel("Time (min)")
    axes.set_ylabel("Volume (ml)")
    axes.set_title("Ice-ball volume", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def sensor_figure(
    sensors: Mapping[str, tuple[np.ndarray, np.ndarray]],
    levels_c: Sequence[float] = (),
    observed: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    events_s: Sequence[float] = (),
) -> Figure:
    """Temperature at each sensor over time (minutes), in the sensor colours of Slicer's charts;
    with ``observed``, the measured course as points beside the predicted line."""
    figure = Figure(figsize=(5.6, 3.4), dpi=DPI)
    axes = figure.add_subplot()
    for index, (name, (t_s, temperature)) in enumerate(sensors.items()):
        axes.plot(
            np.asarray(t_s) / 60.0,
            temperature,
            color=sensor_colour(index),
            lw=1.6,
            label=f"{name} (predicted)" if observed else name,
        )
        if observed and name in observed:
            t_obs, measured = observed[name]
            axes.plot(
                np.asarray(t_obs) / 60.0,
                measured,
                "o",
                ms=2.5,
                color=sensor_colour(index),
                label=f"{name} (measured)",
            )
    for level in levels_c:
        axes.axhline(level, color=level_colour(level), lw=0.8, ls="--")
    for time_s in events_s:
        axes.axvline(time_s / 60.0, color="0.6", lw=0.8, ls=":")
    axes.set_xlabel("Time (min)")
    axes.set_ylabel("Temperature (°C)")
    axes.set_title("Sensor temperatures" + (": measured and predicted" if observed else ""), fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def png_bytes(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG at ``dpi`` (default :data:`DPI`)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
