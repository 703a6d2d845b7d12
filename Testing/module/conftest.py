"""Fixtures of the module tests: static facts about the Slicer module file and its .ui (a test
message source of live mode is in ``live_sources.py``).

The module file imports ``qt``/``slicer``, so it is read with :mod:`ast`; the ``.ui`` is read as XML
and loaded with PySide6's own loader, with Slicer's custom widget classes replaced by the base
classes the file declares for them (as Qt Designer itself does when a plugin is missing).
"""

from __future__ import annotations

import ast
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for live_sources

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "CryoAblation"
MODULE_FILE = MODULE_DIR / "CryoAblation.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "CryoAblation.ui"
PACKAGE = "CryoAblationLogic"

# What the module uses on Slicer's custom widgets, which PySide6 does not have: properties and
# signals as documented by CTK/Slicer for these classes (on top of those of their Qt base class).
SLICER_WIDGET_MEMBERS: dict[str, set[str]] = {
    "qMRMLWidget": {"setMRMLScene", "mrmlScene", "mrmlSceneChanged"},
    "qMRMLNodeComboBox": {
        "currentNode",
        "setCurrentNode",
        "currentNodeChanged",
        "nodeTypes",
        "setMRMLScene",
        "mrmlScene",
        "addEnabled",
        "removeEnabled",
        "noneEnabled",
    },
    "ctkCollapsibleButton": {"collapsed", "text", "contentsCollapsed"},
    "ctkSliderWidget": {
        "value",
        "minimum",
        "maximum",
        "singleStep",
        "decimals",
        "valueChanged",
        "suffix",
        "tracking",
    },
    "ctkDirectoryButton": {"directory", "directoryChanged", "caption"},
    "qMRMLTableView": {"setMRMLTableNode", "mrmlTableNode", "setMRMLScene", "mrmlScene"},
}


@dataclass
class UiWidget:
    name: str
    cls: str
    parameter: str | None


@dataclass
class UiFile:
    path: Path = UI_FILE

    @cached_property
    def root(self) -> ET.Element:
        return ET.parse(self.path).getroot()

    @cached_property
    def custom_bases(self) -> dict[str, str]:
        return {cw.findtext("class"): cw.findtext("extends") for cw in self.root.iter("customwidget")}

    @cached_property
    def widgets(self) -> dict[str, UiWidget]:
        result = {}
        for element in self.root.iter("widget"):
            parameter = None
            for prop in element.findall("property"):
                if prop.get("name") == "SlicerParameterName":
                    parameter = prop.findtext("string")
            result[element.get("name")] = UiWidget(element.get("name"), element.get("class"), parameter)
        return result

    def qt_base(self, cls: str) -> str:
        while cls in self.custom_bases:
            cls = self.custom_bases[cls]
        return cls

    def xml_for_pyside(self) -> bytes:
        """The .ui with custom classes replaced by their Qt bases, without Slicer-only connections."""
        root = ET.fromstring(ET.tostring(self.root))
        bases = self.custom_bases
        for element in root.iter("widget"):
            cls = element.get("class")
            while cls in bases:
                cls = bases[cls]
            element.set("class", cls)
        customwidgets = root.find("customwidgets")
        if customwidgets is not None:
            root.remove(customwidgets)
        connections = root.find("connections")
        if connections is not None:
            root.remove(connections)
        return ET.tostring(root)

    @cached_property
    def connections(self) -> list[dict[str, str]]:
        section = self.root.find("connections")
        if section is None:
            return []
        return [{child.tag: child.text for child in connection} for connection in section]


@dataclass
class ModuleSource:
    path: Path = MODULE_FILE
    tree: ast.Module = field(init=False)

    def __post_init__(self) -> None:
        self.tree = ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))

    def classes(self) -> dict[str, ast.ClassDef]:
        return {node.name: node for node in self.tree.body if isinstance(node, ast.ClassDef)}

    def ui_uses(self) -> dict[str, set[str]]:
        """``self.ui.<name>`` → the attributes used on it (and signal names passed to ``connect``)."""
        uses: dict[str, set[str]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and _is_self_ui(node.value):
                uses.setdefault(node.attr, set())
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                if _is_self_ui(node.value.value):
                    uses[node.value.attr].add(node.attr)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "connect"
                and isinstance(node.func.value, ast.Attribute)
                and _is_self_ui(node.func.value.value)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                uses[node.func.value.attr].add(node.args[0].value.split("(")[0])
        return uses

    def parameter_fields(self, class_name: str = "CryoAblationParameterNode") -> dict[str, str]:
        cls = self.classes()[class_name]
        return {
            stmt.target.id: ast.unparse(stmt.annotation)
            for stmt in cls.body
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
        }

    def parent_assignments(self) -> dict[str, ast.expr]:
        """``self.parent.<key> = value`` in the module class's ``__init__``."""
        init = next(
            f
            for f in self.classes()["CryoAblation"].body
            if isinstance(f, ast.FunctionDef) and f.name == "__init__"
        )
        result = {}
        for node in ast.walk(init):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Attribute)
                        and target.value.attr == "parent"
                    ):
                        result[target.attr] = node.value
        return result

    def package_references(self) -> list[tuple[str, list[str], int]]:
        """Every use of the logic package: (module, attribute chain, line).

        Covers ``import CryoAblationLogic as alias`` and ``from CryoAblationLogic[.sub] import name
        [as alias]`` anywhere in the file, then every ``alias.a.b`` attribute chain in the scope
        where the alias is bound.
        """
        references: list[tuple[str, list[str], int]] = []
        for scope in [self.tree, *[n for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef)]]:
            aliases: dict[str, tuple[str, str | None]] = {}
            body_nodes = scope.body if isinstance(scope, ast.Module) else list(ast.walk(scope))
            for node in body_nodes:
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] == PACKAGE:
                            aliases[alias.asname or alias.name] = (alias.name, None)
                            references.append((alias.name, [], node.lineno))
                elif (
                    isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE
                ):
                    for alias in node.names:
                        aliases[alias.asname or alias.name] = (node.module, alias.name)
                        references.append((node.module, [alias.name], node.lineno))
            walk_root = scope
            for node in ast.walk(walk_root):
                if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Store):
                    chain = []
                    value: ast.expr = node
                    while isinstance(value, ast.Attribute):
                        chain.insert(0, value.attr)
                        value = value.value
                    if isinstance(value, ast.Name) and value.id in aliases:
                        module, name = aliases[value.id]
                        references.append((module, ([name] if name else []) + chain, node.lineno))
        return references


def _is_self_ui(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "ui"
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


@pytest.fixture(scope="session")
def ui_file() -> UiFile:
    return UiFile()


@pytest.fixture(scope="session")
def module_source() -> ModuleSource:
    return ModuleSource()


@pytest.fixture(scope="session")
def slicer_widget_members() -> dict[str, set[str]]:
    return SLICER_WIDGET_MEMBERS


# --------------------------------------------------------------------------------------------------
# Slicer's Qt layer, stood in, so that the module file runs here on slicer-core's real MRML.
#
# Only what CryoAblation.py takes from Slicer's Qt layer is replaced: the scripted-module base
# classes, ``tr``, the parameter-node wrapper (typed access only; its GUI binding is Slicer's and is
# checked statically), ``slicer.util``'s dialogs and UI loading, ``slicer.app``'s folders and
# ``slicer.modules``' logics. The scene, the node classes and the module logics are real. For the
# widget, PySide6 widgets are reached the way PythonQt reaches Qt widgets in Slicer: Qt properties
# as attributes (``label.text = "…"``), signals connected by signature (``w.connect("clicked(bool)",
# f)``), methods called as usual.


class Questions:
    """slicer.util.confirmOkCancelDisplay: records the questions, answers as told."""

    def __init__(self, answer: bool = True):
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, message, windowTitle=None, **_kwargs):
        self.asked.append(message)
        return self.answer


class PythonQtObject:
    """A PySide6 QObject seen the way PythonQt shows it to Slicer's Python."""

    def __init__(self, wrapped, extras=None):
        object.__setattr__(self, "_wrapped", wrapped)
        object.__setattr__(self, "_extras", extras if extras is not None else {})

    def __getattr__(self, name):
        extras = object.__getattribute__(self, "_extras")
        if name in extras:
            return extras[name]
        wrapped = object.__getattribute__(self, "_wrapped")
        if name == "connect":
            return self._connect
        meta = wrapped.metaObject()
        if meta.indexOfProperty(name) >= 0 or name in [
            bytes(n).decode() for n in wrapped.dynamicPropertyNames()
        ]:
            return _to_python_qt(wrapped.property(name))
        attribute = getattr(wrapped, name)
        from PySide6.QtCore import SignalInstance

        if isinstance(attribute, SignalInstance):
            return attribute
        if callable(attribute):
            return lambda *args: _to_python_qt(attribute(*[_from_python_qt(a) for a in args]))
        return attribute

    def __setattr__(self, name, value):
        extras = object.__getattribute__(self, "_extras")
        if name in extras and not callable(extras[name]):
            extras[name] = value
            return
        wrapped = object.__getattribute__(self, "_wrapped")
        if wrapped.metaObject().indexOfProperty(name) < 0:
            raise AttributeError(
                f"{type(wrapped).__name__} has no property {name!r} (PythonQt would not set it)"
            )
        wrapped.setProperty(name, _from_python_qt(value))

    def _connect(self, signature, slot):
        wrapped = object.__getattribute__(self, "_wrapped")
        name = signature.split("(", 1)[0]
        extras = object.__getattribute__(self, "_extras")
        if name in extras.get("_signals", ()):
            extras.setdefault("_connections", {}).setdefault(name, []).append(slot)
            return True
        signal = getattr(wrapped, name)  # AttributeError: no such signal, as PythonQt would fail
        signal.connect(lambda *args: slot(*[_to_python_qt(a) for a in args]))
        return True

    def emit(self, name, *args):
        """Emit a Slicer-only signal of a custom widget (what the user's action would do)."""
        for slot in object.__getattribute__(self, "_extras").get("_connections", {}).get(name, []):
            slot(*args)


def _to_python_qt(value):
    from PySide6.QtCore import QObject

    if isinstance(value, QObject):
        return PythonQtObject(value)
    return value


def _from_python_qt(value):
    if isinstance(value, PythonQtObject):
        return object.__getattribute__(value, "_wrapped")
    return value


def _custom_widget_extras(cls: str) -> dict:
    """What the module uses of Slicer's custom widgets, as plain state."""
    if cls == "qMRMLWidget":
        return {"setMRMLScene": lambda scene: None}
    if cls == "qMRMLNodeComboBox":
        return {"_signals": ("currentNodeChanged",), "setMRMLScene": lambda scene: None, "currentNode": None}
    if cls == "qMRMLTableView":
        state: dict = {"node": None}
        return {
            "setMRMLTableNode": lambda node: state.update(node=node),
            "mrmlTableNode": lambda: state["node"],
            "_table": state,
        }
    if cls == "ctkDirectoryButton":
        return {"directory": ""}
    if cls == "ctkSliderWidget":
        return {"_signals": ("valueChanged",), "minimum": 0.0, "maximum": 0.0, "value": 0.0}
    return {}


# -- Slicer's parameterNodeWrapper, stood in with the rules it enforces -----------------------------
# (Base/Python/slicer/parameterNodeWrapper: serializers.py, guiConnectors.py, validators.py.)
# Types it cannot serialize are refused when the class is decorated; a widget it cannot bind (a
# slider on an unbounded number, a widget class it has no connector for, a name that is no field)
# is refused by connectGui; values are stored in the parameters exactly as Slicer's serializers
# store them; GUI connections are made when connectGui is called, so the module's own slots on the
# same signal run first (PythonQt calls slots in connection order).


@dataclass(frozen=True)
class WithinRange:
    minimum: float
    maximum: float

    def validate(self, value) -> None:
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"value {value} is not within [{self.minimum}, {self.maximum}]")


def _split_annotated(hint):
    import typing

    if typing.get_origin(hint) is typing.Annotated:
        base, *annotations = typing.get_args(hint)
        return base, annotations
    return hint, []


def _is_node_type(base) -> bool:
    import slicer

    return isinstance(base, type) and issubclass(base, slicer.vtkMRMLNode)


def _check_serializable(name: str, base) -> None:
    import enum
    import pathlib
    import typing

    origin = typing.get_origin(base)
    if base in (bool, int, float, str) or _is_node_type(base):
        return
    if isinstance(base, type) and (issubclass(base, enum.Enum) or issubclass(base, pathlib.PurePath)):
        return
    if origin is typing.Union:  # typing.Optional/Union; ``X | None`` (types.UnionType) is not one
        for arg in typing.get_args(base):
            if arg is not type(None):
                _check_serializable(name, arg)
        return
    if origin in (list, tuple) and typing.get_args(base):
        for arg in typing.get_args(base):
            _check_serializable(name, arg)
        return
    if origin is dict and len(typing.get_args(base)) == 2:
        for arg in typing.get_args(base):
            _check_serializable(name, arg)
        return
    raise Exception(f"Unable to create serializer for type: {base} (field {name})")


def _encode(base, value) -> str:
    if base is bool:
        return "True" if value else "False"
    return str(value)


def _decode(base, text: str):
    if base is bool:
        return text == "True"
    return base(text)


# .ui class → (value type, signal, whether a bound range is required), as guiConnectors.py binds them.
_CONNECTORS = {
    "QCheckBox": (bool, "toggled", False),
    "QPushButton": (bool, "toggled", False),
    "QSpinBox": (int, "valueChanged", False),
    "QSlider": (int, "valueChanged", True),
    "QDoubleSpinBox": (float, "valueChanged", False),
    "ctkSliderWidget": (float, "valueChanged", True),
    "QLineEdit": (str, "textChanged", False),
}


def parameter_node_wrapper(cls, ui_file):
    import typing

    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {}
    for name, hint in hints.items():
        base, annotations = _split_annotated(hint)
        _check_serializable(name, base)
        ranges = [a for a in annotations if isinstance(a, WithinRange)]
        unknown = [a for a in annotations if not isinstance(a, WithinRange)]
        if unknown:
            raise Exception(f"annotation(s) {unknown} of {name} are not modelled by the stand-in")
        default = cls.__dict__.get(name, None if _is_node_type(base) else base())
        fields[name] = (base, ranges[0] if ranges else None, default)

    class Wrapped:
        allParameters = fields

        def __init__(self, node):
            object.__setattr__(self, "parameterNode", node)
            object.__setattr__(self, "_bindings", {})
            for field_name, (_base, _bounds, default) in fields.items():
                if not node.HasParameter(field_name):  # the wrapper stores a default for what is missing
                    self._write(field_name, default)

        @property
        def node(self):
            return self.parameterNode

        def _write(self, name, value):
            base, bounds, _default = fields[name]
            node = self.parameterNode
            if _is_node_type(base):
                if value is not None and not value.IsA(base.__name__):
                    raise ValueError(f"{name}: {value.GetClassName()} is not a {base.__name__}")
                node.SetParameter(name, "")
                node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
                return
            if not isinstance(value, (int, float) if base is float else base) or (
                base is not bool and isinstance(value, bool)
            ):
                raise TypeError(f"{name}: {value!r} is not a {base.__name__}")
            if bounds is not None:
                bounds.validate(value)
            node.SetParameter(name, _encode(base, value))

        def __getattr__(self, name):
            if name not in fields:
                raise AttributeError(name)
            base = fields[name][0]
            node = object.__getattribute__(self, "parameterNode")
            if _is_node_type(base):
                return node.GetNodeReference(name)
            return _decode(base, node.GetParameter(name))

        def __setattr__(self, name, value):
            if name not in fields:
                raise AttributeError(f"{name} is not a parameter of {cls.__name__}")
            self._write(name, value)

        def connectGui(self, ui):
            return _connect_gui(self, fields, ui, ui_file)

        def disconnectGui(self, tag):
            if tag is not None:
                tag()

    Wrapped.__name__ = Wrapped.__qualname__ = cls.__name__
    return Wrapped


def _connect_gui(wrapped, fields, ui, ui_file):
    bindings = []
    for widget_name, info in ui_file.widgets.items():
        if info.parameter is None:
            continue
        widget = getattr(ui, widget_name)
        if info.parameter not in fields:
            raise ValueError(f"{widget_name} is bound to {info.parameter!r}, which is no parameter")
        base, bounds, _default = fields[info.parameter]
        if info.cls == "qMRMLNodeComboBox" and _is_node_type(base):
            bindings.append(_bind_node_selector(wrapped, info.parameter, widget))
            continue
        connector = _CONNECTORS.get(info.cls)
        if connector is None or connector[0] is not base:
            raise RuntimeError(
                f"Unable to create GUI connector from datatype '{base}' to widget type '{info.cls}'"
            )
        if connector[2] and bounds is None:
            raise RuntimeError(
                f"Cannot have a connection to {info.cls} where the {base.__name__} type is unbounded."
            )
        bindings.append(_bind_value_widget(wrapped, info.parameter, widget, connector[1], bounds, base))
    node = wrapped.parameterNode

    def update_widgets(*_args):
        for binding in bindings:
            binding["to_widget"]()

    update_widgets()
    tag = node.AddObserver("ModifiedEvent", update_widgets)

    def disconnect():
        node.RemoveObserver(tag)
        for binding in bindings:
            binding["disconnect"]()

    return disconnect


def _bind_value_widget(wrapped, name, widget, signal_name, bounds, base):
    extras = object.__getattribute__(widget, "_extras")
    if signal_name in extras.get("_signals", ()):  # a Slicer-only widget, stood in by plain state
        return _bind_stood_in_widget(wrapped, name, extras, signal_name, bounds)
    qwidget = object.__getattribute__(widget, "_wrapped")
    if bounds is not None and hasattr(qwidget, "setRange"):
        qwidget.setRange(bounds.minimum, bounds.maximum)
    elif base is int and hasattr(qwidget, "setRange"):
        qwidget.setRange(-(2**31), 2**31 - 1)
    property_name = {bool: "checked", int: "value", float: "value", str: "text"}[base]
    signal = getattr(qwidget, signal_name)

    def to_node(*_args):
        value = qwidget.property(property_name)
        if getattr(wrapped, name) != value:
            setattr(wrapped, name, base(value))

    def to_widget():
        value = getattr(wrapped, name)
        if qwidget.property(property_name) != value:
            qwidget.blockSignals(True)
            qwidget.setProperty(property_name, value)
            qwidget.blockSignals(False)

    signal.connect(to_node)
    return {"to_widget": to_widget, "disconnect": lambda: signal.disconnect(to_node)}


def _bind_stood_in_widget(wrapped, name, extras, signal_name, bounds):
    slots = extras.setdefault("_connections", {}).setdefault(signal_name, [])
    if bounds is not None:
        extras["minimum"], extras["maximum"] = bounds.minimum, bounds.maximum

    def to_node(value):
        extras["value"] = value
        setattr(wrapped, name, value)

    def to_widget():
        extras["value"] = getattr(wrapped, name)

    slots.append(to_node)
    return {"to_widget": to_widget, "disconnect": lambda: slots.remove(to_node)}


def _bind_node_selector(wrapped, name, widget):
    extras = object.__getattribute__(widget, "_extras")
    slots = extras.setdefault("_connections", {}).setdefault("currentNodeChanged", [])

    def to_node(node):
        setattr(wrapped, name, node)

    def to_widget():
        extras["currentNode"] = getattr(wrapped, name)

    slots.append(to_node)  # after the module's own slots: PythonQt's connection order
    return {"to_widget": to_widget, "disconnect": lambda: slots.remove(to_node)}


class _Namespace:
    pass


def _slicer_stand_in(scene_app, tmp_path, questions, ui_file):
    import contextlib
    import types
    import unittest

    qt = types.ModuleType("qt")

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda _context, text: text

    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: parameter_node_wrapper(cls, ui_file)
    wrapper.WithinRange = WithinRange

    scripted = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModuleLogic:
        def __init__(self):
            self.moduleName = type(self).__name__.removesuffix("Logic")

        def getParameterNode(self):
            return scene_app.scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = types.SimpleNamespace(isEntered=True)
            self.layout = PythonQtObject(_new_layout())

        def setup(self):
            pass

        def resourcePath(self, relative):
            return str(REPO / "CryoAblation" / "Resources" / relative)

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            pass

    for cls in (
        ScriptedLoadableModule,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
        ScriptedLoadableModuleWidget,
    ):
        setattr(scripted, cls.__name__, cls)

    util = types.ModuleType("slicer.util")
    shown: list[str] = []

    class VTKObservationMixin:
        def __init__(self):
            self._observations = []

        def addObserver(self, obj, event, callback):
            self._observations.append((obj, obj.AddObserver(event, callback)))

        def removeObservers(self):
            for obj, tag in self._observations:
                obj.RemoveObserver(tag)
            self._observations = []

    @contextlib.contextmanager
    def try_with_error_display(message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as error:  # Slicer shows the message, then raises the error again
            shown.append(f"{message}\n\n{error}")
            raise

    def load_ui(path):
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice
        from PySide6.QtUiTools import QUiLoader

        assert Path(path) == ui_file.path
        buffer = QBuffer()
        buffer.setData(QByteArray(ui_file.xml_for_pyside()))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        widget = QUiLoader().load(buffer)
        return PythonQtObject(widget, _custom_widget_extras("qMRMLWidget"))

    def child_widget_variables(widget):
        from PySide6.QtWidgets import QWidget

        root = object.__getattribute__(widget, "_wrapped")
        names = _Namespace()
        for name, info in ui_file.widgets.items():
            child = root.findChild(QWidget, name)
            if child is not None:
                setattr(names, name, PythonQtObject(child, _custom_widget_extras(info.cls)))
        return names

    util.VTKObservationMixin = VTKObservationMixin
    util.tryWithErrorDisplay = try_with_error_display
    util.confirmOkCancelDisplay = questions
    util.infoDisplay = lambda text, *args, **kwargs: shown.append(text)
    util.loadUI = load_ui
    util.childWidgetVariables = child_widget_variables
    util.shown = shown

    from PySide6 import QtCore, QtWidgets

    qt.QTimer = lambda: PythonQtObject(QtCore.QTimer())
    qt.QComboBox = lambda: PythonQtObject(QtWidgets.QComboBox())
    qt.QTableWidgetItem = QtWidgets.QTableWidgetItem
    qt.Qt = QtCore.Qt

    app_connections: list = []  # slicer.app's signals the module connected to (recorded, not dropped)
    cache = tmp_path / "slicer-cache"
    temporary = tmp_path / "slicer-tmp"
    cache.mkdir(exist_ok=True)
    temporary.mkdir(exist_ok=True)
    app = types.SimpleNamespace(
        cachePath=str(cache),
        temporaryPath=str(temporary),
        applicationLogic=lambda: scene_app.app_logic,
        connect=lambda signal, slot: app_connections.append((signal, slot)),
        testingEnabled=lambda: False,
    )
    plots_shown: list = []
    plots_logic = types.SimpleNamespace(ShowChartInLayout=plots_shown.append)

    def module_logic(name):
        return types.SimpleNamespace(logic=lambda: scene_app.logic(name))

    modules = types.SimpleNamespace(
        segmentations=module_logic("Segmentations"),
        sequences=module_logic("Sequences"),
        plots=types.SimpleNamespace(logic=lambda: plots_logic, shown=plots_shown),
    )
    fake_modules = {
        "qt": qt,
        "slicer.i18n": i18n,
        "slicer.parameterNodeWrapper": wrapper,
        "slicer.ScriptedLoadableModule": scripted,
        "slicer.util": util,
    }
    return fake_modules, {"mrmlScene": scene_app.scene, "app": app, "modules": modules, "util": util}


def _new_layout():
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setParent(holder)
    _new_layout.keep = [*getattr(_new_layout, "keep", []), holder]
    return layout


@pytest.fixture
def scene_app():
    pytest.importorskip("slicer", reason="the module runs on slicer-core's real MRML")
    from CryoAblationLogic.scene.app import create_scene_app

    app = create_scene_app()
    # Slicer's application logic has these two singletons once it has a scene.
    for class_name in ("vtkMRMLSelectionNode", "vtkMRMLInteractionNode"):
        if app.scene.GetFirstNodeByClass(class_name) is None:
            node = app.scene.CreateNodeByClass(class_name)
            node.SetSingletonTag("Singleton")
            app.scene.AddNode(node)
    return app


@pytest.fixture
def questions():
    return Questions()


def _qt_application():
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    widgets = pytest.importorskip("PySide6.QtWidgets", reason="PySide6-Essentials comes with the test extras")
    return widgets.QApplication.instance() or widgets.QApplication([])


@pytest.fixture
def module(scene_app, tmp_path, monkeypatch, questions, ui_file):
    """``CryoAblation.py`` imported with Slicer's Qt layer stood in and Slicer's scene set."""
    import importlib.util
    import sys

    import slicer

    _qt_application()
    # NUMBA_CACHE_DIR is the run's one lasting cache (Testing/conftest.py), as a user's Slicer has
    # one: the module keeps it, and its worker processes read the kernels compiled before.
    fake_modules, slicer_attributes = _slicer_stand_in(scene_app, tmp_path, questions, ui_file)
    for name, fake in fake_modules.items():
        monkeypatch.setitem(sys.modules, name, fake)
    for name, value in slicer_attributes.items():
        monkeypatch.setattr(slicer, name, value, raising=False)
    spec = importlib.util.spec_from_file_location("CryoAblation", MODULE_FILE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def widget(module):
    """The module's panel, set up (its .ui loaded and wired) and cleaned up after the test."""
    panel = module.CryoAblationWidget()
    panel.setup()
    yield panel
    panel.cleanup()


@pytest.fixture
def logic(module):
    made = module.CryoAblationLogic()
    yield made
    made.session.stop_background_work()


@pytest.fixture
def no_numba(monkeypatch):
    """As if numba were not installed: the solver modules are forgotten so they import it again."""
    import sys

    solver_modules = (
        "CryoAblationLogic.physics.simulation",
        "CryoAblationLogic.physics.kernels",
        "CryoAblationLogic.scene.workflow",
        "CryoAblationLogic.scene.preview",
    )
    for name in list(sys.modules):
        if name == "numba" or name.startswith("numba.") or name in solver_modules:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "numba", None)
    previous_cache = os.environ.get("NUMBA_CACHE_DIR")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    yield
    # The module sets NUMBA_CACHE_DIR itself (to this test's folder), which monkeypatch does not
    # undo: later tests' worker processes would compile every kernel again in that cold folder
    # (live mode's first solver step took 115 s on a busy machine).
    if previous_cache is None:
        os.environ.pop("NUMBA_CACHE_DIR", None)
    else:
        os.environ["NUMBA_CACHE_DIR"] = previous_cache
