"""What the panel's Monitor section shows, kept from the live links' events (no Qt, no I/O).

:class:`LinkPanel` takes the ``(source, event)`` pairs that
:meth:`CryoAblationLogic.live.link.LiveLink.poll` returns (plain monitoring) or that
:attr:`CryoAblationLogic.scene.live_link.LiveSceneDriver.events` holds after each step (live mode)
and keeps what the panel shows: a status light per link (off, waiting, connected), the latest
reading of each probe temperature, each probe's state from the console, and the messages the user
must see (console faults, unrecognised messages, commands not acknowledged, dropped messages).
:func:`live_panel` adds what live mode knows: readings beside the prediction and the session's
notes. :func:`live_endpoints` turns the panel's fields into the endpoints of the live links.
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.live.console import interpret_or_unrecognised
from CryoAblationLogic.live.journal import read_journal
from CryoAblationLogic.live.link import Endpoint
from CryoAblationLogic.live.mode import session_settings
from CryoAblationLogic.live.resend import resend_journal

OFF, WAITING, CONNECTED = "off", "waiting", "connected"
MAX_MESSAGES = 20


@dataclass
class LinkPanel:
    sources: tuple[str, ...] = ("scanner", "console")
    lights: dict[str, str] = field(default_factory=dict)
    temperatures_c: dict[int, tuple[float, float]] = field(default_factory=dict)  # probe → (°C, time s)
    probe_states: dict[int, str] = field(default_factory=dict)  # probe → "freeze 100%", "thaw passive", ...
    messages: deque = field(default_factory=lambda: deque(maxlen=MAX_MESSAGES))
    images_received: int = 0
    live: bool = False  # live mode: console faults are shown from the session's notes (with their time)

    def __post_init__(self) -> None:
        for source in self.sources:
            self.lights.setdefault(source, OFF)

    def started(self) -> None:
        """The links were started: each light waits for its peer."""
        for source in self.sources:
            self.lights[source] = WAITING

    def stopped(self) -> None:
        for source in self.sources:
            self.lights[source] = OFF

    def apply(self, source: str, event) -> None:
        """Take one ``(source, event)`` pair from ``LiveLink.poll``."""
        kind = type(event).__name__
        if kind == "LinkEvent":
            if event.kind == "connected":
                self.lights[source] = CONNECTED
            elif event.kind == "disconnected":
                self.lights[source] = WAITING
            elif event.kind == "unreachable":
                self.lights[source] = WAITING
                self._say(f"waiting for {source} at {event.peer}: {event.detail}")
            else:
                self._say(f"{source}: {event.detail}")
        elif kind == "ProbeTemperatures":
            time_s = event.time_s if event.time_s is not None else event.arrival_time_s
            for probe, temperature in event.temperatures_c.items():
                self.temperatures_c[int(probe)] = (float(temperature), float(time_s))
        elif kind == "ProbeStateChange":
            detail = event.mode or (f"{event.flow_percent:g}%" if event.flow_percent is not None else "")
            self.probe_states[int(event.probe)] = f"{event.action.lower()} {detail}".strip()
        elif kind == "ConsoleFault" and not self.live:
            self._say(f"console fault {event.error_name} ({event.code}): {event.text}")
        elif kind == "ScannerStatus":
            if not event.ok:
                self._say(f"scanner status {event.state} ({event.code})")
        elif kind == "ScannerImage":
            self.images_received += 1
        elif kind == "Unrecognised":
            self._say(f"{source}: unrecognised {event.message_type} {event.device_name!r}: {event.reason}")
        elif kind == "CommandTimeout":
            self._say(f"{source}: command {event.text!r} was not acknowledged")

    def _say(self, text: str) -> None:
        self.messages.append(text)

    def sensor_rows(self) -> list[tuple[str, str, str]]:
        """``(probe and its state, latest °C, time s)`` per probe, as text, in probe order."""
        rows = []
        for probe in sorted(self.temperatures_c):
            temperature, time_s = self.temperatures_c[probe]
            state = self.probe_states.get(probe)
            name = f"Probe {probe}" + (f" ({state})" if state else "")
            rows.append((name, f"{temperature:.1f}", f"{time_s:.1f}"))
        return rows


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")


def parse_peers(text: str, key: str = "scanner peers") -> tuple[str, ...]:
    """The addresses that may connect where we listen, as the panel takes them: addresses, networks
    (10.1.2.0/24) or host names separated by commas or spaces; "*" for anyone; empty for this
    computer only. Anything else is refused naming the entry."""
    peers = tuple(entry for entry in re.split(r"[,\s]+", text.strip()) if entry)
    for entry in peers:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not _HOST_NAME.fullmatch(entry):
                raise InputError(key, f"{entry!r} is not an address, a network or a host name") from None
    return peers


def live_endpoints(
    scanner_host: str, scanner_port: int, console_host: str, console_port: int, scanner_peers=()
):
    """The scanner's bridge connects to us (we listen on ``scanner_host:scanner_port``; only this
    computer may connect, or the addresses in ``scanner_peers``); we connect to the cryo console at
    ``console_host:console_port`` (the conventions of the live links)."""

    if scanner_port == console_port and scanner_host == console_host:
        raise InputError("ports", "the scanner and the console need different ports")
    for key, host in (("scanner host", scanner_host), ("console host", console_host)):
        if not host or not host.strip():
            raise InputError(key, "enter a host name or address")
    return (
        Endpoint("server", scanner_host.strip(), int(scanner_port), tuple(scanner_peers)),
        Endpoint("client", console_host.strip(), int(console_port)),
    )


def review_journal(state: LinkPanel, journal_path: str | Path) -> int:
    """Run a recorded procedure's incoming messages through the same interpretation as the live
    links, as fast as possible, into ``state``; returns how many messages were replayed.

    Nothing is sent anywhere: the journal's messages are rebuilt (images from their NRRD files) and
    turned into the typed events the panel shows, so a procedure can be reviewed without a
    scanner or console.
    """

    def take(message) -> None:
        for event in interpret_or_unrecognised(message, 0.0):
            state.apply("journal", event)

    return resend_journal(journal_path, take, speed=0.0)


def live_rows(session) -> list[tuple[str, str, str]]:
    """``(name and state, measured °C beside the prediction, procedure time s)`` for each probe
    and sensor of a live-mode session, from its latest reading."""
    latest = {}
    for sample in session.samples:
        latest[sample.name] = sample
    rows = []
    for name, sample in latest.items():
        state = session.states.get(name)
        label = name
        if state is not None:
            action, flow, mode = state
            detail = mode or (f"{flow:g}%" if action == "freeze" else "")
            label = f"{name} ({action} {detail})".replace(" )", ")")
        rows.append(
            (label, f"{sample.measured_c:.1f} (predicted {sample.predicted_c:.1f})", f"{sample.time_s:.1f}")
        )
    return rows


def live_notes(session, count: int = MAX_MESSAGES) -> list[str]:
    """What live mode did or declined to do (its latest notes), as text."""
    texts = []
    for note in session.notes[-count:]:
        detail = ", ".join(f"{key} {value}" for key, value in sorted(note.detail.items()))
        texts.append(
            f"{note.time_s:.0f} s: {note.what.replace('_', ' ')}" + (f" ({detail})" if detail else "")
        )
    return texts


def live_panel(state: LinkPanel, session) -> tuple[dict[str, str], list[tuple[str, str, str]], list[str]]:
    """``(lights, sensor rows, messages)`` of live mode, running or after it: the lights and the
    link's problems from ``state``, the readings beside the prediction and the notes from
    ``session``."""
    return dict(state.lights), live_rows(session), list(state.messages) + live_notes(session)


def is_live_journal(journal_path: str | Path) -> bool:
    """Whether a journal was written by live mode (it can then be replayed with the prediction)."""

    try:
        session_settings(read_journal(journal_path).records)
    except InputError:
        return False
    return True
