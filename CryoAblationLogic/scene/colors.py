"""The temperature colour table and the isotherm level table.

- Temperature: a diverging table over a fixed window (−160 to +40 °C): deep blue for the coldest
  ice, white just below freezing, warm reds up to body temperature, with the entry that holds
  0 °C painted black so the freezing front stands out. The volume display uses exactly that
  window, so a colour always means the same temperature.
- Isotherm levels (like SlicerRT's isodose table): one colour per level, the level in °C as the
  colour's name (``"0"``, ``"-20"``, ``"-40"``). The user edits the table to change the levels; the
  isotherm segmentation follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.isotherms import (
    DEFAULT_ISOTHERMS_C,
    FREEZING_MARK_RGB,
    TEMPERATURE_WINDOW_C,
    level_colour,
    temperature_rgb,
)

TEMPERATURE_TABLE_NAME = "CryoAblation Temperature"
TEMPERATURE_TABLE_SIZE = 256
DEFAULT_ISOTHERM_LEVELS_C = DEFAULT_ISOTHERMS_C
ISOTHERM_TABLE_NAME = "CryoAblation Isotherm Levels"
ATTRIBUTE_PREFIX = "CryoAblation."


def temperature_table_entry(temperature_c: float) -> int:
    """Index of the table entry a temperature is shown with (for the window above)."""
    low, high = TEMPERATURE_WINDOW_C
    fraction = (temperature_c - low) / (high - low)
    return int(np.clip(round(fraction * (TEMPERATURE_TABLE_SIZE - 1)), 0, TEMPERATURE_TABLE_SIZE - 1))


def get_or_create_temperature_color_table(scene):
    """The scene's temperature colour table (created once, found by name after a scene load)."""
    node = scene.GetFirstNodeByName(TEMPERATURE_TABLE_NAME)
    if node is not None and node.IsA("vtkMRMLColorTableNode"):
        return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", TEMPERATURE_TABLE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(TEMPERATURE_TABLE_SIZE)
    low, high = TEMPERATURE_WINDOW_C
    freezing_entry = temperature_table_entry(0.0)
    for entry in range(TEMPERATURE_TABLE_SIZE):
        temperature = low + (high - low) * entry / (TEMPERATURE_TABLE_SIZE - 1)
        rgb = FREEZING_MARK_RGB if entry == freezing_entry else temperature_rgb(temperature)
        node.SetColor(entry, f"{temperature:.1f}", *rgb, 1.0)
    node.SetAttribute(ATTRIBUTE_PREFIX + "WindowC", f"{low:g} {high:g}")
    node.SetAttribute("Category", "CryoAblation")
    node.CreateDefaultStorageNode()
    return node


def show_with_temperature_colors(scene, volume_node) -> None:
    """Display a temperature volume with the temperature table over its fixed window."""
    table = get_or_create_temperature_color_table(scene)
    if volume_node.GetDisplayNode() is None:
        volume_node.CreateDefaultDisplayNodes()
    display = volume_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(table.GetID())
    display.AutoWindowLevelOff()
    low, high = TEMPERATURE_WINDOW_C
    display.SetWindowLevelMinMax(low, high)
    display.SetInterpolate(True)


def create_isotherm_color_table(
    scene, levels_c: Sequence[float] = DEFAULT_ISOTHERM_LEVELS_C, name: str = ISOTHERM_TABLE_NAME
):
    """A colour table listing the isotherm levels (names are the levels in °C)."""
    levels = _checked_levels(levels_c, "isotherm levels")
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", scene.GenerateUniqueName(name))
    node.SetTypeToUser()
    node.SetAttribute("Category", "CryoAblation")
    node.SetAttribute(ATTRIBUTE_PREFIX + "Role", "IsothermLevels")
    set_isotherm_levels(node, levels)
    node.CreateDefaultStorageNode()
    return node


def set_isotherm_levels(color_node, levels_c: Sequence[float]) -> None:
    levels = _checked_levels(levels_c, "isotherm levels")
    color_node.SetNumberOfColors(len(levels))
    for index, level in enumerate(levels):
        rgb = level_colour(level)
        color_node.SetColor(index, format_level(level), *rgb, 1.0)


def isotherm_levels(color_node) -> list[tuple[float, tuple[float, float, float]]]:
    """``[(level_c, rgb), ...]`` read from an isotherm level table, in table order."""
    levels = []
    for index in range(color_node.GetNumberOfColors()):
        name = color_node.GetColorName(index)
        if not name or name == "(none)":
            continue
        try:
            level = float(name.replace("°C", "").replace("−", "-").strip())
        except ValueError as error:
            raise InputError(
                f"{color_node.GetName()}[{index}]", f"colour name {name!r} is not a temperature in °C"
            ) from error
        rgba = [0.0] * 4
        color_node.GetColor(index, rgba)
        levels.append((level, (rgba[0], rgba[1], rgba[2])))
    _checked_levels([level for level, _ in levels], color_node.GetName())
    return levels


def parse_levels(text: str) -> list[float]:
    """Isotherm levels typed by a user: temperatures in °C separated by commas or semicolons."""
    try:
        levels = [
            float(part.replace("°C", "").replace("−", "-"))
            for part in text.replace(";", ",").split(",")
            if part.strip()
        ]
    except ValueError as error:
        raise InputError(
            "isotherm levels", f"{text!r}: levels must be numbers (°C) separated by commas"
        ) from error
    return _checked_levels(levels, "isotherm levels")


def format_level(level_c: float) -> str:
    return f"{level_c:g}"


def level_label(level_c: float) -> str:
    """How a level is named for people (segment names, table rows): ``"-20 °C"``."""
    return f"{level_c:g} °C"


def _checked_levels(levels_c: Sequence[float], key: str) -> list[float]:
    levels = [float(v) for v in levels_c]
    if not levels:
        raise InputError(key, "needs at least one isotherm level")
    if not all(np.isfinite(levels)):
        raise InputError(key, "levels must be finite temperatures in °C")
    if len(set(levels)) != len(levels):
        raise InputError(key, f"levels repeat: {levels}")
    return levels
