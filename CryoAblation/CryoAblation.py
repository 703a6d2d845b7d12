"""CryoAblation: plan and monitor percutaneous cryoablation in 3D Slicer (research use only).

A thin Slicer layer over the Qt-free package ``CryoAblationLogic``: the plan's work is done by its
planning session (``CryoAblationLogic.scene.planning``), the panel's sections are classes in
``CryoAblationLib``. The package shares its name with Slicer's logic class below, so it is always
imported under the alias ``cryolib`` (module level) or by ``from CryoAblationLogic import ...``.

Supported Slicer releases: 5.10 and later (Python 3.12). This first block is written so that
Slicer 5.8 (Python 3.9) can parse it, and stops there with a message instead of a SyntaxError or
TypeError further down.
"""

import sys

MINIMUM_PYTHON = (3, 11)
SUPPORTED_SLICER = "3D Slicer 5.10 or later"
if sys.version_info[:2] < MINIMUM_PYTHON:
    raise ImportError(
        "CryoAblation needs {slicer} (Python {need}); this Slicer runs Python {have}. "
        "Install a current Slicer release.".format(
            slicer=SUPPORTED_SLICER,
            need=".".join(str(n) for n in MINIMUM_PYTHON),
            have="{}.{}".format(*sys.version_info[:2]),
        )
    )

import logging  # noqa: E402  (after the release check)
import os  # noqa: E402
from typing import Annotated  # noqa: E402

import qt  # noqa: E402
import slicer  # noqa: E402
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode  # noqa: E402
from slicer.i18n import tr as _  # noqa: E402
from slicer.i18n import translate  # noqa: E402
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper  # noqa: E402
from slicer.ScriptedLoadableModule import (  # noqa: E402
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin  # noqa: E402


def _addSourceTreeToPath() -> None:
    """Developers point Slicer's "Additional module paths" at this folder of a source checkout; the
    package then sits one level up, beside it, and is put on sys.path. An installed extension ships
    the package in qt-scripted-modules/, which is on sys.path already."""
    import importlib.util

    if importlib.util.find_spec("CryoAblationLogic") is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.isfile(os.path.join(root, "CryoAblationLogic", "__init__.py")):
            sys.path.insert(0, root)


_addSourceTreeToPath()

from CryoAblationLib import dependencies  # noqa: E402
from CryoAblationLib.ProtectionSection import ProtectionSection  # noqa: E402
from CryoAblationLib.Sections import SECTIONS, reportInPanel, showError  # noqa: E402

import CryoAblationLogic as cryolib  # noqa: E402  (must stay above the class CryoAblationLogic below)
from CryoAblationLogic.scene import parameters as P  # noqa: E402
from CryoAblationLogic.scene.planning import TIMER_INTERVAL_MS, PlanningSession  # noqa: E402

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
        # No module dependency: live mode uses OpenIGTLinkIF's connector for the scanner where
        # SlicerOpenIGTLink is installed, and CryoAblationLogic's own transport otherwise.
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
            "install (keeping Slicer's numpy) the first time it is needed; in testing mode it "
            "installs nothing, so install numba before running the self-test.</p>"
            "<p><b>5. Monitor</b>: live mode follows the console and the MR images; it shows the "
            "<i>Observed ice</i>, and with <i>Correct the prediction from the observed ice</i> (an "
            "ensemble of solver runs prepared when live mode starts and again on the probe poses the "
            "console reports, best before the first freeze) the "
            "<i>Corrected isotherms</i>, the <i>Corrected −40 °C band (p10–p90)</i> and the "
            "<i>Forecast</i> (when −40 °C covers the target plus margin, when the ice reaches each "
            "critical structure) in the live folder and in this section. The correction assumes the "
            "planned protocol: when the console departs from it, it says it is not valid.</p>"
            "<p>Supported: {supported}. Older releases (5.8 and before, Python 3.9) do not load "
            "the module and say so in the error log.</p>"
            '<p>A walk-through of a plan and a monitored freeze: <a href="{url}">Using the module'
            "</a>.</p>"
        ).format(url=USING_THE_MODULE_URL, supported=SUPPORTED_SLICER)
        self.parent.acknowledgementText = _(
            "CryoAblation is an open-source extension for 3D Slicer, developed by the CryoAblation "
            "contributors. It builds on 3D Slicer, the OpenIGTLink protocol, VTK, SimpleITK, numpy "
            "and numba. The synthetic phantom used by the sample data and the self-test is made in code."
        )
        # Sample data registers once the SampleData module is loaded.
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Sample data
#


def registerSampleData():
    """Register the synthetic phantom in SampleData (category CryoAblation); generated, never downloaded."""
    import SampleData  # Slicer's SampleData module: there only once Slicer has started

    from CryoAblationLogic.scene import sample_data

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
    import SampleData  # Slicer's SampleData module

    from CryoAblationLogic.scene import sample_data

    with slicer.util.tryWithErrorDisplay(_("Failed to make the CryoAblation phantom."), waitCursor=True):
        cacheDir = slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory()
        sample_data.write_sample_files(cacheDir)
        return SampleData.SampleDataLogic().downloadFromSource(source)
    return None


#
# CryoAblationParameterNode
#


def _parameterNodeClass():
    """Slicer's typed wrapper over the plan's own parameters: its fields are built from the plan
    settings of the Qt-free side (``PlanSettings``, same names, same encoding, ranges as
    ``WithinRange``), plus the two input nodes the selectors bind."""
    annotations = {P.INPUT_VOLUME: vtkMRMLScalarVolumeNode, P.INPUT_SEGMENTATION: vtkMRMLSegmentationNode}
    namespace = {}
    for name, (valueType, bounds, default) in P.wrapper_fields().items():
        annotations[name] = Annotated[valueType, WithinRange(*bounds)] if bounds else valueType
        namespace[name] = default
    namespace["__annotations__"] = annotations
    namespace["__doc__"] = "The plan's settings and input nodes, as the panel binds them."
    return parameterNodeWrapper(type("CryoAblationParameterNode", (), namespace))


CryoAblationParameterNode = _parameterNodeClass()


#
# CryoAblationWidget
#


class CryoAblationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: loads the .ui and hands each section to its class in CryoAblationLib."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.sections = []
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CryoAblation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.researchUseLabel.text = cryolib.RESEARCH_USE_NOTE

        self.logic = CryoAblationLogic()
        self.sections = [section(self.ui, self.logic) for section in (*SECTIONS, ProtectionSection)]
        for section in self.sections:
            section.panel = self
            section.setup()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)

        # Background work (preview, full run, monitor) reports to the main thread here.
        self._timer = qt.QTimer()
        self._timer.setInterval(TIMER_INTERVAL_MS)
        self._timer.connect("timeout()", self.onTimer)
        # Started first: the background work's results must still arrive if the scene's plan fails.
        self._timer.start()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self.logic is not None:
            self.logic.session.stop_background_work()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        # The scene is going away: stop everything, and write nothing more into it. Its status lines
        # and readings go too: the next scene's plan must not show them.
        self.logic.session.stop_background_work(scene_closing=True)
        self.setParameterNode(None)
        for label in (
            self.ui.simulationStatusLabel,
            self.ui.protectionStatusLabel,
            self.ui.correctionStatusLabel,
            self.ui.monitorStatusLabel,
        ):
            label.text = ""
        self.ui.simulationProgressBar.value = 0
        self.ui.sensorsTable.setRowCount(0)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        # A loaded scene brings its own plan; the panel follows it when it is shown (enter()).
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            with showError(_("Failed to read the plan of this scene.")):
                self.logic.session.follow_probes()
            self.updateSections()

    def updateSections(self) -> None:
        """Refresh every section from the plan (after loading, simulating, editing). A section
        that fails says so and the others are still refreshed."""
        for section in self.sections:
            with reportInPanel(self.ui.simulationStatusLabel, _("Failed to refresh the panel")):
                section.update()

    def onTimer(self) -> None:
        # Timer-driven: problems go to the panel's status lines, never to a modal dialog (the timer
        # keeps firing under one, and the dialogs would stack).
        for section in self.sections:
            with reportInPanel(self.ui.simulationStatusLabel, _("Background work failed")):
                section.onTimer()
        # Quicker slots while a probe move waits for its overlay (see timer_interval_ms).
        interval = self.logic.session.timer_interval_ms()
        if self._timer.interval != interval:
            self._timer.setInterval(interval)


#
# CryoAblationLogic
#


def _workerPython():
    """The Python that runs the solver processes: Slicer's PythonSlicer launcher (multiprocessing
    would otherwise start the Slicer application itself); None outside an installed Slicer."""
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    path = os.path.join(str(getattr(slicer.app, "slicerHome", "")), "bin", name)
    return path if os.path.isfile(path) else None


class CryoAblationLogic(ScriptedLoadableModuleLogic):
    """Slicer's logic class: Slicer's scene, module logics and numba install around the package's
    planning session (``self.session``), which does the work. Usable without the widget, e.g.
    ``slicer.util.getModuleLogic("CryoAblation").session.probe_rows()`` in the Python console."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        # Before anything imports numba (the solver, the OpenIGTLink checksum): its cache must go
        # to a folder the user can write, not beside the extension's files.
        dependencies.configure_numba_cache(slicer.app.cachePath)
        self.numbaStatus = None
        self.session = PlanningSession(
            slicer.mrmlScene,
            segmentations_logic=slicer.modules.segmentations.logic(),
            sequences_logic=slicer.modules.sequences.logic(),
            require_solver=self.requireNumba,
            worker_python=_workerPython(),
        )

    def getParameterNode(self):
        return CryoAblationParameterNode(self.session.parameters.node)

    def requirementsPath(self) -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")

    def ensureNumba(self) -> bool:
        """Make numba available (asking the user before installing it; never in testing mode)."""
        if self.numbaStatus is not None and self.numbaStatus.available:
            return True
        self.numbaStatus = dependencies.ensure_numba(
            self.requirementsPath(),
            ask=lambda message: slicer.util.confirmOkCancelDisplay(
                message, windowTitle=_("CryoAblation - install numba")
            ),
            cache_root=slicer.app.cachePath,
            work_dir=slicer.app.temporaryPath,
            testing=bool(slicer.app.testingEnabled()),
        )
        if not self.numbaStatus.available:
            logging.warning(self.numbaStatus.message)
        return self.numbaStatus.available

    def requireNumba(self) -> None:
        if not self.ensureNumba():
            raise RuntimeError(self.numbaStatus.message)

    def numbaStatusText(self) -> str:
        if self.numbaStatus is None or self.numbaStatus.available:
            return ""
        return self.numbaStatus.message

    def startProbePlacement(self, model: str):
        """Add a probe of a catalog model; the user then clicks its tip, then its entry."""
        appLogic = slicer.app.applicationLogic()
        return self.session.start_probe_placement(
            model, appLogic.GetSelectionNode(), appLogic.GetInteractionNode()
        )

    def showChart(self, which: str) -> None:
        """Show the last run's ``"ice"`` volume or ``"sensors"`` plot in the layout."""
        slicer.modules.plots.logic().ShowChartInLayout(self.session.chart(which))


#
# CryoAblationTest
#


def _scenarios():
    """The self-test's scenarios (Testing/Python/CryoAblationScenarios.py beside this file); pytest
    runs the same functions on a slicer-core scene."""
    import importlib

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Testing", "Python")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("CryoAblationScenarios")


class CryoAblationTest(ScriptedLoadableModuleTest):
    """Slicer's self-test: the scenarios of CryoAblationScenarios (``Testing/Python``) on Slicer's scene.

    The same scenario functions run under pytest with slicer-core (Testing/module), so what passes
    there is what Slicer runs here. The solver needs numba installed beforehand: in testing mode the
    module installs nothing (the test stays offline) and the solver scenarios are skipped with a
    message saying so.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_module_metadata()
        self.setUp()
        self.test_sample_data()
        self.setUp()
        self.test_plan_simulate_save_reload_and_live()
        self.setUp()
        self.test_replay_journal()

    def test_module_metadata(self):
        self.delayDisplay("Module metadata")
        module = slicer.modules.cryoablation
        self.assertIn("research software, not a medical device", module.helpText)
        self.assertIn("IGT", module.categories)

    def test_sample_data(self):
        """The phantom in SampleData (category CryoAblation) is made locally and loads with roles."""
        import SampleData  # Slicer's SampleData module

        from CryoAblationLogic.io import phantom
        from CryoAblationLogic.scene import inputs, sample_data

        self.delayDisplay("Loading the phantom from Sample Data")
        recipe = sample_data.load_recipe()
        sources = SampleData.SampleDataLogic.sampleDataSourcesByCategory(recipe.category)
        self.assertIn(recipe.sample_name, [source.sampleName for source in sources])
        sample_data.write_sample_files(slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory())
        volume, segmentation = SampleData.SampleDataLogic().downloadSamples(recipe.sample_name)
        self.assertEqual(volume.GetName(), recipe.volume_node_name)
        roles = {info.name: info.role for info in inputs.segment_infos(segmentation)}
        self.assertEqual(roles, {name: role for name, _material, role in phantom.LABELS.values()})

    def test_plan_simulate_save_reload_and_live(self):
        import shutil

        scenarios = _scenarios()
        logic = CryoAblationLogic()
        if not logic.ensureNumba():  # offline in testing mode: nothing is installed here
            self.delayDisplay("Skipped the solver scenarios: " + logic.numbaStatusText())
            return
        self.delayDisplay("Loading the phantom")
        parameters = scenarios.load_phantom(slicer.mrmlScene, slicer.modules.segmentations.logic())
        self.delayDisplay("Placing probes")
        scenarios.place_probes(slicer.mrmlScene, parameters)
        self.delayDisplay("Simulating; checking isotherms and metrics")
        run = scenarios.simulate_and_check(slicer.mrmlScene, parameters, slicer.modules.sequences.logic())
        self.delayDisplay("Exporting the case file and the report")
        scenarios.export_case_and_report(
            slicer.mrmlScene, parameters, run, os.path.join(slicer.app.temporaryPath, "CryoAblationTest")
        )
        self.delayDisplay("Saving and reloading the scene")
        scenarios.save_and_reload(
            slicer.mrmlScene, os.path.join(slicer.app.temporaryPath, "CryoAblationTest.mrb")
        )
        self.delayDisplay("Monitoring a short procedure in live mode, then replaying it")
        parameters = P.get_parameter_node(slicer.mrmlScene)
        journal = os.path.join(slicer.app.temporaryPath, "CryoAblationTest-live", "live-short.jsonl")
        shutil.rmtree(os.path.dirname(journal), ignore_errors=True)
        live = scenarios.run_short_live_procedure(
            slicer.mrmlScene, parameters, journal, worker_python=_workerPython()
        )
        scenarios.replay_live_procedure(journal, live.session)
        self.delayDisplay("Live mode and its replay agree")

    def test_replay_journal(self):
        import shutil

        scenarios = _scenarios()
        self.delayDisplay("Replaying a short journal")
        folder = os.path.join(slicer.app.temporaryPath, "CryoAblationTest-journal")
        shutil.rmtree(folder, ignore_errors=True)
        scenarios.replay_short_journal(scenarios.write_short_journal(folder))
        self.delayDisplay("Journal replayed")
