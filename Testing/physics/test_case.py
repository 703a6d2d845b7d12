"""Case files: everything docs/case-format.md describes is validated, naming the key; round trips."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import load_case, parse_case, save_case
from CryoAblationLogic.physics.materials import load_material_library
from CryoAblationLogic.physics.probes import load_probe_catalog


def test_example_case_parses(gel_case_dict):
    case = parse_case(gel_case_dict)
    assert case.grid.size == (21, 21, 31)
    assert case.boundaries["z-"].type == "adiabatic"
    assert case.boundaries["x+"].temperature_c == 37.0
    assert case.duration_s == 240.0
    assert [step.start_s for step in case.protocol] == [0.0, 120.0, 180.0]
    assert case.materials["gel"].k_frozen == 2.2
    assert case.materials["liver"].k_unfrozen == load_material_library()["liver"].k_unfrozen
    probe = case.probes[0]
    assert probe.diameter_mm == load_probe_catalog()["argon-1.47mm"].diameter_mm
    start, end = probe.active_segment_mm()
    assert np.isclose(np.linalg.norm(end - start), probe.active_length_mm)


def _mutate(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("colour",), 1, "colour"),
        (("format",), "cryoablation-case/0", "format"),
        (("grid", "size"), [10, 10], "grid.size"),
        (("grid", "spacing_mm"), -1, "grid.spacing_mm"),
        (("initial_temperature_c",), "hot", "initial_temperature_c"),
        (("boundaries", "x+"), {"type": "fixed"}, "boundaries.x+.temperature_c"),
        (("boundaries", "top"), {"type": "adiabatic"}, "boundaries.top"),
        (("materials", "gel", "k_frozen"), -2.0, "materials.gel.k_frozen"),
        (("materials", "gel", "colour"), 1, "materials.gel.colour"),
        (("materials", "agar"), {"k_frozen": 2.0}, "materials.agar.k_unfrozen"),
        (("tissue",), "granite", "tissue"),
        (("probes", 0, "model"), "argon-9mm", "probes[0].model"),
        (("probes", 0, "tip_mm"), [0, 0, -80], "probes[0].tip_mm"),
        (("probes", 0, "entry_mm"), [0, 0, -15], "probes[0].entry_mm"),
        (("probes", 0, "diameter_mm"), 0, "probes[0].diameter_mm"),
        (("sources",), [{"type": "cube"}], "sources[0].type"),
        (
            ("sources",),
            [{"type": "sphere", "center_mm": [0, 0, 0], "radius_mm": 2}],
            "sources[0].temperature_c",
        ),
        (("protocol", 0, "action"), "boil", "protocol[0].action"),
        (("protocol", 0, "flow_percent"), 120, "protocol[0].flow_percent"),
        (("protocol", 1, "mode"), _DELETE, "protocol[1].mode"),
        (("protocol", 1, "probes"), ["P9"], "protocol[1].probes[0]"),
        (("protocol", 2, "duration_s"), 0, "protocol[2].duration_s"),
        (("protocol",), [], "protocol"),
        (("sensors", 0, "position_mm"), [500, 0, 0], "sensors[0].position_mm"),
        (("outputs", "snapshot_times_s"), [9999], "outputs.snapshot_times_s[0]"),
        (("outputs", "isotherms_c"), ["cold"], "outputs.isotherms_c[0]"),
    ],
)
def test_invalid_input_names_the_key(gel_case_dict, path, value, key):
    data = copy.deepcopy(gel_case_dict)
    _mutate(data, path, value)
    with pytest.raises(InputError) as error:
        parse_case(data)
    assert error.value.key == key, str(error.value)


def test_tissue_and_tissue_map_are_exclusive(gel_case_dict):
    data = copy.deepcopy(gel_case_dict)
    data["tissue_map"] = {"labelmap": "labels.nrrd", "labels": {"0": "gel"}}
    with pytest.raises(InputError) as error:
        parse_case(data)
    assert error.value.key == "tissue"


def test_label_map_in_memory_and_on_disk_round_trip(gel_case_dict, tmp_path):
    data = copy.deepcopy(gel_case_dict)
    del data["tissue"]
    labels = np.zeros((21, 21, 31), dtype=np.uint8)
    labels[10:, :, :] = 2
    data["tissue_map"] = {"labelmap": "mem", "labels": {"0": "gel", "2": "liver"}}
    case = parse_case(data, arrays={"mem": labels})
    assert case.label_materials == {0: "gel", 2: "liver"}
    path = save_case(case, tmp_path / "case.cryo.json")
    written = json.loads(path.read_text())
    assert written["tissue_map"]["labelmap"] == "labels.nrrd"
    again = load_case(path)
    assert np.array_equal(again.tissue_labels, labels)
    assert again.to_dict() == case.to_dict(labelmap_filename="labels.nrrd")


def test_label_without_material_is_refused(gel_case_dict):
    data = copy.deepcopy(gel_case_dict)
    del data["tissue"]
    labels = np.zeros((21, 21, 31), dtype=np.uint8)
    labels[0, 0, 0] = 7
    data["tissue_map"] = {"labelmap": "mem", "labels": {"0": "gel"}}
    with pytest.raises(InputError) as error:
        parse_case(data, arrays={"mem": labels})
    assert error.value.key == "tissue_map.labels" and "7" in error.value.reason


def test_missing_label_file_names_the_key(gel_case_dict, tmp_path):
    data = copy.deepcopy(gel_case_dict)
    del data["tissue"]
    data["tissue_map"] = {"labelmap": "nowhere.nrrd", "labels": {"0": "gel"}}
    with pytest.raises(InputError) as error:
        parse_case(data, base_dir=tmp_path)
    assert error.value.key == "tissue_map.labelmap"


def test_case_round_trip_keeps_overrides(gel_case_dict):
    data = copy.deepcopy(gel_case_dict)
    data["probes"][0]["active_length_mm"] = 25.0
    case = parse_case(data)
    assert case.probes[0].active_length_mm == 25.0
    assert parse_case(case.to_dict()).to_dict() == case.to_dict()


def test_boundaries_default_to_fixed_initial_temperature(gel_case_dict):
    data = copy.deepcopy(gel_case_dict)
    del data["boundaries"]
    data["initial_temperature_c"] = 20.0
    case = parse_case(data)
    assert all(bc.type == "fixed" and bc.temperature_c == 20.0 for bc in case.boundaries.values())
