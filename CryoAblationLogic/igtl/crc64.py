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


def _make_slice_tables() -> np.ndarray:
    """Tables for eight bytes at a time ("slicing-by-8"): row k advances a byte by k more bytes
    of zeros, so the lowest byte of a 64-bit word uses row 0 and the highest row 7."""
    tables = [list(_TABLE)]
    for _ in range(7):
        previous = tables[-1]
        tables.append([((v << 8) & _MASK) ^ _TABLE[v >> 56] for v in previous])
    return np.array(tables, dtype=np.uint64)


_SLICE_TABLES = _make_slice_tables()
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
        # numba: compiled or loaded on first use, and installed in Slicer only on first use
        import numba
    except ImportError:  # pragma: no cover - depends on the installation
        return None

    @numba.njit(cache=True, nogil=True)
    def _crc64_loop(words, tail, tables, crc):  # pragma: no cover - runs compiled
        """``words``: the data's leading 8-byte groups as big-endian integers; ``tail``: the rest."""
        mask = np.uint64(0xFF)
        for i in range(words.shape[0]):
            c = crc ^ words[i]
            crc = (
                tables[7, np.intp((c >> np.uint64(56)) & mask)]
                ^ tables[6, np.intp((c >> np.uint64(48)) & mask)]
                ^ tables[5, np.intp((c >> np.uint64(40)) & mask)]
                ^ tables[4, np.intp((c >> np.uint64(32)) & mask)]
                ^ tables[3, np.intp((c >> np.uint64(24)) & mask)]
                ^ tables[2, np.intp((c >> np.uint64(16)) & mask)]
                ^ tables[1, np.intp((c >> np.uint64(8)) & mask)]
                ^ tables[0, np.intp(c & mask)]
            )
        for i in range(tail.shape[0]):
            index = np.intp(((crc >> np.uint64(56)) ^ np.uint64(tail[i])) & mask)
            crc = tables[0, index] ^ (crc << np.uint64(8))
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
    whole = len(array) // 8 * 8
    words = array[:whole].view(">u8").astype(np.uint64)  # native order for the compiled loop
    return int(loop(words, array[whole:], _SLICE_TABLES, np.uint64(crc)))
