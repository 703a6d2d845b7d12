"""CryoAblation: plan and monitor percutaneous cryoablation in 3D Slicer (research use only).

A thin Slicer layer over the Qt-free package ``CryoAblationLogic``. The package shares its name with
Slicer's logic class below, so it is always imported under the alias ``cryolib`` (module level) or
by ``from CryoAblationLogic import ...`` inside functions, which resolves through ``sys.modules``
and is not shadowed by the class.
"""

import logging
import os
import time
from typing import Annotated

import qt
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


def _addSourceTreeToPath() -> None:
    """Developers point Slicer's "Additional module paths" at this folder of a source checkout; the
    package then sits one level up, beside it, and is put on sys.path. An installed extension ships
    the package in qt-scripted-modules/, which is on sys.path already."""
    import importlib.util
    import sys

    if importlib.util.find_spec("CryoAblationLogic") is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.isfile(os.path.join(root, "CryoAblationLogic", "__init__.py")):
            sys.path.insert(0, root)


_addSourceTreeToPath()

import CryoAblationLogic as cryolib  # noqa: E402  (must stay above the class CryoAblationLogic below)

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
            "install (keeping Slicer's numpy) the first time it is needed.</p>"
            '<p>A walk-through of a plan and a monitored freeze: <a href="{url}">Using the module'
            "</a>.</p>"
        ).format(url=USING_THE_MODULE_URL)
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
    import SampleData

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
    import SampleData

    from CryoAblationLogic.scene import sample_data

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
    """The panel's own state, saved with the scene in the module's singleton parameter node.

    The plan itself (probes, protocol, settings, isotherm levels, results) lives in the same node,
    written by CryoAblationLogic's MRML adapters (``CryoAblationLogic.scene.parameters``). The two
    node fields carry the adapters' reference role names, so the selectors and the adapters share
    one reference each.
    """

    InputVolume: vtkMRMLScalarVolumeNode
    InputSegmentation: vtkMRMLSegmentationNode
    previewEnabled: bool = False
    displayTimeS: float = 0.0
    scannerHost: str = "127.0.0.1"
    scannerPort: Annotated[int, WithinRange(1, 65535)] = 18944
    consoleHost: str = "127.0.0.1"
    consolePort: Annotated[int, WithinRange(1, 65535)] = 18945
    journalPath: str = ""


#
# CryoAblationWidget
#

NO_ROLE = ""  # the segments table's choice for a segment left out of the plan
STATUS_COLORS = {"off": "#9e9e9e", "waiting": "#f0a020", "connected": "#2ca02c"}
PROBE_TABLE_DELAY_S = 0.3  # refresh the probe table and its warnings once a drag has paused this long


class CryoAblationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: wires widgets to CryoAblationLogic, holds no computation."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingGui = False
        self._timer = None
        self._probesChangedAt = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CryoAblation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CryoAblationLogic()
        # Probe moves arrive many times a second while dragging; the table follows once they settle.
        self.logic.probesChangedCallback = self.onProbesChanged

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)

        self.ui.researchUseLabel.text = cryolib.RESEARCH_USE_NOTE

        # 1. Inputs
        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        # 2. Probes
        self.ui.addProbeButton.connect("clicked(bool)", self.onAddProbe)
        self.ui.removeProbeButton.connect("clicked(bool)", self.onRemoveProbe)
        # 3. Protocol
        self.ui.applyPresetButton.connect("clicked(bool)", self.onApplyPreset)
        self.ui.addStepButton.connect("clicked(bool)", self.onAddStep)
        self.ui.removeStepButton.connect("clicked(bool)", self.onRemoveStep)
        self.ui.protocolTable.connect("cellChanged(int,int)", self.onProtocolEdited)
        # 4. Simulate
        self.ui.previewCheckBox.connect("toggled(bool)", self.onPreviewToggled)
        self.ui.isothermLevelsLineEdit.connect("editingFinished()", self.onIsothermLevelsEdited)
        self.ui.gridSpacingSpinBox.connect("valueChanged(double)", self.onGridSpacingChanged)
        self.ui.simulateButton.connect("clicked(bool)", self.onSimulate)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelSimulation)
        self.ui.timeSlider.connect("valueChanged(double)", self.onTimeChanged)
        # 5. Monitor
        self.ui.connectButton.connect("toggled(bool)", self.onConnectToggled)
        self.ui.liveModeCheckBox.connect("toggled(bool)", self.onLiveModeToggled)
        self.ui.replayJournalButton.connect("clicked(bool)", self.onReplayJournal)
        # 6. Results
        self.ui.showIceVolumePlotButton.connect("clicked(bool)", self.onShowIceVolumePlot)
        self.ui.showSensorPlotButton.connect("clicked(bool)", self.onShowSensorPlot)
        self.ui.exportCaseButton.connect("clicked(bool)", self.onExportCase)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReport)

        # Background work (preview, full run) hands its results to the main thread here.
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self.onTimer)

        self.initializeParameterNode()
        self.initializeChoices()
        self._timer.start()

    def cleanup(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self.logic is not None:
            with slicer.util.tryWithErrorDisplay(_("Failed to stop the background work.")):
                self.logic.stopBackgroundWork()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to stop the background work.")):
            self.logic.stopBackgroundWork()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        # A loaded scene brings its own plan: follow its probes and show its results.
        self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: CryoAblationParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            with slicer.util.tryWithErrorDisplay(_("Failed to read the plan of this scene.")):
                self.logic.followProbes()
            self.updateGUIFromPlan()

    def initializeChoices(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the probe catalog or the tissue library.")):
            self.ui.probeModelComboBox.clear()
            self.ui.probeModelComboBox.addItems(self.logic.probeModelNames())
            self.ui.protocolPresetComboBox.clear()
            self.ui.protocolPresetComboBox.addItems(self.logic.protocolPresetNames())
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()

    def updateGUIFromPlan(self) -> None:
        """Refresh every table and field that shows the plan (after loading, simulating, editing)."""
        self.updateSegmentsTable()
        self.updateProbesTable()
        self.updateProtocolTable()
        self.updateSimulationFields()
        self.updateResults()

    # 1. Inputs

    def onLoadPhantom(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the sample phantom."), waitCursor=True):
            self.logic.loadSamplePhantom()
        self.initializeParameterNode()

    def onSegmentationChanged(self, node) -> None:
        self.updateSegmentsTable()

    def updateSegmentsTable(self) -> None:
        table = self.ui.segmentsTable
        segmentation = self._parameterNode.InputSegmentation if self._parameterNode else None
        with slicer.util.tryWithErrorDisplay(_("Failed to read the segments.")):
            rows = self.logic.segmentRows(segmentation) if segmentation else []
            roles = [NO_ROLE, *self.logic.roleNames()]
            materials = ["", *self.logic.materialNames()]
        table.setRowCount(len(rows))
        for row, (segmentId, name, role, material) in enumerate(rows):
            item = qt.QTableWidgetItem(name)
            item.setFlags(qt.Qt.ItemIsEnabled)
            table.setItem(row, 0, item)
            roleBox = qt.QComboBox()
            roleBox.addItems(roles)
            roleBox.setCurrentText(role or NO_ROLE)
            materialBox = qt.QComboBox()
            materialBox.addItems(materials)
            materialBox.setCurrentText(material or "")
            onChange = self._segmentRoleHandler(segmentId, roleBox, materialBox)
            roleBox.connect("currentTextChanged(QString)", onChange)
            materialBox.connect("currentTextChanged(QString)", onChange)
            table.setCellWidget(row, 1, roleBox)
            table.setCellWidget(row, 2, materialBox)

    def _segmentRoleHandler(self, segmentId, roleBox, materialBox):
        def handler(_text):
            self.onSegmentRoleChanged(segmentId, roleBox, materialBox)

        return handler

    def onSegmentRoleChanged(self, segmentId, roleBox, materialBox) -> None:
        segmentation = self._parameterNode.InputSegmentation
        with slicer.util.tryWithErrorDisplay(_("Failed to set the segment's role.")):
            self.logic.setSegmentRole(segmentation, segmentId, roleBox.currentText, materialBox.currentText)

    # 2. Probes

    def onAddProbe(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to add a probe.")):
            self.logic.startProbePlacement(self.ui.probeModelComboBox.currentText)
        self.updateProbesTable()

    def onRemoveProbe(self) -> None:
        row = self.ui.probesTable.currentRow()
        with slicer.util.tryWithErrorDisplay(_("Failed to remove the probe.")):
            self.logic.removeProbe(row)
        self.updateProbesTable()

    def onProbesChanged(self) -> None:
        self._probesChangedAt = time.monotonic()

    def updateProbesTable(self) -> None:
        table = self.ui.probesTable
        with slicer.util.tryWithErrorDisplay(_("Failed to read the probes.")):
            rows = self.logic.probeRows()
            models = self.logic.probeModelNames()
            warnings = self.logic.probeWarnings()
        table.setRowCount(len(rows))
        for row, (name, model, tipText, depthText) in enumerate(rows):
            for column, text in ((0, name), (2, tipText), (3, depthText)):
                item = qt.QTableWidgetItem(text)
                item.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
                table.setItem(row, column, item)
            modelBox = qt.QComboBox()
            modelBox.addItems(models)
            modelBox.setCurrentText(model)
            modelBox.connect(
                "currentTextChanged(QString)", lambda text, r=row: self.onProbeModelChanged(r, text)
            )
            table.setCellWidget(row, 1, modelBox)
        self.ui.probeWarningsLabel.text = "\n".join(warnings)

    def onProbeModelChanged(self, row, model) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to change the probe model.")):
            self.logic.setProbeModel(row, model)
        self.updateProbesTable()

    # 3. Protocol

    def onApplyPreset(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to apply the protocol preset.")):
            self.logic.applyProtocolPreset(self.ui.protocolPresetComboBox.currentText)
        self.updateProtocolTable()

    def onAddStep(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to add a protocol step.")):
            self.logic.addProtocolStep()
        self.updateProtocolTable()

    def onRemoveStep(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to remove the protocol step.")):
            self.logic.removeProtocolStep(self.ui.protocolTable.currentRow())
        self.updateProtocolTable()

    def updateProtocolTable(self) -> None:
        table = self.ui.protocolTable
        with slicer.util.tryWithErrorDisplay(_("Failed to read the protocol.")):
            rows = self.logic.protocolRows()
        self._updatingGui = True
        try:
            table.setRowCount(len(rows))
            for row, cells in enumerate(rows):
                for column, text in enumerate(cells):
                    table.setItem(row, column, qt.QTableWidgetItem(text))
        finally:
            self._updatingGui = False

    def onProtocolEdited(self, row, column) -> None:
        if self._updatingGui:
            return
        table = self.ui.protocolTable
        cells = [
            [table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount)]
            for r in range(table.rowCount)
        ]
        try:
            with slicer.util.tryWithErrorDisplay(_("The protocol step is not valid.")):
                self.logic.setProtocolRows(cells)
        finally:
            self.updateProtocolTable()  # shows the protocol as it is, also after a refused edit

    # 4. Simulate

    def updateSimulationFields(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to read the simulation settings.")):
            levelsText = self.logic.isothermLevelsText()
            spacing = self.logic.gridSpacingMm()
            timeRange = self.logic.playbackTimeRange()
        self._updatingGui = True
        try:
            self.ui.isothermLevelsLineEdit.text = levelsText
            self.ui.gridSpacingSpinBox.value = spacing
            self.ui.timeSlider.minimum = timeRange[0]
            self.ui.timeSlider.maximum = timeRange[1]
        finally:
            self._updatingGui = False

    def onPreviewToggled(self, enabled) -> None:
        try:
            with slicer.util.tryWithErrorDisplay(_("Failed to switch the live preview.")):
                self.logic.setPreviewEnabled(enabled)
        finally:
            # Without numba (declined) the preview stays off, and the panel says why.
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()
            if enabled and not self.logic.previewActive():
                self.ui.previewCheckBox.checked = False

    def onIsothermLevelsEdited(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Isotherm levels must be temperatures in °C separated by commas.")
        ):
            self.logic.setIsothermLevels(self.ui.isothermLevelsLineEdit.text)
        self.updateSimulationFields()

    def onGridSpacingChanged(self, value) -> None:
        if self._updatingGui:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to set the grid spacing.")):
            self.logic.setGridSpacingMm(value)

    def onSimulate(self) -> None:
        try:
            with slicer.util.tryWithErrorDisplay(_("Failed to start the simulation."), waitCursor=True):
                self.logic.startSimulation()
                self.ui.simulateButton.enabled = False
                self.ui.cancelButton.enabled = True
                self.ui.simulationProgressBar.value = 0
                self.ui.simulationStatusLabel.text = _("Simulating…")
        finally:
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()

    def onCancelSimulation(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to cancel the simulation.")):
            self.logic.cancelSimulation()

    def onTimer(self) -> None:
        if (
            self._probesChangedAt is not None
            and time.monotonic() - self._probesChangedAt > PROBE_TABLE_DELAY_S
        ):
            self._probesChangedAt = None
            self.updateProbesTable()
        with slicer.util.tryWithErrorDisplay(_("The live preview failed.")):
            self.logic.processPreview()
        if self.logic.monitoringActive():
            self.updateMonitor()
        if not self.logic.simulationRunning():
            return
        with slicer.util.tryWithErrorDisplay(_("The simulation failed.")):
            progress, simulatedS = self.logic.simulationProgress()
            self.ui.simulationProgressBar.value = round(100 * progress)
            self.ui.simulationStatusLabel.text = _("Simulated {time:.0f} s").format(time=simulatedS)
            try:
                outcome = self.logic.pollSimulation()
            finally:
                if not self.logic.simulationRunning():
                    self.ui.simulateButton.enabled = True
                    self.ui.cancelButton.enabled = False
            if outcome is not None:
                self.ui.simulationStatusLabel.text = outcome
                self.updateSimulationFields()
                self.updateResults()

    def onTimeChanged(self, timeS) -> None:
        if self._updatingGui:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to show that time of the result.")):
            self.logic.showTime(timeS)

    # 5. Monitor

    def onConnectToggled(self, checked) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to connect to the scanner and the console.")):
            if checked:
                self.logic.startMonitoring(
                    p.scannerHost, p.scannerPort, p.consoleHost, p.consolePort, p.journalPath
                )
            else:
                self.logic.stopMonitoring()
        self.updateConnectionControls()

    def onLiveModeToggled(self, checked) -> None:
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay(_("Failed to switch live mode."), waitCursor=True):
                if checked:
                    self.logic.startLiveMode(
                        p.scannerHost, p.scannerPort, p.consoleHost, p.consolePort, p.journalPath
                    )
                elif self.logic.liveModeActive():
                    self.logic.stopMonitoring()
        finally:
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()
            self.updateConnectionControls()

    def updateConnectionControls(self) -> None:
        """Buttons and fields as the connection now is (plain monitoring or live mode)."""
        active = self.logic.monitoringActive()
        live = self.logic.liveModeActive()
        for button, checked in (
            (self.ui.connectButton, active and not live),
            (self.ui.liveModeCheckBox, live),
        ):
            button.blockSignals(True)
            button.checked = checked
            button.blockSignals(False)
        self.ui.connectButton.text = _("Disconnect") if active and not live else _("Connect")
        self.ui.connectButton.enabled = not live
        for widget in (
            self.ui.scannerHostLineEdit,
            self.ui.scannerPortSpinBox,
            self.ui.consoleHostLineEdit,
            self.ui.consolePortSpinBox,
            self.ui.journalPathLineEdit,
            self.ui.replayJournalButton,
        ):
            widget.enabled = not active
        self.updateMonitor()

    def onReplayJournal(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to replay the journal."), waitCursor=True):
            count = self.logic.replayJournal(self._parameterNode.journalPath)
            self.updateMonitor()
            self.ui.monitorStatusLabel.text = _("Replayed {count} messages.").format(count=count) + (
                "\n" + self.ui.monitorStatusLabel.text if self.ui.monitorStatusLabel.text else ""
            )

    def updateMonitor(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to read from the scanner or the console.")):
            lights, rows, messages = self.logic.pollMonitoring()
        for source, label in (
            ("scanner", self.ui.scannerStatusLabel),
            ("console", self.ui.consoleStatusLabel),
        ):
            label.setStyleSheet(f"color: {STATUS_COLORS[lights[source]]}")
            label.toolTip = _("{source}: {state}").format(source=source, state=lights[source])
        table = self.ui.sensorsTable
        table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        self.ui.monitorStatusLabel.text = "\n".join(messages)

    # 6. Results

    def updateResults(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to read the results.")):
            metricsTable, criticalTable, warnings = self.logic.resultTables()
        self.ui.metricsTableView.setMRMLTableNode(metricsTable)
        self.ui.criticalTableView.setMRMLTableNode(criticalTable)
        self.ui.metricsWarningsLabel.text = "\n".join(warnings)

    def onShowIceVolumePlot(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the ice-volume plot.")):
            self.logic.showChart("ice")

    def onShowSensorPlot(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the sensor plot.")):
            self.logic.showChart("sensors")

    def onExportCase(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to export the case file."), waitCursor=True):
            path = self.logic.exportCase(self.ui.outputDirectoryButton.directory)
            slicer.util.infoDisplay(_("Case file written:\n{path}").format(path=path))

    def onExportReport(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to export the report."), waitCursor=True):
            path = self.logic.exportReport(self.ui.outputDirectoryButton.directory)
            slicer.util.infoDisplay(_("Report written:\n{path}").format(path=path))


#
# CryoAblationLogic
#


class CryoAblationLogic(ScriptedLoadableModuleLogic):
    """Slicer's logic class: the thin shell between the panel, Slicer's scene and CryoAblationLogic.

    Everything here is usable without the widget (from the Python console or another module).
    Computation and MRML handling live in the package's adapters, which take the scene as an
    argument; this class supplies Slicer's scene and module logics and keeps the background jobs.
    """

    def __init__(self) -> None:
        from CryoAblationLib import dependencies as slicer_setup

        ScriptedLoadableModuleLogic.__init__(self)
        # Before anything imports numba (the solver, the OpenIGTLink checksum): its cache must go
        # to a folder the user can write, not beside the extension's files.
        slicer_setup.configure_numba_cache(slicer.app.cachePath)
        self.numbaStatus = None
        self.probesChangedCallback = None  # the panel refreshes its probe table through this
        self._catalog = None
        self._follower = None
        self._preview = None
        self._job = None
        self._placementTags = {}
        self._labelsCache = {}  # the tissue label map, reused while the segmentation is unchanged
        self._link = None  # the live links to the scanner and the console, while connected
        self._liveMonitor = None  # live mode: LiveSceneDriver (sources, journal, solver, scene nodes)
        self._liveSession = None  # the last live-mode session (running, stopped or replayed)
        self._journal = None
        self._monitorState = None
        self._runningCase = None  # (case, result) of the run in progress, set by the worker thread
        self._lastRun = None  # SimulatedPlan of the last finished run, for the report

    # Parameter nodes

    def planParameters(self):
        """The plan's parameter node (the adapters' typed view of the module's singleton node)."""
        from CryoAblationLogic.scene import parameters as P

        return P.get_parameter_node(slicer.mrmlScene)

    def getParameterNode(self):
        node = self.planParameters().node
        # The wrapper stores a default for every field it does not find; make it find the node
        # references the adapters set (they write no parameter beside the reference).
        for name in ("InputVolume", "InputSegmentation"):
            if node.GetNodeReference(name) is not None and not node.HasParameter(name):
                node.SetParameter(name, "")
        return CryoAblationParameterNode(node)

    # numba

    def requirementsPath(self) -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")

    def ensureNumba(self) -> bool:
        """Make numba available (asking the user before installing it); False if it is not."""
        from CryoAblationLib import dependencies as slicer_setup

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

    def requireNumba(self) -> None:
        if not self.ensureNumba():
            raise RuntimeError(self.numbaStatus.message)

    def numbaStatusText(self) -> str:
        if self.numbaStatus is None or self.numbaStatus.available:
            return ""
        return self.numbaStatus.message

    # 1. Inputs

    def loadSamplePhantom(self, withProbes: bool = False):
        """Load the synthetic phantom as a plan (image, segments with roles, sensors); returns the plan."""
        from CryoAblationLogic.scene import sample_data
        from CryoAblationLogic.scene.phantom_scene import build_phantom_scene

        recipe = sample_data.load_recipe()
        parameters = build_phantom_scene(
            slicer.mrmlScene,
            slicer.modules.segmentations.logic(),
            spacing_mm=recipe.spacing_mm,
            with_probes=withProbes,
        )
        self.followProbes()
        return parameters

    def roleNames(self) -> list:
        from CryoAblationLogic.scene import inputs

        return list(inputs.ROLES)

    def materialNames(self) -> list:
        from CryoAblationLogic.physics.materials import load_material_library

        return sorted(set(load_material_library()) | set(self.planParameters().settings().materials))

    def segmentRows(self, segmentationNode) -> list:
        """``(segment ID, name, role, material)`` of every segment; role and material may be empty."""
        from CryoAblationLogic.scene import inputs

        tagged = {info.segment_id: info for info in inputs.segment_infos(segmentationNode)}
        segmentation = segmentationNode.GetSegmentation()
        rows = []
        for segmentId in segmentation.GetSegmentIDs():
            info = tagged.get(segmentId)
            name = segmentation.GetSegment(segmentId).GetName()
            rows.append((segmentId, name, info.role if info else "", (info.material or "") if info else ""))
        return rows

    def setSegmentRole(self, segmentationNode, segmentId: str, role: str, material: str) -> None:
        from CryoAblationLogic.scene import inputs

        if not role:
            segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
            segment.RemoveTag(inputs.ROLE_TAG)
            segment.RemoveTag(inputs.MATERIAL_TAG)
            return
        inputs.set_segment_role(segmentationNode, segmentId, role, material or None)

    # 2. Probes

    def probeCatalog(self):
        from CryoAblationLogic.physics.probes import load_probe_catalog

        if self._catalog is None:
            self._catalog = load_probe_catalog()
        return self._catalog

    def probeModelNames(self) -> list:
        return sorted(self.probeCatalog())

    def probeNodes(self) -> list:
        return self.planParameters().probes()

    def followProbes(self) -> None:
        """Keep the needle models on their lines (and feed the preview) for every probe of the plan."""
        from CryoAblationLogic.scene.probes import NeedleFollower

        if self._follower is not None:
            self._follower.stop()
        self._follower = NeedleFollower(self.probeCatalog(), on_probe_moved=self._onProbeMoved)
        for node in self.probeNodes():
            if node.GetNumberOfControlPoints() >= 2:
                self._follower.follow(node)

    def startProbePlacement(self, model: str):
        """Add a probe of the given catalog model and let the user click its tip, then its entry."""
        from CryoAblationLogic.scene import parameters as P
        from CryoAblationLogic.scene import probes

        if model not in self.probeCatalog():
            raise ValueError(_("Choose a probe model from the catalog first."))
        existing = {node.GetName() for node in probes.probe_nodes(slicer.mrmlScene)}
        number = 1
        while f"P{number}" in existing:
            number += 1
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", f"P{number}")
        node.SetAttribute(probes.ROLE_ATTRIBUTE, probes.PROBE_ROLE)
        probes.set_probe_model(node, model)
        self.planParameters().add(P.PROBE, node)
        tag = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onProbePointPlaced)
        self._placementTags[node.GetID()] = tag
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsLineNode")
        selectionNode.SetActivePlaceNodeID(node.GetID())
        slicer.app.applicationLogic().GetInteractionNode().SetCurrentInteractionMode(
            slicer.vtkMRMLInteractionNode.Place
        )
        return node

    def _onProbePointPlaced(self, node, event) -> None:
        if node.GetNumberOfControlPoints() < 2:
            return
        node.RemoveObserver(self._placementTags.pop(node.GetID(), 0))
        if self._follower is not None:
            self._follower.follow(node)
        self._onProbeMoved(node)

    def _onProbeMoved(self, node) -> None:
        if self._preview is not None:
            self._preview.request()
        if self.probesChangedCallback is not None:
            self.probesChangedCallback()

    def removeProbe(self, index: int) -> None:
        from CryoAblationLogic.scene import parameters as P
        from CryoAblationLogic.scene import probes

        nodes = self.probeNodes()
        if not 0 <= index < len(nodes):
            raise ValueError(_("Select the probe to remove in the table."))
        node = nodes[index]
        if self._follower is not None:
            self._follower.unfollow(node)
        self.planParameters().remove(P.PROBE, node)
        probes.remove_probe(node)
        self._onProbeMoved(None)

    def setProbeModel(self, index: int, model: str) -> None:
        from CryoAblationLogic.scene import probes

        node = self.probeNodes()[index]
        probes.set_probe_model(node, model, probes.probe_group(node))
        if node.GetNumberOfControlPoints() >= 2:
            probes.update_needle_models(node, self.probeCatalog())
        self._onProbeMoved(node)

    def probeRows(self) -> list:
        """``(name, model, tip "R, A, S", length tip→entry)`` of each probe, as text."""
        from CryoAblationLogic.scene import probes

        rows = []
        for node in self.probeNodes():
            model = node.GetAttribute(probes.MODEL_ATTRIBUTE) or ""
            if node.GetNumberOfControlPoints() < 2:
                rows.append((node.GetName(), model, _("placing…"), ""))
                continue
            tip, entry = probes.probe_tip_entry(node)
            tipText = ", ".join(f"{value:.1f}" for value in tip)
            lengthText = f"{sum((a - b) ** 2 for a, b in zip(tip, entry, strict=True)) ** 0.5:.1f}"
            rows.append((node.GetName(), model, tipText, lengthText))
        return rows

    def probeWarnings(self) -> list:
        """Placement warnings (spacing, shafts through critical structures or vessels, active zones
        outside the target) on the preview grid; empty until the plan has probes and a target."""
        # Needs no solver (and so no numba): the masks come from the tissue label map.
        from CryoAblationLogic.analysis import metrics
        from CryoAblationLogic.scene import case_io

        parameters = self.planParameters()
        placed = [node for node in parameters.probes() if node.GetNumberOfControlPoints() >= 2]
        if not placed or parameters.get("InputSegmentation") is None or parameters.get("InputVolume") is None:
            return []
        sceneCase = case_io.build_case(
            slicer.mrmlScene,
            parameters,
            spacing_mm=parameters.settings().preview_spacing_mm,
            labels_cache=self._labelsCache,
        )
        labels = sceneCase.arrays.get(case_io.LABELMAP_KEY)
        if labels is None:
            return []
        labelInfo = {label: (i.name, i.material, i.role) for label, i in sceneCase.label_segments.items()}
        byRole = metrics.masks_by_role(labels, labelInfo)
        target = None
        for mask in byRole.get("target", {}).values():
            target = mask if target is None else (target | mask)
        critical, vessels = byRole.get("critical", {}), byRole.get("vessel", {})
        case = sceneCase.parse()
        return metrics.probe_warnings(
            case.probes, self.probeCatalog(), target, critical, vessels, sceneCase.grid
        )

    # 3. Protocol

    def protocolPresetNames(self) -> list:
        from CryoAblationLogic.core import protocols

        return list(protocols.PRESETS)

    def protocolRows(self) -> list:
        """The protocol as table cells: action, thaw mode, minutes, flow %, probes."""
        from CryoAblationLogic.core import protocols

        rows = []
        for step in self.planParameters().settings().protocol:
            row = protocols.step_to_row(step)
            flow = "" if row.flow_percent is None else f"{row.flow_percent:g}"
            rows.append([row.action, row.mode, f"{row.minutes:g}", flow, row.probes])
        return rows

    def setProtocolRows(self, cells: list) -> None:
        from CryoAblationLogic.core import protocols

        rows = []
        for index, (action, mode, minutes, flow, probeNames) in enumerate(cells):
            try:
                minutesValue = float(minutes)
                flowValue = float(flow) if flow.strip() else None
            except ValueError as error:
                raise ValueError(
                    _("Protocol step {n}: minutes and flow must be numbers.").format(n=index + 1)
                ) from error
            rows.append(protocols.StepRow(action, mode, minutesValue, flowValue, probeNames))
        self._setProtocol(protocols.rows_to_protocol(rows, self._probeAndGroupNames()))

    def _setProtocol(self, protocol: list) -> None:
        from CryoAblationLogic.core import protocols

        parameters = self.planParameters()
        kept = protocols.snapshot_times_within(parameters.settings().snapshot_times_s, protocol)
        parameters.update_settings(protocol=protocol, snapshot_times_s=kept)

    def _probeAndGroupNames(self) -> list:
        from CryoAblationLogic.scene import probes

        nodes = self.probeNodes()
        return [node.GetName() for node in nodes] + [probes.probe_group(node) for node in nodes]

    def applyProtocolPreset(self, name: str) -> None:
        from CryoAblationLogic.core import protocols

        self._setProtocol(protocols.preset_protocol(name))

    def addProtocolStep(self) -> None:
        protocol = list(self.planParameters().settings().protocol)
        protocol.append({"action": "freeze", "duration_s": 600.0, "probes": "all", "flow_percent": 100})
        self._setProtocol(protocol)

    def removeProtocolStep(self, index: int) -> None:
        protocol = list(self.planParameters().settings().protocol)
        if not 0 <= index < len(protocol):
            raise ValueError(_("Select the step to remove in the table."))
        if len(protocol) == 1:
            raise ValueError(_("A protocol needs at least one step."))
        del protocol[index]
        self._setProtocol(protocol)

    # 4. Simulate

    def gridSpacingMm(self) -> float:
        """The full run's voxel size; 0 stands for the image's own voxels."""
        return self.planParameters().settings().grid_spacing_mm or 0.0

    def setGridSpacingMm(self, spacingMm: float) -> None:
        self.planParameters().update_settings(grid_spacing_mm=float(spacingMm) if spacingMm > 0 else None)

    def isothermLevelsText(self) -> str:
        from CryoAblationLogic.scene import colors, results

        return ", ".join(
            colors.format_level(level) for level, _rgb in results.levels_of(self.planParameters())
        )

    def setIsothermLevels(self, text: str) -> None:
        from CryoAblationLogic.scene import colors, results
        from CryoAblationLogic.scene import parameters as P

        try:
            levels = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError as error:
            raise ValueError(_("Isotherm levels must be numbers (°C) separated by commas.")) from error
        parameters = self.planParameters()
        results.levels_of(parameters)  # makes the level table if the plan has none yet
        colors.set_isotherm_levels(parameters.get(P.ISOTHERM_LEVELS), levels)

    def setPreviewEnabled(self, enabled: bool) -> None:
        if not enabled:
            if self._preview is not None:
                self._preview.stop()
                self._preview = None
            return
        self.requireNumba()  # before importing the solver, which needs numba
        from CryoAblationLogic.scene.preview import LivePreview

        if self._preview is None:
            self._preview = LivePreview(slicer.mrmlScene, self.planParameters())
        self._preview.request()

    def previewActive(self) -> bool:
        return self._preview is not None

    def processPreview(self) -> bool:
        """Apply a finished preview to the overlay (call from the main thread, e.g. a timer)."""
        if self._preview is None:
            return False
        changed = self._preview.process_pending()
        if self._preview.last_error is not None:
            error, self._preview.last_error = self._preview.last_error, None
            raise error
        return changed

    def startSimulation(self):
        """Start the full run of the protocol in the background (poll it with pollSimulation)."""
        if self.simulationRunning():
            raise RuntimeError(_("A simulation is already running."))
        self.requireNumba()  # before importing the solver, which needs numba
        from CryoAblationLogic.scene.workflow import SimulationJob

        self._runningCase = None
        self._job = SimulationJob(
            slicer.mrmlScene,
            self.planParameters(),
            run_simulation=self._runSimulation,
            catalog=self.probeCatalog(),
        )
        self._job.start()
        return self._job

    def _runSimulation(self, case, progress, cancel, snapshotTimesS):
        """The solver run of a SimulationJob (worker thread); keeps the case and the result for the report."""
        from CryoAblationLogic.physics.simulation import simulate

        result = simulate(case, progress=progress, cancel=cancel, snapshot_times_s=snapshotTimesS)
        self._runningCase = (case, result)
        return result

    def simulationRunning(self) -> bool:
        return self._job is not None

    def simulationProgress(self) -> tuple:
        if self._job is None:
            return 0.0, 0.0
        return self._job.progress, self._job.simulated_s

    def cancelSimulation(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def pollSimulation(self):
        """None while running; a status message once the run has ended (its results are then in the
        scene). A failed run raises its error."""
        from CryoAblationLogic.physics.simulation import SimulationCancelled

        job = self._job
        if job is None or job.running:
            return None
        if job.error is not None:
            self._job = None
            if isinstance(job.error, SimulationCancelled):
                return _("Simulation cancelled.")
            raise job.error
        from CryoAblationLogic.scene.plan_report import SimulatedPlan

        planResult = job.poll()
        self._job = None
        case, result = self._runningCase
        self._lastRun = SimulatedPlan(case, result, planResult)
        covered = ", ".join(
            f"{item.level_c:g} °C: {item.target_coverage_percent:.0f} %"
            for item in planResult.metrics.isotherms
        )
        return _("Simulated {time:.0f} s. Target coverage {covered}.").format(
            time=job.simulated_s, covered=covered
        )

    def stopBackgroundWork(self) -> None:
        self.stopMonitoring()
        if self._preview is not None:
            self._preview.stop()
            self._preview = None
        if self._job is not None:
            self._job.cancel()
            self._job.wait(5.0)
            self._job = None
        if self._follower is not None:
            self._follower.stop()
            self._follower = None

    def playbackTimeRange(self) -> tuple:
        from CryoAblationLogic.scene import parameters as P

        browser = self.planParameters().get(P.PLAYBACK_BROWSER)
        sequence = browser.GetMasterSequenceNode() if browser is not None else None
        if sequence is None or sequence.GetNumberOfDataNodes() == 0:
            return 0.0, 0.0
        times = [float(sequence.GetNthIndexValue(i)) for i in range(sequence.GetNumberOfDataNodes())]
        return min(times), max(times)

    def showTime(self, timeS: float) -> float:
        """Show the result frame nearest ``timeS``; returns the frame's time."""
        from CryoAblationLogic.scene import parameters as P
        from CryoAblationLogic.scene import results

        browser = self.planParameters().get(P.PLAYBACK_BROWSER)
        if browser is None:
            return 0.0
        return results.select_playback_time(browser, timeS, slicer.modules.sequences.logic())

    # 5. Monitor

    def startMonitoring(self, scannerHost, scannerPort, consoleHost, consolePort, journalPath="") -> None:
        """Listen for the scanner's bridge and connect to the console; journal everything if a
        journal file is given."""
        from CryoAblationLogic.live import link_panel
        from CryoAblationLogic.live.journal import Journal
        from CryoAblationLogic.live.link import LiveLink
        from CryoAblationLogic.live.runner import journal_location

        self.stopMonitoring()
        scanner, console = link_panel.live_endpoints(scannerHost, scannerPort, consoleHost, consolePort)
        journal = None
        if journalPath.strip():
            folder, procedure = journal_location(journalPath, key="journal")
            journal = Journal(folder, procedure)
        link = LiveLink(journal, scanner=scanner, console=console)
        try:
            link.start()
        except Exception:
            link.stop()
            if journal is not None:
                journal.close()
            raise
        self._link, self._journal = link, journal
        self._liveSession = None
        self._monitorState = link_panel.LinkPanel()
        self._monitorState.started()

    def monitoringActive(self) -> bool:
        return self._link is not None or self._liveMonitor is not None

    def liveModeActive(self) -> bool:
        return self._liveMonitor is not None

    def startLiveMode(self, scannerHost, scannerPort, consoleHost, consolePort, journalPath) -> None:
        """Connect and run the plan's simulation in step with the procedure, in the scene: the
        console's freeze and thaw events drive the probes in the solver, whose temperature and
        isotherms are refreshed as it advances (every update interval of procedure time); the
        scanner's images go into one live volume, the plan's probe lines follow the reported
        poses, readings go into a table and a chart beside the prediction. Inside Slicer with the
        OpenIGTLinkIF module the scanner comes through its connector node. Needs numba and a
        journal file (the procedure can then be replayed exactly)."""
        from CryoAblationLogic.live import link_panel
        from CryoAblationLogic.live.runner import journal_location

        if not journalPath.strip():
            raise ValueError(_("Live mode records the procedure: enter a journal file (….jsonl) first."))
        journal_location(journalPath, key="journal")
        scanner, console = link_panel.live_endpoints(scannerHost, scannerPort, consoleHost, consolePort)
        self.requireNumba()  # before importing the solver, which needs numba
        from CryoAblationLogic.scene import case_io
        from CryoAblationLogic.scene import parameters as P
        from CryoAblationLogic.scene.live_link import start_live_scene

        parameters = self.planParameters()
        case = case_io.build_case(slicer.mrmlScene, parameters).parse()
        self.stopMonitoring()
        self._liveMonitor = start_live_scene(
            slicer.mrmlScene,
            case,
            journalPath.strip(),
            scanner=scanner,
            console=console,
            level_table=parameters.get(P.ISOTHERM_LEVELS),  # the plan's isotherm levels and colours
        )
        self._liveSession = self._liveMonitor.session
        self._monitorState = link_panel.LinkPanel(live=True)
        self._monitorState.started()

    def liveSceneNodes(self):
        """The scene nodes of the running live mode (``LiveScene``: image, temperature, isotherm,
        sensor table and chart nodes, the probe lines it moves); None when live mode is off."""
        return self._liveMonitor.live_scene if self._liveMonitor is not None else None

    def _showLiveResult(self, session) -> None:
        """A live session's prediction as the plan's result (Results section, plots, report)."""
        from CryoAblationLogic.scene import results

        results.show_result(slicer.mrmlScene, self.planParameters(), session.result())

    def pollMonitoring(self) -> tuple:
        """``(lights {source: off|waiting|connected}, sensor rows, messages)`` after taking the
        events that arrived since the last call (in live mode: one step of the live monitor, which
        also updates its scene nodes)."""
        from CryoAblationLogic.live import link_panel

        state = self._monitorState or link_panel.LinkPanel()
        if self._link is not None:
            for source, event in self._link.poll():
                state.apply(source, event)
        if self._liveMonitor is not None:
            self._liveMonitor.step()
            for source, event in self._liveMonitor.events:
                state.apply(source, event)
        if self._link is None and self._liveSession is not None:  # running, stopped or replayed
            return link_panel.live_panel(state, self._liveSession)
        return dict(state.lights), state.sensor_rows(), list(state.messages)

    def replayJournal(self, journalPath: str) -> int:
        """Show a recorded procedure in the Monitor section (not while connected); returns the
        number of messages replayed."""
        from CryoAblationLogic.live import link_panel

        if self.monitoringActive():
            raise RuntimeError(_("Disconnect before replaying a journal."))
        if not journalPath.strip():
            raise ValueError(_("Enter the journal file to replay."))
        if link_panel.is_live_journal(journalPath.strip()):
            return self._replayLiveJournal(journalPath.strip())
        state = link_panel.LinkPanel()
        count = link_panel.review_journal(state, journalPath.strip())
        self._monitorState = state
        self._liveSession = None
        return count

    def _replayLiveJournal(self, journalPath: str) -> int:
        """A live-mode journal runs through live mode again: the same prediction, into the scene."""
        from CryoAblationLogic.live import link_panel

        self.requireNumba()  # before importing the solver, which needs numba
        from CryoAblationLogic.live.runner import replay_procedure

        session, _truncated = replay_procedure(journalPath)
        self._showLiveResult(session)
        self._monitorState = link_panel.LinkPanel()
        self._liveSession = session
        return session.console_messages

    def stopMonitoring(self) -> None:
        monitor, self._liveMonitor = self._liveMonitor, None
        if monitor is not None:
            monitor.stop()  # feeds what is left, brings the solver to the procedure clock, closes the journal
            self._showLiveResult(monitor.session)
        link, journal = self._link, self._journal
        self._link = self._journal = None
        if self._monitorState is not None:
            self._monitorState.stopped()
        if link is not None:
            link.stop()
        if journal is not None:
            journal.close()

    # 6. Results

    def resultTables(self) -> tuple:
        """``(metrics table node, critical-structures table node, warnings)`` of the last run."""
        from CryoAblationLogic.scene import parameters as P

        parameters = self.planParameters()
        warningsTable = parameters.get(P.WARNINGS_TABLE)
        warnings = []
        if warningsTable is not None:
            for row in range(warningsTable.GetNumberOfRows()):
                text = warningsTable.GetCellText(row, 0)
                if text and text != "none":
                    warnings.append(text)
        return parameters.get(P.METRICS_TABLE), parameters.get(P.CRITICAL_TABLE), warnings

    def showChart(self, which: str) -> None:
        from CryoAblationLogic.scene import parameters as P

        role = {"ice": P.ICE_VOLUME_CHART, "sensors": P.SENSOR_CHART}[which]
        chart = self.planParameters().get(role)
        if chart is None:
            raise ValueError(_("Run a simulation first: there is no plot yet."))
        slicer.modules.plots.logic().ShowChartInLayout(chart)

    def exportReport(self, directory: str) -> str:
        """Write the HTML report of the last simulation in ``directory``/report."""
        from CryoAblationLogic.scene.plan_report import write_plan_report

        if not directory:
            raise ValueError(_("Choose the folder to export to."))
        if self._lastRun is None:
            raise ValueError(_("Simulate the plan first: the report shows the last simulation."))
        path = write_plan_report(
            slicer.mrmlScene,
            self.planParameters(),
            self._lastRun,
            os.path.join(directory, "report"),
            catalog=self.probeCatalog(),
        )
        return str(path)

    def exportCase(self, directory: str) -> str:
        """Write the plan as ``CryoAblation.cryo.json`` (and its label map) in ``directory``."""
        from CryoAblationLogic.scene import case_io

        if not directory:
            raise ValueError(_("Choose the folder to export to."))
        path = case_io.export_case(
            slicer.mrmlScene, os.path.join(directory, "CryoAblation.cryo.json"), self.planParameters()
        )
        return str(path)


#
# CryoAblationTest
#


def _scenarios():
    """The self-test's scenarios (Testing/Python/CryoAblationScenarios.py beside this file); pytest
    runs the same functions on a slicer-core scene."""
    import importlib
    import sys

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Testing", "Python")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("CryoAblationScenarios")


class CryoAblationTest(ScriptedLoadableModuleTest):
    """Slicer's self-test: the scenarios of CryoAblationScenarios (``Testing/Python``) on Slicer's scene.

    The same scenario functions run under pytest with slicer-core (Testing/module), so what passes
    there is what Slicer runs here. The solver needs numba: install it in Slicer before running the
    test (Slicer skips package installs in testing mode).
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
        import SampleData

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
        from CryoAblationLogic.scene import parameters as P

        self.delayDisplay("Loading the phantom")
        parameters = scenarios.load_phantom(slicer.mrmlScene, slicer.modules.segmentations.logic())
        self.delayDisplay("Placing probes")
        scenarios.place_probes(slicer.mrmlScene, parameters)
        self.assertTrue(CryoAblationLogic().ensureNumba(), "the solver needs numba installed in Slicer")
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
        self.delayDisplay("Plan survived save and reload")
        self.delayDisplay("Monitoring a short procedure in live mode, then replaying it")
        parameters = P.get_parameter_node(slicer.mrmlScene)
        journal = os.path.join(slicer.app.temporaryPath, "CryoAblationTest-live", "live-short.jsonl")
        shutil.rmtree(os.path.dirname(journal), ignore_errors=True)
        live = scenarios.run_short_live_procedure(slicer.mrmlScene, parameters, journal)
        self.delayDisplay(
            "Live mode showed the MR frames, the probes as placed, the overlay and the readings"
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
