"""The ``CryoAblation`` parameter node: plan settings and the nodes of a plan, saved with the scene.

A ``vtkMRMLScriptedModuleNode`` with the singleton tag ``CryoAblation`` (the node Slicer's
``ScriptedLoadableModuleLogic.getParameterNode()`` returns for the module), so the Slicer module
and the Qt-free code share one node. **One typed set of settings**, :class:`PlanSettings`: each
field is one parameter of the node, named like the field. Numbers, strings and booleans are written
exactly as Slicer's ``parameterNodeWrapper`` writes them (``str(value)``, ``"True"``/``"False"``),
so the module's wrapper class (:func:`wrapper_fields` builds its annotations from this dataclass)
reads and writes the same parameters the Qt-free code does; structured fields (protocol,
boundaries, materials, optional lengths) are JSON. Nodes are node references by role, so a saved
``.mrb`` restores plan, settings and results together.
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
    # What the panel binds (Slicer's wrapper over the same parameters; ranges bound the widgets).
    preview_enabled: bool = False
    scanner_host: str = "127.0.0.1"
    scanner_port: int = field(default=18944, metadata={"range": (1, 65535)})
    # Who may connect as the scanner's bridge besides this computer: addresses, networks, host names
    # (comma-separated; "*": anyone). Empty: this computer only, so nobody else can steer or squat.
    scanner_peers: str = ""
    console_host: str = "127.0.0.1"
    console_port: int = field(default=18945, metadata={"range": (1, 65535)})
    journal_path: str = ""
    # live mode corrects the prediction from the observed ice (scene/corrected_ice.py), its ensemble this big
    correct_live: bool = False
    ensemble_members: int = field(default=48, metadata={"range": (8, 512)})
    # The last run's warnings (metrics, then probe placement), kept as values, not read back from a table.
    run_warnings: list = field(default_factory=list)


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
WRAPPED_NODE_ROLES = (INPUT_VOLUME, INPUT_SEGMENTATION)  # the node fields of the module's wrapper

_LEGACY_PREFIX = "Settings."  # scenes saved before one scheme: every field as JSON under this prefix
SCALAR_TYPES = (bool, int, float, str)


class ParameterNode:
    """Typed access to the scene's ``CryoAblation`` parameter node."""

    def __init__(self, node):
        self.node = node

    @property
    def scene(self):
        return self.node.GetScene()

    # -- settings ---------------------------------------------------------------------------
    def settings(self) -> PlanSettings:
        return read_settings(self.node)

    def set_settings(self, settings: PlanSettings) -> None:
        write_settings(self.node, settings)

    def update_settings(self, **changes: Any) -> PlanSettings:
        settings = dataclasses.replace(self.settings(), **changes)
        self.set_settings(settings)
        return settings

    # -- node references --------------------------------------------------------------------
    def get(self, role: str):
        return self.node.GetNodeReference(role)

    def set(self, role: str, node) -> None:
        self.node.SetNodeReferenceID(role, None if node is None else node.GetID())
        if role in WRAPPED_NODE_ROLES:
            # Slicer's wrapper finds a node field by a parameter of its name (and would otherwise
            # overwrite the reference with its default, None).
            self.node.SetParameter(role, "")

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


# -- one parameter per field, scalars in the parameterNodeWrapper's format ----------------------
def _field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def is_scalar(hint: Any) -> bool:
    """Written as Slicer's wrapper writes it (``str(value)``) rather than as JSON."""
    return hint in SCALAR_TYPES


def encode(value: Any, hint: Any) -> str:
    if hint is bool:
        return "True" if value else "False"
    if is_scalar(hint):
        return str(value)
    return json.dumps(value)


def decode(text: str, hint: Any, key: str) -> Any:
    if hint is bool:
        if text not in ("True", "False"):
            raise InputError(key, f"{text!r} is not True or False")
        return text == "True"
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError as error:
            raise InputError(key, f"{text!r} is not a {hint.__name__}") from error
    if hint is str:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(key, f"not valid JSON: {error}") from error
    return _coerce(value, hint, key)


def write_settings(node, settings: PlanSettings) -> None:
    was_modifying = node.StartModify()
    try:
        for item in dataclasses.fields(settings):
            hint = _field_type(PlanSettings, item.name)
            node.SetParameter(item.name, encode(getattr(settings, item.name), hint))
            node.UnsetParameter(_LEGACY_PREFIX + item.name)
    finally:
        node.EndModify(was_modifying)


def read_settings(node) -> PlanSettings:
    values = {}
    for item in dataclasses.fields(PlanSettings):
        hint = _field_type(PlanSettings, item.name)
        key = f"{node.GetName()}.{item.name}"
        if node.HasParameter(item.name):
            values[item.name] = decode(node.GetParameter(item.name), hint, key)
        elif node.GetParameter(_LEGACY_PREFIX + item.name):  # a scene saved before one scheme
            values[item.name] = decode_legacy(node.GetParameter(_LEGACY_PREFIX + item.name), hint, key)
        value = values.get(item.name)
        bounds = item.metadata.get("range")
        if value is not None and bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise InputError(key, f"{value} is outside {bounds[0]}…{bounds[1]}")
    return PlanSettings(**values)


def decode_legacy(text: str, hint: Any, key: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(key, f"not valid JSON: {error}") from error
    return _coerce(value, hint, key)


def wrapper_fields() -> dict[str, tuple[type, tuple[float, float] | None, Any]]:
    """``{name: (type, (minimum, maximum) or None, default)}`` of the settings Slicer's
    ``parameterNodeWrapper`` can hold (numbers, strings, booleans): the module's wrapper class is
    built from this, so both sides name and encode each parameter the same way."""
    fields = {}
    for item in dataclasses.fields(PlanSettings):
        hint = _field_type(PlanSettings, item.name)
        if is_scalar(hint):
            default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
            fields[item.name] = (hint, item.metadata.get("range"), default)
    return fields


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
