"""3. Protocol: presets, and the steps as an editable table."""

import qt
from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection


class ProtocolSection(PanelSection):
    def setup(self) -> None:
        self._updating = False
        self.ui.applyPresetButton.connect("clicked(bool)", self.onApplyPreset)
        self.ui.addStepButton.connect("clicked(bool)", self.onAddStep)
        self.ui.removeStepButton.connect("clicked(bool)", self.onRemoveStep)
        self.ui.protocolTable.connect("cellChanged(int,int)", self.onProtocolEdited)
        self.ui.protocolPresetComboBox.clear()
        self.ui.protocolPresetComboBox.addItems(self.session.protocol_preset_names())

    def onApplyPreset(self) -> None:
        with self.userAction(_("Failed to apply the protocol preset.")):
            self.session.apply_protocol_preset(self.ui.protocolPresetComboBox.currentText)
        self.update()

    def onAddStep(self) -> None:
        with self.userAction(_("Failed to add a protocol step.")):
            self.session.add_protocol_step()
        self.update()

    def onRemoveStep(self) -> None:
        with self.userAction(_("Failed to remove the protocol step.")):
            self.session.remove_protocol_step(self.ui.protocolTable.currentRow())
        self.update()

    def update(self) -> None:
        table = self.ui.protocolTable
        with self.userAction(_("Failed to read the protocol.")):
            rows = self.session.protocol_rows()
        self._updating = True
        try:
            table.setRowCount(len(rows))
            for row, cells in enumerate(rows):
                for column, text in enumerate(cells):
                    table.setItem(row, column, qt.QTableWidgetItem(text))
        finally:
            self._updating = False

    def onProtocolEdited(self, row, column) -> None:
        if self._updating:
            return
        table = self.ui.protocolTable
        cells = [
            [table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount)]
            for r in range(table.rowCount)
        ]
        try:
            with self.userAction(_("The protocol step is not valid.")):
                self.session.set_protocol_rows(cells)
        finally:
            self.update()  # shows the protocol as it is, also after a refused edit
