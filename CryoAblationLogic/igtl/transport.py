"""OpenIGTLink over TCP: a server (several clients at once) and a client that reconnects.

Each endpoint runs one background thread that owns its sockets (non-blocking, ``selectors``); the
caller's thread never touches a socket. Incoming messages go to an :class:`~.inbox.Inbox` the
caller polls; ``send`` encodes on the caller's thread and queues the bytes, so it never blocks,
also when no peer is connected (it then returns 0).

    server = Server(port=18944)          # binds 127.0.0.1 unless host= says otherwise
    server.start()
    server.send(TransformMessage(m, device_name="PLANE_0"))
    for item in server.inbox.drain(): ...
    server.stop()

Plain OpenIGTLink has no keep-alive: a peer that vanishes without closing is found by TCP
keep-alive or by ``idle_timeout_s``; a message that stops half-way is dropped after
``stall_timeout_s`` together with its connection, so a corrupt BODY_SIZE cannot hang the link, and
so is one that arrives slower than ``min_rate_bytes_per_s`` (a peer trickling a byte now and then
cannot hold a buffer open; every message may take ``MESSAGE_TIME_FLOOR_S``). ``budget`` caps the
bytes of incomplete messages all connections hold together. A server may take peers from an
allow-list only (``allowed_peers``) and keep one connection, a new one from an allowed peer
replacing the old (``replace_stale``): nobody can squat the port.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import math
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from CryoAblationLogic.igtl.codec import DEFAULT_MAX_BODY_SIZE, ByteBudget, StreamReader, encode
from CryoAblationLogic.igtl.errors import FramingError, ProtocolError
from CryoAblationLogic.igtl.inbox import Inbox, LinkEvent, Received
from CryoAblationLogic.igtl.messages import Message, timestamp_from_seconds

DEFAULT_PORT = 18944
LOOPBACK_PEERS = ("127.0.0.0/8", "::1")
DEFAULT_MIN_RATE_BYTES_PER_S = 256 * 1024  # an image of 100 MiB may take up to 400 s ...
MESSAGE_TIME_FLOOR_S = 30.0  # ... and any message 30 s
_REFUSAL_REPORT_S = 10.0  # one "refused" event per address in this time (a flood stays quiet)
_READ_CHUNK = 1 << 20
_WRITE_BATCH = 256 * 1024

Listener = Callable[[Received], None]


class _Connection:
    def __init__(self, sock: socket.socket, connection_id: int, peer: str, reader: StreamReader):
        self.sock = sock
        self.connection_id = connection_id
        self.peer = peer
        self.reader = reader
        self.outgoing: deque[memoryview] = deque()
        self.outgoing_bytes = 0
        self.last_receive = time.monotonic()
        self.partial = False  # part of a message received, the rest still to come
        self.message_started = 0.0  # monotonic time the message in progress began
        self.writing = False


class _Endpoint:
    """What server and client share: the I/O thread, reading, queued writing and events."""

    def __init__(
        self,
        *,
        inbox: Inbox | None,
        max_body_size: int,
        check_crc: bool,
        max_header_version: int,
        stall_timeout_s: float,
        idle_timeout_s: float | None,
        max_outgoing_bytes: int,
        listener: Listener | None,
        budget: ByteBudget | None = None,
        min_rate_bytes_per_s: float = DEFAULT_MIN_RATE_BYTES_PER_S,
    ):
        if max_header_version not in (1, 2):
            raise ValueError("max_header_version must be 1 or 2")
        self.inbox = inbox if inbox is not None else Inbox()
        self.max_body_size = max_body_size
        self.check_crc = check_crc
        self.max_header_version = max_header_version
        self.stall_timeout_s = stall_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_outgoing_bytes = max_outgoing_bytes
        self.listener = listener
        self.budget = budget
        self.min_rate_bytes_per_s = float(min_rate_bytes_per_s)
        self.received_count = 0
        self.error_count = 0
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._next_id = 1
        self._stop = threading.Event()
        self._wake_pending = threading.Event()
        self._thread: threading.Thread | None = None

    # -- caller's thread ------------------------------------------------------------------------

    @property
    def connection_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._connections)

    @property
    def connected(self) -> bool:
        return bool(self.connection_ids)

    def send(self, message: Message, connection_id: int | None = None, stamp: bool = True) -> int:
        """Queue ``message`` for one connection (or all: None). Returns how many connections it was
        queued for: 0 when none is connected or the peer stopped reading (``max_outgoing_bytes``
        queued); the caller decides whether to retry. A message with time stamp 0 goes out stamped
        with the current time unless ``stamp`` is False (the caller's object is left as it is).
        Header version is capped at ``max_header_version``."""
        if stamp and message.timestamp_raw == 0:
            message = copy.copy(message)
            message.timestamp_raw = timestamp_from_seconds(time.time())
        data = memoryview(encode(message, min(message.header_version, self.max_header_version)))
        queued = 0
        overflow = []
        with self._lock:
            targets = (
                list(self._connections.values())
                if connection_id is None
                else [c for c in (self._connections.get(connection_id),) if c is not None]
            )
            for connection in targets:
                if connection.outgoing_bytes + len(data) > self.max_outgoing_bytes:
                    overflow.append(connection)
                    continue
                connection.outgoing.append(data)
                connection.outgoing_bytes += len(data)
                queued += 1
        for connection in overflow:
            self._event("error", connection, f"outgoing queue full: {message.message_type} not sent")
        if queued:
            self._wake()
        return queued

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every connection and end the I/O thread."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._close_all()
        with contextlib.suppress(OSError):
            self._selector.close()
        for sock in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- I/O thread -----------------------------------------------------------------------------

    def _wake(self) -> None:
        # One pending wake-up byte is enough: the I/O thread looks at every queue when it wakes.
        if self._wake_pending.is_set():
            return
        self._wake_pending.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _start_thread(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _event(self, kind: str, connection: _Connection, detail: str) -> None:
        if kind == "error":
            self.error_count += 1
        self.inbox.put(
            LinkEvent(kind, connection.connection_id, connection.peer, detail, time.time()), self._stop.is_set
        )

    def _add_connection(self, sock: socket.socket, peer: str) -> _Connection:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        with self._lock:
            connection = _Connection(
                sock, self._next_id, peer, StreamReader(self.max_body_size, self.check_crc, self.budget)
            )
            self._next_id += 1
            self._connections[connection.connection_id] = connection
        self._selector.register(sock, selectors.EVENT_READ, connection)
        self._event("connected", connection, peer)
        return connection

    def _close(self, connection: _Connection, reason: str) -> None:
        with self._lock:
            if self._connections.pop(connection.connection_id, None) is None:
                return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(connection.sock)
        with contextlib.suppress(OSError):
            connection.sock.close()
        connection.reader.close()  # what its unfinished message reserved goes back to the budget
        self._event("disconnected", connection, reason)

    def _close_all(self) -> None:
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            self._close(connection, "closed by us")

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._close(connection, f"receive failed: {error}")
            return
        if not data:
            self._close(connection, "peer closed the connection")
            return
        connection.last_receive = time.monotonic()
        if not connection.partial:
            connection.message_started = connection.last_receive
        try:
            for item in connection.reader.feed(data):
                connection.message_started = time.monotonic()  # the next message starts now
                if isinstance(item, ProtocolError):
                    self._event("error", connection, str(item))
                    continue
                received = Received(item, time.time(), connection.connection_id, connection.peer)
                self.received_count += 1
                if self.listener is not None:
                    try:
                        self.listener(received)
                    except Exception as error:  # a faulty listener must not stop the link ...
                        # ... but what it could not journal is not used (a replay must see it too)
                        self._event(
                            "error",
                            connection,
                            f"{item.message_type} {item.device_name!r} dropped, not journaled: {error!r}"[
                                :400
                            ],
                        )
                        continue
                if not self.inbox.put(received, self._stop.is_set):
                    return
        except FramingError as error:
            self._event("error", connection, str(error))
            self._close(connection, f"stream out of step: {error}")
            return
        except Exception as error:  # a decoder bug must cost this connection, not the link
            self._event("error", connection, f"internal error while decoding: {error!r}")
            self._close(connection, "internal error")
            return
        connection.partial = connection.reader.pending_bytes > 0

    def _write(self, connection: _Connection) -> None:
        while True:
            with self._lock:
                if not connection.outgoing:
                    return
                # Many small messages (a burst of STATUS) go out in one system call.
                chunks = []
                size = 0
                for chunk in connection.outgoing:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= _WRITE_BATCH:
                        break
            data = chunks[0] if len(chunks) == 1 else memoryview(b"".join(chunks))
            try:
                sent = connection.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                self._close(connection, f"send failed: {error}")
                return
            with self._lock:
                connection.outgoing_bytes -= sent
                while sent:
                    head = connection.outgoing[0]
                    if sent >= len(head):
                        connection.outgoing.popleft()
                        sent -= len(head)
                    else:
                        connection.outgoing[0] = head[sent:]
                        return

    def _service(self, timeout: float) -> None:
        """One round of the I/O loop: wait for sockets, read, write, check timeouts."""
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:  # ask for writability only while bytes wait
            want_write = bool(connection.outgoing)
            if want_write != connection.writing:
                connection.writing = want_write
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.modify(connection.sock, events, connection)
        for key, events in self._selector.select(timeout):
            if key.data is None:
                self._wake_pending.clear()  # before draining: a later send wakes us again
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
                continue
            if callable(key.data):
                key.data()
                continue
            connection: _Connection = key.data
            if events & selectors.EVENT_READ:
                self._read(connection)
            if events & selectors.EVENT_WRITE and connection.connection_id in self._connections:
                self._write(connection)
        now = time.monotonic()
        for connection in connections:
            silent_s = now - connection.last_receive
            header = connection.reader.message_in_progress if connection.partial else None
            allowed_s = (
                max(MESSAGE_TIME_FLOOR_S, self.stall_timeout_s, header.body_size / self.min_rate_bytes_per_s)
                if header is not None
                else None
            )
            if connection.partial and silent_s > self.stall_timeout_s:  # a slow but moving image is fine
                self._event("error", connection, f"message incomplete, no byte for {self.stall_timeout_s} s")
                self._close(connection, "message stalled")
            elif allowed_s is not None and now - connection.message_started > allowed_s:
                self._event(
                    "error",
                    connection,
                    f"{header.message_type} of {header.body_size} bytes not complete after {allowed_s:.0f} s "
                    f"(slower than {self.min_rate_bytes_per_s / 1024:.0f} KiB/s)",
                )
                self._close(connection, "message too slow")
            elif self.idle_timeout_s is not None and silent_s > self.idle_timeout_s:
                self._close(connection, f"nothing received for {self.idle_timeout_s} s")

    def _service_guarded(self) -> None:
        """``_service``, surviving anything unexpected: the link keeps running and says why."""
        try:
            self._service(0.05)
        except Exception as error:  # pragma: no cover - only on bugs or OS trouble
            self.error_count += 1
            self.inbox.put(LinkEvent("error", 0, "", f"I/O loop: {error!r}", time.time()), self._stop.is_set)
            self._stop.wait(0.1)

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def _address_matcher(peers):
    """A test ``address → allowed`` for an allow-list of addresses, networks ("10.0.0.0/24") or
    host names (resolved now); None allows everyone."""
    if peers is None:
        return None
    networks = []
    for peer in peers:
        try:
            networks.append(ipaddress.ip_network(peer, strict=False))
        except ValueError:  # a host name: its addresses now
            try:
                infos = socket.getaddrinfo(peer, None, proto=socket.IPPROTO_TCP)
            except OSError as error:
                raise ProtocolError(
                    "allowed peers", f"{peer!r} is not an address or a known host: {error}"
                ) from None
            networks += [ipaddress.ip_network(info[4][0]) for info in infos]

    def allowed(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        candidates = [ip] + ([mapped] if mapped is not None else [])
        return any(c in network for c in candidates for network in networks if c.version == network.version)

    return allowed


class Server(_Endpoint):
    """OpenIGTLink server for several clients at once (each gets a ``connection_id``).

    ``allowed_peers``: addresses, networks or host names that may connect (None: anyone); others
    are closed at once and reported (one event per address every 10 s). Beyond ``max_connections``
    a new client is turned away, unless ``replace_stale``: then it replaces the oldest connection
    (a peer that comes back after a network hiccup must not find its own dead connection in the
    way, and nobody can squat the port)."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        *,
        inbox: Inbox | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        check_crc: bool = True,
        max_header_version: int = 1,
        stall_timeout_s: float = 10.0,
        idle_timeout_s: float | None = None,
        max_outgoing_bytes: int = 256 * 1024 * 1024,
        listener: Listener | None = None,
        max_connections: int = 32,
        allowed_peers=None,
        replace_stale: bool = False,
        budget: ByteBudget | None = None,
        min_rate_bytes_per_s: float = DEFAULT_MIN_RATE_BYTES_PER_S,
    ):
        super().__init__(
            inbox=inbox,
            max_body_size=max_body_size,
            check_crc=check_crc,
            max_header_version=max_header_version,
            stall_timeout_s=stall_timeout_s,
            idle_timeout_s=idle_timeout_s,
            max_outgoing_bytes=max_outgoing_bytes,
            listener=listener,
            budget=budget,
            min_rate_bytes_per_s=min_rate_bytes_per_s,
        )
        self.max_connections = max_connections
        self.allowed_peers = None if allowed_peers is None else tuple(allowed_peers)
        self._allowed = _address_matcher(self.allowed_peers)
        self.replace_stale = replace_stale
        self.refused_count = 0
        self._refusals_reported: dict[str, float] = {}
        self.host = host
        self._requested_port = port
        self._listening: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (the one the OS picked when constructed with ``port=0``)."""
        if self._listening is None:
            return self._requested_port
        return self._listening.getsockname()[1]

    def start(self) -> None:
        """Bind and listen (errors such as a port in use are raised here), then serve."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as error:
            sock.close()
            raise ProtocolError(
                "port", f"cannot listen on {self.host}:{self._requested_port}: {error}"
            ) from error
        sock.listen(16)
        sock.setblocking(False)
        self._listening = sock
        self._selector.register(sock, selectors.EVENT_READ, self._accept)
        self._start_thread(f"igtl-server-{self.port}")

    def _accept(self) -> None:
        assert self._listening is not None
        try:
            sock, address = self._listening.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        peer = f"{address[0]}:{address[1]}"
        if self._allowed is not None and not self._allowed(address[0]):
            self._refuse(sock, address[0], peer, f"refused: {address[0]} is not an allowed peer")
            return
        if len(self._connections) >= self.max_connections:
            if not self.replace_stale:
                self._refuse(sock, address[0], peer, f"refused: already {self.max_connections} connections")
                return
            with self._lock:
                oldest = min(self._connections.values(), key=lambda c: c.connection_id)
            self._close(oldest, f"replaced by a new connection from {peer}")
        self._add_connection(sock, peer)

    def _refuse(self, sock: socket.socket, address: str, peer: str, reason: str) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        self.refused_count += 1
        now = time.monotonic()
        if now - self._refusals_reported.get(address, -math.inf) < _REFUSAL_REPORT_S:
            return  # reported a moment ago: a flood of connections is not a flood of events
        if len(self._refusals_reported) > 1024:
            self._refusals_reported.clear()
        self._refusals_reported[address] = now
        self.error_count += 1
        self.inbox.put(LinkEvent("error", 0, peer, reason, time.time()), self._stop.is_set)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._service_guarded()
        finally:
            # Stop accepting first, so that no client connects while the others are closed.
            if self._listening is not None:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(self._listening)
                self._listening.close()
            self._close_all()


class Client(_Endpoint):
    """OpenIGTLink client that connects, and reconnects every ``reconnect_interval_s`` after the
    server goes away, for as long as it runs."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        inbox: Inbox | None = None,
        reconnect_interval_s: float = 0.5,
        connect_timeout_s: float = 2.0,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        check_crc: bool = True,
        max_header_version: int = 1,
        stall_timeout_s: float = 10.0,
        idle_timeout_s: float | None = None,
        max_outgoing_bytes: int = 256 * 1024 * 1024,
        listener: Listener | None = None,
        budget: ByteBudget | None = None,
        min_rate_bytes_per_s: float = DEFAULT_MIN_RATE_BYTES_PER_S,
    ):
        super().__init__(
            inbox=inbox,
            max_body_size=max_body_size,
            check_crc=check_crc,
            max_header_version=max_header_version,
            stall_timeout_s=stall_timeout_s,
            idle_timeout_s=idle_timeout_s,
            max_outgoing_bytes=max_outgoing_bytes,
            listener=listener,
            budget=budget,
            min_rate_bytes_per_s=min_rate_bytes_per_s,
        )
        self.host = host
        self.port = port
        self.reconnect_interval_s = reconnect_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.connect_count = 0
        self.attempts_failed = 0
        self.last_failure: str | None = None  # why the last attempt to connect failed (None: connected)

    def _unreachable(self, error: OSError) -> None:
        """Report a failed attempt at once, and again whenever the reason changes (a retry every
        ``reconnect_interval_s`` is not an event each time)."""
        self.attempts_failed += 1
        reason = (error.strerror or str(error) or type(error).__name__).lower()
        if isinstance(error, (TimeoutError, socket.timeout)):
            reason = f"no answer within {self.connect_timeout_s:g} s"
        if reason != self.last_failure:
            self.last_failure = reason
            self.inbox.put(
                LinkEvent("unreachable", 0, f"{self.host}:{self.port}", reason, time.time()),
                self._stop.is_set,
            )

    def start(self) -> None:
        self._start_thread(f"igtl-client-{self.host}:{self.port}")

    @property
    def connection_id(self) -> int | None:
        ids = self.connection_ids
        return ids[0] if ids else None

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected (for scripts and tests; a GUI polls ``connected`` instead)."""
        deadline = time.monotonic() + timeout_s
        while not self.connected:
            if time.monotonic() > deadline or self._stop.is_set():
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._connections:
                    try:
                        sock = socket.create_connection(
                            (self.host, self.port), timeout=self.connect_timeout_s
                        )
                    except OSError as error:
                        self._unreachable(error)
                        self._stop.wait(self.reconnect_interval_s)
                        continue
                    self.last_failure = None
                    self.connect_count += 1
                    self._add_connection(sock, f"{self.host}:{self.port}")
                self._service_guarded()
        finally:
            self._close_all()
