"""Isotherm levels and the colours every view uses for them and for temperature.

One definition for Slicer's colour tables (:mod:`CryoAblationLogic.scene.colors`), the report's
pictures and the CLI, so that −40 °C is the same purple everywhere. Colours are RGB in 0–1.
"""

from __future__ import annotations

import numpy as np

RGB = tuple[float, float, float]

# The isotherms shown and measured unless the user chooses others (°C): the freezing edge, the
# usual lethal isotherm and the conservative one.
DEFAULT_ISOTHERMS_C: tuple[float, ...] = (0.0, -20.0, -40.0)

# Level colours: cyan at freezing, blue at −20 °C, purple at −40 °C; any other level takes the
# temperature colour map's colour at that temperature.
LEVEL_COLOURS: dict[float, RGB] = {0.0: (0.2, 0.85, 1.0), -20.0: (0.15, 0.35, 1.0), -40.0: (0.65, 0.1, 0.85)}

# The temperature colour map: a fixed window (°C) so that a colour always means one temperature,
# diverging from deep blue (coldest ice) through white (just below freezing) to warm reds.
TEMPERATURE_WINDOW_C = (-160.0, 40.0)
FREEZING_MARK_RGB: RGB = (0.0, 0.0, 0.0)  # the 0 °C entry, so that the freezing front stands out
TEMPERATURE_ANCHORS: tuple[tuple[float, RGB], ...] = (
    (-160.0, (0.05, 0.0, 0.35)),
    (-80.0, (0.1, 0.2, 0.8)),
    (-40.0, (0.25, 0.55, 1.0)),
    (-20.0, (0.55, 0.8, 1.0)),
    (-1.0, (0.95, 0.97, 1.0)),
    (1.0, (1.0, 0.96, 0.9)),
    (20.0, (1.0, 0.6, 0.35)),
    (40.0, (0.7, 0.05, 0.05)),
)


def level_colour(level_c: float) -> RGB:
    """The colour of an isotherm level."""
    return LEVEL_COLOURS.get(float(level_c)) or temperature_rgb(level_c)


def temperature_rgb(temperature_c: float) -> RGB:
    """The temperature colour map at one temperature (clamped to the window's end colours)."""
    temps = [t for t, _ in TEMPERATURE_ANCHORS]
    rgb = [
        np.interp(temperature_c, temps, [c[channel] for _, c in TEMPERATURE_ANCHORS]) for channel in range(3)
    ]
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


# Outlines of the plan's structures by role, as the phantom scene colours its segments in Slicer.
ROLE_COLOURS: dict[str, RGB] = {
    "target": (0.35, 0.85, 0.35),
    "critical": (0.95, 0.6, 0.2),
    "vessel": (0.85, 0.1, 0.1),
}

# Sensor curves, in sensor order, in Slicer's charts and the report's.
SENSOR_COLOURS: tuple[RGB, ...] = (
    (0.9, 0.3, 0.1),
    (0.1, 0.6, 0.2),
    (0.5, 0.2, 0.8),
    (0.2, 0.5, 0.9),
    (0.8, 0.7, 0.1),
)


def sensor_colour(index: int) -> RGB:
    """The colour of the ``index``-th sensor's curve (cycling)."""
    return SENSOR_COLOURS[index % len(SENSOR_COLOURS)]
