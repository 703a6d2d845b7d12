"""How the solver's parallel kernels share the CPU with other programs (issue 12, speed under load).

numba runs ``prange`` loops on a threading layer. On a clinical workstation Slicer renders and the
scanner and PACS software compute beside the solver, so the defaults hurt: GNU OpenMP threads spin
while they wait at a barrier (a 2.1 s case took 52 s beside a 2-thread OpenMP program), and a team
of as many threads as cores waits at every barrier for the one the OS has descheduled. So:

- **layer**: a thread-safe one (``omp``, else ``tbb``): the module may run a preview and a
  simulation at once, and numba's ``workqueue`` layer aborts the process on concurrent use;
- **wait policy**: ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning), set
  before numba loads the OpenMP runtime;
- **thread count**: the cores this process may use, less the cores other processes kept busy since
  the last look (``/proc/stat`` minus our own CPU time), at least 1: beside a program that takes
  a core, a team that waits at every barrier for a descheduled member is slower than a smaller
  team. Where far more threads want to run than there are cores (``procs_running`` over twice the
  cores), every thread is a time slice and all cores are used. ``CRYOABLATION_THREADS`` fixes the
  count. It is per calling thread (numba's rule), so a preview and a simulation each set their
  own.

Threading never changes the numbers: every parallel loop writes disjoint voxels and reductions are
done serially, so results are the same bit for bit with any layer and thread count (tested).

:func:`use_threads` is called by :class:`~.simulation.Simulation` before its first kernel runs.
"""

from __future__ import annotations

import os
import threading
import time
import warnings

THREADS_ENV = "CRYOABLATION_THREADS"
LAYER_PRIORITY = ["omp", "tbb", "workqueue"]  # workqueue only if neither thread-safe layer loads
OVERSUBSCRIBED = 2  # runnable threads per core beyond which all cores are used
_SAMPLE_S = 0.02  # first look at the machine's load (later looks reuse the time since the last one)


class _State:
    """What this process has done so far (one per process)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.configured = False
        self.last_sample: tuple[float, float, float] | None = None  # (machine busy s, our CPU s, wall s)


_state = _State()


def configure_layer() -> None:
    """Choose the threading layer and wait policy; call before numba launches its threads (later
    calls do nothing). Settings the user made in the environment are kept."""
    with _state.lock:
        if _state.configured:
            return
        _state.configured = True
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("KMP_BLOCKTIME", "0")  # the same for Intel/LLVM OpenMP runtimes
        import numba  # heavy: only when a simulation is about to run

        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER_PRIORITY = list(LAYER_PRIORITY)
            numba.config.THREADING_LAYER = "threadsafe"


def _cpu_count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(1, cores)


def runnable_elsewhere() -> int:
    """Threads of the whole machine ready to run now, besides the one asking (Linux; 0 elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("procs_running "):
                    return max(0, int(line.split()[1]) - 1)
    except (OSError, ValueError):
        pass
    return 0


def _machine_busy_s() -> float | None:
    """Seconds of CPU all processes used since boot (Linux), None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stream:
            fields = stream.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # guest time is already inside user time
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def busy_cores_elsewhere() -> float:
    """Cores other processes kept busy since the last call (the first call looks for 20 ms)."""
    busy = _machine_busy_s()
    if busy is None:
        return 0.0
    now = (busy, _own_cpu_s(), time.monotonic())
    with _state.lock:
        previous = _state.last_sample
        if previous is None or now[2] - previous[2] < _SAMPLE_S:
            previous = now if previous is None else previous
            if now[2] - previous[2] < _SAMPLE_S:
                time.sleep(_SAMPLE_S - (now[2] - previous[2]))
                busy = _machine_busy_s() or busy
                now = (busy, _own_cpu_s(), time.monotonic())
        _state.last_sample = now
    wall = now[2] - previous[2]
    others = (now[0] - previous[0]) - (now[1] - previous[1])
    return max(0.0, others / wall) if wall > 0 else 0.0


def thread_count() -> int:
    """Threads for the next simulation: ``CRYOABLATION_THREADS``, else the free cores (≥ 1)."""
    import numba  # heavy: only when a simulation is about to run

    limit = min(_cpu_count(), numba.config.NUMBA_NUM_THREADS)
    fixed = os.environ.get(THREADS_ENV, "").strip()
    if fixed:
        try:
            count = int(fixed)
        except ValueError:
            count = 0
        if not 1 <= count <= 4096:
            warnings.warn(
                f"{THREADS_ENV}={fixed!r} is not a thread count: using the free cores", stacklevel=2
            )
        else:
            return min(count, numba.config.NUMBA_NUM_THREADS)
    if runnable_elsewhere() > OVERSUBSCRIBED * limit:  # time-sliced anyway: each thread is a share
        return limit
    free = limit - busy_cores_elsewhere()
    return max(1, min(limit, int(free + 0.5)))


def use_threads() -> int:
    """Configure the layer (once) and set this thread's numba thread count; returns the count."""
    configure_layer()
    import numba  # heavy: only when a simulation is about to run

    count = thread_count()
    numba.set_num_threads(count)
    return count


def threading_layer() -> str:
    """The layer numba runs on ("omp", "tbb" or "workqueue"; "none" before the first parallel call)."""
    import numba  # heavy: only when a simulation is about to run

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "none"
