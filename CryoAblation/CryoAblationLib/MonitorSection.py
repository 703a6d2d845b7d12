"""5. Monitor: connect to the scanner and the console, live mode, replay a journal, the readings."""

import qt
from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection, reportInPanel

STATUS_COLORS = {"off": "#9e9e9e", "waiting": "#f0a020", "connected": "#2ca02c"}


class MonitorSection(PanelSection):
    def setup(self) -> None:
        self.ui.connectButton.connect("toggled(bool)", self.onConnectToggled)
        self.ui.liveModeCheckBox.connect("toggled(bool)", self.onLiveModeToggled)
        self.ui.replayJournalButton.connect("clicked(bool)", self.onReplayJournal)
        self.ui.correctLiveCheckBox.connect("toggled(bool)", self.onCorrectToggled)

    @property
    def monitor(self):
        return self.session.monitor

    def update(self) -> None:
        # also after the scene closed under monitoring, live mode or a replay: buttons as things are
        self.updateConnectionControls()

    def _endpoints(self):
        settings = self.session.settings()
        return (
            settings.scanner_host,
            settings.scanner_port,
            settings.console_host,
            settings.console_port,
            settings.journal_path,
        )

    def onConnectToggled(self, checked) -> None:
        with self.userAction(_("Failed to connect to the scanner and the console.")):
            if checked:
                self.monitor.start(*self._endpoints(), scanner_peers=self.session.settings().scanner_peers)
            else:
                self.monitor.stop()
        self.updateConnectionControls()

    def onLiveModeToggled(self, checked) -> None:
        try:
            with self.userAction(_("Failed to switch live mode."), waitCursor=True):
                if checked:
                    self.ui.correctionStatusLabel.text = ""  # the last session's, if any
                    settings = self.session.settings()
                    self.monitor.start_live(
                        *self._endpoints(),
                        scanner_peers=settings.scanner_peers,
                        correction_members=settings.ensemble_members if settings.correct_live else None,
                    )
                elif self.monitor.live():
                    self.monitor.stop()
        finally:
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()
            self.updateConnectionControls()
            if not checked:
                self.updatePanel()  # live mode's prediction is in the views now (Results says so)

    def updateConnectionControls(self) -> None:
        """Buttons and fields as the connection now is (plain monitoring or live mode)."""
        active = self.monitor.active()
        live = self.monitor.live()
        for button, checked in (
            (self.ui.connectButton, active and not live),
            (self.ui.liveModeCheckBox, live),
        ):
            button.blockSignals(True)
            button.checked = checked
            button.blockSignals(False)
        self.ui.connectButton.text = _("Disconnect") if active and not live else _("Connect")
        stopped = _(" (live mode stopped)")
        correction = self.ui.correctionStatusLabel.text
        if not live and correction and not correction.endswith(stopped):
            self.ui.correctionStatusLabel.text = correction + stopped
        replaying = self.monitor.replaying()  # a journal's replay runs in a solver process
        self.ui.connectButton.enabled = not live and not replaying
        self.ui.liveModeCheckBox.enabled = not replaying
        for widget in (
            self.ui.scannerHostLineEdit,
            self.ui.scannerPortSpinBox,
            self.ui.scannerPeersLineEdit,
            self.ui.consoleHostLineEdit,
            self.ui.consolePortSpinBox,
            self.ui.journalPathLineEdit,
            self.ui.replayJournalButton,
        ):
            widget.enabled = not active and not replaying
        with reportInPanel(self.ui.monitorStatusLabel, _("Failed to read from the scanner or the console")):
            self.showReadings()

    def onCorrectToggled(self, checked) -> None:
        """Off: the corrected nodes stay as they are and are no longer updated; on again: updated."""
        with self.userAction(_("Failed to switch the correction.")):
            self.showCorrection()
            if self.monitor.live() and not self.monitor.show_correction(checked) and checked:
                self.ui.correctionStatusLabel.text = _(
                    "The correction starts with live mode: switch live mode off and on again to prepare it."
                )

    def showCorrection(self) -> None:
        """The correction's status line, and its forecast and parameter tables."""
        state = self.monitor.correction()
        text = state.text() if state is not None else ""
        if text and not self.ui.correctLiveCheckBox.checked:
            text = _("Correction not shown (the option is off); the nodes keep their last values.")
        if text or state is not None:
            self.ui.correctionStatusLabel.text = text
        view = self.monitor.corrected_nodes()
        if view is not None:
            for widget, node in (
                (self.ui.forecastTableView, view.forecast_table),
                (self.ui.correctionParametersTableView, view.parameters_table),
            ):
                if node is not None and widget.mrmlTableNode() is not node:
                    widget.setMRMLTableNode(node)

    def onReplayJournal(self) -> None:
        with self.userAction(_("Failed to replay the journal.")):
            count = self.monitor.review_journal(self.session.settings().journal_path)
            if count is None:  # live mode's journal: replayed with its prediction in a solver process
                self.updateConnectionControls()
                self.ui.monitorStatusLabel.text = _("Replaying the journal with live mode's prediction…")
                return
            self.showReplayed(count)

    def showReplayed(self, count: int) -> None:
        self.showReadings()
        self.ui.monitorStatusLabel.text = _("Replayed {count} messages.").format(count=count) + (
            "\n" + self.ui.monitorStatusLabel.text if self.ui.monitorStatusLabel.text else ""
        )

    def onTimer(self) -> None:
        if self.monitor.replaying():
            with reportInPanel(self.ui.monitorStatusLabel, _("Failed to replay the journal")):
                try:
                    count = self.monitor.poll_replay()
                finally:
                    if not self.monitor.replaying():  # done or failed: the buttons again
                        self.updateConnectionControls()
                if count is not None:
                    self.updatePanel()  # the replayed prediction is the plan's result now
                    self.showReplayed(count)
        if self.monitor.active():
            with reportInPanel(
                self.ui.monitorStatusLabel, _("Failed to read from the scanner or the console")
            ):
                self.showReadings()
            with reportInPanel(self.ui.correctionStatusLabel, _("Failed to show the correction")):
                self.showCorrection()

    def showReadings(self) -> None:
        lights, rows, messages = self.monitor.poll()
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
