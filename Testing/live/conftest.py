"""Fixtures of the live-mode tests (helpers in ``live_testing.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for live_testing

from live_testing import small_case


@pytest.fixture
def case():
    return small_case()
