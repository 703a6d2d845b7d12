"""A main thread that behaves like Slicer's, for tests and benchmarks outside Slicer.

In Slicer, Qt's event loop idles in C++ without releasing the GIL (neither Slicer, CTK nor
PythonQt calls ``PyEval_SaveThread`` there), and Python runs only in slots, e.g. the module's 100 ms
``QTimer``. So a Python worker thread gets the GIL only while the main thread runs Python.
:class:`PythonQtIdle` reproduces that: between timer slots the main thread sleeps in C through
``ctypes.PyDLL`` (whose calls keep the GIL) instead of ``time.sleep`` (which releases it).
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

TIMER_INTERVAL_S = 0.1  # the module's QTimer, when no probe move awaits its overlay


class PythonQtIdle:
    """Run a timer slot every ``interval_s`` with the GIL held in between, as Slicer's main thread."""

    def __init__(self, interval_s: float = TIMER_INTERVAL_S):
        self.interval_s = interval_s
        self._usleep = ctypes.PyDLL(None).usleep  # PyDLL: the call keeps the GIL (CDLL releases it)
        self._usleep.argtypes = [ctypes.c_uint]
        self.slots_run = 0

    def idle(self, seconds: float) -> None:
        """Qt idling: the main thread waits in C, holding the GIL."""
        self._usleep(int(seconds * 1e6))

    def run(
        self,
        slot: Callable[[], object],
        until: Callable[[], bool],
        timeout_s: float,
        interval_s: Callable[[], float] | None = None,
    ) -> float:
        """Call ``slot`` (the timer's) every interval until ``until()``; returns the seconds it took.
        ``interval_s``, if given, is read after each slot, as a QTimer whose interval the slot may
        change (the module's timer quickens while the preview awaits an answer).
        Raises ``TimeoutError`` after ``timeout_s``."""
        start = time.perf_counter()
        while True:
            slot()
            self.slots_run += 1
            if until():
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout_s:
                raise TimeoutError(f"not done after {timeout_s:g} s of Slicer-like idling")
            self.idle(self.interval_s if interval_s is None else interval_s())
