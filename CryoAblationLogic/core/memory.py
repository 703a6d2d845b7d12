"""How much memory a computation may still take here: the machine's available memory, and inside a
container (Docker, Kubernetes, a CI runner, systemd slices) the room left under its cgroup limit.

``MemAvailable`` alone is the host's figure: a container limited to 2 GiB on a 64 GiB host would
see 60 GiB and be killed by the kernel half-way through a run instead of getting a clear message.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit value; anything above
# 2**60 bytes (an exabyte) is that sentinel, not a limit.
_UNLIMITED = 2**60
_FALLBACK_BYTES = 8 * 1024**3  # neither /proc nor sysconf answered (not Linux): assume 8 GiB


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text == "max":  # cgroup v2: no limit at this level
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value < _UNLIMITED else None


def _own_cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """The cgroup folders of this process and of their ancestors, v2 and v1 (memory controller)."""
    dirs: list[Path] = []
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        if controllers == "":  # v2 unified hierarchy
            base = root
        elif "memory" in controllers.split(","):
            base = root / "memory"
        else:
            continue
        node = base / relative.lstrip("/")
        while True:
            dirs.append(node)
            if node == base or base not in node.parents:
                break
            node = node.parent
    # The container's own root, as mounted (the usual case inside Docker).
    dirs += [root, root / "memory"]
    return list(dict.fromkeys(dirs))


def cgroup_available_bytes(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Room left under the tightest cgroup memory limit of this process (bytes), or None if unlimited.

    v2: ``memory.max`` − ``memory.current``; v1: ``memory.limit_in_bytes`` − ``memory.usage_in_bytes``.
    """
    room: int | None = None
    for folder in _own_cgroup_dirs(root, proc_cgroup):
        for limit_name, usage_name in (
            ("memory.max", "memory.current"),
            ("memory.limit_in_bytes", "memory.usage_in_bytes"),
        ):
            limit = _read_int(folder / limit_name)
            if limit is None:
                continue
            usage = _read_int(folder / usage_name) or 0
            left = max(0, limit - usage)
            room = left if room is None else min(room, left)
    return room


def meminfo_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        with meminfo.open(encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory_bytes() -> int:
    """Memory a new allocation can take (bytes): the smaller of MemAvailable and the cgroup room."""
    host = meminfo_available_bytes()
    if host is None:
        try:
            host = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            host = _FALLBACK_BYTES
    container = cgroup_available_bytes()
    return host if container is None else min(host, container)
