"""``cryoablation simulate CASE.cryo.json --out DIR``: run a case file, write its result folder;
when the case names its target and structures (key ``structures``), also the warnings (printed,
most severe first), ``metrics.json`` and the record (``report.html``, ``report.pdf``)."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.progress import ProgressBar
from CryoAblationLogic.io.case_file import load_case
from CryoAblationLogic.io.result_folder import write_result_folder
from CryoAblationLogic.io.volumes import read_nrrd
from CryoAblationLogic.physics.probes import load_probe_catalog

NAME = "simulate"
HELP = "run an ice-ball simulation case file (*.cryo.json) and write its result folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", type=Path, help="case file (*.cryo.json)")
    parser.add_argument("--out", type=Path, required=True, help="result folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--image",
        type=Path,
        help="image on the case grid (NRRD) for the record's pictures; default: the tissue label map",
    )
    parser.add_argument(
        "--safety-rules",
        type=Path,
        help="JSON file of safety thresholds (docs/metrics-format.md); default: the documented ones",
    )
    parser.add_argument("--no-record", action="store_true", help="no metrics.json and no report")
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write DIR/dicom/: the image as an MR series and SEG, RT Structure Set and maps on it",
    )


def run_case(
    case,
    out: Path,
    quiet: bool = False,
    description: str = "simulating",
    frame_interval_s: float | None = None,
):
    """Simulate ``case`` with a progress bar (elapsed, time left) and write its result folder.

    With ``frame_interval_s``, the result also carries ``playback_frames`` (:func:`simulate_with_frames`)
    for a scene's playback; the result folder and the numbers stay those of the plain run."""
    from CryoAblationLogic.physics.simulation import simulate  # numba kernels compile or load on first use

    with ProgressBar(case.duration_s, description, unit="s", enabled=False if quiet else None) as bar:
        if frame_interval_s:
            result = simulate_with_frames(case, frame_interval_s, progress=bar)
        else:
            result = simulate(case, progress=bar)
    write_result_folder(result, out, case)
    return result


def simulate_with_frames(case, interval_s: float, progress=None):
    """:func:`~CryoAblationLogic.physics.simulation.simulate`, step for step the same (the solver is
    not asked to stop anywhere else, so every number is the same bit for bit), and a playback frame
    every ``interval_s`` of the protocol: the field at that time, interpolated linearly between the
    solver's steps on either side (at most ``max_dt_s`` apart, 16 s on a 1 mm grid); frames that fall
    on a step (protocol boundaries, the end) are the solver's own. Set as ``result.playback_frames``
    ({time s: field}); the case's snapshots stay as they were."""

    # numba: compiled or loaded on first use, and installed in Slicer only on first use
    from CryoAblationLogic.physics.simulation import Simulation, SimulationResult

    if not interval_s > 0:
        raise InputError("playback interval", "must be a positive number of seconds")
    start = time.perf_counter()
    pending = [float(t) for t in np.arange(interval_s, case.duration_s + 1e-9, interval_s)]
    frames: dict[float, np.ndarray] = {}
    times = sorted({float(t) for t in case.outputs.snapshot_times_s})
    running = Simulation(case, snapshot_count=len(times))
    before = {"time_s": 0.0, "field": running.temperature_c}

    def after_step(fraction: float, time_s: float) -> None:
        if progress is not None:
            progress(fraction, time_s)
        field = None
        while pending and pending[0] <= time_s + 1e-6:
            field = running.temperature_c if field is None else field
            mark = pending.pop(0)
            span = time_s - before["time_s"]
            if abs(time_s - mark) <= 1e-6 or span <= 0 or before["field"] is None:
                frames[mark] = field
            else:
                weight = (mark - before["time_s"]) / span
                frames[mark] = ((1.0 - weight) * before["field"] + weight * field).astype(np.float32)
        # keep this step's field only when the next step may cross a mark (a copy costs a grid)
        near = bool(pending) and pending[0] <= time_s + running.max_dt_s + 1e-6
        before["time_s"] = time_s
        before["field"] = (field if field is not None else running.temperature_c) if near else None

    snapshots: dict[float, np.ndarray] = {}
    for t in [*times, case.duration_s]:
        running.advance_to(t, progress=after_step, total_s=case.duration_s)
        if t in times:
            snapshots[t] = running.temperature_c
    final = snapshots.get(case.duration_s)
    final = running.temperature_c if final is None else final.copy()
    values = {
        "grid": case.grid,
        "temperature_final": final,
        "min_temperature": running.min_temperature_c,
        "snapshots": snapshots,
        "sensors": running.sensor_history,
        "isotherm_volumes_ml": running.isotherm_volumes_ml(final),
        "ice_volume_history": running.ice_volume_history(),
        "energy_balance_error": running.energy_balance_error(),
        "wall_s": time.perf_counter() - start,
        "simulated_s": running.time_s,
        "probe_history": running.probe_history,
        "steps": running.steps,
        "sweeps": running.sweeps,
        "voxel_updates": running.voxel_updates,
        "coarse_corrections": running.corrections,
    }
    known = {item.name for item in dataclass_fields(SimulationResult)}
    result = SimulationResult(**{key: value for key, value in values.items() if key in known})
    result.playback_frames = frames
    return result


def write_case_record(
    out: Path,
    case,
    result,
    image: np.ndarray | None,
    *,
    rules=None,
    title: str = "CryoAblation plan record",
    dicom: bool = False,
):
    """Metrics, warnings, the record and (``dicom``) the DICOM export of a simulated case with
    ``structures``; returns the ``ResultRecord`` (None when the case names no target)."""
    # metrics and the record: loaded only when the case names its structures
    from CryoAblationLogic.analysis.metrics import case_structures
    from CryoAblationLogic.report.record import write_result_record  # matplotlib: only when a record is made

    structures, types = case_structures(case)
    if not structures.get("target"):
        return None
    if image is None:
        image = np.asarray(case.tissue_labels, dtype=np.float32)
    record = write_result_record(
        out, case, result, image, structures,
        structure_types=types, rules=rules, catalog=load_probe_catalog(), title=title,
    )  # fmt: skip
    if dicom:
        # DICOM libraries: loaded only when DICOM is asked for
        from CryoAblationLogic.io.dicom_export import write_result_dicom

        write_result_dicom(
            out / "dicom", image, case.grid, result.temperature_final, result.min_temperature,
            structures, [item.level_c for item in record.metrics.isotherms],
        )  # fmt: skip
    return record


def print_record_summary(record) -> None:
    # metrics and the record: loaded only when the case names its structures
    from CryoAblationLogic.analysis.findings import warnings_table

    print("warnings, most severe first:")
    print(warnings_table(record.warnings))
    print(f"metrics written to {record.metrics_file}")
    print(f"report written to {record.files.html} and {record.files.pdf}")


def run(args: argparse.Namespace) -> int:
    # metrics and the record: loaded only when the case names its structures
    from CryoAblationLogic.analysis.safety import load_rules

    case = load_case(args.case)
    rules = load_rules(args.safety_rules) if args.safety_rules else None
    image = None
    if args.image is not None:
        if not args.image.is_file():
            raise InputError(str(args.image), "image file not found")
        image, image_grid = read_nrrd(args.image)
        if image_grid != case.grid:
            raise InputError("--image", f"lies on {image_grid}, the case grid is {case.grid}")
    result = run_case(case, args.out, args.quiet)
    volumes = ", ".join(
        f"{level:g} °C: {volume:.2f} ml" for level, volume in result.isotherm_volumes_ml.items()
    )
    print(
        f"simulated {result.simulated_s:g} s in {result.wall_s:.2f} s wall; isotherm volumes {volumes}; "
        f"energy balance error {result.energy_balance_error:.2e}"
    )
    print(f"results written to {args.out}/")
    if not args.no_record:
        record = write_case_record(args.out, case, result, image, rules=rules, dicom=args.dicom)
        if record is None:
            print('no metrics or report: the case names no target (add "structures" to the case file)')
        else:
            print_record_summary(record)
    return 0
