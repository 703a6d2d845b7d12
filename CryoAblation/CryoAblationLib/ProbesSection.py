"""2. Probes: add by clicks (tip, then entry), the probe table, model per probe, placement warnings."""

import time

import qt
from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection, reportInPanel, showError

PROBE_TABLE_DELAY_S = 0.3  # refresh the probe table and its warnings once a drag has paused this long


class ProbesSection(PanelSection):
    def setup(self) -> None:
        self._probesChangedAt = None
        # Probe moves arrive many times a second while dragging; the table follows once they settle.
        self.session.on_probes_changed = self.onProbesChanged
        self.ui.addProbeButton.connect("clicked(bool)", self.onAddProbe)
        self.ui.removeProbeButton.connect("clicked(bool)", self.onRemoveProbe)

    def onAddProbe(self) -> None:
        with self.userAction(_("Failed to add a probe.")):
            self.logic.startProbePlacement(self.ui.probeModelComboBox.currentText)
        self.update()

    def onRemoveProbe(self) -> None:
        with self.userAction(_("Failed to remove the probe.")):
            self.session.remove_probe(self.ui.probesTable.currentRow())
        self.update()

    def onProbesChanged(self) -> None:
        self._probesChangedAt = time.monotonic()

    def onTimer(self) -> None:
        with reportInPanel(self.ui.probeWarningsLabel, _("Failed to follow a deleted probe")):
            if self.session.tidy_removed_probes():
                self._probesChangedAt = time.monotonic()
        if (
            self._probesChangedAt is not None
            and time.monotonic() - self._probesChangedAt > PROBE_TABLE_DELAY_S
        ):
            self._probesChangedAt = None
            self.updateTable(showErrors=False)

    def update(self) -> None:
        with self.userAction(_("Failed to load the probe catalog.")):
            models = self.session.probe_model_names()
            if self.ui.probeModelComboBox.count != len(models):
                self.ui.probeModelComboBox.clear()
                self.ui.probeModelComboBox.addItems(models)
        self.updateTable(showErrors=True)

    def updateTable(self, showErrors: bool) -> None:
        table = self.ui.probesTable
        try:
            rows = self.session.probe_rows()
            models = self.session.probe_model_names()
            warnings = self.session.probe_warnings()
        except Exception as error:  # e.g. a segmentation without roles while a probe is placed
            if showErrors:
                with showError(_("Failed to read the probes.")):
                    raise
            self.ui.probeWarningsLabel.text = _("Cannot check the probes: {error}").format(error=error)
            return
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
        with self.userAction(_("Failed to change the probe model.")):
            self.session.set_probe_model(row, model)
        self.updateTable(showErrors=True)
