"""An extension build ships exactly what is on disk: every Python file and resource is listed in
the CMake files, and every file the CMake files list exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Files on disk that are deliberately not shipped by the extension build.
NOT_SHIPPED_RESOURCES = {"Screenshots"}  # Resources/Screenshots: for the catalog page only


def cmake_list(cmake_file: Path, variable: str) -> list[str]:
    text = cmake_file.read_text(encoding="utf-8")
    match = re.search(rf"set\(\s*{variable}\b(.*?)\)", text, flags=re.S)
    assert match, f"{cmake_file} does not set {variable}"
    entries = []
    for line in match.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        entries.extend(line.split())
    return entries


def expand(entries: list[str], module_name: str) -> set[str]:
    return {entry.replace("${MODULE_NAME}", module_name) for entry in entries}


def test_logic_package_python_files_match_cmake_list():
    package = REPO / "CryoAblationLogic"
    listed = expand(cmake_list(package / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS"), "CryoAblationLogic")
    on_disk = {
        p.relative_to(package).as_posix() for p in package.rglob("*.py") if "__pycache__" not in p.parts
    }
    assert sorted(on_disk - listed) == [], "Python files missing from CryoAblationLogic/CMakeLists.txt"
    assert sorted(listed - on_disk) == [], "CryoAblationLogic/CMakeLists.txt lists files that do not exist"


def test_top_level_resources_match_cmake_list():
    listed = set(cmake_list(REPO / "CryoAblationLogic" / "CMakeLists.txt", "CRYOABLATION_DATA_FILES"))
    resources = REPO / "Resources"
    on_disk = {
        p.relative_to(REPO).as_posix()
        for p in resources.rglob("*")
        if p.is_file() and p.relative_to(resources).parts[0] not in NOT_SHIPPED_RESOURCES
    }
    assert sorted(on_disk - listed) == [], "Resources/ files missing from CRYOABLATION_DATA_FILES"
    assert sorted(listed - on_disk) == [], "CRYOABLATION_DATA_FILES lists files that do not exist"


def test_scripted_module_files_match_cmake_lists():
    module = REPO / "CryoAblation"
    cmake = module / "CMakeLists.txt"
    scripts = expand(cmake_list(cmake, "MODULE_PYTHON_SCRIPTS"), "CryoAblation")
    resources = expand(cmake_list(cmake, "MODULE_PYTHON_RESOURCES"), "CryoAblation")
    # Testing/Python's scenarios ship too: the self-test of an installed extension runs them.
    py_on_disk = {
        p.relative_to(module).as_posix() for p in module.rglob("*.py") if "__pycache__" not in p.parts
    }
    resources_on_disk = {
        p.relative_to(module).as_posix() for p in (module / "Resources").rglob("*") if p.is_file()
    }
    assert scripts == py_on_disk
    assert resources == resources_on_disk


def test_module_cmake_follows_slicer_conventions():
    module_cmake = (REPO / "CryoAblation" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_GENERIC_TESTS" in module_cmake
    assert re.search(r"slicer_add_python_unittest\(\s*SCRIPT \$\{MODULE_NAME\}\.py", module_cmake)
    package_cmake = (REPO / "CryoAblationLogic" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_SUBDIR" in package_cmake
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    # The package must be configured before the module that imports it.
    assert top.index("add_subdirectory(CryoAblationLogic)") < top.index("add_subdirectory(CryoAblation)")
    for subdir in re.findall(r"add_subdirectory\((\w+)\)", module_cmake):
        assert (REPO / "CryoAblation" / subdir / "CMakeLists.txt").is_file()


def test_top_level_cmake_has_extension_metadata():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"^project\(CryoAblation\)", top, flags=re.M)
    for key in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        match = re.search(rf'set\({key} "([^"]+)"\)', top)
        assert match, f"{key} missing or empty"
    assert re.search(r'set\(EXTENSION_CATEGORY "IGT"\)', top)
