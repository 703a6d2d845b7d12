"""Synthetic MR images of freezing tissue: what the scanner would show during a cryoablation.

From a temperature field on a :class:`~CryoAblationLogic.core.grid.Grid` (a solver snapshot or
final field), the phantom's noise-free MR-like tissue signal (:mod:`CryoAblationLogic.io.phantom`)
and the probes (:class:`~CryoAblationLogic.core.plan.ProbeSpec`), render

- a 3-D volume on any RAS-aligned grid (:func:`render_volume`), or
- a real-time 2-D slice in any orientation (:func:`render_slice`; :func:`probe_cluster_planes`
  gives the usual three planes through the probe cluster, 1.5 × 1.5 mm pixels, 5 mm thick).

The image model, per output voxel:

- the object is sampled on a finer grid inside the voxel (in plane) and across the slice profile
  (a trapezoid whose full width at half maximum is the slice thickness); the complex signals are
  averaged, so ice edges and probe voids get their partial volume;
- frozen tissue gives no signal (T2* of ice is microseconds): the signal fades linearly from
  0 °C to ``ice_transition_c`` below it and is zero colder than that;
- each probe's shaft (its whole length in the field of view) is a susceptibility void of
  ``probe_void_radius_mm`` around the axis, with a 1 mm soft edge;
- the body is shifted rigidly by ``shift_mm`` (breathing), probes and ice with it;
- Rician noise: complex Gaussian noise of σ = (mean tissue signal in the field of view) / ``snr``
  added to the voxel's signal, and the magnitude taken. Seeded, deterministic.

Images are :class:`MRImage`: an array indexed ``[i, j, k]`` (a slice has ``k`` of size 1) and its
4×4 IJK→RAS matrix, whose third column of a slice is its normal times the slice thickness.
Resampling is SimpleITK's, in LPS as ITK works; interfaces are RAS millimetres.
SimpleITK (about 1 s to import) is imported inside the functions that use it, as in
``io/volumes.py``, so that ``cryoablation --help`` stays quick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP, distances_to_segment
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import ProbeSpec
from CryoAblationLogic.io import phantom as ph

DEFAULT_SNR = 15.0
DEFAULT_PROBE_VOID_RADIUS_MM = 2.5  # a 17 G (1.47 mm) probe blooms to 4–6 mm across on GRE images
DEFAULT_ICE_TRANSITION_C = 1.0
SLICE_PIXEL_MM = 1.5
SLICE_THICKNESS_MM = 5.0
SLICE_FOV_MM = 81.0
BODY_TEMPERATURE_C = 37.0
_PROBE_VOID_EDGE_MM = 1.0


@dataclass
class MRImage:
    """An MR image in RAS: voxel ``[i, j, k]`` lies at ``ijk_to_ras @ (i, j, k, 1)``."""

    array: np.ndarray  # float32 magnitude, [i, j, k]
    ijk_to_ras: np.ndarray  # 4×4
    time_s: float | None = None
    kind: str = "volume"  # "volume" or "slice"
    name: str = ""
    info: dict = field(default_factory=dict)  # what was rendered: snr, sigma, shift_mm, ...

    @property
    def is_slice(self) -> bool:
        return self.array.shape[2] == 1

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)


@dataclass(frozen=True)
class SliceGeometry:
    """A slice: centre, in-plane unit axes (RAS), field of view, pixel size and thickness (mm)."""

    name: str
    center_mm: tuple[float, float, float]
    row_axis: tuple[float, float, float]  # direction of increasing i
    column_axis: tuple[float, float, float]  # direction of increasing j
    fov_mm: float = SLICE_FOV_MM
    pixel_mm: float = SLICE_PIXEL_MM
    thickness_mm: float = SLICE_THICKNESS_MM

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_axis, self.column_axis)

    def ijk_to_ras(self) -> np.ndarray:
        n = self.size
        u, v = np.asarray(self.row_axis, float), np.asarray(self.column_axis, float)
        matrix = np.eye(4)
        matrix[:3, 0] = u * self.pixel_mm
        matrix[:3, 1] = v * self.pixel_mm
        matrix[:3, 2] = self.normal * self.thickness_mm
        matrix[:3, 3] = np.asarray(self.center_mm) - 0.5 * (n - 1) * self.pixel_mm * (u + v)
        return matrix

    @property
    def size(self) -> int:
        return round(self.fov_mm / self.pixel_mm)


def probe_cluster_planes(
    probes: Sequence[ProbeSpec],
    fov_mm: float = SLICE_FOV_MM,
    pixel_mm: float = SLICE_PIXEL_MM,
    thickness_mm: float = SLICE_THICKNESS_MM,
) -> list[SliceGeometry]:
    """The three orthogonal planes through the probe cluster that real-time monitoring uses.

    Centred on the mean of the probes' active-segment midpoints: ``across`` is perpendicular to
    the mean probe axis (it cuts every shaft), ``along-1`` and ``along-2`` contain the axis.
    """
    if not probes:
        raise InputError("probes", "at least one probe is needed to place the planes")
    mids = [np.mean(p.active_segment_mm(), axis=0) for p in probes]
    center = np.mean(mids, axis=0)
    axis = np.mean([p.direction for p in probes], axis=0)
    axis /= np.linalg.norm(axis)
    # In-plane axes: the RAS axes least aligned with the probes, made orthogonal to them.
    order = np.argsort(np.abs(axis))
    first = np.eye(3)[order[0]] - axis * axis[order[0]]
    first /= np.linalg.norm(first)
    second = np.cross(axis, first)
    common = {"fov_mm": fov_mm, "pixel_mm": pixel_mm, "thickness_mm": thickness_mm}
    c = tuple(float(v) for v in center)

    def t(v):
        return tuple(float(x) for x in v)

    return [
        SliceGeometry("across", c, t(first), t(second), **common),
        SliceGeometry("along-1", c, t(first), t(axis), **common),
        SliceGeometry("along-2", c, t(second), t(axis), **common),
    ]


@lru_cache(maxsize=4)
def _phantom_signal(spacing_mm: float) -> tuple[np.ndarray, Grid]:
    phantom = ph.make_phantom(spacing_mm, noise_sigma=0.0)  # noise-free: the noise is added per image
    return phantom.image, phantom.grid


def tissue_signal(spacing_mm: float = 1.0) -> tuple[np.ndarray, Grid]:
    """The phantom's noise-free T1w-like tissue signal (coil bias included) and its grid."""
    return _phantom_signal(float(spacing_mm))


def to_sitk(array: np.ndarray, ijk_to_ras: np.ndarray):
    """A SimpleITK image (LPS physical space) of an ``[i, j, k]`` array and its IJK→RAS matrix."""

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    columns = np.asarray(ijk_to_ras, float)[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    direction = (columns / spacing) * RAS_LPS_FLIP[:, None]
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in direction.ravel()])
    image.SetOrigin([float(v) for v in np.asarray(ijk_to_ras, float)[:3, 3] * RAS_LPS_FLIP])
    return image


def from_sitk(image) -> tuple[np.ndarray, np.ndarray]:
    """``[i, j, k]`` array and IJK→RAS matrix of a 3-D SimpleITK image."""

    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    direction = np.array(image.GetDirection()).reshape(3, 3) * RAS_LPS_FLIP[:, None]
    matrix = np.eye(4)
    matrix[:3, :3] = direction * np.asarray(image.GetSpacing())
    matrix[:3, 3] = np.asarray(image.GetOrigin()) * RAS_LPS_FLIP
    return np.ascontiguousarray(array), matrix


def _sample(array: np.ndarray, grid: Grid, reference, shift_ras: np.ndarray, default: float) -> np.ndarray:
    """``array`` on ``grid`` sampled (trilinear) at the points of ``reference`` moved by −shift."""

    source = to_sitk(array.astype(np.float32), grid.ijk_to_ras_matrix())
    # Resample maps an output point p to the input point T(p): the body moved by +shift shows at p
    # what lies at p − shift in the body's own frame.
    transform = sitk.TranslationTransform(3, [float(v) for v in -shift_ras * RAS_LPS_FLIP])
    out = sitk.Resample(source, reference, transform, sitk.sitkLinear, float(default), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def _profile(thickness_samples: int) -> np.ndarray:
    """Weights of the slice profile at ``thickness_samples`` positions spanning ±0.7 thickness:
    flat to ±0.35, falling linearly to zero at ±0.7 (full width at half maximum = thickness)."""
    z = np.linspace(-0.7, 0.7, thickness_samples + 2)[1:-1]
    w = np.clip((0.7 - np.abs(z)) / 0.35, 0.0, 1.0)
    return z, w / w.sum()


def _render(
    ijk_to_ras: np.ndarray,
    size: tuple[int, int, int],
    supersample: tuple[int, int, int],
    slice_profile: bool,
    temperature_c: np.ndarray,
    temperature_grid: Grid,
    probes: Sequence[ProbeSpec],
    shift_mm,
    snr: float,
    seed: int,
    probe_void_radius_mm: float,
    ice_transition_c: float,
    tissue_spacing_mm: float,
) -> tuple[np.ndarray, dict]:

    if not (math.isfinite(snr) and snr > 0):
        raise InputError("snr", f"must be a positive number, got {snr}")
    if not (math.isfinite(probe_void_radius_mm) and probe_void_radius_mm >= 0):
        raise InputError("probe_void_radius_mm", "must be a number of millimetres ≥ 0")
    temperature_c = np.asarray(temperature_c, dtype=float)
    if temperature_c.shape != tuple(temperature_grid.size):
        raise InputError(
            "temperature_c", f"shape {temperature_c.shape} does not match the grid {temperature_grid.size}"
        )
    shift = np.zeros(3) if shift_mm is None else np.asarray(shift_mm, float)
    if shift.shape != (3,) or not np.all(np.isfinite(shift)):
        raise InputError("shift_mm", "must be three finite numbers (RAS mm)")
    n = np.asarray(supersample)
    columns = ijk_to_ras[:3, :3]
    # Fine sample positions inside each voxel, as continuous indices of the output voxel.
    offsets = []
    weights = []
    for axis in range(3):
        if axis == 2 and slice_profile:
            z, w = _profile(int(n[2]))
        else:
            z = (np.arange(n[axis]) + 0.5) / n[axis] - 0.5
            w = np.full(n[axis], 1.0 / n[axis])
        offsets.append(z)
        weights.append(w)
    # A fine grid covering all sub-samples: fine index f = voxel * n + a along each axis (the
    # slice profile's positions are uniformly spaced too, so one fine spacing per axis works).
    step = np.array([o[1] - o[0] if len(o) > 1 else 1.0 for o in offsets])
    fine_matrix = np.eye(4)
    fine_matrix[:3, :3] = columns * step
    fine_matrix[:3, 3] = ijk_to_ras[:3, 3] + columns @ np.array([o[0] for o in offsets])
    fine_size = tuple(int(s * k) for s, k in zip(size, n, strict=True))
    reference = sitk.Image([int(v) for v in fine_size], sitk.sitkFloat32)
    ref_template = to_sitk(np.zeros((1, 1, 1), np.float32), fine_matrix)
    reference.SetSpacing(ref_template.GetSpacing())
    reference.SetDirection(ref_template.GetDirection())
    reference.SetOrigin(ref_template.GetOrigin())

    temperature = _sample(temperature_c, temperature_grid, reference, shift, BODY_TEMPERATURE_C)
    signal_array, signal_grid = tissue_signal(tissue_spacing_mm)
    tissue = _sample(signal_array, signal_grid, reference, shift, 0.0)
    if ice_transition_c > 0:
        unfrozen = np.clip(temperature / ice_transition_c + 1.0, 0.0, 1.0)
    else:
        unfrozen = (temperature >= 0).astype(np.float32)
    signal = tissue * unfrozen
    if probes and probe_void_radius_mm > 0:
        ii, jj, kk = np.meshgrid(*(np.arange(s) for s in fine_size), indexing="ij")
        points = np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)], axis=1) @ fine_matrix.T
        body = points[:, :3] - shift
        void = np.ones(ii.size)
        for probe in probes:
            d = distances_to_segment(body, np.asarray(probe.tip_mm, float), np.asarray(probe.entry_mm, float))
            void *= np.clip((d - probe_void_radius_mm) / _PROBE_VOID_EDGE_MM + 0.5, 0.0, 1.0)
        signal = signal * void.reshape(fine_size)
    # Average the sub-samples of each voxel with their weights (in plane: box; across: profile).
    blocks = signal.reshape(size[0], n[0], size[1], n[1], size[2], n[2])
    voxel = np.einsum("aibjck,i,j,k->abc", blocks, *weights)
    tissue_blocks = tissue.reshape(size[0], n[0], size[1], n[1], size[2], n[2])
    tissue_voxel = np.einsum("aibjck,i,j,k->abc", tissue_blocks, *weights)
    reference_signal = float(np.mean(tissue_voxel[tissue_voxel > 0])) if np.any(tissue_voxel > 0) else 1.0
    sigma = reference_signal / snr
    rng = np.random.default_rng(seed)
    real = voxel + rng.normal(0.0, sigma, voxel.shape)
    imaginary = rng.normal(0.0, sigma, voxel.shape)
    magnitude = np.sqrt(real**2 + imaginary**2).astype(np.float32)
    info = {
        "snr": float(snr),
        "noise_sigma": sigma,
        "reference_signal": reference_signal,
        "shift_mm": [float(v) for v in shift],
        "seed": int(seed),
        "probe_void_radius_mm": float(probe_void_radius_mm),
        "probes": len(probes),
    }
    return magnitude, info


def render_volume(
    temperature_c: np.ndarray,
    temperature_grid: Grid,
    probes: Sequence[ProbeSpec],
    grid: Grid | None = None,
    spacing_mm: float = 2.0,
    shift_mm=None,
    snr: float = DEFAULT_SNR,
    seed: int = 0,
    time_s: float | None = None,
    probe_void_radius_mm: float = DEFAULT_PROBE_VOID_RADIUS_MM,
    ice_transition_c: float = DEFAULT_ICE_TRANSITION_C,
    supersample: int = 3,
) -> MRImage:
    """A 3-D MR volume on ``grid`` (default: the temperature grid's extent at ``spacing_mm``).

    ``probes`` are drawn as susceptibility voids (pass ``[]`` for an image without probes, e.g.
    a baseline before insertion); ``shift_mm`` moves the body (RAS mm) relative to the scanner.
    """
    if grid is None:
        if not (math.isfinite(spacing_mm) and spacing_mm > 0):
            raise InputError("spacing_mm", f"must be a positive number of millimetres, got {spacing_mm}")
        extent = (np.asarray(temperature_grid.size) - 1) * np.asarray(temperature_grid.spacing_mm)
        size = tuple(math.floor(e / spacing_mm + 1e-9) + 1 for e in extent)
        grid = Grid(temperature_grid.origin_mm, (float(spacing_mm),) * 3, size)  # type: ignore[arg-type]
    if supersample < 1:
        raise InputError("supersample", "must be at least 1")
    matrix = grid.ijk_to_ras_matrix()
    array, info = _render(
        matrix,
        tuple(grid.size),
        (supersample,) * 3,
        False,
        temperature_c,
        temperature_grid,
        probes,
        shift_mm,
        snr,
        seed,
        probe_void_radius_mm,
        ice_transition_c,
        min(1.0, min(grid.spacing_mm) / supersample * 2),
    )
    return MRImage(array, matrix, time_s, "volume", "volume", info)


def render_slice(
    geometry: SliceGeometry,
    temperature_c: np.ndarray,
    temperature_grid: Grid,
    probes: Sequence[ProbeSpec],
    shift_mm=None,
    snr: float = DEFAULT_SNR,
    seed: int = 0,
    time_s: float | None = None,
    probe_void_radius_mm: float = DEFAULT_PROBE_VOID_RADIUS_MM,
    ice_transition_c: float = DEFAULT_ICE_TRANSITION_C,
    in_plane_supersample: int = 3,
    profile_samples: int = 7,
) -> MRImage:
    """One real-time 2-D slice (an :class:`MRImage` one voxel thick) of ``geometry``."""
    for key in ("fov_mm", "pixel_mm", "thickness_mm"):
        value = getattr(geometry, key)
        if not (math.isfinite(value) and value > 0):
            raise InputError(key, f"must be a positive number of millimetres, got {value}")
    u, v = np.asarray(geometry.row_axis, float), np.asarray(geometry.column_axis, float)
    if abs(np.linalg.norm(u) - 1) > 1e-6 or abs(np.linalg.norm(v) - 1) > 1e-6 or abs(u @ v) > 1e-6:
        raise InputError("row_axis/column_axis", "must be orthogonal unit vectors")
    matrix = geometry.ijk_to_ras()
    n = geometry.size
    array, info = _render(
        matrix,
        (n, n, 1),
        (in_plane_supersample, in_plane_supersample, profile_samples),
        True,
        temperature_c,
        temperature_grid,
        probes,
        shift_mm,
        snr,
        seed,
        probe_void_radius_mm,
        ice_transition_c,
        min(1.0, geometry.pixel_mm / in_plane_supersample * 2),
    )
    info["thickness_mm"] = geometry.thickness_mm
    return MRImage(array, matrix, time_s, "slice", geometry.name, info)


def breathing_shift(seed: int, amplitude_mm: float = 3.0) -> np.ndarray:
    """A breathing-like rigid shift (RAS mm): mostly S–I (up to ``amplitude_mm``), a third of
    it A–P and a sixth R–L, at a seeded random phase of the breathing cycle."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    wobble = rng.normal(0.0, 0.15 * amplitude_mm, 3)
    return np.array([amplitude_mm / 6.0, amplitude_mm / 3.0, amplitude_mm]) * math.sin(phase) + wobble


def write_mr_image(path: str | Path, image: MRImage, compress: bool = True) -> Path:
    """Write an :class:`MRImage` as NRRD (LPS, as Slicer writes volumes; oblique slices keep
    their orientation in ``space directions``)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk(image.array, image.ijk_to_ras), str(path), compress)
    return path


def read_mr_image(path: str | Path, key: str | None = None) -> MRImage:
    """Read a 3-D scalar image of any orientation (a slice is a volume one voxel thick)."""

    path = Path(path)
    key = key or str(path)
    if not path.is_file():
        raise InputError(key, f"file not found: {path}")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(key, f"not a readable image: {path}") from error
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(key, "must be a scalar image (one value per voxel)")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)  # a 2-D file: one slice, 1 mm thick, in the file's plane
    if image.GetDimension() != 3:
        raise InputError(key, "must be a 3-D volume or a single 2-D slice")
    array, matrix = from_sitk(sitk.Cast(image, sitk.sitkFloat32))
    if not np.all(np.isfinite(array)):
        raise InputError(key, "holds values that are not finite")
    kind = "slice" if array.shape[2] == 1 else "volume"
    return MRImage(array, matrix, None, kind, path.name)
