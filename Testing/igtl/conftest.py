"""Fixtures for the OpenIGTLink tests: the C++ reference peers (Debian ``openigtlink-examples``,
built by ``Testing/peers/build-peers.sh`` into ``.peers/``), started and stopped by PID.

Missing peers are a test failure with the reason, never a silent skip: the interop tests are the
proof that our bytes are what the reference implementation reads and writes.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / ".peers"
BUILD_SCRIPT = REPO / "Testing" / "peers" / "build-peers.sh"
PROGRAMS = (
    "ImagerServer",
    "TrackerServer",
    "TrackerClient3",
    "ReceiveServer",
    "StringEchoServer",
    "StatusServer",
    "TrackingDataServer",
)


def _free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether a socket listens on ``port``, read from /proc so that probing does not open a
    connection (the C++ servers treat any connection as a client)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                return True
    return False


class Peer:
    """One reference program run in the background; output (stdout and stderr) goes to a log."""

    def __init__(self, bin_dir: Path, log_dir: Path, name: str, *args):
        self.name = name
        self.log = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [str(bin_dir / name), *(str(a) for a in args)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def wait_listening(self, port: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not _listening(port):
            if self.process.poll() is not None:  # wrong arguments exit 0 after printing usage
                pytest.fail(
                    f"{self.name} exited ({self.process.returncode}) before listening:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{self.name} does not listen on port {port} after {timeout_s} s:\n{self.output()}"
                )
            time.sleep(0.02)

    def wait_output(self, text: str, count: int = 1, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        while self.output().count(text) < count:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{self.name} did not print {text!r} ×{count} in {timeout_s} s:\n{self.output()[-3000:]}"
                )
            time.sleep(0.02)
        return self.output()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log_file.close()


@pytest.fixture
def port() -> int:
    """A free loopback port for this test."""
    return _free_port()


@pytest.fixture(scope="session")
def peer_bin() -> Path:
    """Folder of the built reference programs; builds them (idempotent) if needed."""
    bin_dir = PEERS / "bin"
    if not all((bin_dir / name).is_file() for name in PROGRAMS):
        try:
            result = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
        except OSError as error:
            pytest.fail(f"The OpenIGTLink C++ reference peers could not be built: cannot run bash: {error}")
        if result.returncode != 0:
            pytest.fail(
                "The OpenIGTLink C++ reference peers could not be built (run `make peers`; it needs "
                "apt-get, dpkg, g++ and access to Debian's package mirror):\n"
                f"{result.stdout}\n{result.stderr}"
            )
    missing = [name for name in PROGRAMS if not (bin_dir / name).is_file()]
    if missing:
        pytest.fail(f"OpenIGTLink test peers missing in {bin_dir}: {missing}; run `make peers`")
    return bin_dir


@pytest.fixture(scope="session")
def peer_images() -> Path:
    """The example programs' test images (256 × 256 uint8 raw files)."""
    folder = PEERS / "img"
    if not (folder / "igtlTestImage1.raw").is_file():
        pytest.fail(f"test images of openigtlink-examples missing in {folder}; run `make peers`")
    return folder


@pytest.fixture
def start_peer(peer_bin, tmp_path):
    """Start a reference program: ``start_peer("TrackerServer", port, fps)``; stopped afterwards."""
    started: list[Peer] = []

    def start(name: str, *args) -> Peer:
        peer = Peer(peer_bin, tmp_path, name, *args)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()
