"""What can be checked here about the Slicer module without Slicer (issue 6, "What we check here").

- the ``.ui`` loads with Qt's own loader (PySide6, offscreen), custom classes mapped to their bases;
- every ``self.ui.<name>`` the module uses exists in the ``.ui``, and what the module uses on it
  exists on that class; every widget bound to a parameter names a field of the parameter node;
- the module metadata is complete (what Slicer's generic module test checks);
- the module file and the package it imports compile for Python 3.11 and 3.12 and pass ruff;
- every name the module takes from ``CryoAblationLogic`` exists there.
"""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "CryoAblationLogic"

# Parameter type (annotation text, Annotated[...] stripped) → .ui classes Slicer's GUI connectors bind it to.
BINDABLE: dict[str, set[str]] = {
    "bool": {"QCheckBox", "QPushButton"},
    "str": {"QLineEdit", "QComboBox"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "QSlider"},
    "int": {"QSpinBox", "QSlider", "ctkSliderWidget"},
    "vtkMRMLScalarVolumeNode": {"qMRMLNodeComboBox"},
    "vtkMRMLSegmentationNode": {"qMRMLNodeComboBox"},
    "vtkMRMLMarkupsLineNode": {"qMRMLNodeComboBox"},
}


@pytest.fixture(scope="module")
def qt_app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    widgets = pytest.importorskip("PySide6.QtWidgets", reason="PySide6-Essentials comes with the test extras")
    return widgets.QApplication.instance() or widgets.QApplication([])


@pytest.fixture(scope="module")
def loaded_ui(qt_app, ui_file):
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QtMsgType, qInstallMessageHandler
    from PySide6.QtUiTools import QUiLoader

    messages: list[str] = []

    def handler(kind, _context, message):
        if kind != QtMsgType.QtDebugMsg:
            messages.append(message)

    previous = qInstallMessageHandler(handler)
    try:
        buffer = QBuffer()
        buffer.setData(QByteArray(ui_file.xml_for_pyside()))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        loader = QUiLoader()
        widget = loader.load(buffer)
    finally:
        qInstallMessageHandler(previous)
    assert widget is not None, loader.errorString()
    return widget, messages


def find_child(widget, name):
    from PySide6.QtWidgets import QWidget

    return widget.findChild(QWidget, name)


def test_ui_loads_with_qt_loader_without_warnings(loaded_ui, ui_file):
    widget, messages = loaded_ui
    assert messages == []
    assert widget.objectName() == "CryoAblation"
    for name in ui_file.widgets:
        if name != "CryoAblation":
            assert find_child(widget, name) is not None, f"{name} was not created by the loader"


def test_ui_declares_every_custom_class_with_a_qt_base(ui_file):
    import PySide6.QtWidgets as widgets

    used = {w.cls for w in ui_file.widgets.values()}
    for cls in used:
        base = ui_file.qt_base(cls)
        assert hasattr(widgets, base), f"{cls} needs a <customwidget> entry extending a Qt class, got {base}"


def test_ui_sections_follow_the_procedure(ui_file):
    names = [w.name for w in ui_file.widgets.values() if w.cls == "ctkCollapsibleButton"]
    assert names == [
        "inputsCollapsibleButton",
        "probesCollapsibleButton",
        "protectionCollapsibleButton",
        "protocolCollapsibleButton",
        "simulateCollapsibleButton",
        "monitorCollapsibleButton",
        "resultsCollapsibleButton",
    ]


def test_slicer_only_connections_reach_mrml_widgets(ui_file):
    for connection in ui_file.connections:
        assert connection["signal"] == "mrmlSceneChanged(vtkMRMLScene*)"
        assert connection["slot"] == "setMRMLScene(vtkMRMLScene*)"
        assert ui_file.widgets[connection["receiver"]].cls.startswith("qMRML")
    combo_boxes = {w.name for w in ui_file.widgets.values() if w.cls == "qMRMLNodeComboBox"}
    assert combo_boxes <= {c["receiver"] for c in ui_file.connections}, "node selectors need the scene"


def test_every_ui_name_the_module_uses_exists_with_what_is_used_on_it(
    loaded_ui, ui_file, module_source, slicer_widget_members
):
    widget, _ = loaded_ui
    uses = module_source.ui_uses()
    assert uses, "the module uses no self.ui widgets"
    for name, members in sorted(uses.items()):
        assert name in ui_file.widgets, f"self.ui.{name} is not in CryoAblation.ui"
        cls = ui_file.widgets[name].cls
        child = find_child(widget, name)
        for member in sorted(members):
            known = hasattr(child, member) or child.metaObject().indexOfProperty(member) >= 0
            known = known or member in slicer_widget_members.get(cls, set())
            assert known, f"self.ui.{name}.{member}: {cls} has no such property, method or signal"


def test_every_bound_widget_names_a_parameter_of_a_compatible_type(ui_file):
    """Statically, before Slicer's wrapper binds them (the stand-in's connectGui then enforces the
    same rules at run time, test_parameter_node.py): every bound widget names a plan setting or an
    input node, of a type its class can show."""
    from typing import get_type_hints

    from CryoAblationLogic.scene import parameters as P

    fields = {name: spec[0].__name__ for name, spec in P.wrapper_fields().items()}
    fields.update(
        {P.INPUT_VOLUME: "vtkMRMLScalarVolumeNode", P.INPUT_SEGMENTATION: "vtkMRMLSegmentationNode"}
    )
    bound = {w.name: w for w in ui_file.widgets.values() if w.parameter}
    assert bound
    for name, widget in bound.items():
        assert widget.parameter in fields, f"{name} is bound to unknown parameter {widget.parameter!r}"
        annotation = fields[widget.parameter]
        assert widget.cls in BINDABLE[annotation], f"{name} ({widget.cls}) cannot show a {annotation}"
    assert len({w.parameter for w in bound.values()}) == len(bound), "one widget per parameter"
    assert get_type_hints(P.PlanSettings)  # the one typed set the wrapper is built from


def test_module_metadata_is_complete(module_source):
    assigned = module_source.parent_assignments()
    for key in ("title", "categories", "dependencies", "contributors", "helpText", "acknowledgementText"):
        assert key in assigned, f"self.parent.{key} is not set"
    text = {key: ast.unparse(value) for key, value in assigned.items()}
    assert "CryoAblation" in text["title"]
    assert "'IGT'" in text["categories"]
    contributors = assigned["contributors"]
    assert isinstance(contributors, ast.List) and contributors.elts
    assert all(isinstance(e, ast.Constant) and e.value.strip() for e in contributors.elts)
    assert "OpenIGTLinkIF" not in text["dependencies"]  # optional, see docs/live-link.md, Topology
    help_text = text["helpText"]
    assert "research software, not a medical device" in help_text
    assert "first control point is the probe tip" in help_text
    assert "second control point is the entry" in help_text
    assert "USING_THE_MODULE_URL" in help_text
    source = module_source.path.read_text(encoding="utf-8")
    assert 'USING_THE_MODULE_URL = "https://' in source and "#using-the-module" in source
    assert len(ast.literal_eval(_first_string(assigned["acknowledgementText"]))) > 40


def _first_string(node: ast.expr) -> str:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            return repr(child.value)
    raise AssertionError("no string literal")


def test_module_follows_the_scripted_module_template(module_source):
    classes = module_source.classes()
    bases = {name: [ast.unparse(b) for b in cls.bases] for name, cls in classes.items()}
    assert bases["CryoAblation"] == ["ScriptedLoadableModule"]
    assert bases["CryoAblationWidget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert bases["CryoAblationLogic"] == ["ScriptedLoadableModuleLogic"]
    assert bases["CryoAblationTest"] == ["ScriptedLoadableModuleTest"]
    # The wrapper class is made from the plan settings by a function that applies parameterNodeWrapper.
    source = module_source.path.read_text(encoding="utf-8")
    assert "CryoAblationParameterNode = _parameterNodeClass()" in source
    assert "return parameterNodeWrapper(" in source
    functions = {node.name for node in module_source.tree.body if isinstance(node, ast.FunctionDef)}
    assert "registerSampleData" in functions
    test_methods = {f.name for f in classes["CryoAblationTest"].body if isinstance(f, ast.FunctionDef)}
    assert {"setUp", "runTest"} <= test_methods
    run_test = next(f for f in classes["CryoAblationTest"].body if getattr(f, "name", "") == "runTest")
    called = {ast.unparse(c.func) for c in ast.walk(run_test) if isinstance(c, ast.Call)}
    assert {f"self.{name}" for name in test_methods if name.startswith("test_")} <= called
    assert {c for c in called if c.startswith("self.test_")} <= {f"self.{name}" for name in test_methods}


def test_package_is_imported_under_an_alias_before_the_logic_class(module_source):
    body = module_source.tree.body
    logic_line = module_source.classes()["CryoAblationLogic"].lineno
    alias_lines = [
        node.lineno
        for node in body
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "CryoAblationLogic" and alias.asname
    ]
    assert alias_lines and alias_lines[0] < logic_line
    for node in ast.walk(module_source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not (alias.name.startswith("CryoAblationLogic") and alias.asname is None), (
                    f"line {node.lineno}: a bare 'import CryoAblationLogic' is shadowed by the logic class"
                )


def test_every_name_taken_from_the_package_exists(module_source):
    references = module_source.package_references()
    assert references
    for module_name, chain, line in references:
        obj = importlib.import_module(module_name)
        path = module_name
        for attr in chain:
            if not hasattr(obj, attr) and isinstance(obj, type(importlib)):
                try:
                    importlib.import_module(f"{path}.{attr}")
                except ModuleNotFoundError:
                    pass
            assert hasattr(obj, attr), f"CryoAblation.py line {line}: {path}.{attr} does not exist"
            obj = getattr(obj, attr)
            path = f"{path}.{attr}"


def test_widget_leaves_all_work_to_the_logic(module_source):
    widget = module_source.classes()["CryoAblationWidget"]
    for node in ast.walk(widget):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
            assert not any(n.split(".")[0] in {"numpy", "CryoAblationLogic"} for n in names), (
                f"line {node.lineno}: the widget imports {names}; computation belongs in the logic"
            )


# Session and logic methods that only read Python attributes (they cannot fail); every other call
# from a panel section must be guarded: a user's action by Slicer's error dialog, timer-driven
# code by the panel's status line (never a modal dialog while the timer keeps firing).
STATE_QUERIES = {
    "getParameterNode",
    "simulation_running",
    "numbaStatusText",
    "live",
    "active",
    "replaying",
    "preview_active",
    "simulation_progress",
    "protocol_preset_names",
}
SECTION_FILES = sorted((REPO / "CryoAblation" / "CryoAblationLib").glob("*Section.py"))


def test_logic_state_queries_only_read_attributes(module_source):
    logic = module_source.classes()["CryoAblationLogic"]
    for method in logic.body:
        if isinstance(method, ast.FunctionDef) and method.name in STATE_QUERIES - {"getParameterNode"}:
            calls = [ast.unparse(c.func) for c in ast.walk(method) if isinstance(c, ast.Call)]
            assert calls == [], f"{method.name} calls {calls}; guard it in the widget instead"


def _is_guard(node: ast.AST) -> bool:
    if isinstance(node, ast.With):
        return any(
            ast.unparse(item.context_expr).startswith(("self.userAction(", "reportInPanel("))
            for item in node.items
        )
    return isinstance(node, ast.Try) and bool(node.handlers)  # caught and shown in the panel


@pytest.mark.parametrize("path", SECTION_FILES, ids=lambda p: p.stem)
def test_section_actions_report_errors_as_messages(path):
    """Every call into the session from a section is guarded where it is made, or inside a helper
    method that is itself only called where guarded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    methods = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}

    def guarded(node: ast.AST, seen: frozenset = frozenset()) -> bool:
        current = node
        while current in parents:
            current = parents[current]
            if _is_guard(current):
                return True
            if isinstance(current, ast.FunctionDef):
                if current.name in seen:
                    return False
                callers = [
                    call
                    for call in ast.walk(tree)
                    if isinstance(call, ast.Call) and ast.unparse(call.func) == f"self.{current.name}"
                ]
                return bool(callers) and all(guarded(c, seen | {current.name}) for c in callers)
        return False

    unguarded = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = ast.unparse(node.func.value)
        if owner not in {"self.session", "self.logic", "self.monitor", "self.session.monitor"}:
            continue
        if node.func.attr not in STATE_QUERIES and not guarded(node):
            unguarded.append(f"line {node.lineno}: {owner}.{node.func.attr}")
    assert methods and unguarded == [], f"{path.name}: calls outside userAction/reportInPanel: {unguarded}"


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_module_and_package_compile_for_this_python():
    assert sys.version_info[:2] >= (3, 11)
    for path in [REPO / "CryoAblation" / "CryoAblation.py", *package_files()]:
        compile(path.read_text(encoding="utf-8"), str(path), "exec", dont_inherit=True)


def find_python(version: str) -> str | None:
    """An interpreter of that version that runs: on PATH, or installed by pyenv beside the shims."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(map(str, pyenv_root.glob(f"versions/{version}*/bin/python{version}")), reverse=True),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
            if probe.returncode == 0:
                return candidate
    return None


def test_module_and_package_compile_for_python_312(tmp_path):
    python312 = find_python("3.12")
    if python312 is None:
        pytest.skip("no Python 3.12 interpreter on this machine")
    files = [str(REPO / "CryoAblation" / "CryoAblation.py"), *map(str, package_files())]
    script = (
        "import sys, py_compile\n"
        "for i, f in enumerate(sys.argv[2:]):\n"
        "    py_compile.compile(f, cfile=f'{sys.argv[1]}/{i}.pyc', doraise=True)\n"
    )
    result = subprocess.run(
        [python312, "-c", script, str(tmp_path), *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("target", ["py311", "py312"])
def test_module_and_package_pass_ruff(target):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff comes with the test extras"
    result = subprocess.run(
        [ruff, "check", "--target-version", target, "CryoAblation", "CryoAblationLogic"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, spaces to '-', punctuation dropped)."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add("".join(c for c in title.replace(" ", "-") if c.isalnum() or c in "-_"))
    return anchors


def test_help_text_links_to_the_using_the_module_section(module_source):
    source = module_source.path.read_text(encoding="utf-8")
    anchor = source.split('USING_THE_MODULE_URL = "', 1)[1].split('"', 1)[0].split("#", 1)[1]
    assert anchor == "using-the-module"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert anchor in heading_anchors(readme)


def test_using_the_module_walks_through_every_panel_section(ui_file):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    text = readme.split("## Using the module", 1)[1].split("\n## ", 1)[0]
    labels = set()
    for element in ui_file.root.iter("widget"):
        if element.get("class") == "QPushButton":
            for prop in element.findall("property"):
                if prop.get("name") == "text":
                    labels.add(prop.findtext("string"))
    assert len(labels) >= 10
    for label in sorted(labels):
        assert f"**{label}**" in text, f"the walk-through does not mention the button **{label}**"
    assert "research software, not a medical device" in text


def test_self_test_and_pytest_run_the_same_scenarios(module_source):
    """Every scenario of CryoAblationScenarios runs in Slicer's self-test and in pytest."""
    import inspect

    import CryoAblationScenarios as scenarios

    names = {
        name
        for name, function in inspect.getmembers(scenarios, inspect.isfunction)
        if function.__module__ == scenarios.__name__
        and not name.startswith("_")
        and name not in {"check", "plan_snapshot", "simulated_mr_bridge"}  # helpers, not scenarios
    }
    assert {
        "load_phantom",
        "place_probes",
        "simulate_and_check",
        "save_and_reload",
        "replay_short_journal",
    } <= names
    test_class = module_source.classes()["CryoAblationTest"]
    in_slicer = {
        node.attr
        for node in ast.walk(test_class)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "scenarios"
    }
    assert names - in_slicer == set(), "scenarios the Slicer self-test does not run"
    pytest_source = (Path(__file__).parent / "test_scenarios.py").read_text(encoding="utf-8")
    for name in names:
        assert f"scenarios.{name}(" in pytest_source, f"pytest does not run scenarios.{name}"
