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

On every connect of the console link, the console is asked for its state (``GET_STATUS`` ``Cryo``,
``CONSOLE_STATUS_DEVICE``): the console sends a state only when it changes, so a monitor that
(re)connects, or resumes a journal, after a state change would otherwise keep the old state until
the next one. A console that answers sends its STATUS ``Cryo`` messages as for a change; one that
does not is not asked again until it reconnects.

Every message in and out, and every connect/disconnect, is journaled (incoming ones on the network
thread as they arrive, before anything uses them, so coalescing of image frames for the display
never loses a journal record; a message that cannot be journaled is dropped, not used). A message
that breaks a convention becomes an :class:`~.console.Unrecognised` event instead of an exception
in the polling loop.

Who may talk: one scanner link and one console link. Where we listen, only the endpoint's
``peers`` may connect (default: this machine — loopback and the listen address itself), one
connection at a time, a new one from an allowed peer replacing the old. Incomplete messages of
both links together hold at most ``max_buffered_bytes``; a connection silent for
``idle_timeout_s`` is closed (a client reconnects).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.codec import ByteBudget
from CryoAblationLogic.igtl.inbox import COALESCED_TYPES, Inbox, LinkEvent, Received
from CryoAblationLogic.igtl.messages import Message, QueryMessage, timestamp_from_seconds
from CryoAblationLogic.igtl.transport import DEFAULT_PORT, LOOPBACK_PEERS, Client, Server
from CryoAblationLogic.live.console import (
    CONSOLE_STATUS_DEVICE,
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
DEFAULT_MAX_BUFFERED_BYTES = 512 * 1024**2  # incomplete messages of all connections together
DEFAULT_IDLE_TIMEOUT_S = 300.0
ANY_PEER = "*"


@dataclass(frozen=True)
class Endpoint:
    """How to reach a peer: we listen (``role="server"``, bound to ``host``) or connect to it.

    ``peers`` (where we listen): the addresses, networks or host names that may connect; empty:
    this machine only (loopback and ``host`` itself); ``("*",)``: anyone."""

    role: str = "server"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    peers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ("server", "client"):
            raise InputError("role", f"must be 'server' or 'client', got {self.role!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InputError("port", f"{self.port} is not a TCP port")
        if not isinstance(self.peers, tuple) or not all(isinstance(p, str) and p for p in self.peers):
            raise InputError("peers", "must be a tuple of addresses or host names")

    @property
    def allowed_peers(self) -> tuple[str, ...] | None:
        """The allow-list of a listening endpoint (None: anyone)."""
        if ANY_PEER in self.peers:
            return None
        if self.peers:
            return self.peers
        own = () if self.host in ("", "0.0.0.0", "::") else (self.host,)
        return (*LOOPBACK_PEERS, *own)


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
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        **transport_options,
    ):
        """``coalesce``: message types whose pending older copies a newer one may replace in the
        inbox (live mode keeps every pose: only IMAGE frames are coalesced there).
        ``transport_options``: passed to each :class:`~CryoAblationLogic.igtl.transport.Server`
        or ``Client`` (``max_body_size``, ``stall_timeout_s``, ``min_rate_bytes_per_s``, ...)."""
        self.journal = journal
        self.command_timeout_s = command_timeout_s
        self.commands = {source: CommandTracker() for source in SOURCES}
        self._ids = itertools.count(1)
        self._timed_out: set[tuple[str, str]] = set()
        self.budget = ByteBudget(max_buffered_bytes)
        self.faults: list[LinkEvent] = []  # journal faults, shown once each by poll
        self.links: dict[str, Server | Client] = {}
        if journal is not None:
            journal.on_fault = self._journal_fault
        for source, endpoint in (("scanner", scanner), ("console", console)):
            if endpoint is None:
                continue
            listener = _journal_listener(journal, source) if journal is not None else None
            options = {
                "inbox": Inbox(coalesce=coalesce),
                "listener": listener,
                "budget": self.budget,
                "idle_timeout_s": idle_timeout_s,
                **transport_options,
            }
            if endpoint.role == "server":
                self.links[source] = Server(
                    endpoint.port,
                    endpoint.host,
                    max_connections=1,
                    replace_stale=True,
                    allowed_peers=endpoint.allowed_peers,
                    **options,
                )
            else:
                self.links[source] = Client(endpoint.host, endpoint.port, **options)

    def _journal_fault(self, text: str) -> None:
        self.faults.append(LinkEvent("error", 0, "journal", text, time.time()))

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
        while self.faults:  # the journal's own faults (image budget reached), under the first link
            fault = self.faults.pop(0)
            if self.journal is not None:
                self.journal.record_event(fault)
            out.append((next(iter(self.links), "journal"), fault, []))
        for source, link in self.links.items():
            for item in link.inbox.drain(max_items):
                if isinstance(item, LinkEvent):
                    if self.journal is not None:
                        self.journal.record_event(item)
                    out.append((source, item, []))
                    if source == "console" and item.kind == "connected":
                        self.ask_console_state()
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

    def received_on(self, source: str) -> bool:
        """Whether a message ever came over this link (the monitor's "did a peer answer")."""
        return source in self.links and self.links[source].received_count > 0

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

    def ask_console_state(self) -> int:
        """Ask the console for its state (``GET_STATUS`` ``Cryo``); returns the consoles reached.
        Done on every connect of the console link (a state changed while no one listened)."""
        return self._send(
            "console", QueryMessage(prefix="GET", data_type="STATUS", device_name=CONSOLE_STATUS_DEVICE)
        )

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


def _journal_listener(journal: Journal, source: str):
    """The transport listener that journals what arrives over ``source``'s link, with its role."""

    def listener(item: Received) -> None:
        journal.record(item, link=source)

    return listener
