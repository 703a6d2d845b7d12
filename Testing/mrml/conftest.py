"""Fixtures for the MRML adapter tests: a real scene from ``slicer-core`` (no Qt), set up the way
Slicer sets it up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="the MRML adapter tests need slicer-core")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for scene_testing

from scene_testing import AnalyticResult

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.scene.app import SceneApp, create_scene_app


@pytest.fixture
def scene_app() -> SceneApp:
    return create_scene_app()


@pytest.fixture
def scene(scene_app):
    return scene_app.scene


@pytest.fixture
def small_grid() -> Grid:
    return Grid((-24.0, -24.0, -24.0), (1.0, 1.0, 1.0), (49, 49, 49))


@pytest.fixture
def analytic_result(small_grid) -> AnalyticResult:
    return AnalyticResult(small_grid, {60.0: 10.0, 120.0: 14.0, 180.0: 18.0})
