"""Fixtures for the MRML adapter tests: a real scene from ``slicer-core`` (no Qt), set up the way
Slicer sets it up."""

from __future__ import annotations

import pytest

pytest.importorskip("slicer", reason="the MRML adapter tests need slicer-core")

from CryoAblationLogic.mrml.app import SceneApp, create_scene_app  # noqa: E402


@pytest.fixture
def scene_app() -> SceneApp:
    return create_scene_app()


@pytest.fixture
def scene(scene_app):
    return scene_app.scene
