"""Benchmark: CompareFunc.simple against Polygraphy 0.53.6 and numpy.allclose.

    python bench/compare.py [--size 50000000] [--repeat 3]

Each contender runs in a fresh subprocess that generates the same two float32 arrays from
a fixed seed (``expected`` normal, ``actual = expected + 1e-5 * normal``, so about a
quarter of the elements fail the default tolerances and every code path runs). It
reports the wall time of the first run (which pays the page faults of any fresh
temporaries) and the best of ``--repeat`` runs, and the peak extra memory of the first
run: the rise of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs after the arrays exist) over its resident set before the run. The
ratios use the best times.

Polygraphy is never a dependency of the project: it is pip-installed, with numpy, into
``bench/.venv-polygraphy`` on first use and run there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import render_table

HERE = Path(__file__).resolve().parent
POLYGRAPHY_VENV = HERE / ".venv-polygraphy"
POLYGRAPHY_VERSION = "0.53.6"
SEED = 0
RTOL = ATOL = 1e-5

CONTENDERS = {
    "polygraphy": "Polygraphy 0.53.6 CompareFunc.simple()",
    "allclose": "numpy.allclose",
    "ours": "pytest-polygraphy simple()",
    "ours-1-thread": "pytest-polygraphy simple(), 1 thread",
    "ours-exact-median": 'pytest-polygraphy simple(check_error_stat="median")',
}


# -- worker side: runs in a fresh process, prints one JSON line --------------------------


def _arrays(size: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    expected = rng.standard_normal(size, dtype=np.float32)
    actual = expected + rng.standard_normal(size, dtype=np.float32) * np.float32(1e-5)
    return actual, expected


def _memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _contender(name: str) -> Callable[[Any, Any], bool]:
    if name == "polygraphy":
        from polygraphy.comparator import CompareFunc
        from polygraphy.comparator.struct import IterationResult
        from polygraphy.logger import G_LOGGER

        G_LOGGER.module_severity = G_LOGGER.ERROR  # keep its logs off the table
        func = CompareFunc.simple(rtol=RTOL, atol=ATOL)

        def polygraphy(actual: Any, expected: Any) -> bool:
            result = func(
                IterationResult({"y": actual}, runner_name="actual"),
                IterationResult({"y": expected}, runner_name="expected"),
            )
            return bool(result["y"])

        return polygraphy
    if name == "allclose":
        import numpy as np

        return lambda actual, expected: bool(np.allclose(actual, expected, rtol=RTOL, atol=ATOL))

    from pytest_polygraphy.compare import CompareFunc, _kernels

    if name == "ours-1-thread":
        _kernels.MAX_THREADS = 1
    stat = "median" if name == "ours-exact-median" else "elemwise"
    func = CompareFunc.simple(rtol=RTOL, atol=ATOL, check_error_stat=stat)
    return lambda actual, expected: bool(func({"y": actual}, {"y": expected}))


def worker(name: str, size: int, repeat: int) -> None:
    actual, expected = _arrays(size)
    run = _contender(name)
    clear_refs = Path("/proc/self/clear_refs")
    baseline = _memory_kb("VmRSS")
    clear_refs.write_text("5")  # resets VmHWM to the current resident set
    times = []
    start = time.perf_counter()
    passed = run(actual, expected)
    times.append(time.perf_counter() - start)
    peak_extra = (_memory_kb("VmHWM") - baseline) * 1024
    for _ in range(repeat - 1):
        start = time.perf_counter()
        run(actual, expected)
        times.append(time.perf_counter() - start)
    result = {
        "name": name,
        "first_s": times[0],
        "best_s": min(times),
        "peak_extra_bytes": max(peak_extra, 0),
        "input_bytes": expected.nbytes,
        "passed": passed,
    }
    print(json.dumps(result))


# -- driver side ---------------------------------------------------------------------


def polygraphy_python() -> Path:
    """The benchmark environment's interpreter, created with Polygraphy on first use."""
    python = POLYGRAPHY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {POLYGRAPHY_VENV} with polygraphy=={POLYGRAPHY_VERSION} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(POLYGRAPHY_VENV)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", f"polygraphy=={POLYGRAPHY_VERSION}", "numpy"],
            check=True,
        )
    return python


def run_contender(name: str, python: Path | str, size: int, repeat: int) -> dict[str, Any]:
    command = [str(python), __file__, "--worker", name, "--size", str(size)]
    command += ["--repeat", str(repeat)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict[str, Any]]) -> str:
    by_name = {r["name"]: r for r in results}
    polygraphy = by_name.get("polygraphy")
    allclose = by_name.get("allclose")
    header = (
        "contender",
        "first s",
        "best s",
        "peak extra MB",
        "x input",
        "vs Polygraphy",
        "vs allclose",
    )
    rows = [header]
    for r in results:
        speedup = f"{polygraphy['best_s'] / r['best_s']:.1f}x faster" if polygraphy else "-"
        relative = f"{r['best_s'] / allclose['best_s']:.2f}x time" if allclose else "-"
        rows.append(
            (
                CONTENDERS[r["name"]],
                f"{r['first_s']:.3f}",
                f"{r['best_s']:.3f}",
                f"{r['peak_extra_bytes'] / 1e6:.1f}",
                f"{r['peak_extra_bytes'] / r['input_bytes']:.3f}",
                speedup,
                relative,
            )
        )
    return render_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000_000, help="elements per array")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender")
    parser.add_argument(
        "--only", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS), help="contenders"
    )
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.size, args.repeat)
        return

    results = []
    for name in args.only:
        python = polygraphy_python() if name == "polygraphy" else sys.executable
        repeat = 1 if name == "polygraphy" else args.repeat  # ~15 s a run at 50M
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(run_contender(name, python, args.size, repeat))
    mb = results[0]["input_bytes"] / 1e6
    print(f"\n{args.size:,} float32 elements per array ({mb:.0f} MB), rtol=atol={RTOL}, ")
    print(f"cpus: {os.cpu_count()}, best of {args.repeat} (Polygraphy: 1 run)\n")
    print(table(results))
    # The exact-median row checks another statistic; the elementwise verdicts must agree.
    verdicts = {r["name"]: r["passed"] for r in results if r["name"] != "ours-exact-median"}
    if len(set(verdicts.values())) > 1:
        print(f"\nWARNING: verdicts differ: {verdicts}")


if __name__ == "__main__":
    main()
