"""The solver beside other programs that compute (``make bench``; issue 12, speed under load).

The reference case (three probes, 1 mm, 10-8-10, ``cases.three_probe_kidney``) is timed in a fresh
process: on a quiet machine, beside a 2-thread OpenMP program (a small C program compiled here with
``-fopenmp`` when a compiler exists, else a numba ``parallel=True`` loop on the omp layer in another
process), beside 2-thread BLAS (numpy matmul, ``OPENBLAS_NUM_THREADS=2``, another process), and two
simulations at once in one process (as the module runs a preview beside a simulation). Goal: with
a load beside it, at most 2.5 × the quiet time (median of the runs). Every run's temperature field
is hashed: threading must not change a bit.

    python benchmarks/load_bench.py [--runs N] [--spacing-mm 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from machine import describe as describe_machine  # noqa: E402  (benchmarks/ is on sys.path now)

GOAL_RATIO = 2.5
LOAD_THREADS = 2

_OPENMP_C = textwrap.dedent(
    """
    /* A 2-thread OpenMP program that computes without end: parallel loops with barriers,
       the way an image-processing or reconstruction program keeps cores busy. */
    #include <math.h>
    #include <stdio.h>
    #include <stdlib.h>
    int main(void) {
        const int n = 1 << 16;
        double *a = malloc(n * sizeof(double));
        for (int i = 0; i < n; ++i) a[i] = i;
        for (long round = 0;; ++round) {
            #pragma omp parallel for num_threads(2) schedule(static)
            for (int i = 0; i < n; ++i) a[i] = sin(a[i]) * 0.5 + cos(a[i] + round);
            if (a[round % n] > 1e300) printf("%g\\n", a[0]);
        }
        return 0;
    }
    """
)

_NUMBA_OMP_LOAD = textwrap.dedent(
    """
    import numba, numpy as np
    numba.config.THREADING_LAYER = "omp"
    @numba.njit(parallel=True)
    def work(a, r):
        for i in numba.prange(a.size):
            a[i] = np.sin(a[i]) * 0.5 + np.cos(a[i] + r)
    numba.set_num_threads(2)
    a = np.arange(1 << 16, dtype=np.float64)
    r = 0
    while True:
        work(a, r); r += 1
    """
)

_BLAS_LOAD = textwrap.dedent(
    """
    import numpy as np
    a = np.random.default_rng(0).random((600, 600))
    while True:
        b = a @ a
        a = b / np.abs(b).max()
    """
)


def openmp_load(workdir: Path) -> tuple[list[str], dict, str]:
    """(command, extra environment, description) of the 2-thread OpenMP load."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler:
        source = workdir / "omp_load.c"
        source.write_text(_OPENMP_C, encoding="utf-8")
        binary = workdir / "omp_load"
        built = subprocess.run(
            [compiler, "-O2", "-fopenmp", str(source), "-o", str(binary), "-lm"], capture_output=True
        )
        if built.returncode == 0:
            return [str(binary)], {}, f"C program compiled with {Path(compiler).name} -fopenmp, 2 threads"
    return (
        [sys.executable, "-c", _NUMBA_OMP_LOAD],
        {},
        "numba parallel=True loop on the omp layer, 2 threads (no C compiler found)",
    )


def _timed(case, index: int, results: list, times: list) -> None:
    from CryoAblationLogic.physics.simulation import simulate

    start = time.perf_counter()
    results[index] = simulate(case)
    times[index] = time.perf_counter() - start


def run_case(spacing_mm: float, runs: int, concurrent: int, numba_defaults: bool = False) -> dict:
    """In this process: warm up, then ``runs`` times run ``concurrent`` simulations at once
    (``numba_defaults``: without physics/threads.py, as before issue 12, for comparison)."""
    import numba
    import numpy as np
    from cases import three_probe_kidney

    from CryoAblationLogic.physics import threads

    if numba_defaults:
        threads.use_threads = lambda: 0  # before simulation.py imports it
    from CryoAblationLogic.io.case_file import parse_case
    from CryoAblationLogic.physics.simulation import simulate

    warm = parse_case(
        three_probe_kidney(4.0, protocol=[{"action": "freeze", "duration_s": 20, "probes": "all"}])
    )
    simulate(warm)
    case = parse_case(three_probe_kidney(spacing_mm))
    walls, digests, counts = [], set(), []
    for _ in range(runs):
        results: list = [None] * concurrent
        times = [0.0] * concurrent
        workers = [threading.Thread(target=_timed, args=(case, n, results, times)) for n in range(concurrent)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        walls.append(max(times))
        counts.append(numba.get_num_threads() if numba_defaults else threads.thread_count())
        for result in results:
            digests.add(hashlib.sha256(np.ascontiguousarray(result.temperature_final).tobytes()).hexdigest())
    return {
        "wall_s": sorted(walls)[len(walls) // 2],
        "walls": walls,
        "digests": sorted(digests),
        "layer": threads.threading_layer(),
        "threads_seen": counts,
    }


def scenario(
    name: str,
    spacing_mm: float,
    runs: int,
    load: tuple[list[str], dict] | None,
    concurrent: int = 1,
    numba_defaults: bool = False,
):
    loader = None
    if load is not None:
        command, extra = load
        loader = subprocess.Popen(
            command,
            env={**os.environ, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let the load start computing
    try:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                json.dumps(
                    {
                        "spacing_mm": spacing_mm,
                        "runs": runs,
                        "concurrent": concurrent,
                        "numba_defaults": numba_defaults,
                    }
                ),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if loader is not None:
            loader.kill()
            loader.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median reported)")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="grid spacing of the case")
    parser.add_argument(
        "--compare-numba-defaults",
        action="store_true",
        help="also time numba's own defaults (no physics/threads.py) quiet and beside the OpenMP load",
    )
    args = parser.parse_args()
    if args.one:
        options = json.loads(args.one)
        print(
            json.dumps(
                run_case(
                    options["spacing_mm"], options["runs"], options["concurrent"], options["numba_defaults"]
                )
            )
        )
        return 0
    print(f"machine: {describe_machine()}")
    print(f"reference case: three argon-1.47mm probes, 10-8-10, {args.spacing_mm:g} mm grid")
    with tempfile.TemporaryDirectory() as workdir:
        omp_command, omp_env, omp_description = openmp_load(Path(workdir))
        blas = ([sys.executable, "-c", _BLAS_LOAD], {"OPENBLAS_NUM_THREADS": str(LOAD_THREADS)})
        plan = [
            ("quiet", None, 1, "nothing else running (from this benchmark)"),
            ("beside OpenMP", (omp_command, omp_env), 1, omp_description),
            ("beside BLAS", blas, 1, "numpy matmul in another process, OPENBLAS_NUM_THREADS=2"),
            ("two at once", None, 2, "two simulations in one process, each timed (the slower one)"),
        ]
        if args.compare_numba_defaults:
            plan += [
                ("numba defaults, quiet", None, 1, "without physics/threads.py (before issue 12)"),
                ("numba defaults, beside OpenMP", (omp_command, omp_env), 1, "the same, beside the load"),
            ]
        rows, digests = [], set()
        for name, load, concurrent, description in plan:
            defaults = name.startswith("numba defaults")
            r = scenario(name, args.spacing_mm, args.runs, load, concurrent, defaults)
            rows.append((name, description, r))
            digests.update(r["digests"])
    quiet = rows[0][2]["wall_s"]
    failures = 0
    for name, description, r in rows:
        ratio = r["wall_s"] / quiet
        goal = ""
        if name in ("beside OpenMP", "beside BLAS", "two at once"):
            goal = f" (goal ≤ {GOAL_RATIO:g}×: {'met' if ratio <= GOAL_RATIO else 'NOT met'})"
            failures += ratio > GOAL_RATIO
        print(
            f"  {name:30s} {r['wall_s']:6.2f} s  {ratio:5.2f}× quiet{goal}; layer {r['layer']}, "
            f"threads {r['threads_seen']}, runs {[round(w, 2) for w in r['walls']]}; {description}"
        )
    same = len(digests) == 1
    verdict = "the same bit for bit in every run" if same else f"DIFFER: {sorted(digests)}"
    print(f"  temperature fields: {verdict}")
    if failures:
        print(f"  {failures} goal(s) not met (on a shared machine, compare with its load average above)")
    return 0 if same else 1  # like the other benchmarks: goals are reported, a changed result fails


if __name__ == "__main__":
    sys.exit(main())
