"""OpenIGTLink IMAGE latency: a 256×256×30 int16 MR volume from send to the consumer's thread.

Measures, each over ``--repeat`` frames (median and 95th percentile, ms):
- encode: message → bytes (header, CRC-64, pixels);
- decode: bytes → ImageMessage (CRC check included);
- wire_to_inbox: encoded bytes written to a loopback socket → ``Server.inbox.get`` on the
  consumer's thread (TCP + framing + CRC + decode + queue): the receive latency of a frame;
- send_to_inbox: the same through our ``Client.send`` (adds encoding on the sender's side).
One frame in flight at a time.

    python benchmarks/igtl_bench.py [--repeat 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import time

import numpy as np
from machine import describe as describe_machine  # benchmarks/ is the script folder, on sys.path

from CryoAblationLogic.igtl import ImageMessage, decode, encode
from CryoAblationLogic.igtl.inbox import Inbox, Received
from CryoAblationLogic.igtl.transport import Client, Server

SHAPE = (256, 256, 30)


def _stats(samples_s: list[float]) -> dict:
    ms = np.array(samples_s) * 1000.0
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}


def _volume(seed: int) -> ImageMessage:
    rng = np.random.default_rng(seed)
    voxels = rng.integers(-1000, 3000, size=SHAPE, dtype=np.int16)
    return ImageMessage.from_volume(voxels, (-128.0, -128.0, -45.0), (1.0, 1.0, 3.0), device_name="MR Image")


def _take_image(inbox: Inbox) -> None:
    while True:
        item = inbox.get(10)
        if item is None:
            raise RuntimeError("IMAGE did not arrive within 10 s")
        if isinstance(item, Received):
            if item.message.voxels.shape != SHAPE:
                raise RuntimeError(f"IMAGE arrived with shape {item.message.voxels.shape}")
            return


def run(repeat: int) -> dict:
    image = _volume(0)
    data = encode(image)
    decode(data)  # compile / load the CRC loop once, outside the timings

    encode_s, decode_s = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        data = encode(image)
        encode_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        decode(data)
        decode_s.append(time.perf_counter() - started)

    wire_s, send_s = [], []
    with Server(port=0, inbox=Inbox(coalesce=frozenset())) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            for n in range(repeat + 2):
                started = time.perf_counter()
                sock.sendall(data)
                _take_image(server.inbox)
                if n >= 2:  # the first frames warm up socket buffers
                    wire_s.append(time.perf_counter() - started)
        with Client(port=server.port) as client:
            if not client.wait_connected(10):
                raise RuntimeError("benchmark client could not connect over loopback")
            for n in range(repeat + 2):
                started = time.perf_counter()
                client.send(image, stamp=False)
                _take_image(server.inbox)
                if n >= 2:
                    send_s.append(time.perf_counter() - started)
    return {
        "benchmark": "igtl_image_256x256x30_int16",
        "message_bytes": len(data),
        "encode": _stats(encode_s),
        "decode": _stats(decode_s),
        "wire_to_inbox": _stats(wire_s),
        "send_to_inbox": _stats(send_s),
        "machine": describe_machine(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = run(args.repeat)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
