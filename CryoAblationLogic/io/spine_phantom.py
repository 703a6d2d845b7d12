"""The second built-in synthetic case: a vertebral-body tumour next to the spinal canal.

Made in code like :mod:`.phantom` (whose renal phantom it leaves untouched), deterministic for a
given spacing. It exercises the sites the Liverpool unit treats (spine, bone, soft tissue) and the
materials added for them (issue 13).

Anatomy (RAS, millimetres; patient prone, posterior approach; the spine runs along z, S–I):

- paraspinal muscle fills the field of view, under subcutaneous fat and skin (posterior, y−);
- a vertebral body (elliptic cylinder 26 mm high) of cancellous bone in a 2 mm cortical shell,
  with intervertebral discs (annulus fibrosus, tendon-like) above and below;
- the spinal canal (CSF) with the spinal cord in it, posterior to the body; a lamina and spinous
  process of cortical bone behind the canal;
- a tumour (sphere, 10 mm radius) in the right posterolateral body, growing out of it, 4 mm from
  the canal;
- the right nerve root leaving the canal laterally at the level of the tumour's upper edge.

Critical structures: the cord and the nerve root. Image intensities mimic a T1-weighted image
(fat and fatty marrow bright, cortical bone and CSF dark), with Rician noise from a fixed seed.
"""

from __future__ import annotations

import numpy as np

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.phantom import Phantom, demo_protocol

# label: (segment name, material, role)
LABELS: dict[int, tuple[str, str, str]] = {
    1: ("Paraspinal muscle", "muscle", "organ"),
    2: ("Cortical bone", "bone-cortical", "organ"),
    3: ("Cancellous bone", "bone-cancellous", "organ"),
    4: ("Tumor", "tumor", "target"),
    5: ("Spinal cord", "spinal-cord", "critical"),
    6: ("CSF", "csf", "organ"),
    7: ("Nerve root", "nerve", "critical"),
    8: ("Subcutaneous fat", "fat", "organ"),
    9: ("Skin", "skin", "organ"),
    10: ("Disc", "tendon", "organ"),
}
_SIGNAL = {1: 300.0, 2: 40.0, 3: 700.0, 4: 330.0, 5: 420.0, 6: 120.0, 7: 360.0, 8: 900.0, 9: 520.0, 10: 260.0}

FIELD_OF_VIEW_MM = (100.0, 110.0, 80.0)
FIELD_CENTER_MM = (0.0, 5.0, 0.0)
CANAL_AXIS_XY_MM = (0.0, 0.0)
CANAL_RADIUS_MM = 8.0
CORD_RADIUS_MM = 5.0
BODY_CENTER_XY_MM = (0.0, 26.0)
BODY_SEMI_AXES_MM = (20.0, 16.0)
BODY_HALF_HEIGHT_MM = 13.0
DISC_HALF_HEIGHT_MM = 18.0  # discs fill 13..18 mm above and below the body's centre plane
CORTEX_MM = 2.0
TUMOR_CENTER_MM = (14.0, 17.0, 0.0)
TUMOR_RADIUS_MM = 10.0
NERVE_ROOT_Z_MM = 8.0
NERVE_ROOT_RADIUS_MM = 2.0
NERVE_ROOT_END_XY_MM = (40.0, 18.0)
SKIN_Y_MM = -45.0  # outer skin surface (posterior)
SKIN_MM = 2.0
FAT_MM = 8.0

PROBE_MODEL = "mr-17g-rod"


def make_grid(spacing_mm: float = 1.0) -> Grid:
    size = tuple(round(extent / spacing_mm) + 1 for extent in FIELD_OF_VIEW_MM)
    origin = tuple(c - 0.5 * (n - 1) * spacing_mm for c, n in zip(FIELD_CENTER_MM, size, strict=True))
    return Grid(origin, (spacing_mm,) * 3, size)  # type: ignore[arg-type]


def _segment_distance(x, y, start, end):
    """Distance (mm) in the xy-plane from each point to the segment start–end."""
    sx, sy = start
    ex, ey = end
    dx, dy = ex - sx, ey - sy
    t = np.clip(((x - sx) * dx + (y - sy) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(x - (sx + t * dx), y - (sy + t * dy))


def make_spine_phantom(spacing_mm: float = 1.0, noise_sigma: float = 25.0, seed: int = 20261204) -> Phantom:
    grid = make_grid(spacing_mm)
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    labels = np.full(grid.size, 1, dtype=np.uint8)
    labels[y <= SKIN_Y_MM + SKIN_MM + FAT_MM] = 8
    labels[y <= SKIN_Y_MM + SKIN_MM] = 9
    labels[y < SKIN_Y_MM] = (
        1  # outside the body: kept as muscle so that no label 0 occurs (air is not modelled)
    )

    body_r = np.hypot(
        (x - BODY_CENTER_XY_MM[0]) / BODY_SEMI_AXES_MM[0], (y - BODY_CENTER_XY_MM[1]) / BODY_SEMI_AXES_MM[1]
    )
    inner_r = np.hypot(
        (x - BODY_CENTER_XY_MM[0]) / (BODY_SEMI_AXES_MM[0] - CORTEX_MM),
        (y - BODY_CENTER_XY_MM[1]) / (BODY_SEMI_AXES_MM[1] - CORTEX_MM),
    )
    in_column = body_r <= 1.0
    labels[in_column & (np.abs(z) <= DISC_HALF_HEIGHT_MM)] = 10
    labels[in_column & (np.abs(z) <= BODY_HALF_HEIGHT_MM)] = 2
    labels[(inner_r <= 1.0) & (np.abs(z) <= BODY_HALF_HEIGHT_MM - CORTEX_MM)] = 3
    # Posterior elements: lamina and spinous process behind the canal, cortical bone.
    lamina = (np.abs(x) <= 12.0) & (y <= -CANAL_RADIUS_MM) & (y >= -CANAL_RADIUS_MM - 4.0)
    spinous = (np.abs(x) <= 3.0) & (y < -CANAL_RADIUS_MM - 4.0) & (y >= -30.0)
    labels[(lamina | spinous) & (np.abs(z) <= BODY_HALF_HEIGHT_MM)] = 2
    canal_r = np.hypot(x - CANAL_AXIS_XY_MM[0], y - CANAL_AXIS_XY_MM[1])
    labels[canal_r <= CANAL_RADIUS_MM] = 6
    labels[canal_r <= CORD_RADIUS_MM] = 5
    tumor = (x - TUMOR_CENTER_MM[0]) ** 2 + (y - TUMOR_CENTER_MM[1]) ** 2 + (z - TUMOR_CENTER_MM[2]) ** 2
    labels[tumor <= TUMOR_RADIUS_MM**2] = 4
    root = (_segment_distance(x, y, (CORD_RADIUS_MM, 1.0), NERVE_ROOT_END_XY_MM) <= NERVE_ROOT_RADIUS_MM) & (
        np.abs(z - NERVE_ROOT_Z_MM) <= NERVE_ROOT_RADIUS_MM
    )
    labels[root & (labels != 5)] = 7

    signal = np.zeros(grid.size, dtype=np.float64)
    for label, value in _SIGNAL.items():
        signal[labels == label] = value
    bias = 1.0 + 0.15 * np.tanh(-(y / 60.0))  # posterior surface coil
    signal *= bias
    rng = np.random.default_rng(seed)
    real = signal + rng.normal(0.0, noise_sigma, signal.shape)
    imaginary = rng.normal(0.0, noise_sigma, signal.shape)
    image = np.sqrt(real**2 + imaginary**2).astype(np.float32)
    return Phantom(grid=grid, image=image, labels=labels, label_info=dict(LABELS))


def spine_probe_plan() -> list[dict]:
    """Two MR-conditional 17 G needles 10 mm apart (S–I) through the right posterolateral body into
    the tumour, from a posterolateral skin entry, tips 5 mm past the tumour centre."""
    center = np.asarray(TUMOR_CENTER_MM)
    entry_dir = np.array([35.0, -60.0, 0.0])  # from the tumour towards the skin entry
    entry_dir /= np.linalg.norm(entry_dir)
    probes = []
    for index, dz in enumerate((-5.0, 5.0)):
        tip = center + np.array([0.0, 0.0, dz]) - 5.0 * entry_dir
        entry = tip + 75.0 * entry_dir
        probes.append(
            {
                "name": f"P{index + 1}",
                "model": PROBE_MODEL,
                "tip_mm": [round(float(v), 3) for v in tip],
                "entry_mm": [round(float(v), 3) for v in entry],
            }
        )
    return probes


# critical structure types (safety margins, docs/metrics-format.md) of the phantom's labels
_CRITICAL_TYPES = {5: "cord", 7: "nerve"}


def build_spine_case(spacing_mm: float = 1.0, phantom: Phantom | None = None) -> tuple[dict, np.ndarray]:
    """The spine phantom as a case (case-file dict, label volume): the whole field of view, the
    two-needle plan of :func:`spine_probe_plan`, the renal demo's 10-8-10 protocol (a
    freeze–thaw–freeze as used in bone), tumour, cord and nerve root as target and critical
    structures. It shows the site's warnings: the tumour reaches the nerve root's exit, so ice
    that covers it freezes the root, which a plan would protect (thermal protection, README)."""
    phantom = phantom or make_spine_phantom(spacing_mm)
    data = {
        "format": "cryoablation-case/1",
        "name": "spine phantom: vertebral-body tumour by the canal, two 17 G needles, 10-8-10",
        "grid": phantom.grid.to_dict(),
        "initial_temperature_c": 37.0,
        "tissue_map": {"labelmap": "labels.nrrd", "labels": phantom.material_map()},
        "probes": spine_probe_plan(),
        "protocol": demo_protocol(),
        # a thermocouple in the epidural space between the tumour and the cord, where one is put
        "sensors": [{"name": "Epidural", "position_mm": _epidural_point()}],
        "structures": phantom.case_structures(_CRITICAL_TYPES),
    }
    return data, phantom.labels


def _epidural_point() -> list[float]:
    """The canal's edge (in the CSF, 1 mm inside it) on the line from its axis to the tumour's centre."""
    towards = np.subtract(TUMOR_CENTER_MM[:2], CANAL_AXIS_XY_MM)
    towards = towards / np.linalg.norm(towards)
    x, y = np.asarray(CANAL_AXIS_XY_MM) + (CANAL_RADIUS_MM - 1.0) * towards
    return [round(float(x), 2), round(float(y), 2), float(TUMOR_CENTER_MM[2])]
