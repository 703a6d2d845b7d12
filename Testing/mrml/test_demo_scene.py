"""The demo's scene and record: the phantom with the demo plan and a result on the demo case's
grid is saved as a loadable .mrb, and the record (HTML with its pictures inside, PDF, metrics.json,
DICOM) shows it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from CryoAblationLogic.cli.demo import write_scene_and_report
from CryoAblationLogic.io import phantom
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.demo_case import write_demo_case
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb
from CryoAblationLogic.scene.isotherms import isotherm_surface, surface_volume_ml


def ball_result(case):
    """A stand-in result on the case grid: an ice ball around the tumour (0 °C at 17 mm)."""
    grid = case.grid
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    center = phantom.TUMOR_CENTER_MM
    r = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2)
    final = (37.0 - 137.0 * np.clip(1 - r / 27.0, 0, 1)).astype(np.float32)
    times = np.array([600.0, 1080.0, 1680.0])
    return SimpleNamespace(
        grid=grid,
        simulated_s=1680.0,
        snapshots={600.0: final + 10.0, 1080.0: final + 30.0},
        temperature_final=final,
        min_temperature=final,
        sensors={sensor.name: (times, np.array([0.0, 10.0, -5.0])) for sensor in case.sensors},
        ice_volume_history={level: (times, np.array([5.0, 2.0, 9.0])) for level in case.outputs.isotherms_c},
    )


def test_demo_writes_a_loadable_scene_and_a_report(tmp_path):
    case_path = write_demo_case(tmp_path, spacing_mm=4.0)
    case = load_case(case_path)
    result = ball_result(case)
    scene_path, report_path = write_scene_and_report(tmp_path, case_path, result, spacing_mm=4.0)
    assert scene_path == tmp_path / "scene.mrb" and report_path == tmp_path / "report.html"

    app = create_scene_app()
    load_scene_mrb(app.scene, scene_path)
    parameters = P.get_parameter_node(app.scene, create=False)
    assert parameters.get(P.INPUT_VOLUME).GetName() == "Phantom T1"
    assert [probe.GetName() for probe in parameters.probes()] == ["P1", "P2", "P3"]
    isotherms = parameters.get(P.ISOTHERM_SEGMENTATION)
    assert surface_volume_ml(isotherm_surface(isotherms, 0.0)) > 10.0
    assert parameters.get(P.METRICS_TABLE).GetNumberOfRows() == 3
    assert parameters.get(P.PLAYBACK_BROWSER).GetMasterSequenceNode().GetNumberOfDataNodes() == 3

    page = report_path.read_text(encoding="utf-8")
    assert "Target covered" in page and 'src="data:image/png;base64,' in page  # pictures embedded
    assert not (tmp_path / "report_files").exists()
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "dicom" / "seg.dcm").is_file()
