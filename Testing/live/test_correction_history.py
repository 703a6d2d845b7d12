"""The ice tracker keeps what the correction said after each observed image (the corrected
isotherm volumes and the forecasts), so that ``summary.json``'s ``observed.corrections`` can chart
how they evolved (``cryoablation ice-pictures``); the fields themselves stay the latest only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from test_ice_tracking import ball, images, process

from CryoAblationLogic.live.ice_tracking import IceTracker
from CryoAblationLogic.live.synthetic import plan_case


@dataclass
class Correction:
    """The parts of ``analysis.ice_correction.Correction`` the history keeps."""

    isotherm_volumes_ml: dict
    forecasts: dict
    min_temperature: dict = field(default_factory=dict)


class Corrector:
    """Stands in for the ice corrector: a −40 °C volume that grows with each image."""

    def __init__(self):
        self.updates = 0

    def update(self, time_s, observation):
        self.updates += 1
        volume = {"p10": 12.0 + self.updates, "p50": 10.0 + self.updates, "p90": 8.0 + self.updates}
        forecast = {"p10": 500.0, "p50": 600.0 - 10 * self.updates, "p90": None, "p_never": 0.2}
        return Correction({-40.0: volume}, {"lethal_covers_target": forecast})


def test_each_observed_image_adds_the_corrected_volumes_and_forecasts_to_the_summary():
    plan = plan_case(3.0, protocol_scale=0.05, lead_in_s=10.0)
    corrector = Corrector()
    tracker = IceTracker(plan, corrector=corrector)
    warm = np.full(plan.grid.size, 37.0)
    for image in images(plan, warm, 0.0, 10, False)[:2]:  # baselines: no correction
        process(tracker, image, plan, warm, False, 0.0)
    assert tracker.summary()["corrections"] == []
    cold = ball(plan)
    for t, seed in ((40.0, 20), (80.0, 30)):
        process(tracker, images(plan, cold, t, seed)[0], plan, cold, True, t)
    history = tracker.summary()["corrections"]
    assert [entry["time_s"] for entry in history] == [40.0, 80.0]
    assert history[0]["isotherm_volumes_ml"] == {"-40": {"p10": 13.0, "p50": 11.0, "p90": 9.0}}
    assert history[1]["forecasts"]["lethal_covers_target"]["p50"] == 580.0
    assert "min_temperature" not in history[1]  # no fields: the summary stays small
