"""Fixtures of the module tests: static facts about the Slicer module file and its .ui.

The module file imports ``qt``/``slicer``, so it is read with :mod:`ast`; the ``.ui`` is read as XML
and loaded with PySide6's own loader, with Slicer's custom widget classes replaced by the base
classes the file declares for them (as Qt Designer itself does when a plugin is missing).
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest

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
