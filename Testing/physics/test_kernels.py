"""How the solver's kernels are compiled."""

from __future__ import annotations

import pytest

from CryoAblationLogic.physics import kernels as kn
from CryoAblationLogic.physics import multigrid as mg


def _kernel_pairs():
    pairs = [
        (kn.sor_sweep, kn.sor_sweep_serial),
        (kn.prepare_step, kn.prepare_step_serial),
        (kn.finish_step, kn.finish_step_serial),
        (kn.update_temperature, kn.update_temperature_serial),
        (kn.fill_basal, kn.fill_basal_serial),
    ]
    return pairs + list(mg._KERNELS.values())


@pytest.mark.parametrize("parallel, serial", _kernel_pairs(), ids=lambda d: d.py_func.__name__)
def test_parallel_and_serial_kernels_are_cached_apart(parallel, serial):
    # numba's disk cache keys on a function's name, line and signature, not on the parallel flag:
    # two variants compiled from one function would load each other's code.
    assert parallel.targetoptions.get("parallel") is True
    assert not serial.targetoptions.get("parallel")
    assert parallel._cache._cache_file._index_name != serial._cache._cache_file._index_name
