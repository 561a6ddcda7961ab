"""What does the plugin cost a suite, over a plain pytest file doing the same work?

Case 1, many models: ``--models`` (default 200) small generated models (MatMul, Add, Relu,
MatMul, Softmax; different weights each) in ``models/``, tested two ways, each a fresh
``pytest`` process, timed whole (start-up, collection, runs, reporting):

* ``plugin``: ``pytest models/ --onnxrt --onnxref`` (one test per model: ONNX Runtime at
  fp32 against onnx's reference evaluator, the plugin's default tolerances);
* ``plain``: ``pytest test_plain.py -p no:polygraphy``, one test per model that builds an
  ``onnxruntime.InferenceSession`` and a ``ReferenceEvaluator``, runs both on a random
  input and compares with numpy (Polygraphy's rule, rtol = atol = 1e-5).

Runs are interleaved ``--repeats`` times; the table gives median, min, max and the ratio
of the medians (goal: at most 1.2x).

Case 2, one model (dynamic batch) x 5 shape sets x 2 precisions (fp32, fp16) with
``--onnxrt --onnxref``: 10 tests. A conftest reads the plugin's ``RunnerCache.built`` (how
many runners it built, by backend and precision) and the process's peak memory; the same
with 1 shape set shows whether memory grows with the number of shape sets.

``--profile`` also runs case 1's plugin side under cProfile and prints where its time goes.

    python bench/suite.py [--models 200] [--repeats 3] [--profile]

Run it with the project importable (its own virtual environment, or PYTHONPATH=.).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent

PLAIN_TEST = """
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

MODELS = sorted((Path(__file__).parent / "models").glob("*.onnx"))
RTOL = ATOL = 1e-5


@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_model(path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(str(path))
    meta = session.get_inputs()[0]
    feed = {meta.name: np.random.default_rng(1).random([4, 16], dtype=np.float32)}
    actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    expected = dict(zip(reference.output_names, reference.run(None, feed)))
    assert actual.keys() == expected.keys()
    for name, value in actual.items():
        diff = np.abs(value.astype(np.float64) - expected[name])
        bad = (diff > ATOL) & (diff > RTOL * np.abs(expected[name]))
        assert not bad.any(), f"{name}: {int(bad.sum())} mismatched, max diff {diff.max()}"
"""

COUNT_CONFTEST = """
import json
import resource

from pytest_polygraphy.plugin.backends import RUNNER_CACHE_KEY


def pytest_sessionfinish(session):
    cache = session.config.stash.get(RUNNER_CACHE_KEY, None)
    built = {} if cache is None else {f"{b} {p}": n for (b, p), n in cache.built.items()}
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("counts.json", "w") as handle:
        json.dump({"built": built, "peak_mib": peak_kib / 1024}, handle)
"""


def small_model(seed: int, batch: int | str = 4, width: int = 16) -> onnx.ModelProto:
    """``x[batch, width]`` -> softmax(relu(x @ w1 + b) @ w2): a few nodes, own weights."""
    rng = np.random.default_rng(seed)

    def init(name: str, shape: list[int]) -> onnx.TensorProto:
        value = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
        return numpy_helper.from_array(value, name)

    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        f"m{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, width]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, width]),
        ],
        [init("w1", [width, width]), init("b", [width]), init("w2", [width, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def pytest_run(project: Path, *args: str, expect_passed: int) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=project, env=environment(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or f"{expect_passed} passed" not in result.stdout:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr}")
    return elapsed


def many_models(project: Path, count: int, repeats: int) -> None:
    (project / "models").mkdir()
    for i in range(count):
        onnx.save(small_model(i), str(project / "models" / f"m{i:03d}.onnx"))
    (project / "test_plain.py").write_text(PLAIN_TEST)
    cases = {
        "plugin": ["models", "--onnxrt", "--onnxref"],
        "plain": ["test_plain.py", "-p", "no:polygraphy"],
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for args in cases.values():  # warm the file cache
        pytest_run(project, *args, expect_passed=count)
    for i in range(repeats):
        for name in list(cases) if i % 2 == 0 else list(cases)[::-1]:
            timings[name].append(pytest_run(project, *cases[name], expect_passed=count))
    base = statistics.median(timings["plain"])
    print(f"\ncase 1: {count} models, one test each, {repeats} interleaved runs per side")
    print(f"  {'side':8} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>7} {'ms/test':>8}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(
            f"  {name:8} {median:9.2f} {min(values):7.2f} {max(values):7.2f}"
            f" {median / base:6.2f}x {median / count * 1e3:8.1f}"
        )


def shape_sets_case(root: Path, shape_counts: tuple[int, ...] = (1, 5)) -> None:
    print("\ncase 2: 1 model (dynamic batch) x N shape sets x 2 precisions, --onnxrt --onnxref")
    print(f"  {'shape sets':>10} {'tests':>6} {'runners built':>40} {'peak MiB':>9} {'s':>6}")
    for count in shape_counts:
        project = root / f"shapes{count}"
        project.mkdir()
        onnx.save(small_model(0, batch="batch", width=64), str(project / "net.onnx"))
        settings = {
            "input_shapes": [f"x:[{2**i},64]" for i in range(count)],
            "precisions": ["fp32", "fp16"],
        }
        (project / "net.polygraphy.json").write_text(json.dumps(settings))
        (project / "conftest.py").write_text(COUNT_CONFTEST)
        tests = 2 * count
        elapsed = pytest_run(project, "net.onnx", "--onnxrt", "--onnxref", expect_passed=tests)
        counts = json.loads((project / "counts.json").read_text())
        built = ", ".join(f"{k}: {v}" for k, v in sorted(counts["built"].items()))
        total = sum(counts["built"].values())
        print(
            f"  {count:10} {tests:6} {f'{total} ({built})':>40} {counts['peak_mib']:9.0f}"
            f" {elapsed:6.2f}"
        )


def profile(project: Path, count: int) -> None:
    stats = project / "plugin.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "pytest", "-q"]
    command += ["-p", "no:cacheprovider", "models", "--onnxrt", "--onnxref"]
    subprocess.run(command, cwd=project, env=environment(), capture_output=True, check=True)
    import pstats

    print(f"\nwhere the plugin side's time goes ({count} models, cProfile, cumulative):")
    pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(
        r"pytest_polygraphy|onnxruntime/capi/onnxruntime_inference|reference_evaluator", 30
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="suite-bench-") as tmp:
        root = Path(tmp)
        many = root / "many"
        many.mkdir()
        many_models(many, args.models, args.repeats)
        shape_sets_case(root)
        if args.profile:
            profile(many, args.models)


if __name__ == "__main__":
    main()
