"""The ``CryoAblation`` parameter node: plan settings and the nodes of a plan, saved with the scene.

A ``vtkMRMLScriptedModuleNode`` with the singleton tag ``CryoAblation`` (the node Slicer's
``ScriptedLoadableModuleLogic.getParameterNode()`` returns for the module), so the Slicer module
and the Qt-free code share one node. Settings are a plain dataclass, each field stored as one JSON
parameter; nodes are node references by role, so a saved ``.mrb`` restores plan, settings and
results together.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from slicer import vtkMRMLScriptedModuleNode

from CryoAblationLogic.core.errors import InputError

MODULE_NAME = "CryoAblation"


def _default_protocol() -> list[dict]:
    # The usual double freeze (10 min freeze, 8 min passive thaw, 10 min freeze).
    return [
        {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
        {"action": "thaw", "mode": "passive", "duration_s": 480, "probes": "all"},
        {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
    ]


@dataclass
class PlanSettings:
    """Everything of a plan that is not a node (the case-format keys the scene does not hold)."""

    initial_temperature_c: float = 37.0
    boundaries: dict | None = None  # case-format ``boundaries``; None: all faces fixed at body temperature
    materials: dict = field(default_factory=dict)  # case-format ``materials`` (overrides of the library)
    background_material: str = "liver"  # tissue of voxels that no segment covers
    protocol: list = field(default_factory=_default_protocol)
    sources: list = field(default_factory=list)
    snapshot_times_s: list = field(default_factory=list)  # case outputs.snapshot_times_s
    grid_spacing_mm: float | None = None  # None: the image's own voxels
    roi_margin_mm: float | None = None  # None: the whole image; else a box around target and probes
    playback_interval_s: float = 60.0  # time between frames of the temperature sequence
    preview_spacing_mm: float = 2.0
    preview_roi_margin_mm: float | None = 30.0  # preview grid: this far around target and probes
    preview_duration_s: float = 600.0
    preview_debounce_s: float = 0.05


# Node reference roles. "Probe" and "Sensor" may hold several nodes.
INPUT_VOLUME = "InputVolume"
INPUT_SEGMENTATION = "InputSegmentation"
PROBE = "Probe"
SENSORS = "Sensors"
ROI = "ROI"
ISOTHERM_LEVELS = "IsothermLevels"
TEMPERATURE_VOLUME = "TemperatureVolume"
MIN_TEMPERATURE_VOLUME = "MinimumTemperatureVolume"
ISOTHERM_SEGMENTATION = "IsothermSegmentation"
PREVIEW_SEGMENTATION = "PreviewIsothermSegmentation"
PLAYBACK_BROWSER = "PlaybackBrowser"
METRICS_TABLE = "MetricsTable"
CRITICAL_TABLE = "CriticalStructuresTable"
WARNINGS_TABLE = "WarningsTable"
ICE_VOLUME_CHART = "IceVolumeChart"
SENSOR_CHART = "SensorChart"
ICE_VOLUME_TABLE = "IceVolumeTable"
SENSOR_TABLE = "SensorTable"

_SETTINGS_PREFIX = "Settings."


class ParameterNode:
    """Typed access to the scene's ``CryoAblation`` parameter node."""

    def __init__(self, node):
        self.node = node

    @property
    def scene(self):
        return self.node.GetScene()

    # -- settings ---------------------------------------------------------------------------
    def settings(self) -> PlanSettings:
        return read_dataclass(self.node, PlanSettings, _SETTINGS_PREFIX)

    def set_settings(self, settings: PlanSettings) -> None:
        write_dataclass(self.node, settings, _SETTINGS_PREFIX)

    def update_settings(self, **changes: Any) -> PlanSettings:
        settings = dataclasses.replace(self.settings(), **changes)
        self.set_settings(settings)
        return settings

    # -- node references --------------------------------------------------------------------
    def get(self, role: str):
        return self.node.GetNodeReference(role)

    def set(self, role: str, node) -> None:
        self.node.SetNodeReferenceID(role, None if node is None else node.GetID())

    def get_all(self, role: str) -> list:
        return [
            self.node.GetNthNodeReference(role, index)
            for index in range(self.node.GetNumberOfNodeReferences(role))
            if self.node.GetNthNodeReference(role, index) is not None
        ]

    def add(self, role: str, node) -> None:
        if node.GetID() not in [n.GetID() for n in self.get_all(role)]:
            self.node.AddNodeReferenceID(role, node.GetID())

    def remove(self, role: str, node) -> None:
        for index in range(self.node.GetNumberOfNodeReferences(role)):
            if self.node.GetNthNodeReferenceID(role, index) == node.GetID():
                self.node.RemoveNthNodeReferenceID(role, index)
                return

    def probes(self) -> list:
        return self.get_all(PROBE)


def get_parameter_node(scene, create: bool = True) -> ParameterNode | None:
    """The scene's ``CryoAblation`` parameter node (the module's singleton), made if missing."""
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    if node is None:
        if not create:
            return None

        node = vtkMRMLScriptedModuleNode()
        node.SetName(MODULE_NAME)
        node.SetSingletonTag(MODULE_NAME)
        node.SetModuleName(MODULE_NAME)
        node.SetAttribute("ModuleName", MODULE_NAME)  # as ScriptedLoadableModuleLogic tags it
        node = scene.AddNode(node)
        parameters = ParameterNode(node)
        parameters.set_settings(PlanSettings())
        return parameters
    return ParameterNode(node)


# -- a small typed serializer: one JSON parameter per dataclass field ----------------------------
def write_dataclass(node, obj: Any, prefix: str = "") -> None:
    was_modifying = node.StartModify()
    try:
        for item in dataclasses.fields(obj):
            node.SetParameter(prefix + item.name, json.dumps(getattr(obj, item.name)))
    finally:
        node.EndModify(was_modifying)


def read_dataclass(node, cls: type, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        name = prefix + item.name
        text = node.GetParameter(name)
        if not text:
            continue  # not stored: the dataclass default
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{node.GetName()}.{name}", f"not valid JSON: {error}") from error
        values[item.name] = _coerce(value, hints[item.name], f"{node.GetName()}.{name}")
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except InputError:
                continue
        raise InputError(key, f"{value!r} is not a {hint}")
    base = origin or hint
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base in (str, bool, list, dict) and isinstance(value, base):
        return value
    raise InputError(key, f"{value!r} is not a {getattr(base, '__name__', base)}")
