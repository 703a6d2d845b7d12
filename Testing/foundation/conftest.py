"""Fixtures for the case-file and NRRD tests: a small valid case, written to a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # foundation_cases.py (import-mode=importlib has no package)

from foundation_cases import small_case  # noqa: E402


@pytest.fixture
def case_dict() -> dict:
    return small_case()


@pytest.fixture
def write_case(tmp_path):
    """Write a case dict (or raw text / bytes) as ``case.cryo.json`` in a fresh folder."""

    def write(content, name: str = "case.cryo.json") -> Path:
        path = tmp_path / "case" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        return path

    return write
