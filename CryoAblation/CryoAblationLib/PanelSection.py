"""What every section of the CryoAblation panel shares: the .ui, Slicer's logic, error reporting."""

import contextlib
import logging

import slicer
from slicer.i18n import tr as _


@contextlib.contextmanager
def reportInPanel(label, message: str):
    """For timer-driven code: an error is logged and shown in ``label``, never in a modal dialog
    (a QTimer keeps firing under a modal dialog, so the dialogs would stack)."""
    try:
        yield
    except Exception as error:
        logging.exception(message)
        label.text = _("{message}: {error}").format(message=message, error=error)


@contextlib.contextmanager
def showError(message: str):
    """For a refresh of the panel: a failure is shown in Slicer's error dialog and ends there.
    ``tryWithErrorDisplay`` raises the error again once shown, which would stop the caller's
    remaining work (the other sections' refresh, the module's timer)."""
    try:
        with slicer.util.tryWithErrorDisplay(message):
            yield
    except Exception:
        pass  # shown (and logged) by tryWithErrorDisplay


class PanelSection:
    """One collapsible section of the panel (SlicerHeart's DevicePositioningWidget style): it
    connects its widgets to the planning session in :meth:`setup`, refreshes them from the plan in
    :meth:`update`, and takes background results in :meth:`onTimer`. No computation here."""

    def __init__(self, ui, logic):
        self.ui = ui
        self.logic = logic
        self.panel = None  # the module widget, set by it: refreshes every section after a plan change

    @property
    def session(self):
        return self.logic.session

    def setup(self) -> None:
        pass

    def update(self) -> None:
        pass

    def onTimer(self) -> None:
        pass

    @staticmethod
    def userAction(message: str, waitCursor: bool = False):
        """For a user's click or edit: a failure is shown in Slicer's error dialog."""
        return slicer.util.tryWithErrorDisplay(message, waitCursor=waitCursor)

    def updatePanel(self) -> None:
        if self.panel is not None:
            self.panel.updateSections()
