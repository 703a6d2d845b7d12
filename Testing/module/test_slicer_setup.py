"""numba is installed inside Slicer only after the user agrees, always with Slicer's numpy pinned.

``slicer.packaging`` / ``slicer.util`` are replaced by small fakes that record what they are asked
to do; the fake installers "install" numba by making the fake importer succeed afterwards.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from CryoAblationLib import dependencies as slicer_setup
from CryoAblationLib.dependencies import WITHOUT_NUMBA, ensure_numba

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "CryoAblation" / "Resources" / "requirements.txt"
NUMPY_VERSION = importlib.metadata.version("numpy")


class FakeImporter:
    """The requirements are missing until an installer marks them installed; ``present`` names
    modules that are there from the start (numba alone, say)."""

    def __init__(self, installed: bool = False, present: tuple[str, ...] = ()):
        self.installed = installed
        self.present = set(present)
        self.calls: list[str] = []

    def __call__(self, name: str):
        self.calls.append(name)
        if self.installed or name in self.present:
            return SimpleNamespace(__version__="0.99.0")
        raise ImportError(f"No module named {name!r}")


class FakePackaging:
    """slicer.packaging of Slicer >= 5.11: records pip_ensure calls and the constraints file text."""

    def __init__(self, importer: FakeImporter, error: Exception | None = None):
        self.importer = importer
        self.error = error
        self.calls: list[dict] = []

    def pip_ensure(self, requirements, constraints=None, **kwargs):
        self.calls.append(
            {
                "requirements": list(requirements),
                "constraints": constraints,
                "constraints_text": Path(constraints).read_text(encoding="utf-8"),
                **kwargs,
            }
        )
        if self.error is not None:
            raise self.error
        self.importer.installed = True


class FakeUtil:
    """slicer.util of Slicer <= 5.10: records pip_install arguments."""

    def __init__(self, importer: FakeImporter):
        self.importer = importer
        self.calls: list[list[str]] = []
        self.constraints_texts: list[str] = []

    def pip_install(self, requirements):
        self.calls.append(requirements)
        self.constraints_texts.append(Path(requirements[requirements.index("-c") + 1]).read_text())
        self.importer.installed = True


class Asker:
    def __init__(self, answer: bool):
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, message: str) -> bool:
        self.questions.append(message)
        return self.answer


def pinned_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_requirements_file_asks_for_numba_without_exact_pin():
    requirements = slicer_setup.read_requirements(REQUIREMENTS)
    assert [r for r in requirements if r.startswith("numba")] == ["numba>=0.60"]
    assert all("==" not in r for r in requirements)


def test_available_numba_is_used_without_asking(tmp_path):
    importer = FakeImporter(installed=True)
    ask = Asker(True)
    packaging = FakePackaging(importer)
    status = ensure_numba(REQUIREMENTS, ask, packaging=packaging, importer=importer, work_dir=tmp_path)
    assert status.available and status.version == "0.99.0"
    assert ask.questions == [] and packaging.calls == []


def slicer_ships(pydicom: str | None):
    """``version_of`` for a Slicer whose Python has this pydicom (5.10: 2.4.4; 5.12: 3.0.1)."""
    return {"pydicom": pydicom}.get


def test_slicer_511_installs_with_pip_ensure_and_numpy_pinned(tmp_path):
    importer = FakeImporter()
    ask = Asker(True)
    packaging = FakePackaging(importer)
    util = FakeUtil(importer)
    status = ensure_numba(
        REQUIREMENTS,
        ask,
        packaging=packaging,
        util=util,
        importer=importer,
        work_dir=tmp_path,
        version_of=slicer_ships("3.0.1"),
    )
    assert status.available, status.message
    assert len(ask.questions) == 1 and "numba" in ask.questions[0] and NUMPY_VERSION in ask.questions[0]
    assert util.calls == []  # the new API is preferred where it exists
    (call,) = packaging.calls
    assert call["requirements"] == slicer_setup.read_requirements(REQUIREMENTS)  # numba, jsonschema
    # Slicer's own numpy and pydicom are kept as they are
    assert pinned_lines(call["constraints_text"]) == [f"numpy=={NUMPY_VERSION}", "pydicom==3.0.1"]
    assert Path(call["constraints"]).parent == tmp_path
    assert call["prompt_install"] is False  # the user was asked once already
    assert call["requester"] == "CryoAblation"


def test_older_slicer_installs_with_util_pip_install_and_constraint_argument(tmp_path):
    """Slicer 5.10: slicer.util.pip_install, and pydicom 2.4.4, which highdicom 0.23+ would replace
    with pydicom 3 under Slicer's own DICOM modules: highdicom waits, and the message says so."""
    importer = FakeImporter()
    util = FakeUtil(importer)
    old_packaging = SimpleNamespace()  # a Slicer without pip_ensure
    status = ensure_numba(
        REQUIREMENTS,
        Asker(True),
        packaging=old_packaging,
        util=util,
        importer=importer,
        work_dir=tmp_path,
        version_of=slicer_ships("2.4.4"),
    )
    assert status.available
    assert "highdicom is not installed: it needs pydicom 3.0.1 or later, and this Slicer's pydicom 2.4.4" in (
        status.message
    )
    (arguments,) = util.calls
    requirements = [r for r in slicer_setup.read_requirements(REQUIREMENTS) if not r.startswith("highdicom")]
    assert arguments[: len(requirements) + 1] == [*requirements, "-c"]
    assert Path(arguments[len(requirements) + 1]).is_file()
    assert pinned_lines(util.constraints_texts[0]) == [f"numpy=={NUMPY_VERSION}", "pydicom==2.4.4"]


def test_numpy_pin_follows_the_installed_version_not_a_fixed_one(tmp_path):
    importer = FakeImporter()
    packaging = FakePackaging(importer)
    ensure_numba(
        REQUIREMENTS,
        Asker(True),
        packaging=packaging,
        importer=importer,
        work_dir=tmp_path,
        numpy_version="2.4.6",
        version_of=slicer_ships(None),  # no pydicom: nothing more to keep
    )
    assert pinned_lines(packaging.calls[0]["constraints_text"]) == ["numpy==2.4.6"]


def test_decline_installs_nothing_and_says_what_will_not_work(tmp_path):
    importer = FakeImporter()
    packaging = FakePackaging(importer)
    util = FakeUtil(importer)
    status = ensure_numba(
        REQUIREMENTS, Asker(False), packaging=packaging, util=util, importer=importer, work_dir=tmp_path
    )
    assert not status.available
    assert packaging.calls == [] and util.calls == []
    assert list(tmp_path.iterdir()) == []  # not even a constraints file
    for feature in ("solver", "preview", "live monitoring"):
        assert feature in status.message
    assert WITHOUT_NUMBA in status.message


@pytest.mark.parametrize(
    "error",
    [subprocess.CalledProcessError(1, "pip install"), RuntimeError("User declined package installation")],
)
def test_failed_or_cancelled_install_is_reported_not_raised(tmp_path, error):
    importer = FakeImporter()
    packaging = FakePackaging(importer, error=error)
    status = ensure_numba(
        REQUIREMENTS, Asker(True), packaging=packaging, importer=importer, work_dir=tmp_path
    )
    assert not status.available
    assert "failed" in status.message and "solver" in status.message


def test_install_that_leaves_numba_unimportable_is_reported(tmp_path):
    importer = FakeImporter()

    class SkippingPackaging(FakePackaging):  # pip_ensure skips installs in Slicer's testing mode
        def pip_ensure(self, requirements, constraints=None, **kwargs):
            self.calls.append({"requirements": list(requirements)})

    status = ensure_numba(
        REQUIREMENTS, Asker(True), packaging=SkippingPackaging(importer), importer=importer, work_dir=tmp_path
    )
    assert not status.available and "still not importable" in status.message


def test_numba_cache_goes_to_a_user_writable_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    importer = FakeImporter(installed=True)
    ensure_numba(REQUIREMENTS, Asker(True), importer=importer, cache_root=tmp_path, work_dir=tmp_path)
    cache = Path(os.environ["NUMBA_CACHE_DIR"])
    assert cache.is_relative_to(tmp_path) and cache.is_dir() and os.access(cache, os.W_OK)


def test_user_numba_cache_setting_is_kept_when_writable(tmp_path, monkeypatch):
    own = tmp_path / "own-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(own))
    assert slicer_setup.configure_numba_cache(tmp_path / "slicer-cache") == own
    assert os.environ["NUMBA_CACHE_DIR"] == str(own)


def test_requirements_without_entries_are_refused(tmp_path):
    empty = tmp_path / "requirements.txt"
    empty.write_text("# nothing\n-c constraints.txt\n")
    with pytest.raises(ValueError, match="lists no requirement"):
        slicer_setup.read_requirements(empty)


def test_numba_present_but_another_requirement_missing_installs_only_what_is_missing(tmp_path):
    """numba installed by hand, jsonschema and the report's packages not: reading a case or writing
    the report would fail, so the module asks for exactly what is missing and leaves numba alone."""
    importer = FakeImporter(present=("numba",))
    ask = Asker(True)
    packaging = FakePackaging(importer)
    status = ensure_numba(REQUIREMENTS, ask, packaging=packaging, importer=importer, work_dir=tmp_path)
    assert status.available, status.message
    (call,) = packaging.calls
    requirements = slicer_setup.read_requirements(REQUIREMENTS)
    assert call["requirements"] == [r for r in requirements if not r.startswith("numba")]
    assert "jsonschema>=4.20" in call["requirements"] and "numba" not in ask.questions[0].split(",")[0]


def test_every_requirement_names_an_importable_module_here():
    """Each line of requirements.txt maps to the module the code imports (checked where they are
    all installed: the test environment)."""
    for requirement in slicer_setup.read_requirements(REQUIREMENTS):
        importlib.import_module(slicer_setup.requirement_module(requirement))


def _logic_modules_the_panel_imports() -> list[str]:
    """The CryoAblationLogic modules that CryoAblation.py and CryoAblationLib import at module level
    (what Slicer imports when it loads the module, before anything can be installed)."""
    import ast

    files = [
        REPO / "CryoAblation" / "CryoAblation.py",
        *(REPO / "CryoAblation" / "CryoAblationLib").glob("*.py"),
    ]
    modules = set()
    for path in files:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("CryoAblationLogic"):
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(a.name for a in node.names if a.name.startswith("CryoAblationLogic"))
    return sorted(modules)


def test_the_module_loads_in_a_slicer_without_any_package_it_installs():
    """Slicer loads the module before the user is asked to install numba and the rest of
    requirements.txt: nothing the panel imports may need them (threadpoolctl once did, so the
    module failed to load in a fresh Slicer)."""
    import sys

    blocked = sorted(
        {slicer_setup.requirement_module(r) for r in slicer_setup.read_requirements(REQUIREMENTS)}
    )
    modules = _logic_modules_the_panel_imports()
    assert "CryoAblationLogic.scene.planning" in modules
    script = f"""
import importlib, sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("not installed in this Slicer: " + name)
sys.meta_path.insert(0, Missing())
for module in {modules!r}:
    importlib.import_module(module)
print("loaded", len({modules!r}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("loaded")


def test_in_testing_mode_the_message_names_what_is_missing(tmp_path):
    """numba present, a report library missing: the message names that library and how to install
    it, not numba."""
    importer = FakeImporter(present=("numba", "jsonschema", "matplotlib", "contourpy", "jinja2"))
    status = ensure_numba(
        REQUIREMENTS,
        Asker(True),
        importer=importer,
        work_dir=tmp_path,
        testing=True,
        version_of=slicer_ships("3.0.1"),
    )
    assert not status.available
    assert status.message.startswith("xhtml2pdf, highdicom, tqdm, threadpoolctl are not installed")
    assert "slicer.util.pip_install('xhtml2pdf highdicom tqdm threadpoolctl')" in status.message
    assert "numba is not installed" not in status.message
