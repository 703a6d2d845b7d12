"""A message source of the main thread for live mode's worker tests (``scene/live_process.py``)."""

from __future__ import annotations


class MainThreadSource:
    """A message source of the main thread, as :class:`~.live_link.ConnectorSource` is in Slicer:
    the console's messages it holds (given at once, or released stage by stage with
    :meth:`release`) come out of ``poll`` once started (after ``stop``, what came before it, as
    the connector source keeps it)."""

    role = "console"  # (its time stamps move the procedure clock, as the console's do)

    def __init__(self, messages=()):
        self._messages = list(messages)
        self.started = False

    def release(self, messages) -> None:
        self._messages += messages

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        pass

    def poll(self):
        if not self.started:
            raise AssertionError("polled before start()")
        taken, self._messages = self._messages, []
        return [("console", message, message.timestamp_s, None) for message in taken]

    def image_node_for(self, _device_name):
        return None

    def send_scan_plane(self, _plane) -> int:
        return 0

    def send_scanner_command(self, _command):
        return None
