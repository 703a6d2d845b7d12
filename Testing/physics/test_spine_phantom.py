"""The second built-in phantom (issue 13): a vertebral-body tumour beside the spinal canal."""

from __future__ import annotations

import numpy as np

from CryoAblationLogic.io import phantom as renal
from CryoAblationLogic.io import spine_phantom as spine
from CryoAblationLogic.io.case_file import load_case, parse_case
from CryoAblationLogic.physics.materials import load_material_library
from CryoAblationLogic.physics.simulation import preview


def test_every_label_occurs_and_is_made_of_a_library_material():
    ph = spine.make_spine_phantom(spacing_mm=2.0)
    library = load_material_library()
    present = set(np.unique(ph.labels).tolist())
    assert present == set(spine.LABELS)  # label 0 never occurs
    for _, material, _ in spine.LABELS.values():
        assert material in library
    roles = {name: role for name, _, role in spine.LABELS.values()}
    assert roles["Spinal cord"] == roles["Nerve root"] == "critical" and roles["Tumor"] == "target"


def test_the_tumour_lies_a_few_millimetres_from_the_canal_and_the_nerve_root():
    ph = spine.make_spine_phantom(spacing_mm=1.0)
    x, y, z = np.meshgrid(*(ph.grid.axis_mm(a) for a in range(3)), indexing="ij")
    tumour = ph.labels == 4
    for label, low, high in ((6, 2.0, 6.0), (7, 0.0, 4.0)):  # CSF (canal) and nerve root, mm
        points = np.stack([x[ph.labels == label], y[ph.labels == label], z[ph.labels == label]], axis=1)
        centre = np.asarray(spine.TUMOR_CENTER_MM)
        gap = np.min(np.linalg.norm(points - centre, axis=1)) - spine.TUMOR_RADIUS_MM
        assert low <= gap <= high, (label, gap)
    assert 3.8 < tumour.sum() * 1e-3 < 4.6  # ml at 1 mm: a 10 mm sphere is 4.19 ml


def test_phantoms_are_deterministic_and_the_renal_one_is_unchanged():
    a = spine.make_spine_phantom(spacing_mm=2.0)
    b = spine.make_spine_phantom(spacing_mm=2.0)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.image, b.image)
    assert renal.LABELS[3] == ("Tumor", "tumor", "target") and renal.PROBE_MODEL == "argon-1.47mm"


def test_the_spine_plan_runs_and_freezes_the_tumour():
    ph = spine.make_spine_phantom(spacing_mm=2.0)
    data = {
        "format": "cryoablation-case/1",
        "grid": ph.grid.to_dict(),
        "initial_temperature_c": 37.0,
        "tissue_map": {"labelmap": "labels.nrrd", "labels": ph.material_map()},
        "probes": spine.spine_probe_plan(),
        "protocol": [{"action": "freeze", "duration_s": 600, "probes": "all", "flow_percent": 100}],
        "outputs": {"isotherms_c": [0, -20, -40], "snapshot_times_s": []},
    }
    case = parse_case(data, arrays={"labels.nrrd": ph.labels})
    result = preview(case, spacing_mm=2.0, duration_s=600.0)
    frozen = result.temperature_final <= 0.0
    assert frozen[ph.labels == 4].mean() > 0.5  # most of the tumour is inside the ice after 10 min


def test_the_phantom_command_writes_the_spine_case_and_it_warns_of_cord_and_nerve_root(tmp_path, capsys):
    from CryoAblationLogic.cli.main import main
    from CryoAblationLogic.io.volumes import read_nrrd

    out = tmp_path / "spine"
    assert main(["phantom", "--site", "spine", "--spacing-mm", "3", "--out", str(out)]) == 0
    case = load_case(out / "case.cryo.json")
    image, image_grid = read_nrrd(out / "phantom_image.nrrd")
    assert image_grid == case.grid and image.shape == case.tissue_labels.shape
    kinds = {s.name: (s.role, s.kind) for s in case.structures}
    assert kinds == {
        "Tumor": ("target", None),
        "Spinal cord": ("critical", "cord"),
        "Nerve root": ("critical", "nerve"),
    }
    assert [s.name for s in case.sensors] == ["Epidural"]
    capsys.readouterr()
    result = tmp_path / "result"
    assert main(["simulate", str(out / "case.cryo.json"), "--out", str(result), "--quiet"]) == 0
    printed = capsys.readouterr().out
    # the tumour reaches the root's exit and lies 4 mm from the canal: ice that covers it says so
    assert "Nerve root" in printed and "Spinal cord" in printed
    assert (result / "metrics.json").is_file() and (result / "report.pdf").is_file()
