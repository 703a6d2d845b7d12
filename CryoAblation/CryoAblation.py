"""CryoAblation: plan and monitor percutaneous cryoablation in 3D Slicer (research use only).

A thin Slicer layer over the Qt-free package ``CryoAblationLogic``. The package shares its name with
Slicer's logic class below, so it is always imported under the alias ``cryolib`` (module level) or
by ``from CryoAblationLogic import ...`` inside functions, which resolves through ``sys.modules``
and is not shadowed by the class.
"""

import logging
import os
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

import CryoAblationLogic as cryolib  # must stay above the class CryoAblationLogic defined below

USING_THE_MODULE_URL = "https://github.com/CryoAblation/SlicerCryoAblation#using-the-module"


#
# CryoAblation
#


class CryoAblation(ScriptedLoadableModule):
    """Module description shown by Slicer (title, category, help and acknowledgement)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CryoAblation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "IGT")]
        # OpenIGTLinkIF is used when it is installed but is not a dependency: without it the module
        # still plans and simulates, and only the Monitor section is disabled.
        self.parent.dependencies = []
        self.parent.contributors = ["CryoAblation contributors"]
        self.parent.helpText = _(
            "<p>Plan and monitor percutaneous cryoablation: place cryoprobes, simulate the ice ball "
            "of a freeze-thaw protocol, see the lethal isotherms with target coverage and margins, "
            "and follow the procedure live from the scanner and the cryo console over OpenIGTLink."
            "</p>"
            "<p><b>CryoAblation is research software, not a medical device.</b> It has not been "
            "cleared or approved for clinical use; its predictions must not be the sole basis of a "
            "treatment decision.</p>"
            "<p>Each probe is a markups line: its <b>first control point is the probe tip</b> (in "
            "or beyond the target) and its <b>second control point is the entry</b>, a point on the "
            "shaft towards the skin. Drag either point to move the probe.</p>"
            "<p>The ice-ball solver needs the Python package numba, which the module offers to "
            "install (keeping Slicer's numpy) the first time it is needed.</p>"
            '<p>A walk-through of a plan and a monitored freeze: <a href="{url}">Using the module'
            "</a>.</p>"
        ).format(url=USING_THE_MODULE_URL)
        self.parent.acknowledgementText = _(
            "CryoAblation is an open-source extension for 3D Slicer, developed by the CryoAblation "
            "contributors. It builds on 3D Slicer, SlicerOpenIGTLink, VTK, SimpleITK, numpy and "
            "numba. The synthetic phantom used by the sample data and the self-test is made in code."
        )
        # Sample data registers once the SampleData module is loaded.
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Sample data
#


def registerSampleData():
    """Register the synthetic phantom in SampleData (category CryoAblation); generated, never downloaded."""
    import SampleData

    from CryoAblationLogic import sample_data

    recipe = sample_data.load_recipe()
    cacheDir = slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory()
    files = sample_data.sample_file_paths(cacheDir, recipe)
    iconPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "CryoAblation.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=recipe.category,
        sampleName=recipe.sample_name,
        thumbnailFileName=iconPath,
        # The files are generated into Slicer's download cache, where SampleData looks first, so
        # these local URIs are never fetched from anywhere.
        uris=[files.volume.as_uri(), files.segmentation.as_uri()],
        fileNames=[files.volume.name, files.segmentation.name],
        nodeNames=[recipe.volume_node_name, recipe.segmentation_node_name],
        loadFileType=["VolumeFile", "SegmentationFile"],
        customDownloader=_loadPhantomSample,
    )


def _loadPhantomSample(source):
    """SampleData's button: make the phantom files if they are not cached yet, then load them."""
    import SampleData

    from CryoAblationLogic import sample_data

    with slicer.util.tryWithErrorDisplay(_("Failed to make the CryoAblation phantom."), waitCursor=True):
        cacheDir = slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory()
        sample_data.write_sample_files(cacheDir)
        return SampleData.SampleDataLogic().downloadFromSource(source)
    return None


#
# CryoAblationParameterNode
#


@parameterNodeWrapper
class CryoAblationParameterNode:
    """The panel's state, saved with the scene. Plan contents (probes, protocol, roles, results) live
    in their own MRML nodes, managed by CryoAblationLogic's MRML adapters."""

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    previewEnabled: bool = False
    isothermLevels: str = "0, -20, -40"
    gridSpacingMm: Annotated[float, WithinRange(0.5, 5.0)] = 1.0
    displayTimeS: float = 0.0
    scannerHost: str = "localhost"
    scannerPort: Annotated[int, WithinRange(1, 65535)] = 18944
    consoleHost: str = "localhost"
    consolePort: Annotated[int, WithinRange(1, 65535)] = 18945
    journalPath: str = ""


#
# CryoAblationWidget
#


class CryoAblationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: wires widgets to CryoAblationLogic, holds no computation."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CryoAblation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CryoAblationLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.researchUseLabel.text = cryolib.RESEARCH_USE_NOTE
        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: CryoAblationParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    # Inputs

    def onLoadPhantom(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the sample phantom."), waitCursor=True):
            volume, segmentation = self.logic.loadSamplePhantom()
            self._parameterNode.inputVolume = volume
            self._parameterNode.segmentation = segmentation


#
# CryoAblationLogic
#


class CryoAblationLogic(ScriptedLoadableModuleLogic):
    """Slicer's logic class: the thin shell between the parameter node, the scene and the package.

    Everything here is usable without the widget (from the Python console or another module).
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.numbaStatus = None

    def getParameterNode(self):
        return CryoAblationParameterNode(super().getParameterNode())

    def requirementsPath(self) -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")

    def ensureNumba(self) -> bool:
        """Make numba available (asking the user before installing it); False if it is not."""
        from CryoAblationLogic import slicer_setup

        if self.numbaStatus is not None and self.numbaStatus.available:
            return True
        self.numbaStatus = slicer_setup.ensure_numba(
            self.requirementsPath(),
            ask=lambda message: slicer.util.confirmOkCancelDisplay(
                message, windowTitle=_("CryoAblation - install numba")
            ),
            cache_root=slicer.app.cachePath,
            work_dir=slicer.app.temporaryPath,
        )
        if not self.numbaStatus.available:
            logging.warning(self.numbaStatus.message)
        return self.numbaStatus.available

    def loadSamplePhantom(self):
        """Generate (if needed) and load the synthetic phantom; returns (volume node, segmentation node)."""
        from CryoAblationLogic import sample_data

        recipe = sample_data.load_recipe()
        files = sample_data.write_sample_files(slicer.app.temporaryPath)
        volume = slicer.util.loadVolume(str(files.volume), {"name": recipe.volume_node_name})
        segmentation = slicer.util.loadSegmentation(
            str(files.segmentation), {"name": recipe.segmentation_node_name}
        )
        return volume, segmentation


#
# CryoAblationTest
#


class CryoAblationTest(ScriptedLoadableModuleTest):
    """Slicer's self-test: runs the scenarios of CryoAblationLogic.scenarios on Slicer's own scene.

    The same scenario functions run under pytest with slicer-core (Testing/module), so what passes
    there is what Slicer runs here.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_sample_phantom_loads()

    def test_sample_phantom_loads(self):
        self.delayDisplay("Loading the sample phantom")
        from CryoAblationLogic import phantom, sample_data

        logic = CryoAblationLogic()
        volume, segmentation = logic.loadSamplePhantom()
        recipe = sample_data.load_recipe()
        self.assertIsNotNone(volume)
        self.assertEqual(volume.GetName(), recipe.volume_node_name)
        names = {
            segmentation.GetSegmentation().GetNthSegment(i).GetName()
            for i in range(segmentation.GetSegmentation().GetNumberOfSegments())
        }
        self.assertEqual(names, {name for name, _material, _role in phantom.LABELS.values()})
        self.delayDisplay("Sample phantom loaded")
