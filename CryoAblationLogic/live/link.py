"""The live links of a procedure: the MR scanner bridge and the cryo console, journaled, turned
into typed events for the thread that polls them (Slicer: a ``qt.QTimer``; no Qt here).

    link = LiveLink(Journal(folder, "case-001"), scanner=Endpoint("server", port=18944),
                    console=Endpoint("client", "127.0.0.1", 18945))
    link.start()
    ...every 50 ms on the main thread:
    for source, event in link.poll(): ...     # source "scanner" or "console"
    link.send_scan_plane(plane_to_ras)
    command_id = link.send_console_command("FREEZE 1 100%")
    link.stop()

Every message in and out, and every connect/disconnect, is journaled (incoming ones on the network
thread as they arrive, so coalescing of image frames for the display never loses a journal
record). A message that breaks a convention becomes an :class:`~.console.Unrecognised` event
instead of an exception in the polling loop.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.inbox import COALESCED_TYPES, Inbox, LinkEvent, Received
from CryoAblationLogic.igtl.messages import Message, timestamp_from_seconds
from CryoAblationLogic.igtl.transport import DEFAULT_PORT, Client, Server
from CryoAblationLogic.live.console import (
    CommandAck,
    CommandTracker,
    Event,
    command_message,
    interpret_or_unrecognised,
    scan_plane_message,
    scanner_command,
)
from CryoAblationLogic.live.journal import Journal

SOURCES = ("scanner", "console")


@dataclass(frozen=True)
class Endpoint:
    """How to reach a peer: we listen (``role="server"``, bound to ``host``) or connect to it."""

    role: str = "server"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if self.role not in ("server", "client"):
            raise InputError("role", f"must be 'server' or 'client', got {self.role!r}")
        if not 0 <= self.port <= 65535:
            raise InputError("port", f"{self.port} is not a TCP port")


@dataclass(frozen=True)
class CommandTimeout:
    """A command not acknowledged within ``LiveLink.command_timeout_s``."""

    command_id: str
    text: str
    sent_time_s: float


class LiveLink:
    def __init__(
        self,
        journal: Journal | None,
        scanner: Endpoint | None = Endpoint("server"),
        console: Endpoint | None = None,
        command_timeout_s: float = 5.0,
        coalesce: frozenset[str] = COALESCED_TYPES,
    ):
        """``coalesce``: message types whose pending older copies a newer one may replace in the
        inbox (live mode keeps every pose: only IMAGE frames are coalesced there)."""
        self.journal = journal
        self.command_timeout_s = command_timeout_s
        self.commands = {source: CommandTracker() for source in SOURCES}
        self._ids = itertools.count(1)
        self._timed_out: set[tuple[str, str]] = set()
        self.links: dict[str, Server | Client] = {}
        for source, endpoint in (("scanner", scanner), ("console", console)):
            if endpoint is None:
                continue
            listener = journal.record if journal is not None else None
            inbox = Inbox(coalesce=coalesce)
            if endpoint.role == "server":
                self.links[source] = Server(endpoint.port, endpoint.host, inbox=inbox, listener=listener)
            else:
                self.links[source] = Client(endpoint.host, endpoint.port, inbox=inbox, listener=listener)

    def start(self) -> None:
        for link in self.links.values():
            link.start()

    def stop(self) -> None:
        for link in self.links.values():
            link.stop()

    def __enter__(self) -> LiveLink:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def connected(self, source: str) -> bool:
        return source in self.links and self.links[source].connected

    # -- incoming ---------------------------------------------------------------------------------

    def poll(self, max_items: int = 1000) -> list[tuple[str, Event | LinkEvent | CommandTimeout]]:
        """Events since the last poll, oldest first, per source; never blocks."""
        out: list[tuple[str, Event | LinkEvent | CommandTimeout]] = []
        for source, item, events in self.poll_received(max_items):
            if isinstance(item, Received):
                out.extend((source, event) for event in events)
            else:
                out.append((source, item))
        return out

    def poll_received(
        self, max_items: int = 1000
    ) -> list[tuple[str, Received | LinkEvent | CommandTimeout, list[Event]]]:
        """Like :meth:`poll`, with each message as received (its own time stamp, arrival time) and
        the events it carries; link events and command timeouts come with no events."""
        out: list[tuple[str, Received | LinkEvent | CommandTimeout, list[Event]]] = []
        for source, link in self.links.items():
            for item in link.inbox.drain(max_items):
                if isinstance(item, LinkEvent):
                    if self.journal is not None:
                        self.journal.record_event(item)
                    out.append((source, item, []))
                    continue
                out.append((source, item, self._interpret(source, item)))
        now = time.time()
        for source, tracker in self.commands.items():
            for command_id in tracker.overdue(now, self.command_timeout_s):
                if (source, command_id) not in self._timed_out:
                    self._timed_out.add((source, command_id))
                    text, sent = tracker.pending[command_id]
                    out.append((source, CommandTimeout(command_id, text, sent), []))
        return out

    def _interpret(self, source: str, item: Received) -> list[Event]:
        events = interpret_or_unrecognised(item.message, item.arrival_time_s)
        for event in events:
            if isinstance(event, CommandAck):
                self.commands[source].acknowledge(event)
        return events

    # -- outgoing ---------------------------------------------------------------------------------

    def _send(self, source: str, message: Message) -> int:
        if source not in self.links:
            raise InputError(source, "this link is not configured")
        if message.timestamp_raw == 0:  # stamped here so that the journal has the time sent
            message.timestamp_raw = timestamp_from_seconds(time.time())
        count = self.links[source].send(message, stamp=False)
        if self.journal is not None:
            self.journal.record_message(message, direction="out", peer=f"{source} ({count} connections)")
        return count

    def send_scan_plane(self, plane_to_ras: np.ndarray) -> int:
        """Send the scan plane (TRANSFORM ``PLANE_0``); returns the number of bridges reached."""
        return self._send("scanner", scan_plane_message(plane_to_ras))

    def _next_id(self) -> str:
        return f"{int(time.time() * 1000) % 10**10}{next(self._ids):03d}"[-16:]

    def send_scanner_command(self, command: str) -> str:
        """START_UP / START_SEQUENCE / STOP_SEQUENCE as STRING ``CMD_<id>``; returns the id (the
        bridge answers ``ACK_<id>``). Raises InputError when no bridge is connected."""
        return self._send_command("scanner", scanner_command(command, self._next_id()))

    def send_console_command(self, text: str) -> str:
        """A console command (e.g. "FREEZE 1 100%") as STRING ``CMD_<id>``; returns the id."""
        return self._send_command("console", command_message(text, self._next_id()))

    def _send_command(self, source: str, message) -> str:
        if self._send(source, message) == 0:
            raise InputError(source, f"not connected: {message.text!r} was not sent")
        self.commands[source].sent(message, time.time())
        return message.device_name[4:]
