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

    @property
    def monitor(self):
        return self.session.monitor

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
                    self.monitor.start_live(
                        *self._endpoints(), scanner_peers=self.session.settings().scanner_peers
                    )
                elif self.monitor.live():
                    self.monitor.stop()
        finally:
            self.ui.numbaStatusLabel.text = self.logic.numbaStatusText()
            self.updateConnectionControls()

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
        self.ui.connectButton.enabled = not live
        for widget in (
            self.ui.scannerHostLineEdit,
            self.ui.scannerPortSpinBox,
            self.ui.scannerPeersLineEdit,
            self.ui.consoleHostLineEdit,
            self.ui.consolePortSpinBox,
            self.ui.journalPathLineEdit,
            self.ui.replayJournalButton,
        ):
            widget.enabled = not active
        with reportInPanel(self.ui.monitorStatusLabel, _("Failed to read from the scanner or the console")):
            self.showReadings()

    def onReplayJournal(self) -> None:
        with self.userAction(_("Failed to replay the journal."), waitCursor=True):
            count = self.monitor.review_journal(self.session.settings().journal_path)
            self.showReadings()
            self.ui.monitorStatusLabel.text = _("Replayed {count} messages.").format(count=count) + (
                "\n" + self.ui.monitorStatusLabel.text if self.ui.monitorStatusLabel.text else ""
            )

    def onTimer(self) -> None:
        if self.monitor.active():
            with reportInPanel(
                self.ui.monitorStatusLabel, _("Failed to read from the scanner or the console")
            ):
                self.showReadings()

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
