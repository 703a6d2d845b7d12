"""Scene benchmarks (issue 4): scene → case, live preview latency, isotherms and metrics into the
scene, .mrb save/load. Prints wall times, the limits they are held to, and the machine.

    python benchmarks/scene_bench.py [--repeat N] [--check] [--skip-preview] [--json PATH]

``--check`` exits with status 1 when a timed step is over its limit. Each figure is the best of
``--repeat`` runs (default 3), as the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from machine import describe as describe_machine  # benchmarks/ is the script folder, on sys.path

from CryoAblationLogic.analysis import metrics
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.scene import case_io, inputs, probes, results, workflow
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.app import create_scene_app, load_scene_mrb, save_scene_mrb
from CryoAblationLogic.scene.colors import create_isotherm_color_table, isotherm_levels
from CryoAblationLogic.scene.isotherms import create_isotherm_segmentation, update_isotherm_segmentation
from CryoAblationLogic.scene.phantom_scene import build_phantom_scene
from CryoAblationLogic.scene.preview import LivePreview
from CryoAblationLogic.scene.solver_process import SolverProcess
from CryoAblationLogic.scene.volumes import add_volume_node

LIMITS_S = {
    "scene_to_case_256x256x64": 0.5,
    "scene_to_case_256x256x64_resampled_1mm": 0.5,
    "metrics_into_table_nodes_30mm_target_1mm_grid": 0.2,
    "live_preview_probe_move_to_overlay": 0.3,
}


def best_of(repeat: int, step: Callable[[], object], setup: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def ct_like_scene():
    """A 256×256×64 abdominal-CT-like image (0.8 × 0.8 × 2.5 mm) with a 30 mm tumour, an organ, a
    vessel and a critical structure, and three probes."""
    app = create_scene_app()
    scene = app.scene
    grid = Grid((-102.0, -102.0, -78.75), (0.8, 0.8, 2.5), (256, 256, 64))
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    labels = np.ones(grid.size, dtype=np.uint8)
    labels[(x / 70) ** 2 + (y / 55) ** 2 + (z / 60) ** 2 <= 1] = 2
    labels[x**2 + (y + 5) ** 2 + z**2 <= 15.0**2] = 3
    labels[(x - 30) ** 2 + (y - 20) ** 2 <= 5.0**2] = 4
    labels[(x + 40) ** 2 + (y - 30) ** 2 <= 10.0**2] = 5
    image = (labels.astype(np.float32) * 40.0 + np.random.default_rng(0).normal(0, 10, grid.size)).astype(
        np.int16
    )
    parameters = P.get_parameter_node(scene)
    parameters.set(P.INPUT_VOLUME, add_volume_node(scene, "CT", image, grid))
    info = {
        1: ("Fat", "fat", "organ"),
        2: ("Liver", "liver", "organ"),
        3: ("Tumor", "tumor", "target"),
        4: ("Vessel", "blood", "vessel"),
        5: ("Bowel", "muscle", "critical"),
    }
    segmentation = inputs.add_segmentation_from_labels(scene, app.segmentations_logic, labels, grid, info)
    parameters.set(P.INPUT_SEGMENTATION, segmentation)
    parameters.set(P.ISOTHERM_LEVELS, create_isotherm_color_table(scene))
    for index, dx in enumerate((-7.5, 7.5, 0.0)):
        tip = np.array([dx, 15.0, -5.0 + 13.0 * (index == 2)])
        parameters.add(
            P.PROBE,
            probes.add_probe(scene, f"P{index + 1}", tip, tip + np.array([0.0, -90.0, 0.0]), "argon-1.47mm"),
        )
    return app, parameters


def bench_scene_to_case(repeat: int) -> dict[str, float]:
    app, parameters = ct_like_scene()
    scene = app.scene
    figures = {}
    figures["scene_to_case_256x256x64"] = best_of(repeat, lambda: case_io.build_case(scene, parameters))
    parameters.update_settings(grid_spacing_mm=1.0)
    figures["scene_to_case_256x256x64_resampled_1mm"] = best_of(
        repeat, lambda: case_io.build_case(scene, parameters)
    )
    return figures


def radial_field(grid: Grid, center, radius_mm: float) -> np.ndarray:
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    r = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2)
    return (37.0 - 97.0 * np.clip(1.0 - r / radius_mm, 0.0, 1.0)).astype(np.float32)


def bench_metrics_and_isotherms(repeat: int) -> dict[str, float]:
    """Metrics (coverage, margins, QAM, critical structures) for a 30 mm target on a 1 mm grid put
    into the scene's table nodes (benchmarks/metrics_bench.py times the metrics alone), and the
    isotherm segmentation update, on the phantom-sized grid (121 × 121 × 111)."""
    grid = Grid((-60.0, -60.0, -55.0), (1.0, 1.0, 1.0), (121, 121, 111))
    center = np.array([-22.0, -6.0, 4.0])
    field = radial_field(grid, center, 40.0)
    x, y, z = np.meshgrid(*(grid.axis_mm(axis) for axis in range(3)), indexing="ij")
    target = (x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2 <= 15.0**2
    critical = {"Bowel": (x + 42.0) ** 2 + (y - 24.0) ** 2 <= 10.0**2}
    figures = {}
    app = create_scene_app()
    parameters = P.get_parameter_node(app.scene)

    def metrics_into_tables():
        computed = metrics.isotherm_metrics(field, grid, target, (0.0, -20.0, -40.0), critical)
        findings = metrics.plan_warnings(computed, [], None, target, critical, {}, grid)
        workflow.show_metrics(app.scene, parameters, computed, findings)

    figures["metrics_into_table_nodes_30mm_target_1mm_grid"] = best_of(repeat, metrics_into_tables)
    levels = isotherm_levels(create_isotherm_color_table(app.scene))
    segmentation = create_isotherm_segmentation(app.scene)
    figures["isotherm_segmentation_3_levels_1mm_phantom_grid"] = best_of(
        repeat, lambda: update_isotherm_segmentation(segmentation, field, grid, levels)
    )
    return figures


def bench_live_preview(repeat: int, with_solver: bool = True) -> dict[str, float]:
    """A probe is moved; time until the preview overlay shows the isotherms for the new position
    (scene → coarse case around the probes, solver preview in the worker process the module uses,
    contouring into the overlay). Also the same path with an instant stand-in for the solver (in a
    thread), which is the scene side's share of the latency."""
    figures = {}
    variants = [("", None)] if with_solver else []
    for label, run_preview in [*variants, ("_scene_side_only", _instant_preview)]:
        app = create_scene_app()
        parameters = build_phantom_scene(app.scene, app.segmentations_logic, spacing_mm=1.0)
        solver = SolverProcess() if run_preview is None else None
        preview = LivePreview(app.scene, parameters, run_preview=run_preview, solver=solver)
        probe = parameters.probes()[0]
        tip, entry = probes.probe_tip_entry(probe)
        _move_and_wait(preview, probe, tip, entry, 0.0)  # warm up: label map cache, compiled kernels
        latencies = [_move_and_wait(preview, probe, tip, entry, 0.5 * (step + 1)) for step in range(repeat)]
        preview.stop()
        if solver is not None:
            solver.stop()
        figures[f"live_preview_probe_move_to_overlay{label}"] = min(latencies)
    return figures


def _move_and_wait(preview: LivePreview, probe, tip, entry, shift_mm: float) -> float:
    shift = np.array([shift_mm, 0.0, 0.0])
    start = time.perf_counter()
    probe.SetNthControlPointPositionWorld(probes.TIP_INDEX, (tip + shift).tolist())
    probe.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, (entry + shift).tolist())
    preview.request()
    while not preview.process_pending():
        if preview.last_error is not None:
            raise preview.last_error
        time.sleep(0.002)
    return time.perf_counter() - start


def _instant_preview(case, spacing_mm: float, duration_s: float) -> SimpleNamespace:
    """Stand-in for the solver: a 20 mm radial ball around the first probe tip, on the case grid."""
    return SimpleNamespace(
        grid=case.grid, temperature_final=radial_field(case.grid, case.probes[0].tip_mm, 20.0)
    )


def radial_result(grid: Grid, center, frames_s: list[float]) -> SimpleNamespace:
    """A result shaped like the solver's ``SimulationResult``: a ball growing to 40 mm radius."""
    radius = {t: 10.0 + 30.0 * t / frames_s[-1] for t in frames_s}
    fields = {t: radial_field(grid, center, radius[t]) for t in frames_s}
    times = np.array(frames_s)
    return SimpleNamespace(
        grid=grid,
        simulated_s=frames_s[-1],
        snapshots={t: fields[t] for t in frames_s[:-1]},
        temperature_final=fields[frames_s[-1]],
        min_temperature=fields[frames_s[-1]],
        sensors={"TC1": (times, np.array([float(fields[t][60, 60, 55]) for t in frames_s]))},
        ice_volume_history={
            level: (times, np.array([np.count_nonzero(fields[t] <= level) / 1000.0 for t in frames_s]))
            for level in (0.0, -20.0, -40.0)
        },
    )


def bench_results_and_mrb() -> dict[str, float]:
    """A full result (phantom grid, 1 mm, 29 playback frames) into the scene, then .mrb save/load."""
    app = create_scene_app()
    parameters = build_phantom_scene(app.scene, app.segmentations_logic, spacing_mm=1.0)
    grid = Grid((-60.0, -60.0, -55.0), (1.0, 1.0, 1.0), (121, 121, 111))
    result = radial_result(grid, np.array([-22.0, -6.0, 4.0]), [60.0 * (n + 1) for n in range(28)] + [1680.0])
    figures = {
        "show_result_phantom_1mm_29_frames": best_of(
            1, lambda: results.show_result(app.scene, parameters, result)
        )
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scene.mrb"
        figures["mrb_save"] = best_of(1, lambda: save_scene_mrb(app.scene, path))
        loaded = create_scene_app()
        figures["mrb_load"] = best_of(1, lambda: load_scene_mrb(loaded.scene, path))
        print(f"  (scene bundle: {path.stat().st_size / 1e6:.1f} MB)")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed step (best is kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a step is over its limit")
    parser.add_argument(
        "--skip-preview", action="store_true", help="leave out the live preview with the solver"
    )
    parser.add_argument("--json", type=Path, help="also write the figures, limits and machine to this file")
    args = parser.parse_args(argv)
    print(f"scene benchmarks on {describe_machine()}")
    figures: dict[str, float] = {}
    figures.update(bench_scene_to_case(args.repeat))
    figures.update(bench_metrics_and_isotherms(args.repeat))
    figures.update(bench_live_preview(args.repeat, with_solver=not args.skip_preview))
    figures.update(bench_results_and_mrb())
    over = []
    for name, seconds in figures.items():
        limit = LIMITS_S.get(name)
        verdict = (
            "" if limit is None else (f"  (limit {limit:g} s: " + ("ok)" if seconds <= limit else "OVER)"))
        )
        print(f"{name:52s} {seconds:8.3f} s{verdict}")
        if limit is not None and seconds > limit:
            over.append(name)
    if args.json is not None:
        report = {"machine": describe_machine(), "seconds": figures, "limits_s": LIMITS_S, "over_limit": over}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
