"""The panel's sections in the order of the procedure (the .ui's collapsible buttons)."""

from CryoAblationLib.InputsSection import InputsSection
from CryoAblationLib.MonitorSection import MonitorSection
from CryoAblationLib.PanelSection import PanelSection, reportInPanel, showError
from CryoAblationLib.ProbesSection import ProbesSection
from CryoAblationLib.ProtocolSection import ProtocolSection
from CryoAblationLib.ResultsSection import ResultsSection
from CryoAblationLib.SimulationSection import SimulationSection

SECTIONS = (InputsSection, ProbesSection, ProtocolSection, SimulationSection, MonitorSection, ResultsSection)

__all__ = ["SECTIONS", "PanelSection", "reportInPanel", "showError"]
