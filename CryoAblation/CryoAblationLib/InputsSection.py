"""1. Inputs: the phantom button and the segments table (role and material per segment)."""

import qt
from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection
from CryoAblationLogic.scene import parameters as P

NO_ROLE = ""  # the segments table's choice for a segment left out of the plan


class InputsSection(PanelSection):
    def setup(self) -> None:
        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onVolumeChanged)

    def onLoadPhantom(self) -> None:
        with self.userAction(_("Failed to load the sample phantom."), waitCursor=True):
            self.session.load_sample_phantom()
        if self.panel is not None:
            self.panel.initializeParameterNode()

    def onSegmentationChanged(self, node) -> None:
        # The signal's node: PythonQt calls slots in connection order and the wrapper's own slot,
        # connected later, has not stored the new node yet.
        if not self._chosen(P.INPUT_SEGMENTATION, node):
            self.updateSegmentsTable(node)

    def onVolumeChanged(self, node) -> None:
        self._chosen(P.INPUT_VOLUME, node)

    def _chosen(self, role: str, node) -> bool:
        """A node the user chose, stored at once so that every section (protection segments,
        probe warnings, preview) follows it; False when the plan already had it (the selector
        follows the parameter node, or the panel has no plan: a scene closing)."""
        if self.panel is None or self.panel._parameterNode is None:
            return False
        with self.userAction(_("Failed to use the chosen input.")):
            parameters = self.session.parameters
            if parameters.get(role) is node:
                return False
            parameters.set(role, node)
        self.updatePanel()
        return True

    def update(self) -> None:
        self.updateSegmentsTable(self.session.parameters.get(P.INPUT_SEGMENTATION))

    def updateSegmentsTable(self, segmentation) -> None:
        table = self.ui.segmentsTable
        with self.userAction(_("Failed to read the segments.")):
            rows = self.session.segment_rows(segmentation) if segmentation else []
            roles = [NO_ROLE, *self.session.role_names()]
            materials = ["", *self.session.material_names()]
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
            onChange = self._roleHandler(segmentation, segmentId, roleBox, materialBox)
            roleBox.connect("currentTextChanged(QString)", onChange)
            materialBox.connect("currentTextChanged(QString)", onChange)
            table.setCellWidget(row, 1, roleBox)
            table.setCellWidget(row, 2, materialBox)

    def _roleHandler(self, segmentation, segmentId, roleBox, materialBox):
        def handler(_text):
            with self.userAction(_("Failed to set the segment's role.")):
                self.session.set_segment_role(
                    segmentation, segmentId, roleBox.currentText, materialBox.currentText
                )

        return handler
