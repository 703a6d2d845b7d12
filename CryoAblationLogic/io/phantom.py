"""The built-in synthetic case: an abdominal MR-like phantom with a renal tumour.

Made entirely in code (nothing is downloaded), deterministic for a given spacing, and shared by
``cryoablation demo``, the Slicer sample data, the self-tests and the scanner simulator.

Anatomy (RAS, millimetres; patient prone for a posterior percutaneous approach):

- perirenal fat fills the field of view;
- a kidney (ellipsoid) with an exophytic tumour on its lateral-posterior edge (sphere, 24 mm);
- a vessel (a renal artery/vein branch, 7 mm across) running S–I medial to the tumour: a heat sink;
- a bowel loop (the colon, a 20 mm tube) anterolateral to the kidney: the critical structure;
- the psoas muscle posteromedial to the kidney.

Image intensities mimic a T1-weighted gradient echo (fat bright, flowing blood dark), with a smooth
coil-sensitivity bias and Rician noise from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from CryoAblationLogic.core.grid import Grid

# Label values of the phantom's label map, with the material each is made of and its role.
LABELS: dict[int, tuple[str, str, str]] = {
    # label: (segment name, material, role)
    1: ("Fat", "fat", "organ"),
    2: ("Kidney", "kidney", "organ"),
    3: ("Tumor", "tumor", "target"),
    4: ("Vessel", "blood", "vessel"),
    5: ("Bowel", "muscle", "critical"),
    6: ("Psoas", "muscle", "organ"),
}

# T1w-GRE-like signal per label (arbitrary units), before bias and noise.
_SIGNAL = {1: 900.0, 2: 420.0, 3: 560.0, 4: 90.0, 5: 300.0, 6: 240.0}

FIELD_OF_VIEW_MM = (120.0, 120.0, 110.0)
TUMOR_CENTER_MM = (-22.0, -6.0, 4.0)
TUMOR_RADIUS_MM = 12.0
KIDNEY_CENTER_MM = (0.0, 0.0, 0.0)
KIDNEY_SEMI_AXES_MM = (26.0, 20.0, 50.0)
VESSEL_AXIS_XY_MM = (-2.0, 8.0)  # runs along S–I
VESSEL_RADIUS_MM = 3.5
BOWEL_AXIS_XY_MM = (-42.0, 24.0)  # runs along S–I
BOWEL_RADIUS_MM = 10.0
PSOAS_AXIS_XY_MM = (18.0, -34.0)
PSOAS_SEMI_AXES_MM = (13.0, 10.0)

PROBE_MODEL = "argon-1.47mm"
PROBE_SPACING_MM = 15.0
PROBE_TIP_BEYOND_TARGET_MM = 6.0  # tips a little past the distal tumour edge, as usual


@dataclass
class Phantom:
    grid: Grid
    image: np.ndarray  # float32, [i, j, k]
    labels: np.ndarray  # uint8, [i, j, k], values of LABELS (0 never occurs)
    label_info: dict[int, tuple[str, str, str]] = field(default_factory=lambda: dict(LABELS))

    def material_map(self) -> dict[str, str]:
        """Label value (as a string, as in case files) → material name."""
        return {str(label): material for label, (_, material, _) in self.label_info.items()}

    def case_structures(self, kinds: dict[int, str]) -> list[dict]:
        """The case file's ``structures``: every label that is not an organ, with its role and, for a
        critical structure in ``kinds`` (label → type), the type that sets its safety margin."""
        return [
            {"label": label, "name": name, "role": role, **({"type": kinds[label]} if label in kinds else {})}
            for label, (name, _material, role) in sorted(self.label_info.items())
            if role != "organ"
        ]


def make_grid(spacing_mm: float = 1.0) -> Grid:
    size = tuple(round(extent / spacing_mm) + 1 for extent in FIELD_OF_VIEW_MM)
    origin = tuple(-0.5 * (n - 1) * spacing_mm for n in size)
    return Grid(origin, (spacing_mm,) * 3, size)  # type: ignore[arg-type]


def make_phantom(spacing_mm: float = 1.0, noise_sigma: float = 25.0, seed: int = 20261127) -> Phantom:
    grid = make_grid(spacing_mm)
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    labels = np.full(grid.size, 1, dtype=np.uint8)

    psoas = ((x - PSOAS_AXIS_XY_MM[0]) / PSOAS_SEMI_AXES_MM[0]) ** 2 + (
        (y - PSOAS_AXIS_XY_MM[1]) / PSOAS_SEMI_AXES_MM[1]
    ) ** 2 <= 1.0
    labels[psoas] = 6
    kidney = (
        ((x - KIDNEY_CENTER_MM[0]) / KIDNEY_SEMI_AXES_MM[0]) ** 2
        + ((y - KIDNEY_CENTER_MM[1]) / KIDNEY_SEMI_AXES_MM[1]) ** 2
        + ((z - KIDNEY_CENTER_MM[2]) / KIDNEY_SEMI_AXES_MM[2]) ** 2
    ) <= 1.0
    labels[kidney] = 2
    tumor = (
        (x - TUMOR_CENTER_MM[0]) ** 2 + (y - TUMOR_CENTER_MM[1]) ** 2 + (z - TUMOR_CENTER_MM[2]) ** 2
    ) <= TUMOR_RADIUS_MM**2
    labels[tumor] = 3
    bowel = (x - BOWEL_AXIS_XY_MM[0]) ** 2 + (y - BOWEL_AXIS_XY_MM[1]) ** 2 <= BOWEL_RADIUS_MM**2
    labels[bowel] = 5
    vessel = (x - VESSEL_AXIS_XY_MM[0]) ** 2 + (y - VESSEL_AXIS_XY_MM[1]) ** 2 <= VESSEL_RADIUS_MM**2
    labels[vessel] = 4

    signal = np.zeros(grid.size, dtype=np.float64)
    for label, value in _SIGNAL.items():
        signal[labels == label] = value
    # Smooth receive-coil bias: brighter towards the posterior coil (the patient lies prone).
    bias = 1.0 + 0.15 * np.tanh(-(y / 60.0)) + 0.05 * np.cos(z / 40.0)
    signal *= bias
    rng = np.random.default_rng(seed)
    real = signal + rng.normal(0.0, noise_sigma, signal.shape)
    imaginary = rng.normal(0.0, noise_sigma, signal.shape)
    image = np.sqrt(real**2 + imaginary**2).astype(np.float32)  # magnitude image: Rician noise
    return Phantom(grid=grid, image=image, labels=labels)


def demo_probe_plan() -> list[dict]:
    """Three 17 G probes 15 mm apart in a triangle around the tumour centre, posterior approach.

    Returned as case-file probe entries (``tip_mm``/``entry_mm``, RAS millimetres): probes run
    from posterior (entry, y−) to anterior (tip), tips 6 mm past the distal tumour edge.
    """
    center = np.asarray(TUMOR_CENTER_MM)
    direction = np.array([0.0, 1.0, 0.0])  # posterior → anterior
    circumradius = PROBE_SPACING_MM / np.sqrt(3.0)
    probes = []
    for index, angle_deg in enumerate((90.0, 210.0, 330.0)):
        angle = np.deg2rad(angle_deg)
        offset = circumradius * np.array([np.cos(angle), 0.0, np.sin(angle)])
        tip = center + offset + direction * (TUMOR_RADIUS_MM + PROBE_TIP_BEYOND_TARGET_MM)
        entry = tip - direction * 80.0
        probes.append(
            {
                "name": f"P{index + 1}",
                "model": PROBE_MODEL,
                "tip_mm": [round(float(v), 3) for v in tip],
                "entry_mm": [round(float(v), 3) for v in entry],
            }
        )
    return probes


def demo_protocol() -> list[dict]:
    """The usual renal double freeze: 10 min freeze, 8 min passive thaw, 10 min freeze (1680 s)."""
    return [
        {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
        {"action": "thaw", "mode": "passive", "duration_s": 480, "probes": "all"},
        {"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100},
    ]
