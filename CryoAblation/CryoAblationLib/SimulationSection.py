"""4. Simulate: live preview, isotherm levels, grid spacing, the full run with progress and cancel,
and the time slider over the result."""

from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection, reportInPanel


class SimulationSection(PanelSection):
    def setup(self) -> None:
        self._updating = False
        self.ui.previewCheckBox.connect("toggled(bool)", self.onPreviewToggled)
        self.ui.isothermLevelsLineEdit.connect("editingFinished()", self.onIsothermLevelsEdited)
        self.ui.gridSpacingSpinBox.connect("valueChanged(double)", self.onGridSpacingChanged)
        self.ui.simulateButton.connect("clicked(bool)", self.onSimulate)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelSimulation)
        self.ui.timeSlider.connect("valueChanged(double)", self.onTimeChanged)
        self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()

    def update(self) -> None:
        with self.userAction(_("Failed to read the simulation settings.")):
            levelsText = self.session.isotherm_levels_text()
            spacing = self.session.grid_spacing_mm()
            timeRange = self.session.playback_time_range()
        running = self.session.simulation_running()  # also after the scene closed under a run
        self.ui.simulateButton.enabled = not running
        self.ui.cancelButton.enabled = running
        self._updating = True
        try:
            self.ui.isothermLevelsLineEdit.text = levelsText
            self.ui.gridSpacingSpinBox.value = spacing
            self.ui.timeSlider.minimum = timeRange[0]
            self.ui.timeSlider.maximum = timeRange[1]
        finally:
            self._updating = False

    def onPreviewToggled(self, enabled) -> None:
        try:
            with self.userAction(_("Failed to switch the live preview.")):
                self.session.set_preview_enabled(enabled)
        finally:
            # Without numba (declined) the preview stays off, and the panel says why.
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()
            if enabled and not self.session.preview_active():
                self.ui.previewCheckBox.checked = False

    def onIsothermLevelsEdited(self) -> None:
        try:
            with self.userAction(_("Isotherm levels must be temperatures in °C separated by commas.")):
                self.session.set_isotherm_levels(self.ui.isothermLevelsLineEdit.text)
        finally:
            self.update()  # the levels as they are, also after a refused edit

    def onGridSpacingChanged(self, value) -> None:
        if self._updating:
            return
        with self.userAction(_("Failed to set the grid spacing.")):
            self.session.set_grid_spacing_mm(value)

    def onSimulate(self) -> None:
        try:
            with self.userAction(_("Failed to start the simulation."), waitCursor=True):
                self.session.start_simulation()
                self.ui.simulateButton.enabled = False
                self.ui.cancelButton.enabled = True
                self.ui.simulationProgressBar.value = 0
                self.ui.simulationStatusLabel.text = _("Simulating…")
        finally:
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()

    def onCancelSimulation(self) -> None:
        with self.userAction(_("Failed to cancel the simulation.")):
            self.session.cancel_simulation()

    def onTimer(self) -> None:
        with reportInPanel(self.ui.simulationStatusLabel, _("The live preview failed")):
            self.session.process_preview()
        if not self.session.simulation_running():
            return
        progress, simulatedS = self.session.simulation_progress()
        self.ui.simulationProgressBar.value = round(100 * progress)
        self.ui.simulationStatusLabel.text = _("Simulated {time:.0f} s").format(time=simulatedS)
        outcome = None
        with reportInPanel(self.ui.simulationStatusLabel, _("The simulation failed")):
            outcome = self.session.poll_simulation()
        if not self.session.simulation_running():
            self.ui.simulateButton.enabled = True
            self.ui.cancelButton.enabled = False
        if outcome is not None:
            self.ui.simulationProgressBar.value = 100
            self.ui.simulationStatusLabel.text = outcome
            self.updatePanel()

    def onTimeChanged(self, timeS) -> None:
        if self._updating:
            return
        with self.userAction(_("Failed to show that time of the result.")):
            self.session.show_time(timeS)
