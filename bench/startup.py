"""What does installing pytest-polygraphy add to every pytest start?

Times ``pytest --co -q`` on an unrelated project (plain test files, no models) in
virtual environments that differ only in what is installed:

* ``bare``: pytest and pytest-xdist (xdist is the plugin's own requirement and use case);
* ``plugin``: the plugin installed from this checkout as a user installs it
  (``pip install ".[cpu]"``, not editable, so it is compiled like any installed package);
* ``plugin+hypothesis`` (unless ``--no-hypothesis``): the same with the ``hypothesis``
  extra, whose own pytest plugin then loads on every start too.

Each condition runs every environment ``--repeats`` times, interleaved, and prints the
median, min and max wall time and the ratio to ``bare`` (median of the per-round ratios,
with their min and max), then the same for CPU time (user + system of the pytest
process), which other work on a shared machine disturbs much less than wall time.
Conditions:

* ``default``: .pyc files as pip wrote them; pytest caches its assert-rewritten copies of
  the plugin's modules (pytest rewrites every module of a pytest11 plugin's distribution);
* ``PYTHONDONTWRITEBYTECODE=1``: pip's .pyc files, but pytest's cached rewrites removed
  first and never written again, so pytest parses and compiles every plugin module it
  imports (ours, hypothesis's) at every start: a container image with that variable set;
* ``PYTHONDONTWRITEBYTECODE=1, no .pyc``: every ``__pycache__`` in the environments removed
  first, so each start compiles every module it imports (an image built with
  ``pip install --no-compile``); they are rebuilt afterwards.

The environments live in ``bench/.venv-startup-*`` (git-ignored) and are reused; the
plugin is reinstalled from the checkout (``--no-deps``) on every run so the figures are
for the code as it is. ``--rebuild`` makes them anew. Goal: ``plugin`` within 10 % of
``bare``.

    python3 bench/startup.py [--repeats 21] [--rebuild] [--no-hypothesis]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

#: name -> what pip installs into it (the plugin is reinstalled from the checkout each run)
ENVIRONMENTS: dict[str, list[str]] = {
    "bare": ["pytest", "pytest-xdist"],
    "plugin": [f"{ROOT}[cpu]"],
    "plugin+hypothesis": [f"{ROOT}[cpu,hypothesis]"],
}


def venv_python(name: str) -> Path:
    return BENCH / f".venv-startup-{name}" / "bin" / "python"


def pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        check=True,
    )


def prepare(names: list[str], rebuild: bool) -> None:
    """Create missing environments; reinstall the plugin from the checkout."""
    for name in names:
        python = venv_python(name)
        if rebuild and python.parent.parent.exists():
            shutil.rmtree(python.parent.parent)
        if not python.exists():
            print(f"building {python.parent.parent.name} ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
            pip(python, *ENVIRONMENTS[name])
        if name != "bare":
            pip(python, "--no-deps", "--force-reinstall", str(ROOT))


def make_project(root: Path, files: int = 20, tests: int = 5) -> None:
    """An unrelated project: ``files`` test modules of ``tests`` trivial tests each."""
    for i in range(files):
        body = "".join(f"def test_{j}():\n    assert {j} == {j}\n\n\n" for j in range(tests))
        (root / f"test_module_{i}.py").write_text(body)


def site_packages(name: str) -> list[Path]:
    return list((venv_python(name).parent.parent / "lib").glob("python*/site-packages"))


def strip_bytecode(names: list[str], pattern: str | None = None) -> None:
    """Remove the ``__pycache__`` folders, or only the files matching ``pattern``."""
    for name in names:
        for site in site_packages(name):
            for cache in site.rglob("__pycache__"):
                if pattern is None:
                    shutil.rmtree(cache, ignore_errors=True)
                else:
                    for pyc in cache.glob(pattern):
                        pyc.unlink()


def restore_bytecode(names: list[str]) -> None:
    for name in names:
        for site in site_packages(name):
            subprocess.run(
                [str(venv_python(name)), "-m", "compileall", "-q", str(site)],
                check=False,
                stdout=subprocess.DEVNULL,
            )


def time_collect(name: str, project: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``pytest --co`` in environment ``name``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [str(venv_python(name)), "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0 or "100 tests collected" not in result.stdout:
        raise SystemExit(f"{name}: pytest --co failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, cpu


Timings = dict[str, list[tuple[float, float]]]


def measure(names: list[str], project: Path, env: dict[str, str], repeats: int) -> Timings:
    for name in names:  # warm the file cache (and write .pyc where allowed)
        time_collect(name, project, env)
    timings: Timings = {name: [] for name in names}
    for i in range(repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            timings[name].append(time_collect(name, project, env))
    return timings


def report(title: str, timings: Timings) -> None:
    print(f"\n{title}")
    for index, kind in enumerate(("wall", "CPU")):
        table(kind, {name: [t[index] for t in values] for name, values in timings.items()})


def table(kind: str, timings: dict[str, list[float]]) -> None:
    base = timings["bare"]
    print(
        f"  {kind + ' time':20} {'median ms':>10} {'min ms':>8} {'max ms':>8}"
        f" {'ratio (median)':>15} {'ratio min..max':>16}"
    )
    for name, values in timings.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        print(
            f"  {name:20} {statistics.median(values) * 1e3:10.1f} {min(values) * 1e3:8.1f}"
            f" {max(values) * 1e3:8.1f} {statistics.median(ratios):14.3f}x"
            f" {min(ratios):7.3f}..{max(ratios):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--rebuild", action="store_true", help="make the environments anew")
    parser.add_argument("--no-hypothesis", action="store_true", help="skip plugin+hypothesis")
    args = parser.parse_args()

    names = [n for n in ENVIRONMENTS if not (args.no_hypothesis and n == "plugin+hypothesis")]
    prepare(names, args.rebuild)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON", "COV_"))}
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        project = Path(tmp)
        make_project(project)
        print(f"pytest --co -q on 20 files x 5 tests, {args.repeats} interleaved runs each")
        report("default (.pyc as pip wrote them)", measure(names, project, env, args.repeats))
        no_write = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        strip_bytecode(names, "*-pytest-*.pyc")  # pytest's cached assert rewrites
        report(
            "PYTHONDONTWRITEBYTECODE=1 (pip's .pyc; pytest rewrites plugin modules every start)",
            measure(names, project, no_write, args.repeats),
        )
        strip_bytecode(names)
        try:
            report(
                "PYTHONDONTWRITEBYTECODE=1, no .pyc (every start compiles what it imports)",
                measure(names, project, no_write, args.repeats),
            )
        finally:
            restore_bytecode(names)


if __name__ == "__main__":
    main()
