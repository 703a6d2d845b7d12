"""Peak memory of a receiver while peers hold partial bodies open (issue 12: 8 connections each
holding a partial 250 MiB body cost 2.26 GB). The receiver runs in its own process so that its
peak resident memory (ru_maxrss) is its own; each peer declares a 250 MiB IMAGE, sends its image
header and 48 MiB of pixels, and holds the rest back."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from CryoAblationLogic.igtl.crc64 import crc64

MIB = 1024**2
SENT_MIB = 48
DECLARED_MIB = 250

_RECEIVER = textwrap.dedent(
    """
    import json, resource, sys, time
    from CryoAblationLogic.igtl.codec import ByteBudget
    from CryoAblationLogic.live.link import Endpoint, LiveLink
    from CryoAblationLogic.igtl.transport import Server

    kind = sys.argv[1]
    if kind == "live link":
        link = LiveLink(None, scanner=Endpoint("server", port=0))
        server = link.links["scanner"]
    else:  # a plain server taking 8 peers, all of them together held to 512 MiB
        server = Server(port=0, max_connections=8, budget=ByteBudget(512 * 1024**2))
    server.start()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"port": server.port}), flush=True)
    sys.stdin.readline()  # the peers have sent what they send
    time.sleep(0.5)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline_mib": baseline / 1024, "peak_mib": peak / 1024,
                      "connections": len(server.connection_ids)}), flush=True)
    server.stop()
    """
)


def _declared_image() -> bytes:
    side = (512, 512, DECLARED_MIB * 4)  # uint8 voxels: 250 MiB
    image_header = struct.pack(
        ">HBBBB3H12f3H3H", 1, 1, 3, 2, 1, *side, *np.eye(3).reshape(-1), 0, 0, 0, 0, 0, 0, *side
    )
    body_size = 72 + side[0] * side[1] * side[2]
    header = struct.pack(">H12s20sQQQ", 1, b"IMAGE", b"MR Image", 0, body_size, crc64(b""))
    return header + image_header


@pytest.mark.parametrize("receiver", ["live link", "plain server with a byte budget"])
def test_eight_held_250_mib_bodies_do_not_cost_gigabytes(receiver):
    process = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, receiver], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = json.loads(process.stdout.readline())["port"]
        pixels = bytes(SENT_MIB * MIB)
        peers = []
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port))
            peers.append(sock)
            with contextlib.suppress(OSError):  # a refused or replaced peer is hung up on
                sock.sendall(_declared_image())
                sock.sendall(pixels)
            time.sleep(0.05)
        process.stdin.write("done\n")
        process.stdin.flush()
        figures = json.loads(process.stdout.readline())
    finally:
        for sock in peers:
            sock.close()
        process.wait(30)
    grown = figures["peak_mib"] - figures["baseline_mib"]
    print(f"\n{receiver}: 8 peers × {SENT_MIB} MiB of a declared {DECLARED_MIB} MiB IMAGE held: "
          f"peak resident memory +{grown:.0f} MiB ({figures['peak_mib']:.0f} MiB), "
          f"{figures['connections']} connection(s) left")  # fmt: skip
    # At most two bodies are held at once (the budget's 512 MiB admits two 250 MiB declarations; a
    # live link keeps one connection): what they sent, and a read buffer, not 8 × 250 MiB.
    assert grown < 2 * SENT_MIB + 64, figures
