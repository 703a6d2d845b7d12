"""The panel's thermal protection (issue 13): a warm catheter, a warm-fluid region and skin warming,
planned in the panel, kept in the parameter node, written into the case, read back from the file.

The panel runs with Slicer's Qt layer stood in (conftest.py) on slicer-core's real scene. The phantom
(2 mm image) gets two extra segments, as a user would paint them: a 4 mm saline pocket between the
tumour and the bowel (hydrodissection) and a skin-warming pad.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the panel runs on slicer-core's real MRML")

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.scene import case_io, inputs, protection
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb, save_scene_mrb

POCKET_CENTRE_MM = (-32.5, 9.8, 4.0)  # between the tumour's and the bowel's surfaces, 14 mm apart
PAD_CENTRE_MM = (-22.0, -40.0, 4.0)
CATHETER_ENDS_MM = ((-4.0, -6.0, -40.0), (-4.0, -6.0, 40.0))


def shown():
    import slicer

    return slicer.util.shown


def add_ball_segment(segmentation, name: str, centre_mm, radius_mm: float) -> str:
    from vtkmodules.vtkFiltersSources import vtkSphereSource

    sphere = vtkSphereSource()
    sphere.SetCenter(*centre_mm)
    sphere.SetRadius(radius_mm)
    sphere.SetThetaResolution(24)
    sphere.SetPhiResolution(24)
    sphere.Update()
    return segmentation.AddSegmentFromClosedSurfaceRepresentation(sphere.GetOutput(), name, (0.2, 0.6, 1.0))


def add_line(scene, name: str, points):
    line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
    for point in points:
        line.AddControlPointWorld(list(point))
    return line


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    assert index >= 0, f"{text!r} is not offered"
    combo.setCurrentIndex(index)


def choose_kind(ui, kind: str) -> None:
    choose(ui.protectionKindComboBox, protection.KIND_LABELS[kind])


@pytest.fixture
def planned(widget, scene_app):
    """The phantom with a pocket and a pad segment and an (unplaced-as-protection) catheter line."""
    ui = widget.ui
    ui.loadPhantomButton.click()
    segmentation = widget.logic.session.parameters.get(P.INPUT_SEGMENTATION)
    add_ball_segment(segmentation, "Saline pocket", POCKET_CENTRE_MM, 4.0)
    add_ball_segment(segmentation, "Skin pad", PAD_CENTRE_MM, 4.0)
    add_line(scene_app.scene, "Urethral warmer", CATHETER_ENDS_MM)
    widget.updateSections()
    return widget


def plan_the_three_measures(ui) -> None:
    choose_kind(ui, protection.WARM_CATHETER)
    choose(ui.protectionLineComboBox, "Urethral warmer")
    ui.protectionDiameterSpinBox.value = 7.0
    ui.protectionTemperatureSpinBox.value = 42.0
    ui.addProtectionButton.click()

    choose_kind(ui, protection.WARM_FLUID)
    choose(ui.protectionSegmentComboBox, "Saline pocket")
    ui.protectionWarmingComboBox.setCurrentIndex(1)  # heated
    ui.protectionPowerSpinBox.value = 3.0
    ui.addProtectionButton.click()

    choose_kind(ui, protection.SKIN_WARMING)
    choose(ui.protectionSegmentComboBox, "Skin pad")
    ui.protectionNameLineEdit.text = "Warm gauze"
    ui.protectionTemperatureSpinBox.value = 41.0
    ui.addProtectionButton.click()


def table_rows(ui) -> list[list[str]]:
    table = ui.protectionTable
    return [[table.item(r, c).text() for c in range(table.columnCount)] for r in range(table.rowCount)]


def test_only_the_fields_of_the_chosen_measure_are_enabled(widget):
    ui = widget.ui
    choose_kind(ui, protection.WARM_CATHETER)
    assert ui.protectionLineComboBox.enabled and ui.protectionDiameterSpinBox.enabled
    assert not ui.protectionSegmentComboBox.enabled and not ui.protectionWarmingComboBox.enabled
    choose_kind(ui, protection.WARM_FLUID)
    ui.protectionWarmingComboBox.setCurrentIndex(1)  # heated: a power, no temperature
    assert ui.protectionSegmentComboBox.enabled and not ui.protectionDiameterSpinBox.enabled
    assert ui.protectionPowerSpinBox.enabled and not ui.protectionTemperatureSpinBox.enabled
    choose_kind(ui, protection.SKIN_WARMING)  # skin warming is held at a temperature only
    assert not ui.protectionWarmingComboBox.enabled and ui.protectionTemperatureSpinBox.enabled
    assert not ui.protectionPowerSpinBox.enabled


def test_every_spin_box_states_its_unit_and_its_bounds(widget):
    ui = widget.ui
    for box, unit in (
        (ui.protectionDiameterSpinBox, "mm"),
        (ui.protectionTemperatureSpinBox, "°C"),
        (ui.protectionPowerSpinBox, "W/ml"),
    ):
        assert box.suffix.strip() == unit
        assert box.minimum < box.maximum <= 100.0


def test_three_measures_are_planned_in_the_panel_and_listed_with_units(planned):
    ui = planned.ui
    plan_the_three_measures(ui)
    assert table_rows(ui) == [
        ["Warm catheter", "Urethral warmer", "line 'Urethral warmer', 80 mm long, Ø 7 mm", "held at 42 °C"],
        ["Warm-fluid region", "Saline pocket", "segment 'Saline pocket'", "heated at 3 W/ml"],
        ["Skin warming", "Warm gauze", "segment 'Skin pad'", "held at 41 °C"],
    ]
    # The pocket and the pad had no role: they became warm saline, and the segments table shows it.
    segmentation = planned.logic.session.parameters.get(P.INPUT_SEGMENTATION)
    tagged = {info.name: (info.role, info.material) for info in inputs.segment_infos(segmentation)}
    assert tagged["Saline pocket"] == tagged["Skin pad"] == ("organ", "saline")
    assert "now warm saline" in ui.protectionStatusLabel.text
    ui.protectionTable.selectRow(0)
    ui.removeProtectionButton.click()
    assert [row[1] for row in table_rows(ui)] == ["Saline pocket", "Warm gauze"]
    assert planned.logic.session.scene.GetFirstNodeByName("Urethral warmer") is not None  # the line stays


def test_panel_to_parameter_node_to_case_file_and_back_to_the_panel(planned, scene_app, tmp_path):
    ui = planned.ui
    plan_the_three_measures(ui)
    before = table_rows(ui)

    # The parameter node holds the plan: a new reader of the node sees the three measures.
    parameters = P.get_parameter_node(scene_app.scene)
    kinds = [item.kind for item in protection.protections(parameters)]
    assert kinds == [protection.WARM_CATHETER, protection.WARM_FLUID, protection.SKIN_WARMING]

    # The case the panel builds, written by the panel's Export case file.
    ui.outputDirectoryButton.directory = str(tmp_path)
    ui.exportCaseButton.click()
    case_path = tmp_path / "CryoAblation.cryo.json"
    data = json.loads(case_path.read_text(encoding="utf-8"))
    line, pocket, pad = data["sources"]
    assert line == {
        "type": "warm_line", "name": "Urethral warmer", "start_mm": [-4.0, -6.0, -40.0],
        "end_mm": [-4.0, -6.0, 40.0], "diameter_mm": 7.0, "temperature_c": 42.0,
    }  # fmt: skip
    materials = data["tissue_map"]["labels"]
    assert pocket["purpose"] == "warm_fluid" and pocket["power_w_per_ml"] == 3.0
    assert pad["purpose"] == "skin_warming" and pad["temperature_c"] == 41.0 and pad["name"] == "Warm gauze"
    assert materials[str(pocket["label"])] == materials[str(pad["label"])] == "saline"
    case = load_case(case_path)  # the solver takes it; the pocket is 4 mm, about 268 mm³ of 2 mm voxels
    pocket_ml = np.count_nonzero(case.tissue_labels == pocket["label"]) * case.grid.voxel_volume_mm3 / 1000
    assert 0.15 < pocket_ml < 0.45

    # Opened again in a new scene: the panel shows the same three measures.
    other = create_scene_app()
    case_io.import_case(other.scene, case_path, other.logic("Segmentations"))
    reopened = P.get_parameter_node(other.scene)
    rows = [list(row) for row in protection.protection_rows(reopened)]
    assert [row[:2] for row in rows] == [row[:2] for row in before]
    assert [row[3] for row in rows] == [row[3] for row in before]
    assert rows[1][2] == "segment 'Saline pocket'" and rows[2][2] == "segment 'Skin pad'"
    # … and builds the same sources (labels may be numbered anew; they name the same segments).
    rebuilt = case_io.build_case(other.scene, reopened).data["sources"]
    assert [{k: v for k, v in s.items() if k != "label"} for s in rebuilt] == [
        {k: v for k, v in s.items() if k != "label"} for s in data["sources"]
    ]


def test_the_panel_follows_the_plan_when_the_case_is_opened_into_its_scene(planned, scene_app, tmp_path):
    ui = planned.ui
    plan_the_three_measures(ui)
    case_path = case_io.export_case(scene_app.scene, tmp_path / "plan.cryo.json")
    ui.protectionTable.selectRow(1)
    ui.removeProtectionButton.click()
    assert ui.protectionTable.rowCount == 2
    case_io.import_case(scene_app.scene, case_path, scene_app.logic("Segmentations"))
    planned.initializeParameterNode()
    assert [row[1] for row in table_rows(ui)] == ["Urethral warmer", "Saline pocket", "Warm gauze"]


def test_saving_and_reloading_the_scene_restores_the_measures(planned, scene_app, tmp_path):
    plan_the_three_measures(planned.ui)
    before = protection.protection_rows(P.get_parameter_node(scene_app.scene))
    bundle = save_scene_mrb(scene_app.scene, tmp_path / "plan.mrb")
    load_scene_mrb(scene_app.scene, bundle, clear=True)
    reloaded = P.get_parameter_node(scene_app.scene, create=False)
    assert protection.protection_rows(reloaded) == before
    line = protection.catheter_line(reloaded, protection.protections(reloaded)[0])
    assert line is not None and line.GetName() == "Urethral warmer"


def test_a_catheter_outside_the_simulated_region_is_clipped_to_it(planned, scene_app):
    plan_the_three_measures(planned.ui)
    session = planned.logic.session
    session.parameters.update_settings(roi_margin_mm=10.0)  # a box 10 mm around the target
    scene_case = case_io.build_case(scene_app.scene, session.parameters)
    line = scene_case.data["sources"][0]
    grid = scene_case.grid
    top = grid.origin_mm[2] + grid.spacing_mm[2] * (grid.size[2] - 1)
    assert line["start_mm"][2] == pytest.approx(grid.origin_mm[2]) and line["end_mm"][2] == pytest.approx(top)
    # the pad lies outside that box: no voxel of it is simulated, so it is left out of this case
    assert [source.get("purpose") for source in scene_case.data["sources"]] == [None, "warm_fluid"]
    scene_case.parse()  # the solver takes the case


@pytest.mark.parametrize(
    ("setup", "field"),
    [
        ("no segment", protection.FIELD_SEGMENT),
        ("too hot", protection.FIELD_TEMPERATURE),
        ("too cool", protection.FIELD_TEMPERATURE),
        ("no power", protection.FIELD_POWER),
        ("one point", protection.FIELD_LINE),
        ("no line", protection.FIELD_LINE),
        ("thin", protection.FIELD_DIAMETER),
        ("a probe", protection.FIELD_LINE),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_field_and_loses_nothing(
    planned, scene_app, setup, field
):
    ui = planned.ui
    plan_the_three_measures(ui)
    before = table_rows(ui)
    parameters = planned.logic.session.parameters
    stored = parameters.node.GetParameter(protection.PARAMETER)
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    roles_before = [(i.name, i.role, i.material) for i in inputs.segment_infos(segmentation)]
    add_line(scene_app.scene, "Rectal warmer", CATHETER_ENDS_MM)
    planned.updateSections()
    if setup in ("one point", "no line", "thin", "a probe"):
        choose_kind(ui, protection.WARM_CATHETER)
        if setup == "one point":
            add_line(scene_app.scene, "Half placed", CATHETER_ENDS_MM[:1])
            planned.updateSections()
            choose(ui.protectionLineComboBox, "Half placed")
        elif setup == "no line":
            ui.protectionLineComboBox.setCurrentIndex(-1)
        elif setup == "thin":
            choose(ui.protectionLineComboBox, "Rectal warmer")
            ui.protectionDiameterSpinBox.value = 0.0
        else:
            from CryoAblationLogic.scene.probes import add_probe

            probe = add_probe(scene_app.scene, "P9", (-22, -6, -8), (-22, -6, 60), "argon-1.47mm")
            offered = protection.candidate_lines(scene_app.scene, parameters)
            assert probe.GetID() not in [node.GetID() for node in offered]
            with pytest.raises(InputError, match=field):  # scripted: the panel does not offer probes
                protection.add_warm_catheter(parameters, probe, 7.0, 40.0)
            shown().append(f"{field}: scripted")
    else:
        choose_kind(ui, protection.WARM_FLUID)
        ui.protectionSegmentComboBox.setCurrentIndex(-1 if setup == "no segment" else 0)
        ui.protectionWarmingComboBox.setCurrentIndex(1 if setup == "no power" else 0)
        ui.protectionTemperatureSpinBox.value = {"too hot": 60.0, "too cool": 20.0}.get(setup, 40.0)
        ui.protectionPowerSpinBox.value = 0.0
    dialogs = len(shown())
    if setup != "a probe":
        ui.addProtectionButton.click()
        assert len(shown()) == dialogs + 1
    assert field in shown()[-1]
    assert table_rows(ui) == before
    assert parameters.node.GetParameter(protection.PARAMETER) == stored
    assert [(i.name, i.role, i.material) for i in inputs.segment_infos(segmentation)] == roles_before


def test_a_temperature_out_of_range_says_the_range_and_why(planned):
    with pytest.raises(InputError) as refused:
        protection.add_warm_region(
            planned.logic.session.parameters, protection.WARM_FLUID, "seg", temperature_c=40.0
        )
    assert refused.value.key == protection.FIELD_SEGMENT and "'seg' is not a segment" in str(refused.value)
    segmentation = planned.logic.session.parameters.get(P.INPUT_SEGMENTATION)
    tumour = next(i.segment_id for i in inputs.segment_infos(segmentation) if i.name == "Tumor")
    with pytest.raises(InputError, match=r"60 °C is outside 30–50 °C.*burns tissue"):
        protection.add_warm_region(
            planned.logic.session.parameters, protection.WARM_FLUID, tumour, temperature_c=60.0
        )


def test_a_deleted_catheter_line_is_named_when_the_case_is_built(planned, scene_app):
    plan_the_three_measures(planned.ui)
    scene_app.scene.RemoveNode(scene_app.scene.GetFirstNodeByName("Urethral warmer"))
    planned.updateSections()
    assert table_rows(planned.ui)[0][2] == "its line was deleted"
    with pytest.raises(InputError, match=r"Warm catheter 'Urethral warmer'\.line"):
        case_io.build_case(scene_app.scene, planned.logic.session.parameters)


def test_a_region_added_once_probes_are_placed_is_listed_without_an_error(planned, scene_app):
    """Adding the region gives its segment a role (a segment tag), which changes neither the
    segmentation's nor the node's modification time in Slicer: the panel's tissue map must follow
    the roles too, or the probes' warnings read a map without the region and fail."""
    import CryoAblationScenarios as scenarios

    scenarios.place_probes(scene_app.scene, planned.logic.session.parameters)
    planned.updateSections()  # the tissue map is painted and kept, the pocket without a role
    ui = planned.ui
    choose_kind(ui, protection.WARM_FLUID)
    choose(ui.protectionSegmentComboBox, "Saline pocket")
    ui.protectionTemperatureSpinBox.value = 40.0
    dialogs = len(shown())
    ui.addProtectionButton.click()
    assert shown()[dialogs:] == []
    (row,) = table_rows(ui)
    assert row == ["Warm-fluid region", "Saline pocket", "segment 'Saline pocket'", "held at 40 °C"]


def test_a_plan_that_fails_to_read_is_shown_and_the_panel_still_opens(planned, scene_app, module):
    """A catheter whose line was deleted while probes are placed makes the probes' warnings fail.
    Showing the panel (enter) and opening it afresh (setup) show that in a dialog; every other
    section is still refreshed and the module's timer still runs (Slicer's tryWithErrorDisplay
    raises the error again after showing it)."""
    import CryoAblationScenarios as scenarios

    scenarios.place_probes(scene_app.scene, planned.logic.session.parameters)
    plan_the_three_measures(planned.ui)
    scene_app.scene.RemoveNode(scene_app.scene.GetFirstNodeByName("Urethral warmer"))
    planned.ui.protectionTable.setRowCount(0)
    dialogs = len(shown())
    planned.enter()
    assert any("Failed to read the probes" in d and "Urethral warmer" in d for d in shown()[dialogs:])
    assert "Cannot check the probes" in planned.ui.probeWarningsLabel.text
    assert table_rows(planned.ui)[0][2] == "its line was deleted"  # the last section

    fresh = module.CryoAblationWidget()
    fresh.setup()
    try:
        assert fresh._timer.isActive()
        assert table_rows(fresh.ui)[0][2] == "its line was deleted"
    finally:
        fresh.cleanup()


def test_place_catheter_line_starts_placing_a_new_line(planned, scene_app):
    import slicer

    ui = planned.ui
    choose_kind(ui, protection.WARM_CATHETER)
    ui.protectionNameLineEdit.text = "Urethral warmer 2"
    ui.placeCatheterButton.click()
    interaction = scene_app.app_logic.GetInteractionNode()
    assert interaction.GetCurrentInteractionMode() == slicer.vtkMRMLInteractionNode.Place
    assert ui.protectionLineComboBox.currentText == "Urethral warmer 2"
    line = scene_app.scene.GetFirstNodeByName("Urethral warmer 2")
    assert scene_app.app_logic.GetSelectionNode().GetActivePlaceNodeID() == line.GetID()


def test_a_simulated_plan_with_a_warm_pocket_reports_it_with_the_bowel_beside_it(widget, scene_app, tmp_path):
    """Panel → simulate → Export report: the record and metrics.json state the pocket and the
    bowel's lowest temperature (the same number as the critical-structure table)."""
    import time

    import CryoAblationScenarios as scenarios

    ui = widget.ui
    ui.loadPhantomButton.click()
    segmentation = widget.logic.session.parameters.get(P.INPUT_SEGMENTATION)
    add_ball_segment(segmentation, "Saline pocket", POCKET_CENTRE_MM, 5.0)  # ≥ 3 voxels across at 3 mm
    scenarios.place_probes(scene_app.scene, widget.logic.session.parameters)
    widget.updateSections()
    choose_kind(ui, protection.WARM_FLUID)
    choose(ui.protectionSegmentComboBox, "Saline pocket")
    ui.protectionTemperatureSpinBox.value = 40.0
    ui.addProtectionButton.click()
    widget.logic.session.apply_protocol_preset("3-1-3")  # a short run
    ui.gridSpacingSpinBox.value = 3.0
    ui.simulateButton.click()
    deadline = time.monotonic() + 300.0
    while time.monotonic() < deadline and not ui.simulateButton.enabled:
        widget.onTimer()
        time.sleep(0.05)
    assert ui.simulateButton.enabled, "the run did not end"
    ui.outputDirectoryButton.directory = str(tmp_path)
    ui.exportReportButton.click()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    (pocket,) = metrics["protections"]
    assert (pocket["measure"], pocket["name"], pocket["temperature_c"]) == (
        "Warm-fluid region",
        "Saline pocket",
        40.0,
    )
    bowel = next(s for s in metrics["critical_structures"] if s["name"] == "Bowel")
    near = {item["name"]: item for item in pocket["critical_structures_nearby"]}
    assert near["Bowel"]["lowest_temperature_c"] == pytest.approx(bowel["lowest_temperature_c"], abs=0.01)
    assert near["Bowel"]["distance_mm"] <= 6.0  # 2 mm apart, within a 3 mm voxel or two
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Thermal protection</h2>" in page and "<td>held at 40 °C</td>" in page
    # a pocket beside the bowel, clear of the tumour and the probes, is where a pocket belongs
    assert not [w for w in metrics["warnings"] if w["rule"].startswith("protection_")]
