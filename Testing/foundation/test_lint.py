"""The tree is ruff-clean (the same check as ``make lint``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ruff() -> list[str]:
    executable = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if executable is None:
        pytest.fail("ruff is not installed; it comes with the test extras (pip install -e '.[test]')")
    return [executable]


def test_ruff_check_is_clean():
    result = subprocess.run([*ruff(), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = subprocess.run([*ruff(), "format", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold():
    """The layers of pyproject.toml's [tool.importlinter] hold: core → physics | igtl → io | analysis
    → live | report → scene → cli, and nothing below the scene layer imports Slicer, Qt or MRML."""
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    if executable is None:
        pytest.fail(
            "import-linter is not installed; it comes with the test extras (pip install -e '.[test]')"
        )
    result = subprocess.run([executable, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
