"""1-D study of the grid convergence of the ice ball's edge (issue 13): which treatment of the voxel
pair across the freezing front makes a 1 mm grid agree with a fine one.

A planar slab of tissue (a material of ``Resources/materials.json``, basal temperature at first) has
one face held at T0 from t = 0; after ``--duration`` seconds the 0, −20 and −40 °C points are found
by linear interpolation between cell centres, on each spacing and on a fine reference grid (0.1 mm,
where every scheme agrees). The voxel model is the solver's (``physics/kernels.py``): enthalpy with
a linear mushy range, conductivity and Pennes' terms (perfusion, metabolic heat) scaled by the
liquid fraction, k_f(T) = k_frozen·(T_s/T)^n in the ice. Time is integrated explicitly with steps far
below the solver's (the method-of-lines answer of each spatial scheme; the solver's 24 s implicit
steps move the 3-D result by about 0.5 %, docs/physics.md). Several face temperatures are run because
a coarse front locks to the grid and its error depends on where the front falls between centres.

Schemes (``--schemes``):

- ``harmonic``: the solver as it is — harmonic-mean conductance of the two voxels, each voxel's
  Pennes terms at its own temperature.
- ``kirchhoff-front`` / ``kirchhoff``: the conductance of a link is ∫k dT / ΔT between the two
  voxel temperatures (the Kirchhoff transform; exact for a steady 1-D link without sources), on the
  links that span the mushy range or on every link.
- ``averaged``: harmonic conductance; each voxel's Pennes terms averaged over the piecewise-linear
  temperature profile between its centre and its neighbours' (the scheme of branch s3-converge).
- ``kirchhoff+averaged``: both of the above, the averaging still over a linear T profile.
- ``kirchhoff-profile``: Kirchhoff conductance, and Pennes' terms averaged over the profile that
  this conductance implies: the Kirchhoff potential Φ = ∫k dT linear between centres, T = Φ⁻¹. The
  conductance and the share of each voxel that perfuses (and at what temperature) then come from
  one sub-voxel picture of the front.
- ``kirchhoff-profile-lag24``: the same, with the Pennes correction (profile average minus the
  voxel's own value) evaluated once every 24 s (the solver's step at 1 mm) and held in between,
  the plain term staying current: what a port that computes the correction once per time step,
  where the neighbours are already loaded (``prepare_step``), would do.
- ``sub-voxel-front``: the scheme once ported to the solver and reverted (``kernels.front_links``,
  commit 8ba5ff8 of branch s6-converge; docs/physics.md says why): as ``kirchhoff-profile-lag24``
  but only where it matters, so that ice and unfrozen tissue away from the front are computed as
  before: the Kirchhoff conductance on the links whose two temperatures span the mushy range, and
  per half-link (centre to shared face) whose profile spans it, the average departure of Pennes'
  terms from the voxel's own (linear in T at the voxel's liquid fraction, so that it vanishes
  continuously as the front leaves the pair), held for 24 s. The solver's scheme today
  (``kernels.front_cell``) is this one evaluated from the current iterate before every cell solve
  instead of held for a step, with Kirchhoff conductances on all six links of a front voxel.

Usage: ``python benchmarks/front_convergence_1d.py [--material kidney] [--schemes ...]``
(about 20 s per scheme and 1 min for the reference on one core).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from CryoAblationLogic.physics.materials import load_material_library  # noqa: E402

KELVIN = 273.15
LEVELS_C = (0.0, -20.0, -40.0)
SCHEMES = (
    "harmonic",
    "kirchhoff-front",
    "kirchhoff",
    "averaged",
    "kirchhoff+averaged",
    "kirchhoff-profile",
    "kirchhoff-profile-lag24",
    "sub-voxel-front",
)
QUADRATURE = 16  # points per voxel for the averaged Pennes terms


class Tissue:
    """The solver's voxel model of one material, vectorised over temperatures (°C)."""

    def __init__(self, material) -> None:
        m = material
        self.ku, self.kf, self.n = m.k_unfrozen, m.k_frozen, m.k_frozen_exponent
        self.cu, self.cf = m.c_unfrozen, m.c_frozen
        self.ts, self.tl = m.t_solidus_c, m.t_liquidus_c
        self.hl = m.enthalpy_at_liquidus()
        self.w, self.qm, self.tb = m.perfusion, m.metabolic, m.blood_temperature_c
        self.basal = self.tb + (self.qm / self.w if self.w > 0 else 0.0)
        # Φ(T) = ∫k dT from the solidus, inverted by a fine table (Φ increases with T).
        self._t_table = np.linspace(-250.0, 60.0, 62001)
        self._phi_table = self._phi_quadrature(self._t_table)

    def liquid_fraction(self, t):
        return np.clip((t - self.ts) / (self.tl - self.ts), 0.0, 1.0)

    def conductivity(self, t):
        frozen = self.kf * ((self.ts + KELVIN) / np.maximum(t + KELVIN, 20.0)) ** self.n
        mushy = self.kf + (self.ku - self.kf) * self.liquid_fraction(t)
        return np.where(t <= self.ts, frozen, np.where(t >= self.tl, self.ku, mushy))

    def _phi_quadrature(self, t):
        # Cumulative trapezoid of k over the table (fine enough: 0.005 K), zero at the solidus.
        k = self.conductivity(t)
        phi = np.concatenate([[0.0], np.cumsum(0.5 * (k[1:] + k[:-1]) * np.diff(t))])
        return phi - np.interp(self.ts, t, phi)

    def phi(self, t):
        return np.interp(t, self._t_table, self._phi_table)

    def phi_inverse(self, p):
        return np.interp(p, self._phi_table, self._t_table)

    def enthalpy(self, t):
        return np.where(
            t <= self.ts,
            self.cf * (t - self.ts),
            np.where(
                t >= self.tl, self.hl + self.cu * (t - self.tl), self.hl * (t - self.ts) / (self.tl - self.ts)
            ),
        )

    def temperature(self, h):
        return np.where(
            h <= 0.0,
            self.ts + h / self.cf,
            np.where(
                h >= self.hl, self.tl + (h - self.hl) / self.cu, self.ts + (self.tl - self.ts) * h / self.hl
            ),
        )

    def pennes(self, t):
        """Perfusion plus metabolic heat (W/m³) of tissue at temperature t."""
        fl = self.liquid_fraction(t)
        return fl * (self.w * (self.tb - t) + self.qm)


def conductance(tissue: Tissue, ta, tb, scheme: str):
    """Conductivity (W/m/K) of the links between voxels at ta and tb."""
    ka, kb = tissue.conductivity(ta), tissue.conductivity(tb)
    harmonic = 2.0 * ka * kb / (ka + kb)
    if not scheme.startswith("kirchhoff"):
        return harmonic
    d = tb - ta
    safe = np.where(np.abs(d) > 1e-9, d, 1.0)
    kirchhoff = np.where(np.abs(d) > 1e-9, (tissue.phi(tb) - tissue.phi(ta)) / safe, harmonic)
    if scheme == "kirchhoff-front":
        spans = (np.minimum(ta, tb) < tissue.tl) & (np.maximum(ta, tb) > tissue.ts)
        return np.where(spans, kirchhoff, harmonic)
    return kirchhoff


def pennes_averaged(tissue: Tissue, t, left, right, kirchhoff_profile: bool):
    """Pennes' terms averaged over a voxel, with T linear (or Φ linear) from its centre to the
    neighbours' centres."""
    total = np.zeros_like(t)
    offsets = (np.arange(QUADRATURE) + 0.5) / QUADRATURE - 0.5  # in voxels, −½ … ½
    if kirchhoff_profile:
        p, pl, pr = tissue.phi(t), tissue.phi(left), tissue.phi(right)
        for s in offsets:
            total += tissue.pennes(tissue.phi_inverse(np.where(s < 0, p + s * (p - pl), p + s * (pr - p))))
    else:
        for s in offsets:
            total += tissue.pennes(np.where(s < 0, t + s * (t - left), t + s * (right - t)))
    return total / QUADRATURE


def front_correction(tissue: Tissue, t, left, right):
    """The sub-voxel front's Pennes correction (W/m³) of each voxel (see ``sub-voxel-front``)."""
    correction = np.zeros_like(t)
    p = tissue.phi(t)
    own_fraction = tissue.liquid_fraction(t)
    for neighbour in (left, right):
        pn = tissue.phi(neighbour)
        t_mid = tissue.phi_inverse(0.5 * (p + pn))
        spans = (np.minimum(t, t_mid) < tissue.tl) & (np.maximum(t, t_mid) > tissue.ts)
        total = np.zeros_like(t)
        for k in range(QUADRATURE // 2):
            t_s = tissue.phi_inverse(p + 0.5 * (k + 0.5) / (QUADRATURE // 2) * (pn - p))
            total += tissue.pennes(t_s) - own_fraction * (tissue.w * (tissue.tb - t_s) + tissue.qm)
        correction += np.where(spans, 0.5 * total / (QUADRATURE // 2), 0.0)
    return correction


def run(tissue: Tissue, scheme: str, spacing_mm: float, face_c: float, duration_s: float, length_mm: float):
    """Temperatures (°C) at the cell centres x = i·h after ``duration_s``; cell 0 is the held face."""
    h = spacing_mm * 1e-3
    n = round(length_mm / spacing_mm) + 1
    t = np.full(n, tissue.basal)
    t[0] = face_c
    enthalpy = tissue.enthalpy(t)
    k_max = float(np.max(tissue.conductivity(np.array([face_c, tissue.ts, tissue.tb]))))
    steps = int(np.ceil(duration_s / (0.35 * h * h * min(tissue.cf, tissue.cu) / k_max)))
    dt = duration_s / steps
    lag_s = 24.0 if scheme.endswith("-lag24") or scheme == "sub-voxel-front" else None
    base = "kirchhoff-front" if scheme == "sub-voxel-front" else scheme.removesuffix("-lag24")
    correction = np.zeros(n - 2)
    next_lag = 0.0
    for step in range(steps):
        k = conductance(tissue, t[:-1], t[1:], base)
        flux = k * (t[1:] - t[:-1]) / (h * h)
        inner, left, right = t[1:-1], t[:-2], t[2:]
        if lag_s is not None:
            if step * dt >= next_lag:
                if scheme == "sub-voxel-front":
                    correction = front_correction(tissue, inner, left, right)
                else:
                    correction = pennes_averaged(tissue, inner, left, right, True) - tissue.pennes(inner)
                next_lag += lag_s
            source = tissue.pennes(inner) + correction
        elif base in ("averaged", "kirchhoff+averaged"):
            source = pennes_averaged(tissue, inner, left, right, False)
        elif base == "kirchhoff-profile":
            source = pennes_averaged(tissue, inner, left, right, True)
        else:
            source = tissue.pennes(inner)
        enthalpy[1:-1] += dt * (flux[1:] - flux[:-1] + source)
        t[1:-1] = tissue.temperature(enthalpy[1:-1])
    return np.arange(n) * spacing_mm, t


def crossing_mm(x, t, level_c: float) -> float:
    """Outermost point where the profile rises through ``level_c`` (linear between centres)."""
    below = np.nonzero((t[:-1] <= level_c) & (t[1:] > level_c))[0]
    if below.size == 0:
        return float("nan")
    i = below[-1]
    return float(x[i] + (level_c - t[i]) / (t[i + 1] - t[i]) * (x[i + 1] - x[i]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--material", default="kidney")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    parser.add_argument("--spacings", nargs="+", type=float, default=[1.0, 0.5], help="mm")
    parser.add_argument("--reference", type=float, default=0.1, help="spacing of the reference, mm")
    parser.add_argument("--faces", nargs="+", type=float, default=[-45.0, -60.0, -75.0], help="°C")
    parser.add_argument("--duration", type=float, default=600.0, help="s")
    parser.add_argument("--length", type=float, default=20.0, help="slab thickness, mm")
    args = parser.parse_args(argv)
    tissue = Tissue(load_material_library()[args.material])
    reference = {
        face: [
            crossing_mm(*run(tissue, "harmonic", args.reference, face, args.duration, args.length), lv)
            for lv in LEVELS_C
        ]
        for face in args.faces
    }
    print(
        f"{args.material}, face held from t = 0, points after {args.duration:g} s [mm] "
        f"(error vs {args.reference:g} mm)"
    )
    for face in args.faces:
        print(
            f"  reference {args.reference:g} mm, face {face:g} °C: "
            + "  ".join(f"{p:6.3f}" for p in reference[face])
        )
    for scheme in args.schemes:
        print(scheme, flush=True)
        for spacing in args.spacings:
            for face in args.faces:
                x, t = run(tissue, scheme, spacing, face, args.duration, args.length)
                cells = []
                for level, ref in zip(LEVELS_C, reference[face], strict=True):
                    point = crossing_mm(x, t, level)
                    cells.append(f"{level:4.0f} °C {point:6.3f} ({point - ref:+.3f})")
                print(f"  {spacing:4g} mm, face {face:4g} °C   " + "   ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
