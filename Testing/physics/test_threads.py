"""How the solver shares the CPU (physics/threads.py): a thread-safe layer, sleeping waits, as many
threads as there are free cores — and never a different number in the result."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics import threads
from CryoAblationLogic.physics.simulation import simulate


def freezing_case():
    """A 2 mm gel cube (24 voxels a side) with one probe freezing for a minute."""
    n, spacing = 24, 2.0
    half = (n - 1) * spacing / 2.0
    return parse_case(
        {
            "format": "cryoablation-case/1",
            "name": "threads",
            "grid": {"origin_mm": [-half] * 3, "spacing_mm": spacing, "size": [n, n, n]},
            "initial_temperature_c": 37.0,
            "tissue": "gel",
            "probes": [
                {"name": "P1", "model": "argon-1.47mm", "tip_mm": [0.0, 0.0, -10.0], "entry_mm": [0, 0, 60]}
            ],
            "protocol": [{"action": "freeze", "duration_s": 60, "probes": "all", "flow_percent": 100}],
            "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": []},
        }
    )


def test_the_thread_count_never_changes_a_bit_of_the_result(monkeypatch):
    case = freezing_case()
    fields = {}
    for count in ("1", "2", "3"):
        monkeypatch.setenv(threads.THREADS_ENV, count)
        fields[count] = simulate(case).temperature_final
    assert fields["1"].min() < -20.0  # it froze: the parallel kernels ran
    np.testing.assert_array_equal(fields["1"], fields["2"])
    np.testing.assert_array_equal(fields["1"], fields["3"])
    assert threads.threading_layer() in ("omp", "tbb")  # never workqueue: it aborts on concurrent use


def test_two_simulations_at_once_give_what_each_gives_alone():
    """The module runs a preview beside a simulation: both on the same layer, at the same time."""
    case = freezing_case()
    alone = simulate(case).temperature_final
    results = [None, None]

    def run(index: int) -> None:
        results[index] = simulate(case).temperature_final

    workers = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for field in results:
        np.testing.assert_array_equal(field, alone)


def test_waiting_threads_sleep_and_the_count_follows_the_free_cores(monkeypatch):
    threads.configure_layer()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "_cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 2)  # a 2-thread program beside us
    for busy, expected in ((0.0, 2), (0.4, 2), (1.2, 1), (2.0, 1)):
        monkeypatch.setattr(threads, "busy_cores_elsewhere", lambda busy=busy: busy)
        assert threads.thread_count() == min(expected, threads_available()), busy
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 9)  # a crowd: every thread is a share
    assert threads.thread_count() == min(2, threads_available())
    monkeypatch.setenv(threads.THREADS_ENV, "many")
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 0)
    monkeypatch.setattr(threads, "busy_cores_elsewhere", lambda: 0.0)
    with pytest.warns(UserWarning, match="CRYOABLATION_THREADS='many' is not a thread count"):
        assert threads.thread_count() == min(2, threads_available())


def threads_available() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def test_other_processes_load_is_measured_without_our_own(monkeypatch):
    """Busy cores elsewhere = the machine's CPU time less ours, over the time since the last look."""
    samples = iter([(100.0, 10.0, 0.0), (103.0, 11.0, 2.0)])  # machine +3 s, ours +1 s, in 2 s
    monkeypatch.setattr(threads, "_machine_busy_s", lambda: 0.0)
    state = threads._State()
    monkeypatch.setattr(threads, "_state", state)
    first = next(samples)
    state.last_sample = first
    second = next(samples)
    monkeypatch.setattr(threads, "_machine_busy_s", lambda: second[0])
    monkeypatch.setattr(threads, "_own_cpu_s", lambda: second[1])
    monkeypatch.setattr(threads.time, "monotonic", lambda: second[2])
    assert threads.busy_cores_elsewhere() == pytest.approx(1.0)
