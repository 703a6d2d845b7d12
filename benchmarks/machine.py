"""The one description of the machine that every benchmark prints beside its figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    """CPU model, logical CPUs, numba threads, load average, operating system and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = f", load average {os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        load = ""
    threads = os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count()))
    return (
        f"{cpu} ({os.cpu_count()} logical CPUs, numba threads {threads}{load}), "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )
