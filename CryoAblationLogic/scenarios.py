"""End-to-end scenarios of the module, run by Slicer's self-test and by pytest on the same code.

``CryoAblationTest`` (in ``CryoAblation/CryoAblation.py``) calls these functions with Slicer's own
scene and module logics; ``Testing/module`` calls them with a ``slicer-core`` scene set up the way
Slicer sets it up (:func:`CryoAblationLogic.mrml.app.create_scene_app`). Each function takes the
scene (and the paths it writes to) as arguments, does what a user does in the panel through the
same adapters the panel uses, and checks the outcome: a failed check raises
:class:`ScenarioFailure` saying what differs, so the same message shows in both places.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import phantom as phantom_module

# A coarse grid keeps the scenarios quick enough for a self-test (about a second of solver time).
SCENARIO_SPACING_MM = 2.0


class ScenarioFailure(AssertionError):
    """A scenario's check failed; the message says what was expected and what was found."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioFailure(message)


# -- load the phantom --------------------------------------------------------------------------
def load_phantom(scene, segmentations_logic, spacing_mm: float = SCENARIO_SPACING_MM):
    """Load the synthetic phantom (image, segments with roles and materials, sensors) without probes.

    Returns the plan's parameter node (:class:`CryoAblationLogic.mrml.parameters.ParameterNode`).
    """
    from .mrml import inputs
    from .mrml import parameters as P
    from .mrml.phantom_scene import build_phantom_scene
    from .mrml.volumes import volume_grid

    parameters = build_phantom_scene(scene, segmentations_logic, spacing_mm=spacing_mm, with_probes=False)
    volume = parameters.get(P.INPUT_VOLUME)
    check(volume is not None, "the phantom image volume is not referenced by the parameter node")
    expected_grid = phantom_module.make_grid(spacing_mm)
    found_grid = volume_grid(volume)
    check(found_grid == expected_grid, f"phantom volume grid {found_grid} differs from {expected_grid}")
    segmentation = parameters.get(P.INPUT_SEGMENTATION)
    check(segmentation is not None, "the phantom segmentation is not referenced by the parameter node")
    roles = {info.name: (info.role, info.material) for info in inputs.segment_infos(segmentation)}
    expected = {name: (role, material) for name, material, role in phantom_module.LABELS.values()}
    check(roles == expected, f"segment roles and materials {roles} differ from the phantom's {expected}")
    check(parameters.probes() == [], "the phantom was loaded with probes already placed")
    return parameters


# -- place probes ------------------------------------------------------------------------------
def place_probes(scene, parameters, plan: list[dict] | None = None) -> list:
    """Place probes as markups lines (tip = control point 0, entry = control point 1), as the panel does.

    ``plan`` holds case-format probe entries; the phantom's demo plan by default.
    """
    from .mrml import parameters as P
    from .mrml import probes

    plan = plan if plan is not None else phantom_module.demo_probe_plan()
    nodes = []
    for entry in plan:
        node = probes.add_probe(scene, entry["name"], entry["tip_mm"], entry["entry_mm"], entry["model"])
        parameters.add(P.PROBE, node)
        nodes.append(node)
    check(
        [node.GetName() for node in parameters.probes()] == [entry["name"] for entry in plan],
        "the parameter node does not list the placed probes in order",
    )
    for node, entry in zip(nodes, plan, strict=True):
        case_entry = probes.probe_case_entry(node)
        for key in ("tip_mm", "entry_mm"):
            check(
                np.allclose(case_entry[key], entry[key], atol=1e-3),
                f"probe {entry['name']}: {key} {case_entry[key]} differs from the placed {entry[key]}",
            )
        check(case_entry["model"] == entry["model"], f"probe {entry['name']}: model {case_entry['model']}")
    return nodes


# -- save and reload the scene ----------------------------------------------------------------
def plan_snapshot(scene) -> dict[str, Any]:
    """What a plan is, as the case built from the scene (JSON) and its tissue label map."""
    from .mrml.case_io import LABELMAP_KEY, build_case

    scene_case = build_case(scene)
    labels = scene_case.arrays.get(LABELMAP_KEY)
    return {
        "case": json.loads(json.dumps(scene_case.data)),
        "labels": None if labels is None else np.asarray(labels).copy(),
    }


def save_and_reload(scene, bundle_path: str | Path):
    """Save the scene as a ``.mrb`` bundle, load it back, and check the plan came back unchanged.

    Returns the reloaded parameter node.
    """
    from .mrml import parameters as P
    from .mrml.app import load_scene_mrb, save_scene_mrb

    before = plan_snapshot(scene)
    save_scene_mrb(scene, bundle_path)
    load_scene_mrb(scene, bundle_path, clear=True)
    parameters = P.get_parameter_node(scene, create=False)
    check(parameters is not None, "the reloaded scene has no CryoAblation parameter node")
    after = plan_snapshot(scene)
    for key in sorted(set(before["case"]) | set(after["case"])):
        check(
            before["case"].get(key) == after["case"].get(key),
            f"case key {key!r} changed on reload: {before['case'].get(key)!r} → {after['case'].get(key)!r}",
        )
    if before["labels"] is None or after["labels"] is None:
        check(before["labels"] is after["labels"], "the tissue label map appeared or vanished on reload")
    else:
        check(
            before["labels"].shape == after["labels"].shape
            and bool(np.array_equal(before["labels"], after["labels"])),
            "the tissue label map changed on reload",
        )
    return parameters
