"""A scene set up the way Slicer sets it up, for headless use (tests, the demo, the command line).

Inside Slicer the application already owns the scene and its module logics; outside it,
:func:`create_scene_app` builds the same set the way trame-slicer's ``SlicerApp`` does: application
logic with the colour logic and its default colour nodes, the volumes, segmentations, markups,
sequences, tables, plots, models, subject-hierarchy and data logics registered under their module
names, the default slice orientation presets, and a data I/O manager with a cache folder so that
``vtkMRMLScene.ReadFromMRB`` can unpack scene bundles.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slicer import (
    vtkDataIOManagerLogic,
    vtkMRMLColorLegendDisplayNode,
    vtkMRMLCrosshairNode,
    vtkMRMLMessageCollection,
    vtkMRMLRemoteIOLogic,
    vtkMRMLScene,
    vtkMRMLSliceNode,
    vtkSlicerApplicationLogic,
    vtkSlicerDataModuleLogic,
    vtkSlicerMarkupsLogic,
    vtkSlicerModelsLogic,
    vtkSlicerPlotsLogic,
    vtkSlicerSegmentationsModuleLogic,
    vtkSlicerSequencesLogic,
    vtkSlicerSubjectHierarchyModuleLogic,
    vtkSlicerTablesLogic,
    vtkSlicerVolumesLogic,
)
from vtkmodules.vtkCommonCore import vtkCollection

from CryoAblationLogic.core.errors import InputError


@dataclass
class SceneApp:
    """The scene and the module logics that Slicer would have registered for it."""

    scene: Any  # vtkMRMLScene
    app_logic: Any  # vtkSlicerApplicationLogic
    logics: dict[str, Any] = field(default_factory=dict)  # module name → logic
    _keep_alive: list[Any] = field(default_factory=list, repr=False)

    def logic(self, module_name: str) -> Any:
        return self.logics[module_name]

    @property
    def segmentations_logic(self) -> Any:
        return self.logics["Segmentations"]

    @property
    def sequences_logic(self) -> Any:
        return self.logics["Sequences"]

    @property
    def markups_logic(self) -> Any:
        return self.logics["Markups"]

    @property
    def color_logic(self) -> Any:
        return self.logics["Colors"]


def create_scene_app() -> SceneApp:
    """A new scene with Slicer's core module logics, as Slicer itself would start it (no Qt)."""

    scene = vtkMRMLScene()
    crosshair = vtkMRMLCrosshairNode()  # qSlicerCoreApplication::setMRMLScene adds one
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)

    app_logic = vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    scene.RegisterNodeClass(vtkMRMLColorLegendDisplayNode())  # as Slicer's Colors module does (legends)
    app_logic.SetModuleLogic("Colors", color_logic)
    app_logic.SetSliceLogics(vtkCollection())
    app_logic.SetViewLogics(vtkCollection())

    app = SceneApp(scene=scene, app_logic=app_logic, logics={"Colors": color_logic})
    # Terminologies is left out on purpose: it needs Slicer's share folder of terminology files.
    for name, logic_class in (
        ("Volumes", vtkSlicerVolumesLogic),
        ("SubjectHierarchy", vtkSlicerSubjectHierarchyModuleLogic),
        ("Segmentations", vtkSlicerSegmentationsModuleLogic),
        ("Markups", vtkSlicerMarkupsLogic),
        ("Sequences", vtkSlicerSequencesLogic),
        ("Tables", vtkSlicerTablesLogic),
        ("Plots", vtkSlicerPlotsLogic),
        ("Models", vtkSlicerModelsLogic),
        ("Data", vtkSlicerDataModuleLogic),
    ):
        logic = logic_class()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(name, logic)
        app.logics[name] = logic

    vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)

    # ReadFromMRB unpacks into the data I/O manager's cache folder; Slicer sets one up at startup.
    cache_dir = tempfile.TemporaryDirectory(prefix="cryoablation-mrml-cache-")
    remote_io = vtkMRMLRemoteIOLogic()
    remote_io.SetMRMLScene(scene)
    remote_io.SetMRMLApplicationLogic(app_logic)
    remote_io.GetCacheManager().SetRemoteCacheDirectory(cache_dir.name)
    io_manager_logic = vtkDataIOManagerLogic()
    io_manager_logic.SetMRMLScene(scene)
    io_manager_logic.SetMRMLApplicationLogic(app_logic)
    io_manager_logic.SetAndObserveDataIOManager(remote_io.GetDataIOManager())
    remote_io.AddDataIOToScene()
    app._keep_alive.extend([cache_dir, remote_io, io_manager_logic])
    return app


def save_scene_mrb(scene, path: str | Path) -> Path:
    """Write the whole scene, with every node's data, as a Slicer scene bundle (``.mrb``)."""

    path = Path(path).resolve()
    if path.suffix.lower() != ".mrb":
        raise ValueError(f"{path}: a scene bundle file name must end in .mrb")
    path.parent.mkdir(parents=True, exist_ok=True)
    messages = vtkMRMLMessageCollection()
    if not scene.WriteToMRB(str(path), None, messages):
        raise OSError(f"could not write the scene bundle {path}: {messages.GetAllMessagesAsString()}")
    return path


def load_scene_mrb(scene, path: str | Path, clear: bool = True) -> None:
    """Read a scene bundle into ``scene`` (replacing its content unless ``clear`` is false).

    The scene needs a data I/O manager with a cache folder, as Slicer's and :func:`create_scene_app`'s
    have (keep the :class:`SceneApp` alive while loading: it owns that folder).
    """

    path = Path(path).resolve()
    if not path.is_file():
        raise InputError(str(path), "scene bundle not found")
    messages = vtkMRMLMessageCollection()
    if not scene.ReadFromMRB(str(path), clear, messages):
        raise InputError(str(path), f"could not read the scene bundle: {messages.GetAllMessagesAsString()}")
