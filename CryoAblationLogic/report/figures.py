"""Pictures for the HTML report, drawn with numpy into RGB arrays and written as PNG.

No OpenGL: slices are resampled in numpy, the 3D view is a ray-cast cutaway of the ice ball in
numpy (SimpleITK resamples the field into the view), text comes from VTK's FreeType text renderer
(no render window), and PNGs are written with zlib. The pictures are the same on every machine
with the same library versions, which keeps the report testable in CI. (VTK's offscreen render
window does open an EGL context on some machines, but not on all, and its pixels depend on the
driver.)

Display conventions follow Slicer's default slice views: axial and coronal show the patient's
right on the left of the picture; sagittal shows anterior on the left; superior and anterior up.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtkmodules.vtkRenderingFreeType  # noqa: F401 - registers the FreeType text renderer
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkRenderingCore import vtkTextProperty, vtkTextRenderer

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import level_colour as isotherm_colour

RGB = tuple[int, int, int]

TARGET_COLOUR: RGB = (255, 215, 0)
CRITICAL_COLOUR: RGB = (255, 120, 0)
PROBE_COLOUR: RGB = (0, 200, 70)
ACTIVE_COLOUR: RGB = (150, 255, 60)
SERIES_COLOURS: tuple[RGB, ...] = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
# Cut-face colours of the 3D view, warmest band first: (upper bound °C, colour).
BAND_COLOURS: tuple[RGB, ...] = ((175, 225, 255), (70, 140, 255), (95, 40, 190), (45, 10, 90))


def level_colour(level_c: float, index: int = 0) -> RGB:
    """The isotherm's colour as Slicer shows it (:mod:`CryoAblationLogic.core.isotherms`), in 0–255."""
    return tuple(round(255 * channel) for channel in isotherm_colour(level_c))


# --------------------------------------------------------------------------------------------------
# PNG, text and drawing primitives


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (h, w, 3) uint8 array as an 8-bit RGB PNG."""
    array = np.ascontiguousarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) array, got {array.shape}")
    height, width, _ = array.shape
    raw = np.concatenate([np.zeros((height, 1), np.uint8), array.reshape(height, -1)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    path = Path(path)
    path.write_bytes(png)
    return path


@lru_cache(maxsize=512)
def _text_alpha(text: str, size_px: int, bold: bool) -> np.ndarray:
    """Coverage (0–1) of the rendered text, rows top to bottom."""
    prop = vtkTextProperty()
    prop.SetFontFamilyToArial()
    prop.SetFontSize(size_px)
    prop.SetBold(bold)
    prop.SetColor(1.0, 1.0, 1.0)
    image = vtkImageData()
    extent = [0, 0]
    renderer = vtkTextRenderer()
    if not text or not renderer.RenderString(prop, text, image, extent, 72):
        return np.zeros((size_px, 1))
    width, height, _ = image.GetDimensions()
    rgba = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    alpha = rgba[::-1, :, 3].astype(float) / 255.0  # VTK images run bottom-up
    return alpha[: extent[1], : extent[0]].copy()


def text_size(text: str, size_px: int = 13, bold: bool = False) -> tuple[int, int]:
    """(width, height) in pixels."""
    alpha = _text_alpha(text, size_px, bold)
    return alpha.shape[1], alpha.shape[0]


def draw_text(
    canvas: np.ndarray,
    text: str,
    x: float,
    y: float,
    colour: RGB = (0, 0, 0),
    *,
    size_px: int = 13,
    bold: bool = False,
    anchor: str = "lt",
    rotate: bool = False,
) -> None:
    """Blend text into the canvas. ``anchor``: two letters, l/c/r horizontally and t/m/b vertically,
    naming the point of the text box placed at (x, y). ``rotate`` turns it 90° anticlockwise."""
    alpha = _text_alpha(text, size_px, bold)
    if rotate:
        alpha = np.rot90(alpha)
    height, width = alpha.shape
    left = round(x - {"l": 0, "c": width / 2, "r": width}[anchor[0]])
    top = round(y - {"t": 0, "m": height / 2, "b": height}[anchor[1]])
    _blend(canvas, alpha, left, top, colour)


def _blend(canvas: np.ndarray, alpha: np.ndarray, left: int, top: int, colour: RGB) -> None:
    height, width = alpha.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, canvas.shape[0]), min(left + width, canvas.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    a = alpha[y0 - top : y1 - top, x0 - left : x1 - left, None]
    region = canvas[y0:y1, x0:x1].astype(float)
    canvas[y0:y1, x0:x1] = np.rint(region * (1 - a) + np.asarray(colour, float) * a).astype(np.uint8)


def draw_polyline(
    canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: RGB, width: float = 2.0
) -> None:
    """Anti-aliased polyline (pixel coordinates, y down) of the given width."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if len(xs) == 0:
        return
    if len(xs) == 1:
        xs, ys = np.repeat(xs, 2), np.repeat(ys, 2)
    radius = width / 2
    reach = radius + 1.0
    height, full_width = canvas.shape[:2]
    coverage = np.zeros((height, full_width))
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:], strict=True):
        left = max(math.floor(min(x0, x1) - reach), 0)
        right = min(math.ceil(max(x0, x1) + reach), full_width - 1)
        top = max(math.floor(min(y0, y1) - reach), 0)
        bottom = min(math.ceil(max(y0, y1) + reach), height - 1)
        if right < left or bottom < top:
            continue
        gy, gx = np.mgrid[top : bottom + 1, left : right + 1]
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.zeros(gx.shape) if length2 == 0 else np.clip(((gx - x0) * dx + (gy - y0) * dy) / length2, 0, 1)
        distance = np.hypot(gx - (x0 + t * dx), gy - (y0 + t * dy))
        patch = coverage[top : bottom + 1, left : right + 1]
        np.maximum(patch, np.clip(radius + 0.5 - distance, 0.0, 1.0), out=patch)
    rows = np.flatnonzero(coverage.any(axis=1))
    if len(rows):
        _blend(canvas, coverage[rows[0] : rows[-1] + 1], 0, int(rows[0]), colour)


def fill_rect(canvas: np.ndarray, box: tuple[int, int, int, int], colour: RGB) -> None:
    """Fill ``box`` = (left, top, width, height) in pixels."""
    left, top, width, height = box
    canvas[max(top, 0) : max(top + height, 0), max(left, 0) : max(left + width, 0)] = colour


# --------------------------------------------------------------------------------------------------
# Slice views


@dataclass(frozen=True)
class _Plane:
    name: str
    fixed_axis: int
    across_axis: int  # runs left → right on the picture, in the direction of across_sign
    across_sign: float
    up_axis: int


PLANES: dict[str, _Plane] = {
    "axial": _Plane("Axial", 2, 0, -1.0, 1),
    "coronal": _Plane("Coronal", 1, 0, -1.0, 2),
    "sagittal": _Plane("Sagittal", 0, 1, -1.0, 2),
}
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))  # (negative, positive) end of each RAS axis


@dataclass(frozen=True)
class Overlay:
    """An outline on the slice views: the ``level`` contour of ``field`` (a mask outline at 0.5)."""

    field: np.ndarray
    level: float
    colour: RGB
    label: str


def window_levels(image: np.ndarray) -> tuple[float, float]:
    """Display window of a grey image: its 1st to 99th percentile."""
    low, high = np.percentile(image, [1.0, 99.0])
    return float(low), float(high) if high > low else float(low) + 1.0


def slice_view(
    image: np.ndarray,
    grid: Grid,
    plane: str,
    centre_mm: Sequence[float],
    overlays: Sequence[Overlay],
    *,
    probes: Sequence[object] = (),
    window: tuple[float, float] | None = None,
    pixel_mm: float | None = None,
    max_pixels: int = 420,
    half_width_mm: float | None = None,
) -> np.ndarray:
    """One slice through ``centre_mm`` (nearest voxel plane) as an RGB picture with outlines,
    probes (where they pass within a voxel of the plane), orientation letters, a 10 mm scale bar
    and a legend. ``half_width_mm`` zooms on a square window around the centre (whole grid if
    None)."""
    geometry = PLANES[plane]
    spacing = np.asarray(grid.spacing_mm)
    index = int(
        np.clip(
            round(grid.ras_to_index(centre_mm)[geometry.fixed_axis]), 0, grid.size[geometry.fixed_axis] - 1
        )
    )
    take = [slice(None)] * 3
    take[geometry.fixed_axis] = index
    # The picture's window in continuous voxel indices: [a0, a1] across, [u0, u1] up.
    centre_ijk = grid.ras_to_index(centre_mm)
    windows = []
    for axis in (geometry.across_axis, geometry.up_axis):
        last = grid.size[axis] - 1
        if half_width_mm is None:
            windows.append((0.0, float(last)))
        else:
            half = half_width_mm / spacing[axis]
            windows.append((max(0.0, centre_ijk[axis] - half), min(float(last), centre_ijk[axis] + half)))
    (a0, a1), (u0, u1) = windows
    across_extent = (a1 - a0) * spacing[geometry.across_axis]
    up_extent = (u1 - u0) * spacing[geometry.up_axis]
    if pixel_mm is None:
        pixel_mm = max(across_extent, up_extent) / max_pixels
    width = max(1, round(across_extent / pixel_mm))
    height = max(1, round(up_extent / pixel_mm))
    # Continuous voxel indices of the pixel centres.
    steps = (np.arange(width) + 0.5) / width * (a1 - a0)
    columns = a0 + steps if geometry.across_sign > 0 else a1 - steps
    rows = u1 - (np.arange(height) + 0.5) / height * (u1 - u0)

    def sample(volume: np.ndarray) -> np.ndarray:
        section = np.asarray(volume[tuple(take)], dtype=float)
        # section axes are the two remaining RAS axes in order; pick (up, across) order.
        if geometry.across_axis < geometry.up_axis:
            section = section.T
        return _bilinear(section, rows, columns)

    low, high = window if window is not None else window_levels(image)
    grey = np.clip((sample(image) - low) / (high - low), 0.0, 1.0)
    canvas = np.repeat(np.rint(grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    for overlay in overlays:
        values = sample(overlay.field.astype(np.float32) if overlay.field.dtype == bool else overlay.field)
        inside = values >= overlay.level if overlay.field.dtype == bool else values <= overlay.level
        _draw_outline(canvas, inside, overlay.colour)

    # Probes: shaft samples within one voxel of the plane.
    fixed_mm = grid.index_to_ras([index] * 3)[geometry.fixed_axis]
    for probe in probes:
        for start, end, colour in _probe_pieces(probe):
            points = start + np.linspace(0, 1, 400)[:, None] * (end - start)
            near = np.abs(points[:, geometry.fixed_axis] - fixed_mm) <= spacing[geometry.fixed_axis]
            if not near.any():
                continue
            ijk = grid.ras_to_index(points[near])
            across = ijk[:, geometry.across_axis]
            px = ((across - a0) if geometry.across_sign > 0 else (a1 - across)) / max(a1 - a0, 1e-9) * width
            py = (u1 - ijk[:, geometry.up_axis]) / max(u1 - u0, 1e-9) * height
            shown = (px >= 0) & (px < width) & (py >= 0) & (py < height)
            px, py = px[shown], py[shown]
            for x, y in zip(px, py, strict=True):
                canvas[max(int(y) - 1, 0) : int(y) + 2, max(int(x) - 1, 0) : int(x) + 2] = colour

    # Frame: title, orientation letters, scale bar and legend below the picture.
    legend = [(overlay.label, overlay.colour) for overlay in overlays]
    if probes:
        legend += [("probe", PROBE_COLOUR), ("active segment", ACTIVE_COLOUR)]
    legend_rows = _legend_rows(legend, width)
    framed = np.full((height + 26 + 20 * len(legend_rows), width, 3), 255, np.uint8)
    framed[22 : 22 + height] = canvas
    axis_value = fixed_mm
    letters = _AXIS_LETTERS
    draw_text(
        framed, f"{geometry.name}  ({'RAS'[geometry.fixed_axis]} = {axis_value:.1f} mm)", 2, 3, bold=True
    )
    across_letters = (
        letters[geometry.across_axis] if geometry.across_sign > 0 else letters[geometry.across_axis][::-1]
    )
    top = 22
    yellow = (255, 255, 0)
    _shadowed_text(framed, across_letters[0], 5, top + height / 2, yellow, anchor="lm")
    _shadowed_text(framed, across_letters[1], width - 5, top + height / 2, yellow, anchor="rm")
    _shadowed_text(framed, letters[geometry.up_axis][1], width / 2, top + 3, yellow, anchor="ct")
    _shadowed_text(framed, letters[geometry.up_axis][0], width / 2, top + height - 3, yellow, anchor="cb")
    bar = 10.0 / pixel_mm
    x1, y_bar = width - 10, top + height - 10
    fill_rect(framed, (int(x1 - bar) - 1, y_bar - 1, round(bar) + 2, 5), (0, 0, 0))
    fill_rect(framed, (int(x1 - bar), y_bar, round(bar), 3), (255, 255, 255))
    _shadowed_text(
        framed, "10 mm", x1 - bar / 2, y_bar - 3, (255, 255, 255), anchor="cb", size_px=12, bold=False
    )
    _draw_legend(framed, legend_rows, top + height + 6)
    return framed


def _shadowed_text(
    canvas: np.ndarray,
    text: str,
    x: float,
    y: float,
    colour: RGB,
    *,
    anchor: str,
    size_px: int = 14,
    bold: bool = True,
) -> None:
    """Text with a dark outline, readable on any grey level."""
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)):
        draw_text(canvas, text, x + dx, y + dy, (0, 0, 0), size_px=size_px, bold=bold, anchor=anchor)
    draw_text(canvas, text, x, y, colour, size_px=size_px, bold=bold, anchor=anchor)


def _probe_pieces(probe: object) -> list[tuple[np.ndarray, np.ndarray, RGB]]:
    """(start, end, colour) of the shaft and the active segment of a ProbeGeometry."""
    tip, entry = np.asarray(probe.tip_mm, float), np.asarray(probe.entry_mm, float)
    pieces = [(entry, tip, PROBE_COLOUR)]
    if probe.active_length_mm > 0:
        start, end = probe.active_segment_mm()
        pieces.append((start, end, ACTIVE_COLOUR))
    return pieces


def _bilinear(section: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """section[rows, columns] at continuous indices, by bilinear interpolation."""
    r0 = np.clip(np.floor(rows).astype(int), 0, max(section.shape[0] - 2, 0))
    c0 = np.clip(np.floor(columns).astype(int), 0, max(section.shape[1] - 2, 0))
    r1 = np.minimum(r0 + 1, section.shape[0] - 1)
    c1 = np.minimum(c0 + 1, section.shape[1] - 1)
    fr = np.clip(rows - r0, 0, 1)[:, None]
    fc = np.clip(columns - c0, 0, 1)[None, :]
    top = section[np.ix_(r0, c0)] * (1 - fc) + section[np.ix_(r0, c1)] * fc
    bottom = section[np.ix_(r1, c0)] * (1 - fc) + section[np.ix_(r1, c1)] * fc
    return top * (1 - fr) + bottom * fr


def _draw_outline(canvas: np.ndarray, inside: np.ndarray, colour: RGB) -> None:
    edge = np.zeros_like(inside)
    edge[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    edge[:-1, :] |= inside[:-1, :] != inside[1:, :]
    thick = edge.copy()
    thick[1:, :] |= edge[:-1, :]
    thick[:, 1:] |= edge[:, :-1]
    canvas[thick] = colour


def _legend_rows(entries: Sequence[tuple[str, RGB]], width: int) -> list[list[tuple[str, RGB]]]:
    rows: list[list[tuple[str, RGB]]] = [[]]
    used = 4
    for label, colour in entries:
        needed = 22 + text_size(label, 12)[0] + 12
        if rows[-1] and used + needed > width:
            rows.append([])
            used = 4
        rows[-1].append((label, colour))
        used += needed
    return rows if rows[0] else []


def _draw_legend(canvas: np.ndarray, rows: list[list[tuple[str, RGB]]], top: int) -> None:
    for row_index, row in enumerate(rows):
        x = 4
        y = top + 20 * row_index
        for label, colour in row:
            fill_rect(canvas, (x, y + 3, 16, 9), colour)
            canvas[y + 3 : y + 12, x : x + 16][[0, -1], :] = (90, 90, 90)
            draw_text(canvas, label, x + 20, y, (0, 0, 0), size_px=12)
            x += 22 + text_size(label, 12)[0] + 12


# --------------------------------------------------------------------------------------------------
# 3D cutaway view


def cutaway_view(
    temperature_c: np.ndarray,
    grid: Grid,
    target_mask: np.ndarray,
    levels_c: Sequence[float],
    *,
    critical_masks: Mapping[str, np.ndarray] | None = None,
    probes: Sequence[object] = (),
    size_px: int = 340,
    azimuth_deg: float = 35.0,
    elevation_deg: float = 25.0,
) -> np.ndarray:
    """Shaded 3D view of the ice ball (the warmest level's isotherm surface) and the target, with
    the octant facing the viewer cut away: the cut faces show the isotherm bands and the target
    outline. Orthographic ray casting in numpy; the field is resampled into the view by SimpleITK."""
    levels = sorted((float(level) for level in levels_c), reverse=True)
    ice_level = levels[0]
    cold = temperature_c <= ice_level
    spacing = np.asarray(grid.spacing_mm)
    interest = cold | target_mask
    low_ijk, high_ijk = (
        np.array([f(np.flatnonzero(interest.any(axis=other))) for other in ((1, 2), (0, 2), (0, 1))])
        for f in (np.min, np.max)
    )
    low_mm, high_mm = grid.index_to_ras(low_ijk) - 8.0, grid.index_to_ras(high_ijk) + 8.0
    centre = 0.5 * (low_mm + high_mm)
    radius = 0.5 * float(np.linalg.norm(high_mm - low_mm))
    target_centre = grid.index_to_ras(np.argwhere(target_mask).mean(axis=0))

    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    towards_camera = np.array(
        [
            math.cos(elevation) * math.sin(azimuth),
            math.cos(elevation) * math.cos(azimuth),
            math.sin(elevation),
        ]
    )
    depth_axis = -towards_camera
    right = np.cross(depth_axis, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, depth_axis)
    pixel = 2 * radius / size_px
    depth_step = max(0.5 * float(spacing.min()), 2 * radius / 140)
    depth_count = math.ceil(2 * radius / depth_step)
    origin = centre - radius * right + radius * up - radius * depth_axis
    direction = np.column_stack([right, -up, depth_axis])  # index order: column, row, depth

    def resample(volume: np.ndarray, linear: bool, outside: float) -> np.ndarray:
        source = sitk.GetImageFromArray(np.ascontiguousarray(volume.transpose(2, 1, 0)))
        source.SetOrigin([float(v) for v in grid.origin_mm])
        source.SetSpacing([float(v) for v in spacing])
        resampled = sitk.Resample(
            source,
            [size_px, size_px, depth_count],
            sitk.Transform(),
            sitk.sitkLinear if linear else sitk.sitkNearestNeighbor,
            [float(v) for v in origin],
            [pixel, pixel, depth_step],
            [float(v) for v in direction.ravel()],
            outside,
        )
        return sitk.GetArrayFromImage(resampled)  # [depth, row, column]

    warm = float(max(temperature_c.max(), ice_level + 1.0))
    field = resample(temperature_c.astype(np.float32), True, warm)
    # Target (bit 1) and critical structures (bit 2) share one label volume: one resampling.
    labels = target_mask.astype(np.uint8)
    if critical_masks:
        # Only the parts of critical structures near the ice are drawn, so a long bowel loop or
        # vessel does not hide the ice ball.
        nearby = np.zeros(grid.size, dtype=bool)
        grow = np.ceil(10.0 / spacing).astype(int)
        lo_box, hi_box = np.maximum(low_ijk - grow, 0), np.minimum(high_ijk + grow + 1, grid.size)
        nearby[lo_box[0] : hi_box[0], lo_box[1] : hi_box[1], lo_box[2] : hi_box[2]] = True
        for mask in critical_masks.values():
            labels |= ((mask & nearby) * 2).astype(np.uint8)
    resampled_labels = resample(labels, False, 0)
    target = (resampled_labels & 1).astype(bool)
    critical = (resampled_labels & 2).astype(bool)

    # The octant of the target centre that faces the camera is cut away. It is convex, so each ray
    # crosses it in one depth interval [near, far) (sample indices), found per pixel.
    r = (np.arange(size_px)[:, None] + 0.5) * pixel
    c = (np.arange(size_px)[None, :] + 0.5) * pixel
    near = np.zeros((size_px, size_px))
    far = np.full((size_px, size_px), float(depth_count))
    for axis in range(3):
        sign = math.copysign(1.0, towards_camera[axis])
        # sign · (coordinate − centre) > 0, with coordinate = a + b · depth (mm)
        a = sign * (origin[axis] + c * right[axis] - r * up[axis] - target_centre[axis])
        b = sign * depth_axis[axis] * depth_step
        if abs(b) < 1e-12:
            far = np.where(a > 0, far, 0.0)
            continue
        bound = -a / b
        if b > 0:
            near = np.maximum(near, bound)
        else:
            far = np.minimum(far, bound)
    near, far = np.ceil(near), np.ceil(far)
    depth_index = np.arange(depth_count)[:, None, None]
    cut = (depth_index >= near) & (depth_index < far)
    ice = field <= ice_level
    solid = (ice | target | critical) & ~cut
    hit_any = solid.any(axis=0)
    hit = np.where(hit_any, solid.argmax(axis=0), depth_count - 1)
    rows, cols = np.indices(hit.shape)
    before = np.maximum(hit - 1, 0)
    cut_face = hit_any & (hit > 0) & (before >= near) & (before < far)
    at = (hit, rows, cols)
    temperature_at_hit = field[at]
    on_ice = hit_any & ice[at]
    # Sub-sample depth where the ray meets the isotherm itself.
    t_before, t_hit = field[before, rows, cols], temperature_at_hit
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip((t_before - ice_level) / (t_before - t_hit), 0.0, 1.0)
    refine = on_ice & ~cut_face & (hit > 0) & ~target[at] & np.isfinite(fraction)
    depth = hit.astype(float)
    depth[refine] = hit[refine] - 1 + fraction[refine]
    depth_mm = depth * depth_step

    # Colours.
    colour = np.zeros((*hit.shape, 3))
    colour[:] = (205, 232, 250)  # ice surface
    colour[hit_any & critical[at]] = CRITICAL_COLOUR
    colour[hit_any & target[at] & ~ice[at]] = TARGET_COLOUR
    band = np.searchsorted(-np.asarray(levels), -temperature_at_hit, side="left")
    band_colours = np.array(
        [BAND_COLOURS[min(n, len(BAND_COLOURS) - 1)] for n in range(len(levels) + 1)], float
    )
    colour[cut_face] = band_colours[np.clip(band, 0, len(levels))][cut_face]
    colour[cut_face & ~ice[at] & critical[at]] = CRITICAL_COLOUR
    colour[cut_face & ~ice[at] & target[at]] = TARGET_COLOUR

    # Lambert shading from the depth map's normals, light from the upper left, near the viewer.
    far = depth_mm[hit_any].max() if hit_any.any() else 0.0
    smooth = _box_blur(_box_blur(np.where(hit_any, depth_mm, far)))  # ~5 × 5 tent: smoother normals
    gy, gx = np.gradient(smooth, pixel)
    normal = np.stack([-gx, gy, -np.ones_like(gx)], axis=-1)  # view coordinates: right, up, depth
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([-0.35, 0.45, -1.0])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0.0, 1.0)
    picture = np.full((*hit.shape, 3), 248.0)
    picture[hit_any] = (colour * shade[..., None])[hit_any]
    canvas = np.clip(np.rint(picture), 0, 255).astype(np.uint8)

    # Target outline on the cut faces.
    inside_target = cut_face & target[at]
    outline = np.zeros_like(inside_target)
    outline[:, :-1] |= (inside_target[:, :-1] != inside_target[:, 1:]) & cut_face[:, :-1] & cut_face[:, 1:]
    outline[:-1, :] |= (inside_target[:-1, :] != inside_target[1:, :]) & cut_face[:-1, :] & cut_face[1:, :]
    canvas[outline] = TARGET_COLOUR

    # Probes in front of the surface.
    for probe in probes:
        for start, end, probe_colour in _probe_pieces(probe):
            points = start + np.linspace(0, 1, 1200)[:, None] * (end - start)
            relative = points - origin
            px = relative @ right / pixel
            py = -(relative @ up) / pixel
            pd = relative @ depth_axis
            inside = (px >= 0) & (px < size_px) & (py >= 0) & (py < size_px)
            ix, iy = px[inside].astype(int), py[inside].astype(int)
            visible = ~hit_any[iy, ix] | (pd[inside] <= depth_mm[iy, ix] + depth_step)
            for x, y in zip(ix[visible], iy[visible], strict=True):
                canvas[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = probe_colour

    # Axis arrows (R, A, S) in the lower left corner.
    base = np.array([34.0, size_px - 34.0])
    for axis, letter in enumerate("RAS"):
        vector = np.zeros(3)
        vector[axis] = 1.0
        tip = base + 22 * np.array([vector @ right, -(vector @ up)])
        draw_polyline(canvas, np.array([base[0], tip[0]]), np.array([base[1], tip[1]]), (60, 60, 60), 2.0)
        draw_text(
            canvas,
            letter,
            tip[0] + 6 * np.sign(tip[0] - base[0] + 1e-9),
            tip[1],
            (0, 0, 0),
            size_px=12,
            bold=True,
            anchor="cm",
        )

    legend = [(f"ice surface ({ice_level:g} °C)", (205, 232, 250))]
    bounds = [f"> {levels[0]:g}"] + [f"{levels[n]:g} to {levels[n + 1]:g}" for n in range(len(levels) - 1)]
    bounds.append(f"< {levels[-1]:g}")
    legend += [
        (f"cut: {text} °C", BAND_COLOURS[min(n, len(BAND_COLOURS) - 1)])
        for n, text in enumerate(bounds)
        if n > 0
    ]
    legend += [("target", TARGET_COLOUR)]
    if critical_masks:
        legend.append(("critical structure", CRITICAL_COLOUR))
    if probes:
        legend += [("probe", PROBE_COLOUR), ("active segment", ACTIVE_COLOUR)]
    legend_rows = _legend_rows(legend, size_px)
    framed = np.full((size_px + 26 + 20 * len(legend_rows), size_px, 3), 255, np.uint8)
    framed[22 : 22 + size_px] = canvas
    draw_text(framed, "3D cutaway (octant towards the viewer removed)", 2, 3, bold=True)
    _draw_legend(framed, legend_rows, 22 + size_px + 6)
    return framed


def _box_blur(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1, mode="edge")
    return (
        sum(padded[r : r + image.shape[0], c : c + image.shape[1]] for r in range(3) for c in range(3)) / 9.0
    )


# --------------------------------------------------------------------------------------------------
# Line plots


@dataclass(frozen=True)
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    colour: RGB


def nice_ticks(low: float, high: float, count: int = 6) -> np.ndarray:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 × 10^n apart)."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    stop = math.ceil(high / step - 1e-9) * step
    return np.round(np.arange(start, stop + 0.5 * step, step), 10)


def _tick_label(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0") else text


def line_plot(
    series: Sequence[Series],
    title: str,
    x_label: str,
    y_label: str,
    *,
    size: tuple[int, int] = (680, 360),
    horizontal_lines: Sequence[tuple[float, RGB]] = (),
) -> np.ndarray:
    """A line plot with axes, ticks, grid and a legend on the right."""
    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    legend_width = min(220, max([text_size(s.label, 12)[0] for s in series] + [40]) + 40)
    left, top, right, bottom = 64, 30, width - legend_width - 10, height - 46
    finite = [s for s in series if len(s.x)]
    if finite:
        xs = np.concatenate([np.asarray(s.x, float) for s in finite])
        ys = np.concatenate([np.asarray(s.y, float) for s in finite])
    else:
        xs, ys = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    ys = np.concatenate([ys, [value for value, _ in horizontal_lines]])
    x_ticks = nice_ticks(float(xs.min()), float(xs.max()))
    y_ticks = nice_ticks(float(ys.min()), float(ys.max()))

    def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px = left + (np.asarray(x, float) - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * (right - left)
        py = bottom - (np.asarray(y, float) - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * (bottom - top)
        return px, py

    for value in x_ticks:
        px, _ = to_px(np.array([value]), np.array([0.0]))
        canvas[top:bottom, round(px[0])] = (228, 228, 228)
        draw_text(canvas, _tick_label(value), px[0], bottom + 5, (0, 0, 0), size_px=12, anchor="ct")
    for value in y_ticks:
        _, py = to_px(np.array([0.0]), np.array([value]))
        canvas[round(py[0]), left:right] = (228, 228, 228)
        draw_text(canvas, _tick_label(value), left - 6, py[0], (0, 0, 0), size_px=12, anchor="rm")
    for value, colour in horizontal_lines:
        px, py = to_px(np.array([x_ticks[0], x_ticks[-1]]), np.array([value, value]))
        draw_polyline(canvas, px, py, colour, 1.0)
    canvas[top:bottom, left] = (0, 0, 0)
    canvas[bottom, left : right + 1] = (0, 0, 0)
    for item in finite:
        px, py = to_px(item.x, item.y)
        draw_polyline(canvas, px, py, item.colour, 2.0)
    draw_text(canvas, title, left, 6, (0, 0, 0), size_px=14, bold=True)
    draw_text(canvas, x_label, (left + right) / 2, height - 6, (0, 0, 0), anchor="cb")
    draw_text(canvas, y_label, 8, (top + bottom) / 2, (0, 0, 0), anchor="lm", rotate=True)
    for index, item in enumerate(series):
        y = top + 6 + 20 * index
        draw_polyline(canvas, np.array([right + 16, right + 40]), np.array([y + 7, y + 7]), item.colour, 3.0)
        draw_text(canvas, item.label, right + 46, y, (0, 0, 0), size_px=12)
    return canvas
