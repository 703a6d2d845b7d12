"""Numba kernels of the implicit enthalpy solver (one backward-Euler step by red-black SOR).

Per voxel P the discrete energy balance of one time step dt is

    H_P − H_P^n = dt·[Σ_nb a_nb (T_nb − T_P) + g_P (T_ref,P − T_P)
                      + f_l·W (T_b − T_P) + f_l·Q_m + q_P]

(volumetric: a_nb = harmonic-mean k / Δx², g the probe/sphere coupling, W perfusion, Q_m metabolic
heat, f_l the liquid fraction, q an imposed source). At the freezing front (:func:`front_cell`) a_nb
is the Kirchhoff conductance ∫k dT / (ΔT·Δx²) and Pennes' terms get the departure of their mean
over the voxel's sub-voxel profile, both from the current iterate. With the neighbours and the
coefficients held, it is one monotone piecewise-linear equation in H_P that is solved exactly;
sweeping it over the grid in red-black order is a nonlinear Gauss–Seidel (SOR) solve of the
implicit step, unconditionally stable, so the time step is chosen for accuracy only
(:mod:`.multigrid` removes the smooth part of the error that the sweeps remove slowly).

Fields and conductances are float32 [i, j, k]; arithmetic is float64. Only the given region
[lo, hi) is updated, the voxels around it are held.
Cells with ``fixed`` = 1 (fixed faces) or 2 (inside a sphere source) are held; links into sphere
cells are replaced by the sub-voxel coupling in g (so they are skipped here).
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import njit, prange

# Columns of the material property table (float64[n_materials, N_PROPS]).
CF, CU, TS, TL, HL, KF, KU, KEXP, W, QM, TB = range(11)
N_PROPS = 11
KELVIN = 273.15


@njit(cache=True, inline="always")
def temperature_of(h, props, m):
    if h <= 0.0:
        return props[m, TS] + h / props[m, CF]
    if h >= props[m, HL]:
        return props[m, TL] + (h - props[m, HL]) / props[m, CU]
    return props[m, TS] + (props[m, TL] - props[m, TS]) * h / props[m, HL]


@njit(cache=True, inline="always")
def enthalpy_of(t, props, m):
    if t <= props[m, TS]:
        return props[m, CF] * (t - props[m, TS])
    if t >= props[m, TL]:
        return props[m, HL] + props[m, CU] * (t - props[m, TL])
    return props[m, HL] * (t - props[m, TS]) / (props[m, TL] - props[m, TS])


@njit(cache=True, inline="always")
def liquid_fraction(h, props, m):
    if h <= 0.0:
        return 0.0
    if h >= props[m, HL]:
        return 1.0
    return h / props[m, HL]


@njit(cache=True, inline="always")
def conductivity(h, props, m):
    if h <= 0.0:
        t = props[m, TS] + h / props[m, CF]
        if props[m, KEXP] == 0.0:
            return props[m, KF]
        ratio = (props[m, TS] + KELVIN) / max(t + KELVIN, 20.0)
        if props[m, KEXP] == 1.0:
            return props[m, KF] * ratio  # the usual ice fit; x**1 == x, without a call to pow
        return props[m, KF] * ratio ** props[m, KEXP]
    if h >= props[m, HL]:
        return props[m, KU]
    return props[m, KF] + (props[m, KU] - props[m, KF]) * (h / props[m, HL])


@njit(cache=True, inline="always")
def conductivity_at(t, props, m):
    """k(T) of material m (W/m/K), as :func:`conductivity` gives it for the enthalpy of T."""
    ts, tl = props[m, TS], props[m, TL]
    if t <= ts:
        if props[m, KEXP] == 0.0:
            return props[m, KF]
        ratio = (ts + KELVIN) / max(t + KELVIN, 20.0)
        if props[m, KEXP] == 1.0:
            return props[m, KF] * ratio
        return props[m, KF] * ratio ** props[m, KEXP]
    if t >= tl:
        return props[m, KU]
    return props[m, KF] + (props[m, KU] - props[m, KF]) * (t - ts) / (tl - ts)


@njit(cache=True, inline="always")
def kirchhoff(t, props, m):
    """The Kirchhoff potential Φ(T) = ∫ k dT from the solidus (W/m), in closed form per phase."""
    ts, tl, kf, ku = props[m, TS], props[m, TL], props[m, KF], props[m, KU]
    if t <= ts:
        n = props[m, KEXP]
        if n == 0.0:
            return kf * (t - ts)
        c = ts + KELVIN
        u = max(t + KELVIN, 20.0)
        if n == 1.0:
            return kf * c * math.log(u / c)
        return kf * c**n * (u ** (1.0 - n) - c ** (1.0 - n)) / (1.0 - n)
    width = tl - ts
    if t < tl:
        x = t - ts
        return kf * x + (ku - kf) * x * x / (2.0 * width)
    return 0.5 * width * (kf + ku) + ku * (t - tl)


@njit(cache=True, inline="always")
def kirchhoff_inverse(p, props, m):
    """T of the Kirchhoff potential p (the inverse of :func:`kirchhoff`)."""
    ts, tl, kf, ku = props[m, TS], props[m, TL], props[m, KF], props[m, KU]
    if p <= 0.0:
        n = props[m, KEXP]
        if n == 0.0:
            return ts + p / kf
        c = ts + KELVIN
        if n == 1.0:
            return c * math.exp(p / (kf * c)) - KELVIN
        return (c ** (1.0 - n) + p * (1.0 - n) / (kf * c**n)) ** (1.0 / (1.0 - n)) - KELVIN
    width = tl - ts
    p_liquidus = 0.5 * width * (kf + ku)
    if p >= p_liquidus:
        return tl + (p - p_liquidus) / ku
    # kf·x + (ku − kf)·x²/(2·width) = p, the root that is continuous as ku → kf
    a = (ku - kf) / (2.0 * width)
    return ts + 2.0 * p / (kf + math.sqrt(kf * kf + 4.0 * a * p))


@njit(cache=True, inline="always")
def _pennes_departure_flux(t, own_fraction, props, m):
    """(f_l(T) − f_l,P)·(W·(T_b − T) + Q_m)·k(T): the departure of Pennes' terms at T from the
    voxel's own (taken at its liquid fraction), weighted by k for an integral over Φ."""
    ts, tl = props[m, TS], props[m, TL]
    if t <= ts:
        fl = 0.0
    elif t >= tl:
        fl = 1.0
    else:
        fl = (t - ts) / (tl - ts)
    return (
        (fl - own_fraction) * (props[m, W] * (props[m, TB] - t) + props[m, QM]) * conductivity_at(t, props, m)
    )


@njit(cache=True, inline="always")
def _simpson(a, b, own_fraction, props, m):
    if b <= a:
        return 0.0
    return (
        (b - a)
        / 6.0
        * (
            _pennes_departure_flux(a, own_fraction, props, m)
            + 4.0 * _pennes_departure_flux(0.5 * (a + b), own_fraction, props, m)
            + _pennes_departure_flux(b, own_fraction, props, m)
        )
    )


@njit(cache=True, inline="always")
def half_link_departure(t, t_face, p, p_face, own_fraction, props, m):
    """Mean departure of Pennes' terms (W/m³) over the half-link from a voxel centre at t (Φ = p)
    to the shared face at t_face (Φ = p_face), with Φ linear along it: ∫(departure)·k dT / ΔΦ.
    Per phase the integrand is a cubic (mushy), linear (unfrozen) or smooth (ice) function of T, so
    Simpson's rule on each phase's piece is exact or nearly; in the phase of the voxel's own liquid
    fraction (ice for a frozen voxel, unfrozen tissue for an unfrozen one) it is zero."""
    lo, hi = min(t, t_face), max(t, t_face)
    if hi - lo < 1e-6:
        return 0.0
    ts, tl = props[m, TS], props[m, TL]
    total = 0.0
    if own_fraction > 0.0:
        total += _simpson(lo, min(hi, ts), own_fraction, props, m)
    total += _simpson(max(lo, ts), min(hi, tl), own_fraction, props, m)
    if own_fraction < 1.0:
        total += _simpson(max(lo, tl), hi, own_fraction, props, m)
    return total / (p_face - p) if t_face > t else total / (p - p_face)


@njit(cache=True, inline="always")
def spans_mushy(ta, tb, props, m):
    """Whether temperatures between ta and tb reach into the mushy range of material m."""
    return min(ta, tb) < props[m, TL] and max(ta, tb) > props[m, TS]


@njit(cache=True, inline="always")
def solve_cell(rhs, a, props, m):
    """Solve H(T) + a·T = rhs for T (H piecewise linear, monotone); return (T, H)."""
    f_s = a * props[m, TS]
    if rhs <= f_s:
        t = (rhs + props[m, CF] * props[m, TS]) / (props[m, CF] + a)
        return t, rhs - a * t
    f_l = props[m, HL] + a * props[m, TL]
    if rhs >= f_l:
        t = (rhs - props[m, HL] + props[m, CU] * props[m, TL]) / (props[m, CU] + a)
        return t, rhs - a * t
    dt_mushy = props[m, TL] - props[m, TS]
    if dt_mushy <= 0.0:
        t = props[m, TS]
        return t, rhs - a * t
    slope = props[m, HL] / dt_mushy
    t = (rhs + slope * props[m, TS]) / (slope + a)
    return t, rhs - a * t


@njit(cache=True, inline="always")
def _link(kp, kn, inv_d2):
    s = kp + kn
    if s <= 0.0:
        return 0.0
    return 2.0 * kp * kn / s * inv_d2


def _prepare_step(
    T, H, Hold, Hprev, kcell, link, mat, fixed, front, qf, front_on, props, lo, hi, size, inv_d2, ratio
):
    """Lag the conductivity (box plus one shell), keep H^n and start from a linear extrapolation.

    The first guess H^n + ratio·(H^n − H^(n−1)) (ratio = dt_new/dt_old, 0 after a change of state)
    removes most of the smooth error that Gauss–Seidel is slow to remove; the converged step does
    not depend on it. link[a, i, j, k] gets the conductance (W/m³K) between cell (i, j, k) and its
    upper neighbour along axis a, so that the sweeps need no division per link.
    """
    i0, j0, k0 = max(lo[0] - 1, 0), max(lo[1] - 1, 0), max(lo[2] - 1, 0)
    i1, j1, k1 = min(hi[0] + 1, size[0]), min(hi[1] + 1, size[1]), min(hi[2] + 1, size[2])
    for i in prange(i0, i1):
        iu = np.uint64(i)
        inside_i = lo[0] <= i < hi[0]
        for j in range(j0, j1):
            ju = np.uint64(j)
            inside_j = inside_i and lo[1] <= j < hi[1]
            for k in range(k0, k1):
                ku = np.uint64(k)
                h = H[iu, ju, ku]
                m = mat[iu, ju, ku]
                kcell[iu, ju, ku] = conductivity(h, props, m) if fixed[iu, ju, ku] != 2 else 0.0
                if front_on:
                    front[iu, ju, ku] = 0
                    qf[iu, ju, ku] = 0.0
                if inside_j and lo[2] <= k < hi[2]:
                    Hold[iu, ju, ku] = h
                    if fixed[iu, ju, ku] == 0 and ratio > 0.0:
                        # Extrapolate T, not H: across the latent plateau H falls steeply while T
                        # stays put, and an extrapolated H would overshoot far into the ice.
                        # Extrapolate within one phase only: a cell that just left the latent
                        # plateau would otherwise be sent far into the ice (H fell steeply).
                        hp = Hprev[iu, ju, ku]
                        hl = props[m, HL]
                        guess = h + ratio * (h - hp)
                        if h <= 0.0:
                            guess = min(guess, 0.0) if hp <= 0.0 else h
                        elif h >= hl:
                            guess = max(guess, hl) if hp >= hl else h
                        else:
                            guess = min(max(guess, 0.0), hl) if 0.0 < hp < hl else h
                        H[iu, ju, ku] = guess
                        T[iu, ju, ku] = temperature_of(guess, props, m)
                    Hprev[iu, ju, ku] = h
    nx, ny, nz = size[0], size[1], size[2]
    for i in prange(i0, i1):
        iu = np.uint64(i)
        for j in range(j0, j1):
            ju = np.uint64(j)
            for k in range(k0, k1):
                ku = np.uint64(k)
                kp = kcell[iu, ju, ku]
                if i < nx - 1:
                    link[0, iu, ju, ku] = _link(kp, kcell[iu + ONE, ju, ku], inv_d2[0])
                if j < ny - 1:
                    link[1, iu, ju, ku] = _link(kp, kcell[iu, ju + ONE, ku], inv_d2[1])
                if k < nz - 1:
                    link[2, iu, ju, ku] = _link(kp, kcell[iu, ju, ku + ONE], inv_d2[2])
                if front_on and fixed[iu, ju, ku] == 0:
                    # The front voxels of the step: both ends of a link (same material, neither
                    # held) that reaches into the mushy range; a voxel whose phase changes during
                    # the sweeps marks itself and its neighbours (mark_front). Both write 1 only.
                    m = mat[iu, ju, ku]
                    t = T[iu, ju, ku]
                    if props[m, TS] < t < props[m, TL]:
                        front[iu, ju, ku] = 1
                    if i < nx - 1 and spans_mushy(t, T[iu + ONE, ju, ku], props, m):
                        if mat[iu + ONE, ju, ku] == m and fixed[iu + ONE, ju, ku] == 0:
                            front[iu, ju, ku] = 1
                            front[iu + ONE, ju, ku] = 1
                    if j < ny - 1 and spans_mushy(t, T[iu, ju + ONE, ku], props, m):
                        if mat[iu, ju + ONE, ku] == m and fixed[iu, ju + ONE, ku] == 0:
                            front[iu, ju, ku] = 1
                            front[iu, ju + ONE, ku] = 1
                    if k < nz - 1 and spans_mushy(t, T[iu, ju, ku + ONE], props, m):
                        if mat[iu, ju, ku + ONE] == m and fixed[iu, ju, ku + ONE] == 0:
                            front[iu, ju, ku] = 1
                            front[iu, ju, ku + ONE] = 1


# Unsigned indices: numba tests every signed index for a negative (from-the-end) value, about a
# fifth of a sweep's time; the sweeps index without sign (and test the domain faces on signed copies).
ONE = np.uint64(1)


@njit(cache=True, inline="always")
def front_cell(i, j, k, T, link, mat, fixed, props, size, inv_d2, m, fl):
    """The sub-voxel front of voxel (i, j, k), material m, liquid fraction fl, at the current
    iterate: the Kirchhoff conductance ∫k dT / ΔT on its six links (written to ``link``: its
    neighbours read the same value, so the step stays conservative) and the mean departure of
    Pennes' terms over the voxel from its own, with Φ = ∫k dT linear between the centres (the
    picture of the front within the voxel pair that makes a 1 mm grid agree with a fine one,
    benchmarks/front_convergence_1d.py). Returns (Σ links, Σ links·T_nb, departure W/m³).

    Links to a held voxel or another material keep their harmonic mean. Each axis's departure
    (the mean of its two half-links) is weighed by the square of the axis's share of the gradient
    of Φ, so that a front normal to an axis takes that axis's 1-D value."""
    iu, ju, ku = np.uint64(i), np.uint64(j), np.uint64(k)
    t_p = float(T[iu, ju, ku])
    p_p = kirchhoff(t_p, props, m)
    asum = 0.0
    s = 0.0
    weighted = 0.0
    norm = 0.0
    for axis in range(3):
        departure = 0.0
        grad = 0.0
        for side in range(2):
            step = 2 * side - 1  # the lower neighbour along the axis, then the upper one
            ii = i + step if axis == 0 else i
            jj = j + step if axis == 1 else j
            kk = k + step if axis == 2 else k
            if ii < 0 or jj < 0 or kk < 0 or ii >= size[0] or jj >= size[1] or kk >= size[2]:
                continue
            # Unsigned from here on (the bounds are tested): no test for from-the-end indices.
            ni, nj, nk = np.uint64(ii), np.uint64(jj), np.uint64(kk)
            li, lj, lk = (ni, nj, nk) if side == 0 else (iu, ju, ku)
            t_n = float(T[ni, nj, nk])
            a = float(link[axis, li, lj, lk])
            if fixed[ni, nj, nk] == 0 and mat[ni, nj, nk] == m:
                p_n = kirchhoff(t_n, props, m)
                d = t_n - t_p
                k_link = (p_n - p_p) / d if abs(d) > 1e-6 else conductivity_at(t_p, props, m)
                link[axis, li, lj, lk] = k_link * inv_d2[axis]
                a = float(link[axis, li, lj, lk])  # as stored, as the neighbour will read it
                # The face lies between the centres (Φ is monotone): only a pair that reaches into
                # the mushy range can have a half-link that does.
                if spans_mushy(t_p, t_n, props, m):
                    p_face = 0.5 * (p_p + p_n)
                    t_face = kirchhoff_inverse(p_face, props, m)
                    if spans_mushy(t_p, t_face, props, m):
                        departure += 0.5 * half_link_departure(t_p, t_face, p_p, p_face, fl, props, m)
                grad += (p_n - p_p) if side == 1 else (p_p - p_n)
            asum += a
            s += a * t_n
        weighted += grad * grad * departure
        norm += grad * grad
    return asum, s, (weighted / norm if norm > 0.0 else 0.0)


@njit(cache=True, inline="always")
def mark_front(i, j, k, front, size):
    """Mark voxel (i, j, k) and its six neighbours as front voxels (its phase changed)."""
    front[i, j, k] = 1
    if i > 0:
        front[i - 1, j, k] = 1
    if i < size[0] - 1:
        front[i + 1, j, k] = 1
    if j > 0:
        front[i, j - 1, k] = 1
    if j < size[1] - 1:
        front[i, j + 1, k] = 1
    if k > 0:
        front[i, j, k - 1] = 1
    if k < size[2] - 1:
        front[i, j, k + 1] = 1


def _sor_sweep(
    color,
    T,
    H,
    Hold,
    link,
    mat,
    fixed,
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
    omega,
    tol,
    change,
    bounds,
):
    """One half-sweep (cells with (i+j+k) % 2 == color) over [lo, hi).

    change[i] gets the largest |ΔT| of plane i and bounds[i] = (jmin, jmax) of the rows of plane i
    where a cell changed by more than ``tol`` (empty: jmin > jmax), so that further sweeps can be
    confined to where the solution still moves. A region that does not touch the domain faces
    skips their checks (the compiler takes the test out of the inner loop): about a sixth faster.
    """
    nx, ny, nz = size[0], size[1], size[2]
    interior = (
        lo[0] >= 1 and lo[1] >= 1 and lo[2] >= 1 and hi[0] <= nx - 1 and hi[1] <= ny - 1 and hi[2] <= nz - 1
    )
    for i_signed in prange(lo[0], hi[0]):
        i = np.uint64(i_signed)
        largest = 0.0
        jmin, jmax = ny, -1
        for j_signed in range(lo[1], hi[1]):
            j = np.uint64(j_signed)
            row = 0.0
            start = lo[2] + ((i_signed + j_signed + lo[2] + color) & 1)
            for k_signed in range(start, hi[2], 2):
                k = np.uint64(k_signed)
                if fixed[i, j, k] != 0:
                    continue
                m = mat[i, j, k]
                h_cur = H[i, j, k]
                fl = liquid_fraction(h_cur, props, m)
                marked = front_on and front[i, j, k] != 0
                if marked:
                    asum, s, departure = front_cell(
                        i_signed, j_signed, k_signed, T, link, mat, fixed, props, size, inv_d2, m, fl
                    )
                    qf[i, j, k] = departure
                    s += qf[i, j, k]  # as stored, as the close of the step reads it
                elif interior:
                    a1 = link[0, i - ONE, j, k]
                    a2 = link[0, i, j, k]
                    a3 = link[1, i, j - ONE, k]
                    a4 = link[1, i, j, k]
                    a5 = link[2, i, j, k - ONE]
                    a6 = link[2, i, j, k]
                    asum = float(a1) + a2 + a3 + a4 + a5 + a6
                    s = (
                        a1 * float(T[i - ONE, j, k])
                        + a2 * float(T[i + ONE, j, k])
                        + a3 * float(T[i, j - ONE, k])
                        + a4 * float(T[i, j + ONE, k])
                        + a5 * float(T[i, j, k - ONE])
                        + a6 * float(T[i, j, k + ONE])
                    )
                else:
                    asum = 0.0
                    s = 0.0
                    if i_signed > 0:
                        a = link[0, i - ONE, j, k]
                        asum += a
                        s += a * T[i - ONE, j, k]
                    if i_signed < nx - 1:
                        a = link[0, i, j, k]
                        asum += a
                        s += a * T[i + ONE, j, k]
                    if j_signed > 0:
                        a = link[1, i, j - ONE, k]
                        asum += a
                        s += a * T[i, j - ONE, k]
                    if j_signed < ny - 1:
                        a = link[1, i, j, k]
                        asum += a
                        s += a * T[i, j + ONE, k]
                    if k_signed > 0:
                        a = link[2, i, j, k - ONE]
                        asum += a
                        s += a * T[i, j, k - ONE]
                    if k_signed < nz - 1:
                        a = link[2, i, j, k]
                        asum += a
                        s += a * T[i, j, k + ONE]
                w = props[m, W] * fl
                asum += w
                s += w * props[m, TB] + fl * props[m, QM]
                # Coupling and sources exist at a few cells only: read them there alone.
                if coupled[i, j, k] != 0:
                    asum += g[i, j, k]
                    s += gT[i, j, k] + q[i, j, k]
                t_new, h_new = solve_cell(Hold[i, j, k] + dt * s, dt * asum, props, m)
                # Over-relax only within one phase: across the latent plateau SOR can cycle.
                if omega != 1.0:
                    if h_cur <= 0.0 and h_new <= 0.0:
                        h_new = min(h_cur + omega * (h_new - h_cur), 0.0)
                        t_new = temperature_of(h_new, props, m)
                    elif h_cur >= props[m, HL] and h_new >= props[m, HL]:
                        h_new = max(h_cur + omega * (h_new - h_cur), props[m, HL])
                        t_new = temperature_of(h_new, props, m)
                row = max(row, abs(t_new - T[i, j, k]))
                if front_on and (
                    (h_new <= 0.0) != (h_cur <= 0.0) or (h_new >= props[m, HL]) != (h_cur >= props[m, HL])
                ):
                    mark_front(i_signed, j_signed, k_signed, front, size)
                H[i, j, k] = h_new
                T[i, j, k] = t_new
            largest = max(largest, row)
            if row > tol:
                jmin = min(jmin, j_signed)
                jmax = max(jmax, j_signed)
        change[i] = largest
        bounds[i, 0] = jmin
        bounds[i, 1] = jmax


def _finish_step(
    T,
    H,
    Hold,
    Tmin,
    link,
    mat,
    fixed,
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
    held_faces,
    sums,
):
    """Close the step conservatively and collect its energy terms.

    With the temperatures of the (converged) iterate held, every voxel's enthalpy is set to
    H^n + dt·(net heat inflow), the fluxes between voxels being equal and opposite; so the total
    enthalpy changes by exactly dt·(boundary + coupling + perfusion + metabolic + source heat), the
    terms returned per plane in sums[i] (per unit volume; the caller multiplies by the voxel volume):
    (ΔH, boundary inflow, probe/sphere coupling, perfusion, metabolic, imposed source). The correction
    to the iterate is of the order of its residual. Temperatures follow in :func:`update_temperature`.
    ``held_faces`` says that a fixed face lies in the box or next to it; otherwise only the box's own
    surface exchanges heat with the outside, and the voxels inside it skip the test.
    """
    nx, ny, nz = size[0], size[1], size[2]
    for i in prange(lo[0], hi[0]):
        iu = np.uint64(i)
        inside_i = not held_faces and lo[0] < i < hi[0] - 1
        d_h = 0.0
        ext = 0.0
        coup = 0.0
        perf = 0.0
        met = 0.0
        src = 0.0
        for j in range(lo[1], hi[1]):
            ju = np.uint64(j)
            for k in range(lo[2], hi[2]):
                ku = np.uint64(k)
                if fixed[iu, ju, ku] != 0:
                    continue
                m = mat[iu, ju, ku]
                t = T[iu, ju, ku]
                inner = 0.0
                outer = 0.0
                if inside_i and lo[1] < j < hi[1] - 1 and lo[2] < k < hi[2] - 1:
                    # Each flux in float32 and their sum in float64, as in the branch below.
                    inner = (
                        0.0
                        + link[0, iu - ONE, ju, ku] * (T[iu - ONE, ju, ku] - t)
                        + link[0, iu, ju, ku] * (T[iu + ONE, ju, ku] - t)
                        + link[1, iu, ju - ONE, ku] * (T[iu, ju - ONE, ku] - t)
                        + link[1, iu, ju, ku] * (T[iu, ju + ONE, ku] - t)
                        + link[2, iu, ju, ku - ONE] * (T[iu, ju, ku - ONE] - t)
                        + link[2, iu, ju, ku] * (T[iu, ju, ku + ONE] - t)
                    )
                else:
                    # Links to voxels outside the box or held fixed carry heat across its surface.
                    if i > 0:
                        f = link[0, iu - ONE, ju, ku] * (T[iu - ONE, ju, ku] - t)
                        if i - 1 < lo[0] or fixed[iu - ONE, ju, ku] == 1:
                            outer += f
                        else:
                            inner += f
                    if i < nx - 1:
                        f = link[0, iu, ju, ku] * (T[iu + ONE, ju, ku] - t)
                        if i + 1 >= hi[0] or fixed[iu + ONE, ju, ku] == 1:
                            outer += f
                        else:
                            inner += f
                    if j > 0:
                        f = link[1, iu, ju - ONE, ku] * (T[iu, ju - ONE, ku] - t)
                        if j - 1 < lo[1] or fixed[iu, ju - ONE, ku] == 1:
                            outer += f
                        else:
                            inner += f
                    if j < ny - 1:
                        f = link[1, iu, ju, ku] * (T[iu, ju + ONE, ku] - t)
                        if j + 1 >= hi[1] or fixed[iu, ju + ONE, ku] == 1:
                            outer += f
                        else:
                            inner += f
                    if k > 0:
                        f = link[2, iu, ju, ku - ONE] * (T[iu, ju, ku - ONE] - t)
                        if k - 1 < lo[2] or fixed[iu, ju, ku - ONE] == 1:
                            outer += f
                        else:
                            inner += f
                    if k < nz - 1:
                        f = link[2, iu, ju, ku] * (T[iu, ju, ku + ONE] - t)
                        if k + 1 >= hi[2] or fixed[iu, ju, ku + ONE] == 1:
                            outer += f
                        else:
                            inner += f
                fl = liquid_fraction(H[iu, ju, ku], props, m)
                c_coup = 0.0
                c_src = 0.0
                if coupled[iu, ju, ku] != 0:
                    c_coup = gT[iu, ju, ku] - g[iu, ju, ku] * t
                    c_src = q[iu, ju, ku]
                c_perf = props[m, W] * fl * (props[m, TB] - t)
                if front_on and front[iu, ju, ku] != 0:
                    c_perf += qf[iu, ju, ku]  # the sub-voxel front's share of Pennes' terms
                c_met = props[m, QM] * fl
                h_new = Hold[iu, ju, ku] + dt * (inner + outer + c_coup + c_perf + c_met + c_src)
                H[iu, ju, ku] = h_new
                d_h += H[iu, ju, ku] - Hold[iu, ju, ku]  # as stored (float32)
                ext += outer
                coup += c_coup
                perf += c_perf
                met += c_met
                src += c_src
        sums[i, 0] = d_h
        sums[i, 1] = ext
        sums[i, 2] = coup
        sums[i, 3] = perf
        sums[i, 4] = met
        sums[i, 5] = src


def _update_temperature(T, H, Tmin, mat, fixed, props, lo, hi, levels, counts, basal_t, dep_row, dep_col):
    """T from H after the conservative update; lower Tmin; count voxels at or below each level.

    dep_row[i, j] and dep_col[i, k] get the largest departure |T − basal| of the row (i, j) and of
    the column (i, ·, k) of the box (0 for held voxels): the profiles the active box is resized by.
    """
    nlev = levels.shape[0]
    for i in prange(lo[0], hi[0]):
        iu = np.uint64(i)
        for lv in range(nlev):
            counts[i, lv] = 0
        for k in range(lo[2], hi[2]):
            dep_col[i, k] = 0.0
        for j in range(lo[1], hi[1]):
            ju = np.uint64(j)
            row = 0.0
            for k in range(lo[2], hi[2]):
                ku = np.uint64(k)
                t = T[iu, ju, ku]
                if fixed[iu, ju, ku] == 0:
                    m = mat[iu, ju, ku]
                    T[iu, ju, ku] = temperature_of(H[iu, ju, ku], props, m)
                    t = T[iu, ju, ku]  # as stored (float32)
                    d = abs(t - basal_t[m])
                    row = max(row, d)
                    dep_col[i, k] = max(dep_col[i, k], d)
                Tmin[iu, ju, ku] = min(Tmin[iu, ju, ku], t)
                for lv in range(nlev):
                    if t <= levels[lv]:
                        counts[i, lv] += 1
            dep_row[i, j] = row


@njit(cache=True)
def moving_region(change, bounds, lo, hi, move_lo, move_hi):
    """Largest change of a half-sweep over [lo, hi); widen [move_lo, move_hi) to its moving rows
    (the k range of a moving row is the region's)."""
    largest = 0.0
    for i in range(lo[0], hi[0]):
        largest = max(largest, change[i])
        if bounds[i, 1] >= bounds[i, 0]:
            move_lo[0] = min(move_lo[0], i)
            move_hi[0] = max(move_hi[0], i + 1)
            move_lo[1] = min(move_lo[1], bounds[i, 0])
            move_hi[1] = max(move_hi[1], bounds[i, 1] + 1)
            move_lo[2] = lo[2]
            move_hi[2] = hi[2]
    return largest


def _fill_basal(T, H, Hprev, Tmin, mat, fixed, basal_t, basal_h, lo, hi, lower_min):
    """Set the non-fixed cells of a sub-box to their material's basal (probe-free) state."""
    for i in prange(lo[0], hi[0]):
        for j in range(lo[1], hi[1]):
            for k in range(lo[2], hi[2]):
                if fixed[i, j, k] != 0:
                    continue
                m = mat[i, j, k]
                T[i, j, k] = basal_t[m]
                H[i, j, k] = basal_h[m]
                Hprev[i, j, k] = basal_h[m]
                if lower_min and basal_t[m] < Tmin[i, j, k]:
                    Tmin[i, j, k] = basal_t[m]


@njit(cache=True, parallel=True)
def enthalpy_field(T, mat, props, H):
    nx, ny, nz = T.shape
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                H[i, j, k] = enthalpy_of(T[i, j, k], props, mat[i, j, k])


def _renamed(function, suffix: str):
    """A copy of ``function`` under another name."""
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__ + suffix, function.__defaults__,
        function.__closure__,
    )  # fmt: skip
    copy.__qualname__ = function.__qualname__ + suffix
    return copy


def parallel_and_serial(function):
    """The parallel and the serial compiled variant of a kernel.

    Each is compiled from a renamed copy: numba's on-disk cache keys a function by its name, line
    and signature but not by the ``parallel`` flag, so two variants of one function would share one
    cache entry, and whichever was compiled first would serve both.
    """
    return (
        njit(cache=True, parallel=True)(_renamed(function, "_parallel")),
        njit(cache=True)(_renamed(function, "_serial")),
    )


# Parallel over the outer axis for large boxes; serial for small ones, where waking threads on a
# busy machine costs more than the work itself.
sor_sweep, sor_sweep_serial = parallel_and_serial(_sor_sweep)


@njit(cache=True)
def full_sweep(
    parallel,
    T,
    H,
    Hold,
    link,
    mat,
    fixed,
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
    omega,
    tol,
    change,
    bounds,
    move,
):
    """Both colours of a sweep over [lo, hi) in one call (a call from Python costs about as much as
    a small region's sweep), by the parallel or the serial kernel: returns the largest change;
    move[0] / move[1] become the bounds [lo, hi) of the cells that changed by more than ``tol``."""
    for a in range(3):
        move[0, a] = hi[a]
        move[1, a] = lo[a]
    largest = 0.0
    for color in range(2):
        if parallel:
            sor_sweep(
                color, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
                front, qf, inv_d2, front_on, props, lo, hi, size, dt, omega, tol,
                change, bounds,
            )  # fmt: skip
        else:
            sor_sweep_serial(
                color, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
                front, qf, inv_d2, front_on, props, lo, hi, size, dt, omega, tol,
                change, bounds,
            )  # fmt: skip
        largest = max(largest, moving_region(change, bounds, lo, hi, move[0], move[1]))
    return largest


prepare_step, prepare_step_serial = parallel_and_serial(_prepare_step)
finish_step, finish_step_serial = parallel_and_serial(_finish_step)
update_temperature, update_temperature_serial = parallel_and_serial(_update_temperature)
fill_basal, fill_basal_serial = parallel_and_serial(_fill_basal)


@njit(cache=True)
def sweep_box(parallel_min, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
               front, qf, inv_d2, front_on, props, lo, hi, size, dt,
               omega, tol, change, bounds, move, counts):  # fmt: skip
    """full_sweep of [lo, hi), parallel from ``parallel_min`` voxels on; counts[0] += 1 sweep,
    counts[1] += its voxels."""
    voxels = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])
    counts[0] += 1
    counts[1] += voxels
    return full_sweep(
        voxels >= parallel_min, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
        front, qf, inv_d2, front_on, props, lo, hi, size, dt,
        omega, tol, change, bounds, move,
    )  # fmt: skip


@njit(cache=True)
def local_sweeps(parallel_min, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
                 front, qf, inv_d2, front_on, props, region_lo,
                 region_hi, size, dt, omega, tol, change, bounds, move, local_margin, max_sweeps,
                 counts):  # fmt: skip
    """Sweep the part of the region [region_lo, region_hi) that still moves (``move``, plus
    ``local_margin``) until it settles or spreads over more than half of the region; whether it
    swept at all. counts[0] / counts[1] accumulate the sweeps and the voxel updates."""
    sub_lo = np.empty(3, dtype=np.int64)
    sub_hi = np.empty(3, dtype=np.int64)
    region_voxels = (
        (region_hi[0] - region_lo[0]) * (region_hi[1] - region_lo[1]) * (region_hi[2] - region_lo[2])
    )
    swept = False
    for _ in range(max_sweeps):
        empty = False
        for a in range(3):
            sub_lo[a] = max(move[0, a] - local_margin, region_lo[a])
            sub_hi[a] = min(move[1, a] + local_margin, region_hi[a])
            empty = empty or sub_hi[a] <= sub_lo[a]
        sub_voxels = (sub_hi[0] - sub_lo[0]) * (sub_hi[1] - sub_lo[1]) * (sub_hi[2] - sub_lo[2])
        if empty or sub_voxels > 0.5 * region_voxels:
            return swept
        largest = sweep_box(parallel_min, T, H, Hold, link, mat, fixed, coupled, g, gT, q,
                             front, qf, inv_d2, front_on, props, sub_lo,
                             sub_hi, size, dt, omega, tol, change, bounds, move, counts)  # fmt: skip
        swept = True
        if largest < tol:
            return swept
    return swept
