"""Thermal protection (issue 13): each measure keeps a structure above a threshold that the same
structure crosses when the measure is left out. Small 1 mm cases, one 17 G needle, 8-min freeze."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import parse_case
from CryoAblationLogic.physics.simulation import simulate

SPACING_MM = 1.0
EXTENT_MM = (50.0, 40.0, 60.0)
FREEZE_S = 480.0


def _grid() -> dict:
    size = [round(e / SPACING_MM) + 1 for e in EXTENT_MM]
    return {"origin_mm": [-0.5 * e for e in EXTENT_MM], "spacing_mm": SPACING_MM, "size": size}


def _axes():
    return [np.arange(n) * SPACING_MM - 0.5 * e for n, e in zip(_grid()["size"], EXTENT_MM, strict=True)]


def _case(tissue: dict, probe_x_mm: float, sources: list, sensor_mm, labels=None) -> dict:
    data = {
        "format": "cryoablation-case/1",
        "grid": _grid(),
        "initial_temperature_c": 37.0,
        **tissue,
        "probes": [
            {
                "name": "P1",
                "model": "argon-1.47mm",
                "tip_mm": [probe_x_mm, 0, -15],
                "entry_mm": [probe_x_mm, 0, 29],
            }
        ],
        "sources": sources,
        "protocol": [{"action": "freeze", "duration_s": FREEZE_S, "probes": "all", "flow_percent": 100}],
        "sensors": [{"name": "structure", "position_mm": list(sensor_mm)}],
        "outputs": {"isotherms_c": [0], "snapshot_times_s": []},
    }
    return parse_case(data, arrays={"labels.nrrd": labels} if labels is not None else None)


def _coldest(case) -> float:
    return float(simulate(case).sensors["structure"][1].min())


def _slab_labels(x_ranges: dict[int, tuple[float, float]]) -> np.ndarray:
    """A label map of slabs across x (label → [x0, x1) in mm), label 1 elsewhere."""
    x = np.meshgrid(*_axes(), indexing="ij")[0]
    labels = np.ones(x.shape, dtype=np.uint8)
    for label, (x0, x1) in x_ranges.items():
        labels[(x >= x0) & (x < x1)] = label
    return labels


def test_urethral_warmer_keeps_the_urethral_wall_unfrozen():
    # A 17 G needle in prostate 12.5 mm from the surface of a 7 mm (21 Fr) urethral catheter; the
    # structure is the urethral wall 1 mm out from the catheter towards the needle.
    warmer = {"type": "warm_line", "start_mm": [6, 0, -29], "end_mm": [6, 0, 29], "diameter_mm": 7.0,
              "temperature_c": 40.0}  # fmt: skip
    wall = (6.0 - 3.5 - 1.0, 0.0, 0.0)
    without = _coldest(_case({"tissue": "prostate"}, -10.0, [], wall))
    with_warmer = _coldest(_case({"tissue": "prostate"}, -10.0, [warmer], wall))
    assert without < 0.0, "the case must freeze the urethral wall without the warmer"
    assert with_warmer > 0.0  # a urethral warmer's purpose: the urethra does not freeze


def test_warm_saline_pocket_keeps_the_bowel_wall_unfrozen():
    # Hydrodissection: 4 mm of saline (label 2) between the needle and a bowel wall (label 3).
    tissue = {
        "tissue_map": {"labelmap": "labels.nrrd", "labels": {"1": "muscle", "2": "saline", "3": "muscle"}}
    }
    labels = _slab_labels({2: (2.0, 6.0), 3: (6.0, 10.0)})
    bowel = (7.0, 0.0, 0.0)
    held = {"type": "warm_region", "label": 2, "temperature_c": 40.0}
    without = _coldest(_case(tissue, -4.0, [], bowel, labels))
    with_pocket = _coldest(_case(tissue, -4.0, [held], bowel, labels))
    assert without < 0.0, "the case must freeze the bowel wall without warm saline"
    assert with_pocket > 0.0
    # The same pocket as fluid with its own properties and a heat source instead of a held
    # temperature: warm saline exchanged at ~20 ml/min, 20 K above body temperature, brings ~28 W,
    # 3 W/ml over the ~10 ml pocket.
    heated = {"type": "warm_region", "label": 2, "power_w_per_ml": 3.0}
    assert _coldest(_case(tissue, -4.0, [heated], bowel, labels)) > 0.0


def test_skin_warming_keeps_the_skin_above_freezing():
    # A superficial target: skin (label 2, 2 mm) over muscle, the needle 11 mm below the skin.
    # Skin warming is a warm saline-soaked pad (label 3, 2 mm) on the skin held at 40 °C.
    tissue = {
        "tissue_map": {"labelmap": "labels.nrrd", "labels": {"1": "muscle", "2": "skin", "3": "saline"}}
    }
    labels = _slab_labels({2: (6.0, 8.0), 3: (8.0, 10.0)})
    skin = (7.0, 0.0, 0.0)
    pad_held = {"type": "warm_region", "label": 3, "temperature_c": 40.0}
    without = _coldest(_case(tissue, -5.0, [], skin, labels))
    with_pad = _coldest(_case(tissue, -5.0, [pad_held], skin, labels))
    assert without < 0.0, "the case must freeze the skin without warming"
    assert with_pad > 0.0


def test_protection_input_errors_name_the_key():
    tissue = {"tissue": "muscle"}
    with pytest.raises(InputError, match=r"sources\[0\]\.label"):
        simulate(_case(tissue, 0.0, [{"type": "warm_region", "label": 2, "temperature_c": 40.0}], (5, 0, 0)))
    with pytest.raises(InputError, match=r"sources\[0\]\.temperature_c"):
        _case(tissue, 0.0, [{"type": "warm_region", "label": 2}], (5, 0, 0))
    with pytest.raises(InputError, match=r"sources\[0\]\.diameter_mm"):
        _case(
            tissue,
            0.0,
            [{"type": "warm_line", "start_mm": [5, 0, -9], "end_mm": [5, 0, 9], "temperature_c": 40}],
            (5, 0, 0),
        )


@pytest.mark.parametrize(
    ("source", "key", "words"),
    [
        # a "warmer" below freezing would grow the ice it is meant to stop (a sign slip: −42 for 42)
        ({"temperature_c": -42.0}, "temperature_c", "cools the structure it should spare"),
        ({"temperature_c": 20.0}, "temperature_c", "outside 30–50 °C"),
        ({"temperature_c": 80.0}, "temperature_c", "burns tissue"),
        ({"diameter_mm": 0.5}, "diameter_mm", "outside 1–30 mm"),
    ],
)
def test_a_warm_catheter_outside_what_warms_without_burning_is_refused_by_key(source, key, words):
    line = {"type": "warm_line", "start_mm": [5, 0, -9], "end_mm": [5, 0, 9], "diameter_mm": 7.0}
    with pytest.raises(InputError, match=words) as raised:
        _case({"tissue": "muscle"}, 0.0, [{**line, "temperature_c": 42.0, **source}], (5, 0, 0))
    assert raised.value.key == f"sources[0].{key}"


def test_a_warm_region_outside_what_warms_without_burning_is_refused_by_key():
    labels = np.ones(tuple(_grid()["size"]), np.uint8)
    labels[:3] = 2
    tissue = {"tissue_map": {"labelmap": "labels.nrrd", "labels": {"1": "muscle", "2": "saline"}}}
    for source, key in (
        ({"temperature_c": -5.0}, "temperature_c"),
        ({"power_w_per_ml": 50.0}, "power_w_per_ml"),
    ):
        with pytest.raises(InputError) as raised:
            _case(tissue, 0.0, [{"type": "warm_region", "label": 2, **source}], (5, 0, 0), labels)
        assert raised.value.key == f"sources[0].{key}"
