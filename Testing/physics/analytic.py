"""Exact solutions for verifying the solver (docs/physics.md §4.5), in SI units (m, s, °C, W, J).

Used by the tests and by ``Testing/physics/verify.py``; scipy is a test-only dependency.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf, erfc, expi, k0, k1


def neumann_lambda(ks, Cs, kl, Cl, L, Tw, Tm, Ti):
    """Root λ of the two-phase planar Neumann problem; also returns α_s, α_l."""
    a_s, a_l = ks / Cs, kl / Cl
    nu = np.sqrt(a_s / a_l)

    def f(lam):
        q_s = ks * (Tm - Tw) * np.exp(-(lam**2)) / (np.sqrt(np.pi * a_s) * erf(lam))
        q_l = kl * (Ti - Tm) * np.exp(-((lam * nu) ** 2)) / (np.sqrt(np.pi * a_l) * erfc(lam * nu))
        return q_s - q_l - L * lam * np.sqrt(a_s)

    return brentq(f, 1e-6, 5.0), a_s, a_l


def front(t, lam, a_s):
    """Front position X(t) (planar) or radius R(t) (line sink), m."""
    return 2 * lam * np.sqrt(a_s * t)


def neumann_T(x, t, lam, a_s, a_l, Tw, Tm, Ti):
    if x < front(t, lam, a_s):
        return Tw + (Tm - Tw) * erf(x / (2 * np.sqrt(a_s * t))) / erf(lam)
    return Ti - (Ti - Tm) * erfc(x / (2 * np.sqrt(a_l * t))) / erfc(lam * np.sqrt(a_s / a_l))


def line_sink_lambda(q, ks, Cs, L):
    a_s = ks / Cs
    return brentq(lambda lam: q / (4 * np.pi) * np.exp(-(lam**2)) - L * a_s * lam**2, 1e-6, 10.0), a_s


def line_sink_T(r, t, q, ks, a_s, lam, Tm=0.0):
    return Tm + q / (4 * np.pi * ks) * (expi(-(r**2) / (4 * a_s * t)) - expi(-(lam**2)))


def steady_sphere_R(a, Tp, Tf, Tinf, kf, ku, W):
    m = np.sqrt(W / ku)

    def g(R):
        return kf * (Tf - Tp) / (R**2 * (1 / a - 1 / R)) - ku * (Tinf - Tf) * (1 / R + m)

    return brentq(g, a * 1.0001, 1.0)


def steady_cyl_R(a, Tp, Tf, Tinf, kf, ku, W):
    m = np.sqrt(W / ku)

    def g(R):
        return kf * (Tf - Tp) / (R * np.log(R / a)) - ku * (Tinf - Tf) * m * k1(m * R) / k0(m * R)

    return brentq(g, a * 1.0001, 1.0)


def crossing(positions: np.ndarray, values: np.ndarray, level: float) -> float:
    """First position where a profile rising with position crosses ``level`` (linear interpolation)."""
    above = np.nonzero(values > level)[0]
    if above.size == 0:
        return float(positions[-1])
    n = int(above[0])
    if n == 0:
        return float(positions[0])
    x0, x1 = positions[n - 1], positions[n]
    v0, v1 = values[n - 1], values[n]
    return float(x0 + (level - v0) * (x1 - x0) / (v1 - v0))
