"""6. Results: metrics and critical-structure tables, warnings, plots, case and report export."""

import slicer
from slicer.i18n import tr as _

from CryoAblationLib.PanelSection import PanelSection


class ResultsSection(PanelSection):
    def setup(self) -> None:
        self.ui.showIceVolumePlotButton.connect("clicked(bool)", lambda: self.onShowPlot("ice"))
        self.ui.showSensorPlotButton.connect("clicked(bool)", lambda: self.onShowPlot("sensors"))
        self.ui.exportCaseButton.connect("clicked(bool)", self.onExportCase)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReport)

    def update(self) -> None:
        with self.userAction(_("Failed to read the results.")):
            metricsTable, criticalTable, warnings = self.session.result_tables()
        self.ui.metricsTableView.setMRMLTableNode(metricsTable)
        self.ui.criticalTableView.setMRMLTableNode(criticalTable)
        self.ui.metricsWarningsLabel.text = "\n".join(warnings)

    def onShowPlot(self, which: str) -> None:
        with self.userAction(_("Failed to show the plot.")):
            self.logic.showChart(which)

    def onExportCase(self) -> None:
        with self.userAction(_("Failed to export the case file."), waitCursor=True):
            path = self.session.export_case(self.ui.outputDirectoryButton.directory)
            slicer.util.infoDisplay(_("Case file written:\n{path}").format(path=path))

    def onExportReport(self) -> None:
        with self.userAction(_("Failed to export the report."), waitCursor=True):
            path = self.session.export_report(self.ui.outputDirectoryButton.directory)
            slicer.util.infoDisplay(_("Report written:\n{path}").format(path=path))
