"""Shared pytest fixtures. Tests read like specifications; tolerances are stated where used."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# One numba cache for the whole run, set before anything imports numba: this process and every
# worker it starts (solver, preview, live mode, the correction's ensemble) read and write the same
# compiled kernels. Without it this process compiled them beside the sources and the workers again
# into another folder, each a few minutes on a 2-core machine. A cache the user set is kept.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "cryoablation-tests-numba-cache"))

# The Slicer module's own helpers (CryoAblationLib, beside the module) and its self-test scenarios
# (CryoAblation/Testing/Python) are found on Slicer's module path there; here, on sys.path.
for _folder in (REPO_ROOT / "CryoAblation", REPO_ROOT / "CryoAblation" / "Testing" / "Python"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
