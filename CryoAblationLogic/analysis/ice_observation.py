"""The ice that an MR image shows: the frozen region segmented as a signal void against the
pre-freeze baseline image of the same position (a 3-D volume or a 2-D slice).

Frozen tissue has no MR signal, so ice is where the current image is dark although the baseline
was bright there. The steps, each for a reason:

1. **Motion.** Breathing moves the body a few millimetres between baseline and image: the baseline
   is registered rigidly to the image (SimpleITK, mean squares, in 3-D for volumes and in the
   slice's plane for slices), with the metric masked to exclude the probable ice (a first,
   unregistered void estimate near the probes, dilated by the motion allowance), which has no
   counterpart in the baseline. Motion across a slice's plane cannot be seen in the slice.
2. **Noise.** Both images are smoothed with the same small Gaussian; the noise σ is estimated
   robustly from their difference (median absolute deviation), and the Rician noise floor of a
   void is σ·√(π/2). A voxel is a void when the current intensity lies below halfway between
   that floor and the baseline's local intensity: the halfway point is also where a voxel is half
   frozen, so partial volume at the edge is split without bias.
3. **Where the baseline says nothing.** Voxels whose baseline is too dark to tell ice from tissue
   (the probes' own susceptibility voids when the probes were in place, flowing blood) are
   undecided. Within ``exclusion_radius_mm`` of a probe shaft when the baseline was taken before
   insertion (the shaft's void would look like ice), and on a slice near the in-plane trace of
   each shaft (motion across the plane moves a shaft in or out of the slice), only void wider
   than a shaft's own counts (a morphological opening of that radius). Undecided voxels take the
   label of the nearest decided voxel (SimpleITK distance maps), so a shaft inside the ice is ice
   and a shaft outside it is not.
4. **Only ice that grows from the probes**: connected components of void (joined across
   undecided voxels) that come within ``seed_radius_mm`` of a probe's freezing segment are kept;
   holes are filled. On a slice, also those that come that close to the in-plane trace of a
   freezing segment lying off the plane (within half the thickness, the motion allowance and the
   seed radius): a plane between probes, or moved across by breathing, cuts a probe's ice ball
   off its axis, around the trace and farther than the seed radius from the probe.

The result is a label map (1 = frozen) in the image's own geometry, the rigid transform found,
and :func:`ice_on_grid` resamples it on the plan grid.
SimpleITK (about 1 s to import) is imported inside the functions that use it, as in
``io/volumes.py``, so that ``cryoablation --help`` stays quick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.core.coordinates import RAS_LPS_FLIP, distances_to_segment
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.plan import ProbeSpec

_FLIP4 = np.diag([*RAS_LPS_FLIP, 1.0])


@dataclass(frozen=True)
class IceSettings:
    """Parameters of the segmentation, set on the tuning seeds of ``Testing/ice/procedures.py``
    (2 and 101–103) and validated on 20 others."""

    smoothing_mm: float = 1.0  # Gaussian σ applied to both images
    contrast_sigmas: float = 5.0  # baseline must stand this many smoothed-noise σ above the void floor
    seed_radius_mm: float = 6.0  # void must come this close to a freezing segment (on a slice: or its trace)
    motion_allowance_mm: float = 6.0  # the probable ice is dilated by this before registration
    register: bool = True
    probes_in_baseline: bool = True  # False: the baseline was taken before the probes went in
    exclusion_radius_mm: float = 4.0  # undecided around each shaft when the probes are not in the baseline

    def check(self) -> None:
        for key in (
            "smoothing_mm",
            "contrast_sigmas",
            "seed_radius_mm",
            "motion_allowance_mm",
            "exclusion_radius_mm",
        ):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(key, f"must be a number ≥ 0, got {value!r}")


@dataclass
class IceObservation:
    """Observed ice in the image's geometry (``label``: uint8, 1 = frozen, ``[i, j, k]``)."""

    label: np.ndarray
    ijk_to_ras: np.ndarray
    kind: str  # "volume" or "slice"
    image_to_plan: np.ndarray  # 4×4 RAS: a point of the image → the same tissue in the baseline/plan frame
    noise_sigma: float
    undecided_fraction: float  # of the image's voxels, decided by their neighbours
    notes: list[str] = field(default_factory=list)

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    @property
    def frozen_count(self) -> int:
        return int(np.count_nonzero(self.label))

    @property
    def motion_mm(self) -> np.ndarray:
        """Displacement (RAS mm) of the image's centre relative to the baseline's, as registered."""
        center = self.ijk_to_ras @ np.append((np.asarray(self.label.shape) - 1) / 2.0, 1.0)
        return center[:3] - (self.image_to_plan @ center)[:3]


def sitk_image(array: np.ndarray, ijk_to_ras: np.ndarray):
    """A SimpleITK image (LPS) of an ``[i, j, k]`` array and its 4×4 IJK→RAS matrix."""

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    columns = np.asarray(ijk_to_ras, float)[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in ((columns / spacing) * RAS_LPS_FLIP[:, None]).ravel()])
    image.SetOrigin([float(v) for v in np.asarray(ijk_to_ras, float)[:3, 3] * RAS_LPS_FLIP])
    return image


def _plane_image(array2d: np.ndarray, spacing):
    """A 2-D SimpleITK image in the slice's own plane coordinates (mm from pixel (0, 0))."""

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array2d).T))
    image.SetSpacing([float(s) for s in spacing])
    return image


def _array(image) -> np.ndarray:

    return sitk.GetArrayFromImage(image).T


def affine_from_matrix(matrix_ras: np.ndarray):
    """A SimpleITK AffineTransform (LPS) of a 4×4 RAS matrix."""

    lps = _FLIP4 @ np.asarray(matrix_ras, float) @ _FLIP4
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    return transform


def _matrix_of(transform, dimension: int) -> np.ndarray:
    """Homogeneous matrix of a SimpleITK matrix-offset transform: x ↦ A (x − c) + c + t."""
    a = np.array(transform.GetMatrix()).reshape(dimension, dimension)
    c = np.array(transform.GetCenter())
    t = np.array(transform.GetTranslation())
    matrix = np.eye(dimension + 1)
    matrix[:dimension, :dimension] = a
    matrix[:dimension, dimension] = c + t - a @ c
    return matrix


def _voxel_points(shape, ijk_to_ras: np.ndarray) -> np.ndarray:
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)], axis=1)
    return (ijk @ np.asarray(ijk_to_ras, float).T)[:, :3]


def _distance_to(points: np.ndarray, segments: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    distance = np.full(len(points), np.inf)
    for start, end in segments:
        distance = np.minimum(distance, distances_to_segment(points, start, end))
    return distance


def _trace_distance(points: np.ndarray, segments, ijk_to_ras: np.ndarray, reach_mm: float) -> np.ndarray:
    """Distance from points of a slice's plane to the in-plane projection of the parts of the
    segments that lie within ``reach_mm`` of the plane."""
    normal = ijk_to_ras[:3, 2] / np.linalg.norm(ijk_to_ras[:3, 2])
    origin = ijk_to_ras[:3, 3]
    distance = np.full(len(points), np.inf)
    for start, end in segments:
        a, b = float((start - origin) @ normal), float((end - origin) @ normal)
        if abs(b - a) < 1e-9:
            if abs(a) > reach_mm:
                continue
            t0, t1 = 0.0, 1.0
        else:
            ta, tb = (-reach_mm - a) / (b - a), (reach_mm - a) / (b - a)
            t0, t1 = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
            if t0 > t1:
                continue
        ends = [start + t * (end - start) for t in (t0, t1)]
        p0, p1 = (p - ((p - origin) @ normal) * normal for p in ends)
        distance = np.minimum(distance, distances_to_segment(points, p0, p1))
    return distance


def _transform_segments(segments, matrix: np.ndarray):
    return [tuple((matrix @ np.append(p, 1.0))[:3] for p in segment) for segment in segments]


def _seed_segments(probes: Sequence[ProbeSpec]):
    """Each probe's freezing segment, from the tip (ice grows around it) to the active end."""
    segments = []
    for probe in probes:
        _, end = probe.active_segment_mm()
        segments.append((np.asarray(probe.tip_mm, float), end))
    return segments


def _shaft_segments(probes: Sequence[ProbeSpec]):
    return [(np.asarray(p.tip_mm, float), np.asarray(p.entry_mm, float)) for p in probes]


def _check_pair(baseline: np.ndarray, baseline_ijk_to_ras, image: np.ndarray, image_ijk_to_ras) -> None:
    for key, array, matrix in (
        ("baseline", baseline, baseline_ijk_to_ras),
        ("image", image, image_ijk_to_ras),
    ):
        if np.ndim(array) != 3 or min(np.shape(array)) < 1:
            raise InputError(key, "must be a 3-D array [i, j, k] (a slice has k of size 1)")
        if np.shape(matrix) != (4, 4) or not np.all(np.isfinite(matrix)):
            raise InputError(key, "needs a finite 4×4 IJK→RAS matrix")
        if abs(np.linalg.det(np.asarray(matrix, float)[:3, :3])) < 1e-9:
            raise InputError(key, "IJK→RAS matrix is singular")
        if not np.all(np.isfinite(array)):
            raise InputError(key, "holds values that are not finite")
    if np.shape(baseline) != np.shape(image) or not np.allclose(
        baseline_ijk_to_ras, image_ijk_to_ras, atol=1e-3
    ):
        raise InputError(
            "baseline",
            "must be the pre-freeze image of the same position: "
            "its size or geometry differs from the image's",
        )
    if image.shape[2] == 1 and min(image.shape[:2]) < 8:
        raise InputError("image", "a slice needs at least 8 × 8 pixels")
    if image.shape[2] > 1 and min(image.shape) < 4:
        raise InputError("image", "a volume needs at least 4 voxels along every axis")


def observe_ice(
    baseline: np.ndarray,
    baseline_ijk_to_ras: np.ndarray,
    image: np.ndarray,
    image_ijk_to_ras: np.ndarray,
    probes: Sequence[ProbeSpec] = (),
    settings: IceSettings | None = None,
    seed_points_ras: np.ndarray | None = None,
) -> IceObservation:
    """Segment the ice in ``image`` against ``baseline`` (same size and IJK→RAS geometry).

    ``probes`` (plan frame, RAS) seed the ice and place the exclusion zones; without probes pass
    ``seed_points_ras`` (e.g. the predicted ice's core, N×3 RAS mm): void components reaching
    within ``settings.seed_radius_mm`` of them are kept.
    """

    settings = settings or IceSettings()
    settings.check()
    baseline = np.asarray(baseline, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)
    baseline_ijk_to_ras = np.asarray(baseline_ijk_to_ras, float)
    image_ijk_to_ras = np.asarray(image_ijk_to_ras, float)
    _check_pair(baseline, baseline_ijk_to_ras, image, image_ijk_to_ras)
    seeds = _seed_segments(probes)
    if seed_points_ras is not None:
        points = np.asarray(seed_points_ras, float).reshape(-1, 3)
        seeds += [(p, p) for p in points]
    if not seeds:
        raise InputError("probes", "give the probes (or seed points) the ice grows from")
    notes: list[str] = []
    shafts = _shaft_segments(probes)
    if not settings.probes_in_baseline and shafts:
        notes.append(
            f"the baseline has no probes: within {settings.exclusion_radius_mm:g} mm of each shaft, "
            "only void wider than the shaft's own counts as ice"
        )
    is_slice = image.shape[2] == 1
    spacing = np.linalg.norm(image_ijk_to_ras[:3, :3], axis=0)
    points = _voxel_points(image.shape, image_ijk_to_ras)

    if is_slice:
        work_spacing = spacing[:2]
        fixed = _plane_image(image[:, :, 0], work_spacing)
        moving = _plane_image(baseline[:, :, 0], work_spacing)
        notes.append(
            "slice: motion across the slice's plane cannot be seen, only in-plane motion is corrected"
        )
    else:
        work_spacing = spacing
        fixed = sitk_image(image, image_ijk_to_ras)
        moving = sitk_image(baseline, baseline_ijk_to_ras)
    shape = image.shape[:2] if is_slice else image.shape

    guard_shafts = bool(shafts) and (is_slice or not settings.probes_in_baseline)
    if is_slice and shafts:
        notes.append(
            f"slice: within {settings.exclusion_radius_mm:g} mm of the in-plane trace of each shaft, "
            "only void wider than the shaft's own counts as ice "
            "(motion across the plane moves shafts in and out of the slice)"
        )

    def shaft_zone(to_image: np.ndarray, extra_mm: float) -> np.ndarray:
        """Voxels where a shaft's void may differ between baseline and image: around each shaft
        when the baseline has no probes; on a slice around the in-plane trace of each shaft that
        passes within half the thickness plus the motion allowance of the plane."""
        moved = _transform_segments(shafts, to_image)
        radius = settings.exclusion_radius_mm + extra_mm
        zone = np.zeros(len(points), bool)
        if not settings.probes_in_baseline:
            zone |= _distance_to(points, moved) <= radius
        if is_slice:
            reach = 0.5 * spacing[2] + settings.motion_allowance_mm
            zone |= _trace_distance(points, moved, image_ijk_to_ras, reach) <= radius
        return zone.reshape(shape)

    def segment(baseline_here: np.ndarray, to_plan: np.ndarray, seed_radius_mm: float):
        """(ice, undecided, sigma) for a baseline already resampled into the image's frame."""
        to_image = np.linalg.inv(to_plan)
        current_s = _smooth(fixed, settings.smoothing_mm)
        base_img = _like(fixed, baseline_here)
        base_s = _smooth(base_img, settings.smoothing_mm)
        c = _array(current_s).reshape(shape)
        b = _array(base_s).reshape(shape)
        sigma = _noise_sigma(_array(fixed).reshape(shape), baseline_here.reshape(shape))
        gain = _smoothing_gain(fixed, settings.smoothing_mm)
        floor = sigma * math.sqrt(math.pi / 2.0)
        informative = (b - floor) > settings.contrast_sigmas * sigma * gain
        void = informative & (c < 0.5 * (floor + b))
        undecided = ~informative
        if guard_shafts:
            # A shaft's own void is a few millimetres across; ice is wider. Near the shafts, keep
            # only void that an opening of the exclusion radius keeps (undecided voxels, such as
            # the baseline's own shaft void inside the ice, count as possibly void there).
            near = shaft_zone(to_image, 0.0)
            void &= ~near | _open(void | undecided, fixed, settings.exclusion_radius_mm)
        moved_seeds = _transform_segments(seeds, to_image)
        if is_slice:
            # A probe off the slice's plane (a plane between probes; breathing across the plane,
            # which the slice cannot show) freezes a cross-section centred on its in-plane trace,
            # farther than the seed radius from the probe itself. Within the seed radius the
            # trace is never farther than the segment (a projection), so it replaces it.
            reach = 0.5 * spacing[2] + settings.motion_allowance_mm + seed_radius_mm
            seed_distance = _trace_distance(points, moved_seeds, image_ijk_to_ras, reach)
        else:
            seed_distance = _distance_to(points, moved_seeds)
        seed_distance = seed_distance.reshape(shape)
        # Components are joined across undecided voxels (a shaft's void can cut the ice in two).
        ice = _seeded_components(void | undecided, seed_distance <= seed_radius_mm, fixed) & void
        ice = _fill_undecided(
            ice, undecided, fixed, settings.exclusion_radius_mm + float(np.max(work_spacing))
        )
        return ice, undecided, sigma

    identity = np.eye(4)
    to_plan = identity
    baseline_here = baseline[:, :, 0] if is_slice else baseline
    if settings.register:
        # A first look without registration, generous about where the probes are, gives the
        # probable ice, which the registration must not try to match.
        rough, _, _ = segment(baseline_here, identity, settings.seed_radius_mm + settings.motion_allowance_mm)
        mask = ~_dilate(rough, fixed, settings.motion_allowance_mm)
        if guard_shafts:
            mask &= ~shaft_zone(identity, settings.motion_allowance_mm)
        if np.count_nonzero(mask) >= 0.2 * mask.size:
            transform = _register(fixed, moving, mask)
            resampled = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
            baseline_here = _array(resampled).reshape(shape)
            to_plan = _to_ras_matrix(transform, is_slice, image_ijk_to_ras)
        else:
            notes.append("registration skipped: the ice leaves too little of the image to register on")
    ice, undecided, sigma = segment(baseline_here, to_plan, settings.seed_radius_mm)
    label = ice.astype(np.uint8)
    if is_slice:
        label = label[:, :, None]
        undecided = undecided[:, :, None]
    return IceObservation(
        label=label,
        ijk_to_ras=image_ijk_to_ras.copy(),
        kind="slice" if is_slice else "volume",
        image_to_plan=to_plan,
        noise_sigma=float(sigma),
        undecided_fraction=float(np.mean(undecided)),
        notes=notes,
    )


def _like(reference, array: np.ndarray):

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, np.float32).T))
    image.CopyInformation(reference)
    return image


def _smooth(image, sigma_mm: float):

    if sigma_mm <= 0:
        return sitk.Cast(image, sitk.sitkFloat32)
    return sitk.DiscreteGaussian(
        sitk.Cast(image, sitk.sitkFloat32), variance=float(sigma_mm) ** 2, useImageSpacing=True
    )


def _smoothing_gain(reference, sigma_mm: float) -> float:
    """Factor by which the smoothing lowers white noise: the root sum of squares of its kernel."""

    dimension = reference.GetDimension()
    impulse = np.zeros((15,) * dimension, np.float32)
    impulse[(7,) * dimension] = 1.0
    image = sitk.GetImageFromArray(impulse)
    image.SetSpacing(reference.GetSpacing())
    kernel = _array(_smooth(image, sigma_mm))
    return float(np.sqrt(np.sum(kernel.astype(float) ** 2)))


def _noise_sigma(current: np.ndarray, baseline: np.ndarray) -> float:
    """σ of the Gaussian noise in each channel, from the difference of the two images where the
    baseline has signal (median absolute deviation: robust to the ice and to edges)."""
    bright = baseline > 0.3 * np.median(baseline[baseline > 0]) if np.any(baseline > 0) else baseline > 0
    difference = (current - baseline)[bright]
    if difference.size < 16:
        raise InputError("baseline", "has too little signal to compare the image with")
    mad = float(np.median(np.abs(difference - np.median(difference))))
    return max(1.4826 * mad / math.sqrt(2.0), 1e-6 * float(np.max(np.abs(baseline))) + 1e-12)


def _seeded_components(void: np.ndarray, near_seed: np.ndarray, reference) -> np.ndarray:

    if not np.any(void):
        return void
    components = _array(sitk.ConnectedComponent(_like_uint8(reference, void), False))
    kept = np.unique(components[near_seed & void])
    kept = kept[kept > 0]
    return np.isin(components, kept)


def _like_uint8(reference, mask: np.ndarray):

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(mask, np.uint8).T))
    image.CopyInformation(reference)
    return image


def _distance_map(mask: np.ndarray, reference) -> np.ndarray:

    return _array(
        sitk.SignedMaurerDistanceMap(
            _like_uint8(reference, mask), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    )


def _fill_undecided(ice: np.ndarray, undecided: np.ndarray, reference, bridge_mm: float) -> np.ndarray:
    """Undecided voxels join the ice when the ice is nearer than any decided unfrozen voxel, or
    when they lie in a gap the ice closes over (a closing of ``bridge_mm``: a band of undecided
    voxels across the ice edge, where the nearest-voxel rule cuts a notch); then enclosed holes
    are filled."""

    if not np.any(ice):
        return ice
    unfrozen = ~undecided & ~ice
    if np.any(undecided) and np.any(unfrozen):
        closer = _distance_map(ice, reference) < _distance_map(unfrozen, reference)
        ice = ice | (undecided & (closer | _close(ice, reference, bridge_mm)))
    elif np.any(undecided):
        ice = ice | undecided
    return _array(sitk.BinaryFillhole(_like_uint8(reference, ice), False, 1)).astype(bool)


def _open(mask: np.ndarray, reference, radius_mm: float) -> np.ndarray:
    """Morphological opening with a ball of ``radius_mm``: what is left of the mask where a ball
    of that radius fits inside it."""
    if radius_mm <= 0 or not np.any(mask):
        return mask.copy()
    eroded = _distance_map(mask, reference) <= -radius_mm
    if not np.any(eroded):
        return eroded
    # Maurer distances run between voxel boundaries: half a voxel more brings back the rim.
    return _distance_map(eroded, reference) <= radius_mm + 0.5 * max(reference.GetSpacing())


def _close(mask: np.ndarray, reference, radius_mm: float) -> np.ndarray:
    """Morphological closing with a ball of ``radius_mm`` (dilation, then erosion, by distance)."""
    if radius_mm <= 0:
        return mask.copy()
    # Pad so that the dilation is not clipped at the border of the image.
    pad = math.ceil(radius_mm / min(reference.GetSpacing())) + 1
    padded = np.pad(mask, pad)
    spaced = _like_uint8(_spaced_like(reference, padded.shape), padded)
    grown = _array_distance(spaced) <= radius_mm
    closed = ~(_array_distance(_like_uint8(spaced, ~grown)) <= radius_mm)
    return closed[tuple(slice(pad, -pad) for _ in range(mask.ndim))]


def _spaced_like(reference, shape):

    image = sitk.Image([int(n) for n in shape], sitk.sitkUInt8)
    image.SetSpacing(reference.GetSpacing())
    return image


def _array_distance(mask_image) -> np.ndarray:

    return _array(
        sitk.SignedMaurerDistanceMap(
            mask_image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    )


def _dilate(mask: np.ndarray, reference, radius_mm: float) -> np.ndarray:
    if not np.any(mask) or radius_mm <= 0:
        return mask.copy()
    return _distance_map(mask, reference) <= radius_mm


def _register(fixed, moving, mask: np.ndarray):
    """Rigid transform mapping points of ``fixed`` (the image) to ``moving`` (the baseline)."""

    dimension = fixed.GetDimension()
    initial = sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
    center = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in fixed.GetSize()])
    initial.SetCenter(center)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()  # same sequence, same contrast: the intensities correspond
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricFixedMask(_like_uint8(fixed, mask))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=200,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 0.5])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    result = method.Execute(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    if isinstance(result, sitk.CompositeTransform):
        result = result.GetNthTransform(0)
    return sitk.Euler3DTransform(result) if dimension == 3 else sitk.Euler2DTransform(result)


def _to_ras_matrix(transform, is_slice: bool, ijk_to_ras: np.ndarray) -> np.ndarray:
    """4×4 RAS matrix of the registration (image point → baseline point)."""
    if not is_slice:
        return _FLIP4 @ _matrix_of(transform, 3) @ _FLIP4
    # The 2-D transform acts on plane coordinates q = E^T (p − o); lift it to 3-D, leaving the
    # component along the normal unchanged.
    planar = _matrix_of(transform, 2)
    columns = ijk_to_ras[:3, :3]
    axes = columns[:, :2] / np.linalg.norm(columns[:, :2], axis=0)
    normal = np.cross(axes[:, 0], axes[:, 1])
    origin = ijk_to_ras[:3, 3]
    linear = axes @ planar[:2, :2] @ axes.T + np.outer(normal, normal)
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = origin - linear @ origin + axes @ planar[:2, 2]
    return matrix


def ice_on_grid(observation: IceObservation, grid: Grid) -> np.ndarray:
    """The observed ice resampled on ``grid`` (the plan's), in the plan frame (uint8, 1 = frozen).

    A volume is resampled linearly and cut at one half (the edge stays where it was); a slice
    marks the grid voxels whose centres lie within its thickness (nearest pixel), the rest 0.
    """

    reference = sitk.Image([int(n) for n in grid.size], sitk.sitkFloat32)
    template = sitk_image(np.zeros((1, 1, 1), np.float32), grid.ijk_to_ras_matrix())
    reference.SetSpacing(template.GetSpacing())
    reference.SetDirection(template.GetDirection())
    reference.SetOrigin(template.GetOrigin())
    source = sitk_image(observation.label.astype(np.float32), observation.ijk_to_ras)
    # Resample looks up the output point's counterpart in the input: plan point → image point.
    plan_to_image = affine_from_matrix(np.linalg.inv(observation.image_to_plan))
    interpolator = sitk.sitkNearestNeighbor if observation.kind == "slice" else sitk.sitkLinear
    out = sitk.Resample(source, reference, plan_to_image, interpolator, 0.0, sitk.sitkFloat32)
    return (_array(out) >= 0.5).astype(np.uint8)
