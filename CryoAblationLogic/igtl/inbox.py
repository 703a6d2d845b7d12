"""The hand-off between the network thread and the thread that uses the messages (Slicer's main
thread, polling from a timer).

State messages (STATUS, STRING, SENSOR, NDARRAY, POINT, queries, ...) are kept in full, in arrival
order: a burst of ten freeze/thaw events yields ten events. Messages that carry a pose or a frame
(IMAGE, TRANSFORM, POSITION) may be coalesced: while one of the same type and device name from the
same connection is still waiting, a newer one replaces its content, so a slow consumer sees the
latest pose instead of a growing backlog. The inbox is bounded by item count and bytes; when full,
``put`` waits (the network thread stops reading, TCP pushes back on the sender) instead of
dropping anything.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from CryoAblationLogic.igtl.messages import Message

COALESCED_TYPES = frozenset({"IMAGE", "TRANSFORM", "POSITION"})


@dataclass(frozen=True)
class Received:
    """A message as it arrived: ``arrival_time_s`` is the receiver's clock (Unix seconds, UTC);
    the sender's own time stamp is ``message.timestamp_s``."""

    message: Message
    arrival_time_s: float
    connection_id: int
    peer: str


@dataclass(frozen=True)
class LinkEvent:
    """A change of the link: ``kind`` is "connected", "disconnected", "unreachable" (a client's
    attempt to connect failed; ``detail`` says why, e.g. "connection refused"; it keeps trying) or
    "error" (a message dropped because it broke the protocol or a limit, a refused peer, a journal
    fault; ``detail`` says why)."""

    kind: str
    connection_id: int
    peer: str
    detail: str
    time_s: float


Item = Received | LinkEvent


def approximate_size(item: Item) -> int:
    """Bytes an item holds (for the inbox's memory bound)."""
    if isinstance(item, LinkEvent):
        return 256
    return 512 + item.message.payload_nbytes


class Inbox:
    """Thread-safe FIFO of :class:`Received` messages and :class:`LinkEvent` s."""

    def __init__(
        self,
        max_items: int = 200_000,
        max_bytes: int = 1024 * 1024 * 1024,
        coalesce: frozenset[str] = COALESCED_TYPES,
    ):
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be positive")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.coalesce = frozenset(coalesce)
        self._slots: deque[list] = deque()  # [item, size]; a list so coalescing can replace in place
        self._latest: dict[tuple, list] = {}
        self._bytes = 0
        self._condition = threading.Condition()
        self.coalesced_count = 0  # older pose/frame messages replaced before they were taken

    def __len__(self) -> int:
        with self._condition:
            return len(self._slots)

    @property
    def pending_bytes(self) -> int:
        with self._condition:
            return self._bytes

    def put(self, item: Item, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Add an item; waits while the inbox is full. False if ``should_stop`` became true first."""
        size = approximate_size(item)
        with self._condition:
            if isinstance(item, Received) and item.message.message_type in self.coalesce:
                key = (item.message.message_type, item.message.device_name, item.connection_id)
                slot = self._latest.get(key)
                if slot is not None:
                    self._bytes += size - slot[1]
                    slot[0], slot[1] = item, size
                    self.coalesced_count += 1
                    self._condition.notify_all()
                    return True
            else:
                key = None
            while self._slots and (len(self._slots) >= self.max_items or self._bytes + size > self.max_bytes):
                if should_stop():
                    return False
                self._condition.wait(0.05)
            slot = [item, size]
            self._slots.append(slot)
            self._bytes += size
            if key is not None:
                self._latest[key] = slot
            self._condition.notify_all()
            return True

    def _pop(self) -> Item:
        slot = self._slots.popleft()
        self._bytes -= slot[1]
        item = slot[0]
        if isinstance(item, Received):
            key = (item.message.message_type, item.message.device_name, item.connection_id)
            if self._latest.get(key) is slot:
                del self._latest[key]
        return item

    def get(self, timeout: float | None = None) -> Item | None:
        """The oldest item, waiting up to ``timeout`` seconds (None: forever); None if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._slots:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(remaining)
            item = self._pop()
            self._condition.notify_all()
            return item

    def drain(self, max_items: int | None = None) -> list[Item]:
        """All waiting items (at most ``max_items``), oldest first, without waiting."""
        with self._condition:
            count = len(self._slots) if max_items is None else min(max_items, len(self._slots))
            items = [self._pop() for _ in range(count)]
            if items:
                self._condition.notify_all()
            return items

    def wait_for(self, predicate: Callable[[Item], bool], timeout: float) -> tuple[Item | None, list[Item]]:
        """Take items until one satisfies ``predicate`` or ``timeout`` s pass; returns (the match or
        None, every item taken, the match included). For tests and scripts, not for a GUI thread."""
        deadline = time.monotonic() + timeout
        taken: list[Item] = []
        while True:
            item = self.get(max(0.0, deadline - time.monotonic()))
            if item is None:
                return None, taken
            taken.append(item)
            if predicate(item):
                return item, taken


def messages_of(
    items: list[Item], message_type: str | None = None, device_name: str | None = None
) -> list[Message]:
    """The messages among ``items`` (events left out), optionally of one type and device."""
    return [
        item.message
        for item in items
        if isinstance(item, Received)
        and (message_type is None or item.message.message_type == message_type)
        and (device_name is None or item.message.device_name == device_name)
    ]
