"""Every package the code imports is installed where the code runs: by ``pip install`` (the
``dependencies`` of ``pyproject.toml``) and inside Slicer (bundled with Slicer, or listed in
``CryoAblation/Resources/requirements.txt``, which the module installs on first use).

A module that imports what neither brings fails only where users run it (``cryoablation
ice-pictures`` after a plain pip install, live mode inside Slicer), never here, where the test
extras install everything."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OWN = {"CryoAblationLogic", "CryoAblationLib", "CryoAblation"}

# What Slicer 5.8–5.12 ships in its Python (Slicer's SuperBuild/External_python-*.cmake): numpy,
# scipy (alone, without threadpoolctl), SimpleITK, VTK, pydicom with the DICOM requirements,
# requests; and Slicer's own modules.
SLICER_BUNDLED = {"numpy", "scipy", "SimpleITK", "sitkUtils", "vtk", "vtkmodules", "pydicom", "requests"}
SLICER_OWN = {"slicer", "qt", "ctk", "SampleData"}


def third_party_imports(*folders: str) -> dict[str, set[str]]:
    """Top-level names of the non-standard modules imported in the folders' Python files, with the
    files that import each."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    """The distribution a requirement line names ("threadpoolctl>=3.1" → "threadpoolctl")."""
    return normalised(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line).group(1))


def distributions(module: str) -> set[str]:
    """The installed distributions that provide a top-level module (``vtkmodules`` → ``vtk``)."""
    return {normalised(d) for d in importlib.metadata.packages_distributions().get(module, [])}


def test_a_pip_install_brings_every_package_the_logic_imports():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {requirement_name(line) for line in pyproject["project"]["dependencies"]}
    missing = {
        module: sorted(files)
        for module, files in third_party_imports("CryoAblationLogic").items()
        if not distributions(module) & declared
    }
    assert not missing, f"imported but not in pyproject's dependencies: {missing}"


def test_slicer_has_or_installs_every_package_the_module_and_the_logic_import():
    lines = (REPO / "CryoAblation" / "Resources" / "requirements.txt").read_text(encoding="utf-8")
    listed = {
        requirement_name(line)
        for line in (raw.split("#", 1)[0].strip() for raw in lines.splitlines())
        if line and not line.startswith("-")
    }
    missing = {
        module: sorted(files)
        for module, files in third_party_imports("CryoAblationLogic", "CryoAblation").items()
        if module not in SLICER_BUNDLED | SLICER_OWN and not distributions(module) & listed
    }
    assert not missing, f"imported, neither bundled with Slicer nor in requirements.txt: {missing}"
