"""The example suites in ``examples/`` are real, runnable suites: run them as a user would
(a separate pytest process in a copy of the folder), serially and under xdist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _copy_examples(tmp_path: Path) -> Path:
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", ".*cache*"))
    return target


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _counts(output: str) -> dict[str, int]:
    last = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_example_suite_passes(tmp_path: Path, xdist: list[str]) -> None:
    folder = _copy_examples(tmp_path)
    result = _pytest(folder, *xdist)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = _counts(result.stdout)
    # model files (3 models x precisions x shape sets) and every hand-written example
    assert counts.get("passed", 0) >= 15, result.stdout
    assert "failed" not in counts
    assert "polygraphy accuracy" in result.stdout


def test_example_models_are_collected_as_tests(tmp_path: Path) -> None:
    folder = _copy_examples(tmp_path)
    result = _pytest(folder, "--co", "models")
    ids = set(re.findall(r"(models/\S+\.onnx::\S+)", result.stdout))
    assert "models/tiny_cnn.onnx::accuracy[fp16-image=4x3x16x16]" in ids
    assert "models/detector_head.onnx::accuracy[fp32-features=8x32]" in ids
    assert len(ids) == 2 * 2 + 2 + 2  # tiny_cnn: 2 precisions x 2 shapes; others: 2 precisions


def test_example_golden_file_catches_a_changed_output(tmp_path: Path) -> None:
    folder = _copy_examples(tmp_path)
    (golden,) = (folder / "golden").rglob("*.npz")
    with np.load(golden) as data:
        arrays = {key: data[key].copy() for key in data.files}
    key = next(k for k in arrays if k.endswith("boxes"))
    arrays[key][0, 0] += 5.0
    np.savez(golden, **arrays)
    result = _pytest(folder, "test_golden.py")
    assert result.returncode == 1, result.stdout
    assert "boxes" in result.stdout and "Mismatched elements: 1 / 16" in result.stdout


def test_example_golden_file_is_missing_with_the_command_to_make_it(tmp_path: Path) -> None:
    folder = _copy_examples(tmp_path)
    shutil.rmtree(folder / "golden")
    result = _pytest(folder, "test_golden.py")
    assert result.returncode == 1
    command = re.search(r"create it with:\n\s+(pytest .*)", result.stdout)
    assert command, result.stdout
    args = command.group(1).split()[1:]
    made = _pytest(folder, *[a.strip("'") for a in args])
    assert made.returncode == 0, made.stdout
    assert _pytest(folder, "test_golden.py").returncode == 0
