"""Shared pytest fixtures. Tests read like specifications; tolerances are stated where used."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The Slicer module's own helpers (CryoAblationLib, beside the module) and its self-test scenarios
# (CryoAblation/Testing/Python) are found on Slicer's module path there; here, on sys.path.
for _folder in (REPO_ROOT / "CryoAblation", REPO_ROOT / "CryoAblation" / "Testing" / "Python"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
