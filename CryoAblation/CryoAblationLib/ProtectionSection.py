"""2b. Thermal protection: warm catheters, warm-fluid regions and skin warming, kept in the plan.

The work is done by ``CryoAblationLogic.scene.protection`` (state in the parameter node, the case's
``warm_line``/``warm_region`` sources, loading them back from a case file); this class only reads
the widgets, calls it, and shows the measures in the table.
"""

import qt
import slicer
from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene import protection

HELD = "held"
HEATED = "heated"


class ProtectionSection(PanelSection):
    def setup(self) -> None:
        self._lineIds = []  # node IDs behind protectionLineComboBox's items
        self._segmentIds = []  # segment IDs behind protectionSegmentComboBox's items
        self.ui.protectionKindComboBox.clear()
        for kind in protection.KINDS:
            self.ui.protectionKindComboBox.addItem(_(protection.KIND_LABELS[kind]), kind)
        self.ui.protectionWarmingComboBox.clear()
        self.ui.protectionWarmingComboBox.addItem(_("Held at a temperature (°C)"), HELD)
        self.ui.protectionWarmingComboBox.addItem(_("Heated (W/ml)"), HEATED)
        self.ui.protectionKindComboBox.connect("currentIndexChanged(int)", self.onInputsChanged)
        self.ui.protectionWarmingComboBox.connect("currentIndexChanged(int)", self.onInputsChanged)
        self.ui.placeCatheterButton.connect("clicked(bool)", self.onPlaceCatheter)
        self.ui.addProtectionButton.connect("clicked(bool)", self.onAddProtection)
        self.ui.removeProtectionButton.connect("clicked(bool)", self.onRemoveProtection)
        self.onInputsChanged()

    # -- what the user chose ---------------------------------------------------------------------
    def kind(self) -> str:
        return self.ui.protectionKindComboBox.currentData

    def warming(self) -> str:
        return self.ui.protectionWarmingComboBox.currentData

    def onInputsChanged(self, _index=None) -> None:
        """Only the fields of the chosen measure are enabled (a catheter has a line and a diameter,
        a region a segment; only warm fluid may be heated instead of held)."""
        kind = self.kind()
        catheter = kind == protection.WARM_CATHETER
        for widget in (
            self.ui.protectionLineComboBox,
            self.ui.placeCatheterButton,
            self.ui.protectionDiameterSpinBox,
        ):
            widget.enabled = catheter
        self.ui.protectionSegmentComboBox.enabled = not catheter
        self.ui.protectionWarmingComboBox.enabled = kind == protection.WARM_FLUID
        if kind != protection.WARM_FLUID:
            self.ui.protectionWarmingComboBox.setCurrentIndex(0)  # held: the only choice
        heated = kind == protection.WARM_FLUID and self.warming() == HEATED
        self.ui.protectionTemperatureSpinBox.enabled = not heated
        self.ui.protectionPowerSpinBox.enabled = heated

    # -- actions ---------------------------------------------------------------------------------
    def onPlaceCatheter(self) -> None:
        with self.userAction(_("Failed to start placing the catheter line.")):
            node = protection.new_catheter_line(
                self.session.scene, self.ui.protectionNameLineEdit.text or "Warm catheter"
            )
            appLogic = slicer.app.applicationLogic()
            selectionNode = appLogic.GetSelectionNode()
            selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsLineNode")
            selectionNode.SetActivePlaceNodeID(node.GetID())
            appLogic.GetInteractionNode().SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.Place)
            self.updateChoices(selectLineId=node.GetID())
            self.ui.protectionStatusLabel.text = _(
                "Click one end of the warmed segment, then the other; then press Add protection."
            )

    def onAddProtection(self) -> None:
        parameters = self.session.parameters
        name = self.ui.protectionNameLineEdit.text
        kind = self.kind()
        with self.userAction(_("The thermal protection was not added.")):
            if kind == protection.WARM_CATHETER:
                added = protection.add_warm_catheter(
                    parameters,
                    self.selectedLine(),
                    self.ui.protectionDiameterSpinBox.value,
                    self.ui.protectionTemperatureSpinBox.value,
                    name,
                )
                note = ""
            else:
                heated = kind == protection.WARM_FLUID and self.warming() == HEATED
                added, note = protection.add_warm_region(
                    parameters,
                    kind,
                    self.selectedSegmentId(),
                    temperature_c=None if heated else self.ui.protectionTemperatureSpinBox.value,
                    power_w_per_ml=self.ui.protectionPowerSpinBox.value if heated else None,
                    name=name,
                )
            self.ui.protectionNameLineEdit.text = ""
            self.ui.protectionStatusLabel.text = " ".join(
                part for part in (_("Added {name}.").format(name=added.name), note) if part
            )
        self.updatePanel()  # the segments table shows a role set for a warm-fluid segment

    def onRemoveProtection(self) -> None:
        with self.userAction(_("Failed to remove the thermal protection.")):
            removed = protection.remove_protection(
                self.session.parameters, self.ui.protectionTable.currentRow()
            )
            self.ui.protectionStatusLabel.text = _("Removed {name}.").format(name=removed.name)
        self.update()

    def selectedLine(self):
        index = self.ui.protectionLineComboBox.currentIndex
        if not 0 <= index < len(self._lineIds):
            return None
        return self.session.scene.GetNodeByID(self._lineIds[index])

    def selectedSegmentId(self) -> str:
        index = self.ui.protectionSegmentComboBox.currentIndex
        return self._segmentIds[index] if 0 <= index < len(self._segmentIds) else ""

    # -- refresh from the plan -------------------------------------------------------------------
    def update(self) -> None:
        with self.userAction(_("Failed to read the thermal protection of the plan.")):
            self.updateChoices()
            rows = protection.protection_rows(self.session.parameters)
            table = self.ui.protectionTable
            table.setRowCount(len(rows))
            for row, cells in enumerate(rows):
                for column, text in enumerate(cells):
                    item = qt.QTableWidgetItem(text)
                    item.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
                    table.setItem(row, column, item)

    def updateChoices(self, selectLineId=None) -> None:
        """The lines and segments the user may choose (kept selected across refreshes)."""
        scene = self.session.scene
        parameters = self.session.parameters
        keepLine = selectLineId or (self.selectedLine().GetID() if self.selectedLine() is not None else None)
        lines = protection.candidate_lines(scene, parameters)
        self._lineIds = [line.GetID() for line in lines]
        self.ui.protectionLineComboBox.clear()
        self.ui.protectionLineComboBox.addItems([line.GetName() for line in lines])
        if keepLine in self._lineIds:
            self.ui.protectionLineComboBox.setCurrentIndex(self._lineIds.index(keepLine))
        keepSegment = self.selectedSegmentId()
        segmentation = parameters.get(P.INPUT_SEGMENTATION)
        rows = self.session.segment_rows(segmentation) if segmentation is not None else []
        self._segmentIds = [segmentId for segmentId, *_rest in rows]
        self.ui.protectionSegmentComboBox.clear()
        self.ui.protectionSegmentComboBox.addItems([name for _id, name, *_rest in rows])
        if keepSegment in self._segmentIds:
            self.ui.protectionSegmentComboBox.setCurrentIndex(self._segmentIds.index(keepSegment))
