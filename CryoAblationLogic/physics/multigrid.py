"""Coarse-grid correction for the implicit enthalpy step (aggregation multigrid).

Red-black Gauss–Seidel (:mod:`.kernels`) removes the error of a step's implicit system locally, but
the smooth part of it — spread over the diffusion length of one step, several voxels in the frozen
core where the conductivity is high — only slowly. Between nonlinear sweeps this module removes it
on coarser grids:

- the step's system is linearised at the current iterate: per voxel the slope dH/dT of its phase
  (frozen, mushy or unfrozen heat capacity) plus dt·(probe coupling + perfusion), and dt times the
  conductances to its neighbours;
- the residual and that operator are aggregated 2×2×2 voxels at a time: capacities add up, and the
  conductances crossing an aggregate's face add up and are halved, which makes the first coarse level
  the coarse grid's own discretisation; coarser levels are Galerkin aggregates of it (piecewise-
  constant prolongation), and the coarse systems are solved by a V-cycle of linear red-black sweeps,
  each level's correction scaled by the factor that minimises the energy norm of its error (piecewise-
  constant prolongation alone under-corrects smooth errors about twofold);
- the correction is interpolated trilinearly to the fine voxels (on the operator of a refreeze step
  one sweep and one correction shrink a smooth error by 0.35 instead of 0.5 with piecewise-constant
  interpolation) and applied within each voxel's phase, so a voxel never crosses the latent plateau
  on a linear extrapolation; the nonlinear sweeps that follow settle the fronts.

The nonlinear sweeps decide convergence, and the step is closed conservatively as before
(:func:`.kernels.finish_step`), so the energy balance does not depend on this correction. All loops
run in a fixed order (deterministic results); the parallel loops write disjoint planes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from CryoAblationLogic.physics.kernels import (
    CF,
    CU,
    HL,
    ONE,
    QM,
    TB,
    TL,
    TS,
    W,
    enthalpy_of,
    liquid_fraction,
    local_sweeps,
    parallel_and_serial,
    sweep_box,
)

COARSEST_SWEEPS = 12
# Sweeps down and up per level of a V-cycle: on the reference case more leave the number of
# corrections unchanged (the fine level's sweeps and interpolation limit the convergence).
V_CYCLE_SWEEPS = 1
# The first coarse level's conductances are the Galerkin sums of the fine ones times this factor:
# with the trilinear interpolation of the correction this is the coarse grid's own discretisation
# (a face of 2×2 fine faces at twice the distance), where the plain Galerkin sum is twice as stiff.
COARSE_LINK_SCALE = 0.5
MAX_COARSEST_CELLS = 64
MAX_LEVELS = 10


@njit(cache=True, inline="always")
def _slope(h, props, m):
    """dH/dT of the phase the enthalpy h lies in (J/m³K); a sharp front counts as very large."""
    if h <= 0.0:
        return props[m, CF]
    if h >= props[m, HL]:
        return props[m, CU]
    width = props[m, TL] - props[m, TS]
    if width <= 0.0:
        return 1e6 * props[m, HL]
    return props[m, HL] / width


def _fine_residual(
    T,
    H,
    Hold,
    link,
    mat,
    fixed,
    check_fixed,
    coupled,
    g,
    gT,
    q,
    front,
    qf,
    inv_d2,
    front_on,
    props,
    lo,
    hi,
    size,
    dt,
    solved_parity,
    with_links,
    r,
    cap,
    lx,
    ly,
    lz,
):
    """Residual of the step and the Galerkin operator of the first coarse level (2×2×2 aggregates).

    r, cap, lx, ly, lz have the shape of the first coarse level (ceil(box / 2)); r and cap are
    overwritten: r = Σ residual (J/m³ summed over the aggregate's voxels), cap = Σ (dH/dT + dt·(g +
    perfusion + conductances to held voxels)). With ``with_links`` l_axis = dt·Σ conductances crossing
    the aggregate's upper face is rebuilt too; otherwise it is kept (the conductances are fixed for a
    step, so a region's links are built at its first correction only).
    ``solved_parity`` 0 or 1 says that the voxels with (i + j + k) % 2 == solved_parity were the last
    ones a sweep over the whole region solved: their residual is zero (each is solved exactly with its
    neighbours as they are now), so only the other half is summed; −1 sums all.
    ``check_fixed`` False says that no voxel of the region and its shell is held (the usual case),
    so that the neighbours' ``fixed`` flags need not be read.
    """
    nx, ny, nz = size[0], size[1], size[2]
    cx, cy, cz = r.shape
    link_dt = COARSE_LINK_SCALE * dt
    for ci in prange(cx):
        for cj in range(cy):
            for ck in range(cz):
                r[ci, cj, ck] = 0.0
                cap[ci, cj, ck] = 0.0
                if with_links:
                    lx[ci, cj, ck] = 0.0
                    ly[ci, cj, ck] = 0.0
                    lz[ci, cj, ck] = 0.0
        for i in range(lo[0] + 2 * ci, min(lo[0] + 2 * ci + 2, hi[0])):
            iu = np.uint64(i)  # unsigned copies index (see kernels.ONE); the signed ones test
            odd_i = ((i - lo[0]) & 1) == 1
            edge_i = i == lo[0] or i == hi[0] - 1
            for j in range(lo[1], hi[1]):
                ju = np.uint64(j)
                cj = (j - lo[1]) >> 1
                odd_j = ((j - lo[1]) & 1) == 1
                edge_ij = edge_i or j == lo[1] or j == hi[1] - 1
                for k in range(lo[2], hi[2]):
                    ku = np.uint64(k)
                    if fixed[iu, ju, ku] != 0:
                        continue
                    ck = (k - lo[2]) >> 1
                    m = mat[iu, ju, ku]
                    h = H[iu, ju, ku]
                    fl = liquid_fraction(h, props, m)
                    w = props[m, W] * fl
                    g_c = g[iu, ju, ku] if coupled[iu, ju, ku] != 0 else 0.0
                    held = 0.0
                    # Links to voxels outside the region or held: on the region's surface, or anywhere
                    # when a held voxel lies in or next to the region.
                    if check_fixed or edge_ij or k == lo[2] or k == hi[2] - 1:
                        if i > 0 and (i - 1 < lo[0] or (check_fixed and fixed[iu - ONE, ju, ku] != 0)):
                            held += link[0, iu - ONE, ju, ku]
                        if i < nx - 1 and (i + 1 >= hi[0] or (check_fixed and fixed[iu + ONE, ju, ku] != 0)):
                            held += link[0, iu, ju, ku]
                        if j > 0 and (j - 1 < lo[1] or (check_fixed and fixed[iu, ju - ONE, ku] != 0)):
                            held += link[1, iu, ju - ONE, ku]
                        if j < ny - 1 and (j + 1 >= hi[1] or (check_fixed and fixed[iu, ju + ONE, ku] != 0)):
                            held += link[1, iu, ju, ku]
                        if k > 0 and (k - 1 < lo[2] or (check_fixed and fixed[iu, ju, ku - ONE] != 0)):
                            held += link[2, iu, ju, ku - ONE]
                        if k < nz - 1 and (k + 1 >= hi[2] or (check_fixed and fixed[iu, ju, ku + ONE] != 0)):
                            held += link[2, iu, ju, ku]
                    cap[ci, cj, ck] += _slope(h, props, m) + dt * (g_c + w + held)
                    if with_links:
                        if odd_i and i + 1 < hi[0] and not (check_fixed and fixed[iu + ONE, ju, ku] != 0):
                            lx[ci, cj, ck] += link_dt * link[0, iu, ju, ku]
                        if odd_j and j + 1 < hi[1] and not (check_fixed and fixed[iu, ju + ONE, ku] != 0):
                            ly[ci, cj, ck] += link_dt * link[1, iu, ju, ku]
                        odd_k = ((k - lo[2]) & 1) == 1
                        if odd_k and k + 1 < hi[2] and not (check_fixed and fixed[iu, ju, ku + ONE] != 0):
                            lz[ci, cj, ck] += link_dt * link[2, iu, ju, ku]
                    if ((i + j + k) & 1) == solved_parity:
                        continue
                    t = T[iu, ju, ku]
                    flux = 0.0
                    if i > 0:
                        flux += link[0, iu - ONE, ju, ku] * (T[iu - ONE, ju, ku] - t)
                    if i < nx - 1:
                        flux += link[0, iu, ju, ku] * (T[iu + ONE, ju, ku] - t)
                    if j > 0:
                        flux += link[1, iu, ju - ONE, ku] * (T[iu, ju - ONE, ku] - t)
                    if j < ny - 1:
                        flux += link[1, iu, ju, ku] * (T[iu, ju + ONE, ku] - t)
                    if k > 0:
                        flux += link[2, iu, ju, ku - ONE] * (T[iu, ju, ku - ONE] - t)
                    if k < nz - 1:
                        flux += link[2, iu, ju, ku] * (T[iu, ju, ku + ONE] - t)
                    source = fl * props[m, QM] + w * (props[m, TB] - t)
                    if coupled[iu, ju, ku] != 0:
                        source += gT[iu, ju, ku] - g_c * t + q[iu, ju, ku]
                    if front_on and front[iu, ju, ku] != 0:
                        source += qf[iu, ju, ku]
                    r[ci, cj, ck] += Hold[iu, ju, ku] + dt * (flux + source) - h


def _coarsen(cap, lx, ly, lz, capc, lxc, lyc, lzc, with_links):
    """Galerkin operator of the next coarser level: aggregates of 2×2×2 cells (the links only
    ``with_links``; otherwise they are kept from the region's first correction)."""
    nx, ny, nz = cap.shape
    cx, cy, cz = capc.shape
    for ci in prange(cx):
        for cj in range(cy):
            for ck in range(cz):
                c = 0.0
                ax = 0.0
                ay = 0.0
                az = 0.0
                for i in range(2 * ci, min(2 * ci + 2, nx)):
                    for j in range(2 * cj, min(2 * cj + 2, ny)):
                        for k in range(2 * ck, min(2 * ck + 2, nz)):
                            c += cap[i, j, k]
                            if with_links:
                                if i == 2 * ci + 1:
                                    ax += lx[i, j, k]
                                if j == 2 * cj + 1:
                                    ay += ly[i, j, k]
                                if k == 2 * ck + 1:
                                    az += lz[i, j, k]
                capc[ci, cj, ck] = c
                if with_links:
                    lxc[ci, cj, ck] = ax if 2 * ci + 1 < nx - 1 else 0.0
                    lyc[ci, cj, ck] = ay if 2 * cj + 1 < ny - 1 else 0.0
                    lzc[ci, cj, ck] = az if 2 * ck + 1 < nz - 1 else 0.0


def _smooth(color, e, r, cap, lx, ly, lz):
    """One red-black Gauss–Seidel half-sweep of the linear system (cap + Laplacian(l))·e = r."""
    nx, ny, nz = e.shape
    for i in prange(nx):
        iu = np.uint64(i)
        for j in range(ny):
            ju = np.uint64(j)
            for k in range((i + j + color) & 1, nz, 2):
                ku = np.uint64(k)
                d = cap[iu, ju, ku]
                s = r[iu, ju, ku]
                if i > 0:
                    a = lx[iu - ONE, ju, ku]
                    d += a
                    s += a * e[iu - ONE, ju, ku]
                if i < nx - 1:
                    a = lx[iu, ju, ku]
                    d += a
                    s += a * e[iu + ONE, ju, ku]
                if j > 0:
                    a = ly[iu, ju - ONE, ku]
                    d += a
                    s += a * e[iu, ju - ONE, ku]
                if j < ny - 1:
                    a = ly[iu, ju, ku]
                    d += a
                    s += a * e[iu, ju + ONE, ku]
                if k > 0:
                    a = lz[iu, ju, ku - ONE]
                    d += a
                    s += a * e[iu, ju, ku - ONE]
                if k < nz - 1:
                    a = lz[iu, ju, ku]
                    d += a
                    s += a * e[iu, ju, ku + ONE]
                e[iu, ju, ku] = s / d if d > 0.0 else 0.0


def _restrict_residual(e, r, cap, lx, ly, lz, rc):
    """rc = aggregate sums of the residual r − A·e of this level."""
    nx, ny, nz = e.shape
    cx, cy, cz = rc.shape
    for ci in prange(cx):
        for cj in range(cy):
            for ck in range(cz):
                total = 0.0
                for i in range(2 * ci, min(2 * ci + 2, nx)):
                    iu = np.uint64(i)
                    for j in range(2 * cj, min(2 * cj + 2, ny)):
                        ju = np.uint64(j)
                        for k in range(2 * ck, min(2 * ck + 2, nz)):
                            ku = np.uint64(k)
                            v = e[iu, ju, ku]
                            res = r[iu, ju, ku] - cap[iu, ju, ku] * v
                            if i > 0:
                                res += lx[iu - ONE, ju, ku] * (e[iu - ONE, ju, ku] - v)
                            if i < nx - 1:
                                res += lx[iu, ju, ku] * (e[iu + ONE, ju, ku] - v)
                            if j > 0:
                                res += ly[iu, ju - ONE, ku] * (e[iu, ju - ONE, ku] - v)
                            if j < ny - 1:
                                res += ly[iu, ju, ku] * (e[iu, ju + ONE, ku] - v)
                            if k > 0:
                                res += lz[iu, ju, ku - ONE] * (e[iu, ju, ku - ONE] - v)
                            if k < nz - 1:
                                res += lz[iu, ju, ku] * (e[iu, ju, ku + ONE] - v)
                            total += res
                rc[ci, cj, ck] = total


@njit(cache=True)
def energy_step(e, r, cap, lx, ly, lz):
    """(e·r, e·A·e) of a correction e of this level with right-hand side r."""
    nx, ny, nz = e.shape
    er = 0.0
    eae = 0.0
    for i in range(nx):
        iu = np.uint64(i)
        for j in range(ny):
            ju = np.uint64(j)
            for k in range(nz):
                ku = np.uint64(k)
                v = e[iu, ju, ku]
                er += v * r[iu, ju, ku]
                eae += cap[iu, ju, ku] * v * v
                if i < nx - 1:
                    d = v - e[iu + ONE, ju, ku]
                    eae += lx[iu, ju, ku] * d * d
                if j < ny - 1:
                    d = v - e[iu, ju + ONE, ku]
                    eae += ly[iu, ju, ku] * d * d
                if k < nz - 1:
                    d = v - e[iu, ju, ku + ONE]
                    eae += lz[iu, ju, ku] * d * d
    return er, eae


def _prolong_add(e, ec, alpha):
    """e += alpha · (piecewise-constant prolongation of ec)."""
    nx, ny, nz = e.shape
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                e[i, j, k] += alpha * ec[i >> 1, j >> 1, k >> 1]


@njit(cache=True, inline="always")
def _neighbour(c, offset, n):
    """The coarse cell beside c on the side of a fine cell (offset 0: lower, 1: upper), c itself at
    the region's edge."""
    if offset == 0:
        return c - 1 if c > 0 else c
    return c + 1 if c < n - 1 else c


def _apply_correction(T, H, mat, fixed, props, lo, hi, ec, alpha, moved):
    """T += alpha·(trilinear interpolation of ec) on the region, each voxel within its current phase;
    H follows. moved[i] gets the largest temperature change applied in plane i.

    The interpolation is cell-centred: a fine voxel takes 3/4 of its own aggregate's value and 1/4 of
    the neighbour's on its side, per axis (constant beyond the region's edge)."""
    cx, cy, cz = ec.shape
    for i in prange(lo[0], hi[0]):
        iu = np.uint64(i)  # unsigned copies index (see kernels.ONE)
        largest = 0.0
        ci = (i - lo[0]) >> 1
        ci2 = _neighbour(ci, (i - lo[0]) & 1, cx)
        row = np.empty(cz)
        for j in range(lo[1], hi[1]):
            ju = np.uint64(j)
            cj = (j - lo[1]) >> 1
            cj2 = _neighbour(cj, (j - lo[1]) & 1, cy)
            # The aggregate row interpolated across i and j once, then along k per voxel.
            for ck in range(cz):
                row[ck] = 0.75 * (0.75 * ec[ci, cj, ck] + 0.25 * ec[ci, cj2, ck]) + 0.25 * (
                    0.75 * ec[ci2, cj, ck] + 0.25 * ec[ci2, cj2, ck]
                )
            for k in range(lo[2], hi[2]):
                ku = np.uint64(k)
                if fixed[iu, ju, ku] != 0:
                    continue
                ck = (k - lo[2]) >> 1
                ck2 = _neighbour(ck, (k - lo[2]) & 1, cz)
                m = mat[iu, ju, ku]
                h = H[iu, ju, ku]
                t_old = T[iu, ju, ku]
                t = t_old + alpha * (0.75 * row[ck] + 0.25 * row[ck2])
                if h <= 0.0:
                    t = min(t, props[m, TS])
                    h = enthalpy_of(t, props, m)
                elif h >= props[m, HL]:
                    t = max(t, props[m, TL])
                    h = enthalpy_of(t, props, m)
                elif props[m, TL] > props[m, TS]:
                    t = min(max(t, props[m, TS]), props[m, TL])  # H(T) is linear on the plateau
                    h = enthalpy_of(t, props, m)
                else:
                    t = props[m, TS]  # on a sharp front's plateau: only the sweeps move it
                largest = max(largest, abs(t - t_old))
                H[iu, ju, ku] = h
                T[iu, ju, ku] = t
        moved[i] = largest


PARALLEL_MIN_CELLS = 20_000  # smaller grids are worked by one thread (waking threads costs more)


_KERNELS = {
    name: parallel_and_serial(function)
    for name, function in (
        ("fine_residual", _fine_residual),
        ("coarsen", _coarsen),
        ("smooth", _smooth),
        ("restrict_residual", _restrict_residual),
        ("prolong_add", _prolong_add),
        ("apply_correction", _apply_correction),
    )
}


def kernel(name: str, cells: int):
    """The parallel or the serial variant of a kernel, by the number of cells it works on."""
    parallel, serial = _KERNELS[name]
    return parallel if cells >= PARALLEL_MIN_CELLS else serial


_smooth_parallel, _smooth_serial = _KERNELS["smooth"]
_restrict_parallel, _restrict_serial = _KERNELS["restrict_residual"]
_prolong_parallel, _prolong_serial = _KERNELS["prolong_add"]
_coarsen_parallel, _coarsen_serial = _KERNELS["coarsen"]
_residual_parallel, _residual_serial = _KERNELS["fine_residual"]
_apply_parallel, _apply_serial = _KERNELS["apply_correction"]


# All levels in one call each (a call from Python costs more than the work on a small coarse grid),
# each level by the parallel or the serial kernel as its size asks, as :func:`kernel` chooses.


@njit(cache=True)
def _smooth_level(color, e, r, cap, lx, ly, lz):
    if e.size >= PARALLEL_MIN_CELLS:
        _smooth_parallel(color, e, r, cap, lx, ly, lz)
    else:
        _smooth_serial(color, e, r, cap, lx, ly, lz)


@njit(cache=True, inline="always")
def _level(buffer, offsets, shapes, level):
    """Level ``level`` of a flat buffer that holds all levels one after another."""
    return buffer[offsets[level] : offsets[level + 1]].reshape(
        (shapes[level, 0], shapes[level, 1], shapes[level, 2])
    )


@njit(cache=True)
def _coarsen_levels(cap_b, lx_b, ly_b, lz_b, offsets, shapes, with_links):
    """Galerkin operators of all coarser levels from the first level's."""
    for level in range(shapes.shape[0] - 1):
        cap = _level(cap_b, offsets, shapes, level)
        lx = _level(lx_b, offsets, shapes, level)
        ly = _level(ly_b, offsets, shapes, level)
        lz = _level(lz_b, offsets, shapes, level)
        capc = _level(cap_b, offsets, shapes, level + 1)
        lxc = _level(lx_b, offsets, shapes, level + 1)
        lyc = _level(ly_b, offsets, shapes, level + 1)
        lzc = _level(lz_b, offsets, shapes, level + 1)
        if cap.size >= PARALLEL_MIN_CELLS:
            _coarsen_parallel(cap, lx, ly, lz, capc, lxc, lyc, lzc, with_links)
        else:
            _coarsen_serial(cap, lx, ly, lz, capc, lxc, lyc, lzc, with_links)


@njit(cache=True, inline="always")
def _level_arrays(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, level):
    """(e, r, cap, lx, ly, lz) of one level."""
    return (
        _level(e_b, offsets, shapes, level),
        _level(r_b, offsets, shapes, level),
        _level(cap_b, offsets, shapes, level),
        _level(lx_b, offsets, shapes, level),
        _level(ly_b, offsets, shapes, level),
        _level(lz_b, offsets, shapes, level),
    )


@njit(cache=True)
def _vcycle_levels(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, pre, post, coarsest):
    """A V-cycle from the first level down: red-black sweeps, residuals restricted to the next
    level, the coarsest solved by ``coarsest`` sweeps, corrections prolonged back up (each scaled to
    its energy optimum) and smoothed again."""
    last = shapes.shape[0] - 1
    for level in range(last + 1):
        e, r, cap, lx, ly, lz = _level_arrays(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, level)
        e[...] = 0.0
        for _ in range(coarsest if level == last else pre):
            for color in range(2):
                _smooth_level(color, e, r, cap, lx, ly, lz)
        if level < last:
            rc = _level(r_b, offsets, shapes, level + 1)
            if e.size >= PARALLEL_MIN_CELLS:
                _restrict_parallel(e, r, cap, lx, ly, lz, rc)
            else:
                _restrict_serial(e, r, cap, lx, ly, lz, rc)
    for level in range(last - 1, -1, -1):
        e, r, cap, lx, ly, lz = _level_arrays(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, level)
        ec, rc, capc, lxc, lyc, lzc = _level_arrays(
            e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, level + 1
        )
        er, eae = energy_step(ec, rc, capc, lxc, lyc, lzc)
        if eae > 0.0 and er > 0.0:
            if e.size >= PARALLEL_MIN_CELLS:
                _prolong_parallel(e, ec, er / eae)
            else:
                _prolong_serial(e, ec, er / eae)
        for _ in range(post):
            for color in (1, 0):
                _smooth_level(color, e, r, cap, lx, ly, lz)


@njit(cache=True)
def _cycle(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, pre, post):
    """Solve the first coarse level's system by a V-cycle; the energy-optimal scale of its
    correction."""
    _vcycle_levels(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, pre, post, COARSEST_SWEEPS)
    er, eae = energy_step(*_level_arrays(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, 0))
    return er / eae if eae > 0.0 and er > 0.0 else 0.0


@njit(cache=True)
def _correct(T, H, Hold, link, mat, fixed, check_fixed, coupled, g, gT, q,
             front, qf, inv_d2, front_on, props, lo, hi, size, dt,
             solved_parity, with_links, r_b, e_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes,
             moved):  # fmt: skip
    """One coarse-grid correction of the region [lo, hi): the residual and the first level's
    operator, the coarser operators, a V-cycle, and the correction applied on the fine grid
    (trilinear, within each voxel's phase); returns the largest temperature change it made (K)."""
    e, r, cap, lx, ly, lz = _level_arrays(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, 0)
    cells = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])
    if cells >= PARALLEL_MIN_CELLS:
        _residual_parallel(T, H, Hold, link, mat, fixed, check_fixed, coupled, g, gT, q,
                           front, qf, inv_d2, front_on, props, lo, hi,
                           size, dt, solved_parity, with_links, r, cap, lx, ly, lz)  # fmt: skip
    else:
        _residual_serial(T, H, Hold, link, mat, fixed, check_fixed, coupled, g, gT, q,
                         front, qf, inv_d2, front_on, props, lo, hi,
                         size, dt, solved_parity, with_links, r, cap, lx, ly, lz)  # fmt: skip
    _coarsen_levels(cap_b, lx_b, ly_b, lz_b, offsets, shapes, with_links)
    alpha = _cycle(e_b, r_b, cap_b, lx_b, ly_b, lz_b, offsets, shapes, V_CYCLE_SWEEPS, V_CYCLE_SWEEPS)
    if cells >= PARALLEL_MIN_CELLS:
        _apply_parallel(T, H, mat, fixed, props, lo, hi, e, alpha, moved)
    else:
        _apply_serial(T, H, mat, fixed, props, lo, hi, e, alpha, moved)
    largest = 0.0
    for i in range(lo[0], hi[0]):
        largest = max(largest, moved[i])
    return largest


@njit(cache=True)
def converge_region(parallel_min, T, H, Hold, link, mat, fixed, check_fixed, coupled, g, gT, q,
                    front, qf, inv_d2, front_on, props,
                    lo, hi, size, dt, omega, tol, change, bounds, r_b, e_b, cap_b, lx_b, ly_b, lz_b,
                    offsets, shapes, local_margin, max_sweeps, max_corrections, counts):  # fmt: skip
    """Converge the region [lo, hi) of a step with the rest held, in one call: coarse corrections
    (when the region has coarse levels) and nonlinear sweeps alternate until the last correction and
    the last sweep each moved no voxel by ``tol`` (on fine grids, sweeps alone shrink a smooth error
    so slowly that a small change per sweep does not mean a small error); in between,
    :func:`.kernels.local_sweeps` settles what still moves once the corrections have. The coarse
    levels (``r_b`` … ``shapes``) are laid out for this region (:class:`CoarseLevels`).
    counts[0..2] accumulate sweeps, voxel updates and corrections."""
    move = np.empty((2, 3), dtype=np.int64)
    cells = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])
    has_coarse = shapes.shape[0] > 0
    smooth_error = np.inf if has_coarse else 0.0
    corrections = 0
    # The box sweep that found the region came last: its second colour is solved (kernels.full_sweep).
    solved_parity = 1
    for _ in range(max_sweeps):
        if smooth_error >= tol and corrections < max_corrections:
            smooth_error = _correct(T, H, Hold, link, mat, fixed, check_fixed, coupled, g, gT, q,
                                    front, qf, inv_d2, front_on, props, lo,
                                    hi, size, dt, solved_parity, corrections == 0, r_b, e_b, cap_b, lx_b,
                                    ly_b, lz_b, offsets, shapes, change)  # fmt: skip
            corrections += 1
            counts[1] += cells
            counts[2] += 1
        largest = sweep_box(parallel_min, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
                             front, qf, inv_d2, front_on, props, lo, hi,
                             size, dt, omega, tol, change, bounds, move, counts)  # fmt: skip
        solved_parity = 1
        if largest < tol and smooth_error < tol:
            return
        if smooth_error < tol or corrections >= max_corrections:
            if local_sweeps(parallel_min, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
                            front, qf, inv_d2, front_on, props, lo, hi,
                            size, dt, omega, tol, change, bounds, move, local_margin, max_sweeps,
                            counts):  # fmt: skip
                solved_parity = -1  # only part of the region was swept last
            smooth_error = np.inf if has_coarse and corrections < max_corrections else 0.0


class CoarseLevels:
    """The coarse grids of a region: one flat buffer per quantity holds all levels; the buffers
    are kept (and only grown) when the region changes shape, as it does almost every step."""

    NAMES = ("r", "e", "cap", "lx", "ly", "lz")

    def __init__(self, box_shape):
        self._buffers = {name: np.zeros(0) for name in self.NAMES}
        self.fit(box_shape)

    def fit(self, box_shape) -> None:
        """Lay the levels out for a region of this shape."""
        self.box_shape = tuple(int(n) for n in box_shape)
        shapes = []
        shape = self.box_shape
        # Axes are halved until the coarsest grid has a few cells; a thin axis stays at one cell.
        while np.prod(shape) > MAX_COARSEST_CELLS and len(shapes) < MAX_LEVELS:
            shape = tuple((n + 1) // 2 for n in shape)
            shapes.append(shape)
        self._shapes = np.array(shapes, dtype=np.int64).reshape(-1, 3)
        self._offsets = np.zeros(len(shapes) + 1, dtype=np.int64)
        self._offsets[1:] = np.cumsum([int(np.prod(sh)) for sh in shapes])
        total = int(self._offsets[-1])
        for name in self.NAMES:
            if self._buffers[name].size < total:
                self._buffers[name] = np.zeros(max(total, int(1.25 * self._buffers[name].size)))
        self._levels = None

    @property
    def levels(self) -> list[dict[str, np.ndarray]]:
        """Per level, views of its arrays by name (made when first asked for after a fit)."""
        if self._levels is None:
            self._levels = [
                {
                    name: self._buffers[name][self._offsets[n] : self._offsets[n + 1]].reshape(tuple(shape))
                    for name in self.NAMES
                }
                for n, shape in enumerate(self._shapes)
            ]
        return self._levels

    def __bool__(self) -> bool:
        return len(self._shapes) > 0

    @property
    def arrays(self) -> tuple:
        """(r, e, cap, lx, ly, lz buffers, offsets, shapes): the layout :func:`converge_region` takes."""
        b = self._buffers
        return b["r"], b["e"], b["cap"], b["lx"], b["ly"], b["lz"], self._offsets, self._shapes

    def cycle(self, pre: int = V_CYCLE_SWEEPS, post: int = V_CYCLE_SWEEPS) -> float:
        """Solve the first coarse level's system by a V-cycle; return the energy-optimal scale
        of its correction."""
        r, e, cap, lx, ly, lz, offsets, shapes = self.arrays
        return _cycle(e, r, cap, lx, ly, lz, offsets, shapes, pre, post)

    def build(self, with_links: bool = True) -> None:
        """Coarser operators from the first level's (filled by :func:`fine_residual`); the links
        only ``with_links`` (they were built for this region already otherwise)."""
        b = self._buffers
        _coarsen_levels(b["cap"], b["lx"], b["ly"], b["lz"], self._offsets, self._shapes, with_links)


# A layout without levels: converge_region then converges by sweeps alone (the preview).
NO_COARSE_LEVELS = CoarseLevels((1, 1, 1))
