"""Plain monitoring's links (the Monitor section's Connect) in a worker process.

In Slicer a Python thread runs only while the main thread runs Python (PythonQt keeps the GIL while
Qt idles), so the links' socket threads would read, check and journal the scanner's images only in
the module's 100 ms timer slots, and a peer sending faster would fill the socket and wait. As live
mode does (:mod:`.live_process`), the links and their journal run in a process of their own
(``multiprocessing`` with ``spawn``; in Slicer its executable is ``PythonSlicer``); the main thread
takes their events from a pipe without waiting (:meth:`LinkProcess.poll`, from the timer).
"""

from __future__ import annotations

import multiprocessing
import time

from CryoAblationLogic.igtl.inbox import LinkEvent
from CryoAblationLogic.live.journal import Journal
from CryoAblationLogic.live.runner import start_links
from CryoAblationLogic.scene.solver_process import _sendable

WORKER_PEER = "monitor worker"
START_TIMEOUT_S = 60.0  # the worker's imports and the links' sockets; no solver is compiled
STOP_TIMEOUT_S = 10.0  # the links stop and the journal closes
_POLL_S = 0.02  # the worker's wait for a request before it passes its links' events on


def _serve_links(connection, spec: dict) -> None:  # the worker process's entry
    journal = None
    try:
        if spec["journal"] is not None:
            journal = Journal(*spec["journal"])
        link = start_links(journal, spec["scanner"], spec["console"])  # closes the journal if it fails
    except Exception as error:
        connection.send(("failed", _sendable(error)))
        return
    # who may connect where we listen, as the links resolved it (None: anyone)
    admitted = {name: getattr(each, "allowed_peers", None) for name, each in link.links.items()}
    connection.send(("started", admitted))
    try:
        while True:
            try:
                request = connection.recv() if connection.poll(_POLL_S) else None
            except (EOFError, OSError):
                request = ("stop",)  # the main process went away
            events = link.poll()
            if events:
                try:
                    connection.send(("events", events))
                except (OSError, ValueError):
                    break  # the main process went away: the links stop and the journal closes
            if request is not None and request[0] == "stop":
                break
    finally:
        link.stop()
        if journal is not None:
            journal.close()
        try:
            connection.send(("stopped", link.poll()))
        except (OSError, ValueError):
            pass


class LinkProcess:
    """The scanner and console links of plain monitoring, journaled into ``journal`` (the
    arguments of :class:`~CryoAblationLogic.live.journal.Journal`; None: nothing recorded), in a
    worker process. Starting raises what the links raised (a port in use, a refused address)."""

    def __init__(
        self,
        journal: tuple | None,
        scanner,
        console,
        executable: str | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ):
        context = multiprocessing.get_context("spawn")
        if executable:
            context.set_executable(executable)  # Slicer: PythonSlicer, not the Slicer application
        self._connection, child = context.Pipe()
        spec = {"journal": journal, "scanner": scanner, "console": console}
        self.scanner, self.console = scanner, console
        self._process = context.Process(
            target=_serve_links, args=(child, spec), name="CryoAblation monitor", daemon=True
        )
        self._process.start()
        child.close()
        self._events: list = []
        self._ended_said = False
        reply = self._wait_for(("started", "failed"), start_timeout_s, "start the links")
        if reply[0] == "failed":
            self._process.join(5.0)
            self._connection.close()
            raise reply[1]
        self.allowed_peers: dict = reply[1]  # each link's admitted peers where it listens
        self.links = tuple(self.allowed_peers)

    def _wait_for(self, kinds: tuple[str, ...], timeout_s: float, what: str) -> tuple:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                reply = self._connection.recv() if self._connection.poll(0.05) else None
            except (EOFError, OSError):
                code = self._process.exitcode
                raise RuntimeError(
                    f"the monitoring process ended (exit code {code}) before it could {what}"
                ) from None
            if reply is None:
                continue
            if reply[0] in ("events", "stopped"):
                self._events += reply[1]
            if reply[0] in kinds:
                return reply
        self._process.terminate()
        raise TimeoutError(f"the monitoring process did not {what} within {timeout_s:g} s")

    def alive(self) -> bool:
        return self._process.is_alive()

    def poll(self) -> list[tuple[str, object]]:
        """The links' events since the last call, oldest first (as ``LiveLink.poll``); never waits.
        A worker that ended on its own is said once, as an error of the links."""
        try:
            while self._connection.poll(0):
                _kind, events = self._connection.recv()  # events, or the last ones (stopped)
                self._events += events
        except (EOFError, OSError):
            if not self._ended_said:
                self._ended_said = True
                detail = f"the monitoring process ended (exit code {self._process.exitcode}); disconnect"
                source = "console" if "console" in self.links else next(iter(self.links), "console")
                self._events.append((source, LinkEvent("error", 0, WORKER_PEER, detail, time.time())))
        events, self._events = self._events, []
        return events

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> list[tuple[str, object]]:
        """Stop the links and close the journal (in the worker); returns the last events."""
        try:
            self._connection.send(("stop",))
            self._wait_for(("stopped",), timeout_s, "stop")
        except (OSError, ValueError, RuntimeError, TimeoutError):
            pass  # it has ended already, or is ended below
        finally:
            self._process.join(5.0)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5.0)
            self._connection.close()
        events, self._events = self._events, []
        return events
