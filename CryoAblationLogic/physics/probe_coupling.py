"""Coupling of sub-voxel probes and idealised sources to the grid.

Probes are much thinner than a voxel. Each probe's active segment is spread over the voxels near
its axis with smooth weights ω_i (a compact radial kernel K(ρ) = (1 − ρ²/R²)² times a smooth axial
taper one voxel wide at each end), so the coupling changes continuously when the probe moves by a
fraction of a voxel. Between the probe surface (radius r_p) and the kernel-weighted grid temperature
the tissue is a logarithmic radial resistance (a Peaceman-type well model):

    q' = 2π k (T_avg − T_surface) / ln(r_eq / r_p),   T_avg = Σ ω_i T_i,

where r_eq = KERNEL_EQUIVALENT_RADIUS · R is the radius at which the line-source potential equals
the kernel-weighted mean of the smeared source's own potential (exact for the continuum kernel:
exp ∬ K K ln|x − y| = 0.5443 R, checked in Testing/physics/test_probe_coupling.py). The heat taken
from voxel i is ω_i·q'·L_active. R = max(2 voxels, 3 r_p) keeps r_eq > r_p and the kernel resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from CryoAblationLogic.core.grid import Grid

KERNEL_EQUIVALENT_RADIUS = 0.5443  # r_eq / R for K(ρ) = (1 − ρ²/R²)², see the module docstring


@dataclass
class ProbeStencil:
    flat_index: np.ndarray  # int64, into the C-ordered field
    weight: np.ndarray  # float64, sums to 1
    kernel_radius_mm: float
    equivalent_radius_mm: float
    active_length_mm: float


def kernel_radius_mm(grid: Grid, probe_radius_mm: float, radius_factor: float = 3.0) -> float:
    return max(2.0 * max(grid.spacing_mm), radius_factor * probe_radius_mm)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def probe_stencil(
    grid: Grid, start_mm, end_mm, probe_radius_mm: float, radius_factor: float = 3.0
) -> ProbeStencil:
    """Weights of the voxels around the active segment from ``start_mm`` to ``end_mm``; the kernel
    reaches ``radius_factor`` probe radii (at least two voxels; r_eq = 0.5443 R > r needs a factor
    above 1.84)."""
    start = np.asarray(start_mm, float)
    end = np.asarray(end_mm, float)
    length = float(np.linalg.norm(end - start))
    axis = (end - start) / length
    radius = kernel_radius_mm(grid, probe_radius_mm, radius_factor)
    taper = max(grid.spacing_mm)
    reach = radius + taper
    lo = np.floor(grid.ras_to_index(np.minimum(start, end) - reach)).astype(int)
    hi = np.ceil(grid.ras_to_index(np.maximum(start, end) + reach)).astype(int) + 1
    lo = np.clip(lo, 0, np.asarray(grid.size))
    hi = np.clip(hi, 0, np.asarray(grid.size))
    axes = [grid.axis_mm(a)[lo[a] : hi[a]] for a in range(3)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    rel = np.stack([x - start[0], y - start[1], z - start[2]], axis=-1)
    s = rel @ axis
    rho2 = np.maximum(np.einsum("...i,...i->...", rel, rel) - s * s, 0.0)
    radial = np.where(rho2 < radius * radius, (1.0 - rho2 / (radius * radius)) ** 2, 0.0)
    axial = _smoothstep(s / taper + 0.5) * _smoothstep((length - s) / taper + 0.5)
    weight = radial * axial
    keep = weight > 0
    ii, jj, kk = np.nonzero(keep)
    flat = np.ravel_multi_index((ii + lo[0], jj + lo[1], kk + lo[2]), grid.size).astype(np.int64)
    w = weight[keep]
    return ProbeStencil(
        flat_index=flat,
        weight=w / w.sum(),
        kernel_radius_mm=radius,
        equivalent_radius_mm=KERNEL_EQUIVALENT_RADIUS * radius,
        active_length_mm=length,
    )


def line_sink_deposit(grid: Grid, start_mm, end_mm) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear deposit of a unit-length-density line: (flat indices, length in m per voxel)."""
    start = np.asarray(start_mm, float)
    end = np.asarray(end_mm, float)
    length = float(np.linalg.norm(end - start))
    n = max(int(np.ceil(length / (min(grid.spacing_mm) / 8.0))), 1)
    ts = (np.arange(n) + 0.5) / n
    points = start[None, :] + ts[:, None] * (end - start)[None, :]
    # A line reaching the outer half of a boundary voxel deposits there (nothing leaves the grid).
    ijk = np.clip(grid.ras_to_index(points), 0.0, np.asarray(grid.size) - 1.0)
    base = np.minimum(np.floor(ijk).astype(int), np.asarray(grid.size) - 2)
    frac = ijk - base
    size = np.asarray(grid.size)
    indices, weights = [], []
    for corner in range(8):
        offset = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        idx = base + offset
        w = np.prod(np.where(offset == 1, frac, 1.0 - frac), axis=1) * (length * 1e-3 / n)
        inside = np.all((idx >= 0) & (idx < size), axis=1)
        indices.append(np.ravel_multi_index(tuple(idx[inside].T), grid.size))
        weights.append(w[inside])
    flat = np.concatenate(indices)
    weight = np.concatenate(weights)
    unique, inverse = np.unique(flat, return_inverse=True)
    return unique.astype(np.int64), np.bincount(inverse, weights=weight)


@dataclass
class SphereStencil:
    inside: np.ndarray  # bool field: voxels held at the sphere temperature
    flat_index: np.ndarray  # voxels outside with a link into the sphere
    link_factor: np.ndarray  # Σ over such links of (1/θ) / Δx² (1/m²); θ = fraction of the link outside


def sphere_stencil(grid: Grid, center_mm, radius_mm: float) -> SphereStencil:
    """Voxels inside the ball and the sub-voxel (Shortley–Weller) links of their outside neighbours."""
    center = np.asarray(center_mm, float)
    spacing = np.asarray(grid.spacing_mm)
    reach = radius_mm + 2.0 * spacing.max()
    lo = np.clip(np.floor(grid.ras_to_index(center - reach)).astype(int), 0, np.asarray(grid.size))
    hi = np.clip(np.ceil(grid.ras_to_index(center + reach)).astype(int) + 1, 0, np.asarray(grid.size))
    axes = [grid.axis_mm(a)[lo[a] : hi[a]] for a in range(3)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    rel = np.stack([x - center[0], y - center[1], z - center[2]], axis=-1)
    inside_local = np.einsum("...i,...i->...", rel, rel) <= radius_mm**2
    factor = np.zeros(inside_local.shape)
    for axis in range(3):
        for step in (-1, 1):
            neighbour_inside = np.zeros_like(inside_local)
            src = [slice(None)] * 3
            dst = [slice(None)] * 3
            if step == 1:
                src[axis], dst[axis] = slice(1, None), slice(None, -1)
            else:
                src[axis], dst[axis] = slice(None, -1), slice(1, None)
            neighbour_inside[tuple(dst)] = inside_local[tuple(src)]
            link = neighbour_inside & ~inside_local
            if not link.any():
                continue
            # Distance t (in units of the link) from the voxel to the sphere surface along the link.
            d = rel[link]
            e = np.zeros(3)
            e[axis] = step * spacing[axis]
            b = d @ e
            c = np.einsum("ij,ij->i", d, d) - radius_mm**2
            a = e @ e
            disc = np.maximum(b * b - a * c, 0.0)
            theta = np.clip((-b - np.sqrt(disc)) / a, 1e-3, 1.0)
            factor[link] += 1.0 / (theta * (spacing[axis] * 1e-3) ** 2)
    inside = np.zeros(grid.size, dtype=bool)
    inside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = inside_local
    ii, jj, kk = np.nonzero(factor > 0)
    flat = np.ravel_multi_index((ii + lo[0], jj + lo[1], kk + lo[2]), grid.size).astype(np.int64)
    return SphereStencil(inside=inside, flat_index=flat, link_factor=factor[factor > 0])


SPHERE_KERNEL_EQUIVALENT_RADIUS = 0.61286  # r_eq / R for the 3-D kernel (1 − r²/R²)²: R/r_eq = 700/429
SPHERE_WELL_MAX_RADIUS_VOXELS = 4.0  # smaller balls are coupled through the spherical well model


@dataclass
class SphereWellStencil:
    flat_index: np.ndarray
    weight: np.ndarray  # sums to 1
    kernel_radius_mm: float
    equivalent_radius_mm: float
    fraction_inside: float  # share of the kernel on the grid (1/8 for a ball at a mirror corner)


def sphere_well_stencil(grid: Grid, center_mm, radius_mm: float) -> SphereWellStencil:
    """A ball too small for the grid, as a spherical well: the heat 4πk(T_avg − T_ball)/(1/a − 1/r_eq)
    is taken from the voxels within R of its centre with weights (1 − r²/R²)², where
    r_eq = 0.61286·R makes the kernel-weighted mean of the smeared sink's 1/r potential exact
    (Newton's shell theorem; checked in Testing/physics/test_probe_coupling.py)."""
    center = np.asarray(center_mm, float)
    radius = max(2.5 * max(grid.spacing_mm), 3.0 * radius_mm)
    # Lattice points of the whole kernel, on the grid or not (a ball on a grid face or corner, whose
    # faces are mirrors, exchanges only the share of its heat that falls on the grid).
    lo = np.floor(grid.ras_to_index(center - radius)).astype(int)
    hi = np.ceil(grid.ras_to_index(center + radius)).astype(int) + 1
    idx = [np.arange(lo[a], hi[a]) for a in range(3)]
    ii, jj, kk = np.meshgrid(*idx, indexing="ij")
    spacing = np.asarray(grid.spacing_mm)
    x = grid.origin_mm[0] + ii * spacing[0] - center[0]
    y = grid.origin_mm[1] + jj * spacing[1] - center[1]
    z = grid.origin_mm[2] + kk * spacing[2] - center[2]
    r2 = x * x + y * y + z * z
    weight = np.where(r2 < radius * radius, (1.0 - r2 / (radius * radius)) ** 2, 0.0)
    size = np.asarray(grid.size)
    on_grid = (ii >= 0) & (jj >= 0) & (kk >= 0) & (ii < size[0]) & (jj < size[1]) & (kk < size[2])
    keep = on_grid & (weight > 0)
    flat = np.ravel_multi_index((ii[keep], jj[keep], kk[keep]), grid.size).astype(np.int64)
    w = weight[keep]
    return SphereWellStencil(
        flat, w / w.sum(), radius, SPHERE_KERNEL_EQUIVALENT_RADIUS * radius, float(w.sum() / weight.sum())
    )
