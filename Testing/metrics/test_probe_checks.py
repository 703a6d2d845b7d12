"""Probe placement checks: each warning is raised when it should be, names the probe, and stays
quiet for a sound plan. Probes run along y (posterior → anterior), 1 mm grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from CryoAblationLogic.analysis.metrics import probe_geometry, probe_warnings
from CryoAblationLogic.core.errors import InputError


@dataclass
class Model:
    name: str
    active_length_mm: float
    tip_length_mm: float


CATALOG = {"test-17G": Model("test-17G", active_length_mm=30.0, tip_length_mm=4.0)}


def probe(name: str, x_mm: float, z_mm: float = 0.0, tip_y_mm: float = 19.0, **extra) -> dict:
    """A probe parallel to y with its tip at (x, tip_y, z); the active segment (30 mm, starting 4 mm
    behind the tip) is centred on y = 0 by default."""
    record = {"name": name, "tip_mm": [x_mm, tip_y_mm, z_mm], "entry_mm": [x_mm, tip_y_mm - 60.0, z_mm]}
    record.update({"active_length_mm": 30.0, "tip_length_mm": 4.0} | extra)
    return record


@pytest.fixture(scope="module")
def grid(shapes):
    return shapes.cube_grid((40, 45, 30))


@pytest.fixture(scope="module")
def target(grid, shapes):
    return shapes.ball(grid, 15.0)


def test_a_sound_three_probe_plan_gives_no_warnings(grid, target):
    side = 15.0  # equilateral triangle, 15 mm sides, around the target centre
    probes = [
        probe("P1", 0.0, side / np.sqrt(3)),
        probe("P2", -side / 2, -side / (2 * np.sqrt(3))),
        probe("P3", side / 2, -side / (2 * np.sqrt(3))),
    ]
    assert probe_warnings(probes, CATALOG, target, {}, {}, grid) == []


def test_probes_closer_than_10mm_are_named(grid, target):
    warnings = probe_warnings([probe("P1", -4.0), probe("P2", 4.0)], CATALOG, target, {}, {}, grid)
    assert warnings == ["Probes P1 and P2 are 8.0 mm apart, closer than the usual 10–20 mm"]


def test_a_probe_farther_than_20mm_from_its_nearest_neighbour_is_named(grid, target):
    probes = [probe("P1", -6.0), probe("P2", 6.0), probe("P3", 6.0, z_mm=-25.0, tip_y_mm=10.0)]
    warnings = probe_warnings(probes, CATALOG, None, {}, {}, grid)
    assert warnings == [
        "Probe P3 is 25.0 mm from its nearest neighbour P2, farther than the usual 10–20 mm "
        "(the ice may not merge)"
    ]


def test_spacing_is_measured_between_active_segments_not_tips(grid):
    # Tips 5 mm apart along the shaft direction but the active segments overlap side by side 12 mm apart.
    probes = [probe("P1", -6.0, tip_y_mm=19.0), probe("P2", 6.0, tip_y_mm=24.0)]
    assert probe_warnings(probes, CATALOG, None, {}, {}, grid) == []


def test_a_shaft_crossing_a_critical_structure_or_vessel_is_named(grid, target, shapes):
    x, y, z = shapes.coordinates(grid)
    # A vessel along z at x = 10, y = −25 (behind the target, on P2's path), 3.5 mm radius.
    vessel = (x - 10.0) ** 2 + (y + 25.0) ** 2 <= 3.5**2
    # A bowel loop along x at y = −35, z = 20: on no probe's path.
    bowel = (y + 35.0) ** 2 + (z - 20.0) ** 2 <= 8.0**2
    probes = [probe("P1", -5.0), probe("P2", 10.0)]
    warnings = probe_warnings(probes, CATALOG, None, {"Bowel": bowel}, {"Renal vein": vessel}, grid)
    assert len(warnings) == 1
    assert warnings[0].startswith("Probe P2: the shaft crosses vessel 'Renal vein' (7.")
    assert "from the tip" in warnings[0]

    # P3's entry point (y = −41) lies inside the bowel (y ∈ [−43, −27] on its path): 14.5 mm of the
    # shaft, to the nearest voxel (the voxel at y = −27 reaches to −26.5).
    probes.append(probe("P3", -5.0, z_mm=20.0))
    warnings = probe_warnings(probes, CATALOG, None, {"Bowel": bowel}, {"Renal vein": vessel}, grid)
    assert any(
        w.startswith("Probe P3: the shaft crosses critical structure 'Bowel' (14.5 mm of it")
        for w in warnings
    )


def test_an_active_segment_leaving_the_target_plus_margin_is_named(grid, target):
    # The target plus 5 mm spans y ∈ [−20, 20] on the axis. A 50 mm active segment centred on the
    # target sticks out 5 mm at each end; a 30 mm one fits.
    long_probe = probe("P1", 0.0, tip_y_mm=29.0, active_length_mm=50.0)
    warnings = probe_warnings([long_probe], CATALOG, target, {}, {}, grid)
    assert len(warnings) == 1
    assert warnings[0].startswith("Probe P1: ")
    assert "of its 50 mm active segment lies outside the target + 5 mm" in warnings[0]
    outside_mm = float(warnings[0].split(": ")[1].split(" mm")[0])
    assert outside_mm == pytest.approx(10.0, abs=1.5)  # the mask's voxel centres: ±1 voxel at each end
    assert probe_warnings([probe("P1", 0.0)], CATALOG, target, {}, {}, grid) == []
    # A probe placed beside the target: its active segment lies wholly outside.
    beside = probe_warnings([probe("P9", 30.0)], CATALOG, target, {}, {}, grid)
    assert beside == ["Probe P9: 30.0 mm of its 30 mm active segment lies outside the target + 5 mm"]


def test_lengths_come_from_the_catalog_when_the_record_leaves_them_out():
    record = {"name": "P1", "model": "test-17G", "tip_mm": [0, 10, 0], "entry_mm": [0, -90, 0]}
    geometry = probe_geometry(record, CATALOG)
    assert (geometry.active_length_mm, geometry.tip_length_mm) == (30.0, 4.0)
    start, end = geometry.active_segment_mm()
    assert start.tolist() == pytest.approx([0, 6, 0])
    assert end.tolist() == pytest.approx([0, -24, 0])


def test_bad_probe_records_raise_input_errors_naming_the_probe(grid):
    with pytest.raises(InputError, match=r"probes\['P1'\].model"):
        probe_geometry({"name": "P1", "model": "nope", "tip_mm": [0, 0, 0], "entry_mm": [0, 1, 0]}, CATALOG)
    with pytest.raises(InputError, match=r"probes\['P1'\].active_length_mm"):
        probe_geometry({"name": "P1", "tip_mm": [0, 0, 0], "entry_mm": [0, 1, 0]}, None)
    with pytest.raises(InputError, match=r"probes\['P1'\].entry_mm"):
        probe_geometry(probe("P1", 0.0) | {"entry_mm": [0.0, 19.0, 0.0]}, None)
    with pytest.raises(InputError, match="probe names must be unique"):
        probe_warnings([probe("P1", 0.0), probe("P1", 15.0)], None, None, {}, {}, grid)
