"""The memory a run may take counts a container's cgroup limit, not only the host's MemAvailable;
result folders give every snapshot its own file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from CryoAblationLogic.core import memory
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.result_folder import snapshot_filename, snapshot_label, write_result_folder

GIB = 1024**3


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


def test_cgroup_v2_limit_minus_usage_is_the_room_left(tmp_path):
    _write(tmp_path / "proc_cgroup", "0::/job\n")
    _write(tmp_path / "cg" / "job" / "memory.max", f"{2 * GIB}\n")
    _write(tmp_path / "cg" / "job" / "memory.current", f"{GIB // 2}\n")
    assert memory.cgroup_available_bytes(tmp_path / "cg", tmp_path / "proc_cgroup") == 2 * GIB - GIB // 2


def test_cgroup_v2_without_limit_is_unlimited(tmp_path):
    _write(tmp_path / "proc_cgroup", "0::/\n")
    _write(tmp_path / "cg" / "memory.max", "max\n")
    assert memory.cgroup_available_bytes(tmp_path / "cg", tmp_path / "proc_cgroup") is None


def test_cgroup_v1_limit_of_an_ancestor_counts_and_the_tightest_wins(tmp_path):
    _write(tmp_path / "proc_cgroup", "4:memory:/docker/abc\n1:cpu:/docker/abc\n")
    _write(tmp_path / "cg" / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "9223372036854771712\n")
    _write(tmp_path / "cg" / "memory" / "docker" / "memory.limit_in_bytes", f"{4 * GIB}\n")
    _write(tmp_path / "cg" / "memory" / "docker" / "memory.usage_in_bytes", f"{GIB}\n")
    assert memory.cgroup_available_bytes(tmp_path / "cg", tmp_path / "proc_cgroup") == 3 * GIB


def test_available_memory_is_the_smaller_of_host_and_container(monkeypatch):
    monkeypatch.setattr(memory, "meminfo_available_bytes", lambda: 60 * GIB)
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: 2 * GIB)
    assert memory.available_memory_bytes() == 2 * GIB
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: None)
    assert memory.available_memory_bytes() == 60 * GIB


def test_the_solver_memory_check_uses_the_container_limit(monkeypatch):
    from CryoAblationLogic.physics import simulation  # numba kernels: imported by this test only

    monkeypatch.setattr(memory, "meminfo_available_bytes", lambda: 60 * GIB)
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: 2 * GIB)
    assert simulation.available_memory_bytes() == 2 * GIB


def test_snapshot_names_keep_whole_seconds_as_the_contract_shows():
    assert snapshot_filename(600.0) == "temperature_600s.nrrd"
    assert snapshot_filename(1680) == "temperature_1680s.nrrd"
    assert snapshot_filename(0.5) == "temperature_0.5s.nrrd"


def test_two_different_snapshot_times_never_share_a_file_name():
    times = [1234.567, 1234.571, 1234.5670000001, 600.0, 600.0000001, 1e-05, 86399.99999]
    assert len({snapshot_filename(t) for t in times}) == len(times)
    assert all(float(snapshot_label(t)) == t for t in times)


def test_a_field_with_nan_is_never_written_as_a_result(tmp_path):
    """NaN compares false with every isotherm, so it would be reported as 0 ml of ice."""
    grid = Grid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (3, 3, 3))
    field = np.full(grid.size, 37.0)
    field[1, 1, 1] = np.nan
    result = SimpleNamespace(grid=grid, temperature_final=field, min_temperature=field, snapshots={})
    with pytest.raises(InputError, match="non-finite"):
        write_result_folder(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()
