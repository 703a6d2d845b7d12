"""CRC-64/ECMA-182 as OpenIGTLink uses it: polynomial 0x42F0E1EBA9EA3693, MSB first (not reflected),
initial value 0, no final xor, computed over the message body. Check value for b"123456789" is
0x6C40DF5F0B497347.

Image bodies are megabytes, so the loop is compiled with numba (``nogil``: a receiver thread
checking a large image does not stall the main thread). Where numba is missing (a Slicer install
without it) a table-driven pure-Python loop gives the same result, only slower.
"""

from __future__ import annotations

import functools

import numpy as np

POLYNOMIAL = 0x42F0E1EBA9EA3693
_MASK = (1 << 64) - 1


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 56
        for _ in range(8):
            c = ((c << 1) ^ POLYNOMIAL) if c & (1 << 63) else (c << 1)
        table.append(c & _MASK)
    return table


_TABLE = _make_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint64)
# Below this size the pure-Python loop beats the cost of crossing into compiled code.
_SMALL = 256


def _crc64_python(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    table = _TABLE
    for b in bytes(data):
        crc = table[((crc >> 56) ^ b) & 0xFF] ^ ((crc << 8) & _MASK)
    return crc


@functools.cache
def _load_compiled():
    """Compile (or load from numba's cache) the fast loop on first use; None without numba."""
    try:
        import numba  # noqa: PLC0415 - heavy import, only needed once a large body arrives
    except ImportError:  # pragma: no cover - depends on the installation
        return None

    @numba.njit(cache=True, nogil=True)
    def _crc64_loop(data, table, crc):  # pragma: no cover - runs compiled
        shift56 = np.uint64(56)
        shift8 = np.uint64(8)
        mask = np.uint64(0xFF)
        for i in range(data.shape[0]):
            crc = table[np.intp(((crc >> shift56) ^ np.uint64(data[i])) & mask)] ^ (crc << shift8)
        return crc

    return _crc64_loop


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/ECMA-182 of ``data``; pass a previous result as ``crc`` to continue over more bytes."""
    if len(data) < _SMALL:
        return _crc64_python(data, crc)
    loop = _load_compiled()
    if loop is None:  # pragma: no cover - depends on the installation
        return _crc64_python(data, crc)
    array = np.frombuffer(data, dtype=np.uint8)
    return int(loop(array, _TABLE_NP, np.uint64(crc)))
