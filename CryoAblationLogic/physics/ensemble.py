"""Solver runs with a per-probe scale on the heat a probe extracts (the ensemble of
``analysis/ice_correction.py``).

A probe's effective cooling differs from the catalog's (gas supply, coupling to the tissue, ice
on the shaft): the member runs scale it the way the console's flow setting does
(``_update_coupling``: surface coefficient ∝ f^flow_exponent, power cap ∝ f), so a scale of 1.2
on a probe at 100 % flow is that probe behaving as if it had 120 % flow. The solver itself is
unchanged; scale 1 everywhere gives the plan's run bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.physics.simulation import Simulation


class ScaledCoolingSimulation(Simulation):
    """A :class:`Simulation` whose freezing probes extract ``cooling_scale[name]`` times the heat
    the protocol's flow gives (probes not named keep a scale of 1)."""

    def __init__(self, case, cooling_scale: Mapping[str, float] | None = None, **options):
        scales = dict(cooling_scale or {})
        names = {p.name for p in case.probes}
        for name, value in scales.items():
            if name not in names:
                raise InputError("cooling_scale", f"no probe named {name!r}")
            if not (math.isfinite(value) and 0.1 <= value <= 3.0):
                raise InputError(f"cooling_scale.{name}", f"must lie in [0.1, 3], got {value}")
        self.cooling_scale = scales
        super().__init__(case, **options)

    def probe_state(self, name: str, t: float | None = None) -> tuple[str, float, str | None]:
        action, flow, mode = super().probe_state(name, t)
        if action == "freeze":
            flow = flow * self.cooling_scale.get(name, 1.0)
        return action, flow, mode
