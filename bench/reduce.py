"""Benchmark: ``pytest --polygraphy-reduce`` against Polygraphy 0.53.6 ``debug reduce``.

    python bench/reduce.py [--cases chain real engine] [--chain-nodes 245] [--work DIR]
                           [--repeats 3]

Two models, each with one planted fp16 overflow, ``Exp(Mul(t, s))`` followed by ``Log``
(in the real model then ``t + 0 * that``, so that the fp32 model computes what it
computed before): ``Exp`` overflows float16 (65504) wherever ``s * t`` is above ~11.1.
The planted ``Exp`` is the first node whose fp16 output goes wrong: the node both tools
should end at.

- ``chain``: a generated chain of about 245 nodes of ops that are exact in fp16 for inputs
  in [0, 1] (Neg, Abs, Relu, Mul by 0.5 and 2), so only the planted node can fail.
- ``real``: the PaddleOCR direction classifier (paddle2onnx, about 560 nodes) from the
  ``rapidocr-onnxruntime`` wheel, pip-installed with ``--no-deps`` into ``bench/.models``;
  the fault goes into a copy, after the output of its middle ``Relu``. Plain fp16 rounding
  already fails most of its intermediate tensors at rtol = atol = 2e-3 (190 of 252 on the
  bench's input, none with NaN or Inf), so here both tools count a check as failing only
  when the fp16 run also produced NaN or Inf: ours with ``--polygraphy-fail-on``, Polygraphy's with
  ``--fail-code 1 --fail-regex`` on its own ``Comparator.validate`` log. Without that
  filter both would, rightly, stop at the first naturally failing tensor.

The check is the same comparison on both sides: the model (or variant) run by onnx's
reference evaluator with the project's operators (``runners/onnxref_ops``, what
``--onnxref`` runs) at fp32 and at fp16, fp16 converted by the project's ``convert_to_fp16``
on both sides (Polygraphy's own conversion needs onnxmltools and converts differently; the
bench compares reducers, not converters), fp16 vs fp32 compared with rtol = atol = 2e-3,
inputs from the same Polygraphy JSON file. Not ONNX Runtime: its CPU provider casts around
fp16 nodes that have no fp16 kernel (Log), and the fp16 Exp before such a Log ran in fp32
too (fp16 ``Log(Exp(12))`` gives 12 there, not inf, at every optimization level), so the
planted Exp never overflows on it. Polygraphy has no runner on the reference evaluator;
the check defines a minimal one (``onnxref_runner``), with the same operators.

- Ours: ``pytest MODEL --onnxref --polygraphy-precisions fp16 --polygraphy-reduce`` in a
  subprocess, wall time of the whole command; checks from its summary (``N checks``).
- Polygraphy: its documented workflow (examples/cli/debug/02_reducing_failing_onnx_models):
  ``surgeon sanitize --fold-constants --override-input-shapes`` when the model has dynamic
  inputs or shape ops; ``run --onnxrt --onnx-outputs mark all`` for the values of every
  tensor (ONNX Runtime at fp32, as in the example; they match the reference evaluator's to
  float32 rounding); ``data merge`` (0.53's name for the example's ``data to-input``);
  ``debug reduce --mode bisect --load-inputs ... --fail-code 1 --check`` with this file's
  ``--check-model`` mode as the check (Polygraphy's ``Comparator`` and
  ``CompareFunc.simple``, one process per check, as ``--check`` works); then, as the same
  example says, a ``--mode linear`` pass when bisect left more than one node. Checks are
  counted by the check itself (one line per run in a counter file). Wall time is the sum
  of the steps.

``--backend onnxrt --providers cuda`` runs both sides on ONNX Runtime's CUDA provider
instead (on the GPU machine: ``bench/gpu/run_reduce_bench_gpu.sh``), where fp16 is real;
``--polygraphy-site DIR`` takes Polygraphy from a folder (a machine with no registry).

``engine``: the reduce engine alone, without pytest: ``ReduceSession`` on a 1000-node chain
(the goal's largest N) and on the planted real model, with a check that only looks whether
the variant holds the planted node, so that the session's wall time less the check's and
the reference values' is the engine's own (cuts, variant models, hashes, journal, search,
``minimal_failing/``); the goal is 10 ms per check. It also counts the reference runs (one
per session).

Polygraphy is never a dependency of the project: it is pip-installed into
``bench/.venv-polygraphy`` (with numpy, onnx, onnx-graphsurgeon, which ``debug reduce``
needs, and the project venv's onnxruntime version) on first use and run there.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import (
    MODELS,
    exact_chain,
    input_array,
    ocr_models,
    render_table,
    timed,
    tool_env,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
POLYGRAPHY_VENV = HERE / ".venv-polygraphy"
POLYGRAPHY_VERSION = "0.53.6"
REAL_TARGET_NODES = 560
RTOL = ATOL = 2e-3
PLANTED = "planted_exp"
#: Ours: the failure text must show NaN or Inf in the fp16 run (the "actual" side).
OURS_NONFINITE = r"actual has \d+ (NaN|Inf)"
#: Polygraphy: Comparator.validate's log for the fp16 run.
POLYGRAPHY_NONFINITE = r"(Inf|NaN) Detected"


@dataclass(frozen=True)
class Setup:
    """What both sides run (``--backend``, ``--providers``) and where Polygraphy lives
    (``--polygraphy-site``: a folder holding it, for a machine that reaches no package
    registry; else ``bench/.venv-polygraphy``, created on first use)."""

    backend: str = "onnxref"
    provider: str = "cpu"
    polygraphy_site: Path | None = None

    def describe(self) -> str:
        if self.backend == "onnxref":
            return "onnx's reference evaluator"
        return f"ONNX Runtime's {self.provider.upper()} provider"


SETUP = Setup()


# -- models -------------------------------------------------------------------------


def _opset_model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> Any:
    from onnx import helper

    graph = helper.make_graph(nodes, "chain", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def chain_model(total: int, width: int = 64) -> Any:
    """``x[1, width]`` through ``total`` nodes; the planted ``Mul(40) -> Exp -> Log`` sits
    at about 60 % of the chain (not on a halving boundary). Every other node is exact in
    fp16 for values in [0, 1]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array(value, np.float32), name)
        for name, value in (("half", 0.5), ("two", 2.0), ("planted_scale", 40.0))
    ]

    def plant(k: int, previous: str, out: str) -> list[Any]:
        return [
            helper.make_node("Mul", [previous, "planted_scale"], ["s"], "planted_mul"),
            helper.make_node("Exp", ["s"], ["e"], PLANTED),
            helper.make_node("Log", ["e"], [out], "planted_log"),
        ]

    shared = {0.5: "half", 2.0: "two"}  # one initializer each, read by every Mul
    nodes = exact_chain(total, [int(total * 0.6) + 2], plant, lambda name, v: shared[v])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])
    model = _opset_model(nodes, [x], [y], inits)
    onnx.checker.check_model(model)
    return model


def pick_real_model() -> tuple[Path, dict[str, int]]:
    """The OCR model whose node count is nearest ``REAL_TARGET_NODES``, and every count."""
    import onnx

    counts = {
        path.name: len(onnx.load(str(path), load_external_data=False).graph.node)
        for path in ocr_models()
    }
    name = min(counts, key=lambda n: abs(counts[n] - REAL_TARGET_NODES))
    return MODELS / "rapidocr_onnxruntime" / "models" / name, counts


def fixed_shape(model: Any, batch: int = 1, height: int = 48, width: int = 192) -> tuple[int, ...]:
    """A concrete shape for the model's single image input (the classifier's 48x192)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    defaults = (batch, 3, height, width)
    return tuple(d.dim_value if d.dim_value > 0 else defaults[i] for i, d in enumerate(dims))


def plant_real(source: Path, shape: tuple[int, ...]) -> tuple[Any, str]:
    """A copy of ``source`` where the output ``t`` of its middle Relu becomes
    ``t + 0 * Log(Exp(s * t))``; ``s`` makes the largest value 20 for the bench's input.
    In fp32 exp(20) is finite, so the sum is exactly ``t``; in fp16 the Exp overflows and
    ``0 * inf`` is NaN, which no later node can hide (an inf alone is squashed back into
    range by the SE blocks' HardSigmoid once BatchNormalization runs in inference mode).
    Returns the model and the tensor cut into."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    relus = [node for node in model.graph.node if node.op_type == "Relu"]
    target = relus[len(relus) // 2].output[0]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.ValueInfoProto(name=target))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (values,) = session.run([target], {name: input_array(shape)})
    peak = float(np.max(values))
    if not peak > 0:
        raise RuntimeError(f"{target!r} has no positive value; cannot plant the overflow")
    scale = 20.0 / peak
    restored = f"{target}_restored"
    for node in model.graph.node:
        for position, read in enumerate(node.input):
            if read == target:
                node.input[position] = restored
    for value in model.graph.output:
        if value.name == target:
            raise RuntimeError(f"{target!r} is a graph output; pick another tensor")
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(scale, np.float32), "planted_scale"),
            numpy_helper.from_array(np.array(0.0, np.float32), "planted_zero"),
        ]
    )
    planted = [
        helper.make_node("Mul", [target, "planted_scale"], ["planted_s"], "planted_mul"),
        helper.make_node("Exp", ["planted_s"], ["planted_e"], PLANTED),
        helper.make_node("Log", ["planted_e"], ["planted_l"], "planted_log"),
        helper.make_node("Mul", ["planted_l", "planted_zero"], ["planted_z"], "planted_zero_mul"),
        helper.make_node("Add", [target, "planted_z"], [restored], "planted_add"),
    ]
    # paddle2onnx names both spatial dims "?"; the project's input check reads a repeated
    # dim_param as one dimension (height == width) and refuses 48x192, so the copy names
    # them apart (reported; ONNX Runtime and Polygraphy accept the original).
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.dim_param == "?":
                dim.dim_param = f"{value.name}_dim{axis}"
    nodes = list(model.graph.node)
    at = next(i for i, node in enumerate(nodes) if target in node.output) + 1
    del model.graph.node[:]
    model.graph.node.extend(nodes[:at] + planted + nodes[at:])
    onnx.checker.check_model(model)
    return model, target


# -- Polygraphy side: runs in bench/.venv-polygraphy ---------------------------------


def write_inputs(path: Path, name: str, shape: tuple[int, ...]) -> None:
    from polygraphy.json import save_json

    save_json([{name: input_array(shape)}], str(path))


def onnxref_runner(model: Any, name: str) -> Any:
    """A Polygraphy runner on onnx's ``ReferenceEvaluator`` with the project's operators
    (Polygraphy has no such runner), so that Polygraphy's side runs exactly what
    ``--onnxref`` runs."""
    from collections import OrderedDict

    from onnx.reference import ReferenceEvaluator
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata
    from polygraphy.datatype import DataType

    class OnnxrefRunner(BaseRunner):
        def activate_impl(self) -> None:
            self.evaluator = ReferenceEvaluator(model, new_ops=list(_reference_ops()))

        def get_input_metadata_impl(self) -> Any:
            meta = TensorMetadata()
            for value in model.graph.input:
                tensor = value.type.tensor_type
                shape = [d.dim_value if d.dim_value > 0 else None for d in tensor.shape.dim]
                meta.add(value.name, DataType.from_dtype(tensor.elem_type, "onnx"), shape)
            return meta

        def infer_impl(self, feed_dict: Any) -> Any:
            start = time.perf_counter()
            outputs = self.evaluator.run(None, dict(feed_dict))
            self.inference_time = time.perf_counter() - start
            names = [value.name for value in model.graph.output]
            return OrderedDict(zip(names, outputs, strict=True))

        def deactivate_impl(self) -> None:
            del self.evaluator

    return OnnxrefRunner(name=name)


def _reference_ops() -> Any:
    """The project's ``reference_ops()``, its module loaded from its file alone: importing
    it through ``pytest_polygraphy.runners`` would charge every Polygraphy check for the
    imports of the project's other runners."""
    import importlib.util

    path = REPO / "pytest_polygraphy" / "runners" / "onnxref_ops.py"
    spec = importlib.util.spec_from_file_location("onnxref_ops", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_ops()


def check_model(
    model_path: Path, inputs: Path, counter: Path, backend: str = "onnxref", provider: str = "cpu"
) -> int:
    """Polygraphy's side of a check: fp16 vs fp32 of ``model_path`` on onnx's reference
    evaluator, compared by Polygraphy's ``Comparator`` and ``CompareFunc.simple``.

    Exit status 1 when the comparison fails, and only then (``--fail-code 1``): a check that
    crashes exits 3, which Polygraphy then counts as a pass, as ours never counts an
    invalid run as failing; the counter file says which runs crashed."""
    try:
        status = _compare(model_path, inputs, backend, provider)
    except Exception as err:  # any crash: reported, then exit status 3
        print(f"check crashed: {type(err).__name__}: {err}", file=sys.stderr)
        status = 3
    with open(counter, "a", encoding="utf-8") as stream:
        stream.write(f"{status}\n")
    return status


def _compare(model_path: Path, inputs: Path, backend: str, provider: str) -> int:
    sys.path.insert(0, str(REPO))  # the project's convert_to_fp16 and operators (numpy + onnx)
    import onnx
    from polygraphy.comparator import Comparator, CompareFunc, RunResults
    from polygraphy.json import load_json

    from pytest_polygraphy.models.fp16 import convert_to_fp16

    model = onnx.load(str(model_path))
    (values,) = load_json(str(inputs))
    feed = {value.name: values[value.name] for value in model.graph.input}
    fp16 = convert_to_fp16(model)
    if backend == "onnxrt":
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

        runners = [
            OnnxrtRunner(SessionFromOnnx(m.SerializeToString(), providers=[provider]), name=name)
            for m, name in ((fp16, "onnxrt[fp16]"), (model, "onnxrt"))
        ]
    else:
        runners = [onnxref_runner(fp16, "onnxref[fp16]"), onnxref_runner(model, "onnxref")]
    results = Comparator.run(runners, data_loader=[feed])
    fp16 = RunResults([next(iter(results.items()))])
    Comparator.validate(fp16, check_inf=True, check_nan=True)  # logs "Inf Detected" etc.
    accuracy = Comparator.compare_accuracy(
        results, compare_func=CompareFunc.simple(rtol=RTOL, atol=ATOL)
    )
    return 0 if bool(accuracy) else 1


# -- driver side ---------------------------------------------------------------------


def polygraphy_python() -> Path:
    """The benchmark environment's interpreter, created with Polygraphy on first use
    (this interpreter when ``--polygraphy-site`` is given)."""
    from importlib import metadata

    if SETUP.polygraphy_site is not None:
        return Path(sys.executable)
    python = POLYGRAPHY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {POLYGRAPHY_VENV} with polygraphy=={POLYGRAPHY_VERSION} ...", flush=True)
        ort = "onnxruntime"
        for dist in ("onnxruntime", "onnxruntime-gpu"):
            try:
                ort = f"onnxruntime=={metadata.version(dist)}"  # the same ORT as ours
                break
            except metadata.PackageNotFoundError:
                continue
        venv.EnvBuilder(with_pip=True, clear=True).create(POLYGRAPHY_VENV)
        packages = [f"polygraphy=={POLYGRAPHY_VERSION}", "numpy", "onnx", "onnx-graphsurgeon", ort]
        subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
    return python


def polygraphy_env(work: Path, **extra: str) -> dict[str, str]:
    """Polygraphy's side's environment: ``--polygraphy-site`` first on the path."""
    if SETUP.polygraphy_site is not None:
        path = [str(SETUP.polygraphy_site), os.environ.get("PYTHONPATH", "")]
        extra = {"PYTHONPATH": os.pathsep.join(filter(None, path)), **extra}
    return tool_env(work, **extra)


def backend_args() -> list[str]:
    """The check's own options, passed on to each Polygraphy check process."""
    return ["--backend", SETUP.backend, "--providers", SETUP.provider]


def polygraphy_tool(python: Path) -> list[str]:
    """The ``polygraphy`` command: the venv's script, or its entry point run by
    ``python`` (a site folder has no scripts)."""
    if SETUP.polygraphy_site is None:
        return [str(python.parent / "polygraphy")]
    entry = "import sys; from polygraphy.tools import main; sys.argv[0] = 'polygraphy'; "
    entry += "sys.exit(main())"
    return [str(python), "-c", entry]


@dataclass
class Side:
    """One tool's run on one case."""

    checks: int = 0
    wall_s: float = 0.0
    #: Ours: the reduce session's own time, from its summary.
    session_s: float = 0.0
    nodes: list[str] = field(default_factory=list)
    steps: list[tuple[str, float, int]] = field(default_factory=list)
    note: str = ""
    #: The wall time of every repeat; ``wall_s`` is their median.
    walls: list[float] = field(default_factory=list)


@dataclass
class Case:
    name: str
    model: Path
    inputs: Path
    graph_nodes: int
    fail_on: bool
    candidates: int = 0
    polygraphy_nodes: int = 0
    ours: Side = field(default_factory=Side)
    polygraphy: Side = field(default_factory=Side)


def run_ours(case: Case, work: Path) -> None:
    """Times the pytest command, after one untimed run of the same test without
    ``--polygraphy-reduce`` that fills the bytecode cache."""
    folder = work / "ours"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh journal: nothing answered from it
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "pytest", str(case.model), f"--{SETUP.backend}"]
    if SETUP.backend == "onnxrt":
        command += ["--polygraphy-providers", SETUP.provider]
    command += ["--polygraphy-precisions", "fp16"]
    command += ["--polygraphy-load-inputs", str(case.inputs)]
    command += ["--polygraphy-rtol", str(RTOL), "--polygraphy-atol", str(ATOL)]
    command += ["--polygraphy-debug-dir", str(folder / "debug"), "-p", "no:cacheprovider"]
    # hypothesis is a test extra, not in the default install; its own pytest plugin imports
    # all of hypothesis at every session's end (about 0.15 s), so leave it out as a user's
    # environment would.
    command += ["-p", "no:hypothesispytest"]
    if case.fail_on:
        command += ["--polygraphy-fail-on", OURS_NONFINITE]
    env = tool_env(
        work.parent, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    warm_up = folder / "warm-up.log"
    timed(command, folder, warm_up, env)
    outcome = re.findall(r"^=+ (.*) in [\d.]+s\b", warm_up.read_text(errors="replace"), re.M)
    if not outcome or "failed" not in outcome[-1]:
        raise RuntimeError(
            f"{case.name}: the test passed on {SETUP.describe()}, so there is nothing to "
            f"reduce (see {warm_up}). ONNX Runtime's CPU provider runs fp16 Exp and Log in "
            "fp32, so the planted overflow never happens there: use --backend onnxref, or "
            "--providers cuda on a GPU"
        )
    shutil.rmtree(folder / "debug", ignore_errors=True)
    log = folder / "pytest.log"
    case.ours.wall_s = timed([*command, "--polygraphy-reduce"], folder, log, env)
    text = log.read_text(encoding="utf-8", errors="replace")
    checks = re.search(r"^\s*(\d+) checks\b.*?, ([\d.]+) s;", text, re.M)
    head = re.search(r"minimal failing subgraph: (\d+) of (\d+) nodes", text)
    if checks is None or head is None:
        raise RuntimeError(f"no reduce summary in {log}:\n{text[-3000:]}")
    case.ours.checks = int(checks.group(1))
    case.ours.session_s = float(checks.group(2))
    case.candidates = int(head.group(2))
    for line in text[head.end() :].splitlines()[1:]:
        node = re.match(r"^\s+(\S+) \((\w+)\)$", line)
        if node is None:
            break
        case.ours.nodes.append(f"{node.group(1)} ({node.group(2)})")
    if "does NOT reproduce" in text:
        case.ours.note = "minimal_failing/ does not reproduce"


def polygraphy_node_labels(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [f"{n.name or n.output[0]} ({n.op_type})" for n in graph.node if n.op_type != "Constant"]


def needs_sanitize(model: Path) -> bool:
    """Polygraphy's advice: freeze shapes and fold shape ops first when either is present."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    dynamic = any(d.dim_value <= 0 for i in graph.input for d in i.type.tensor_type.shape.dim)
    return dynamic or any(node.op_type in ("Shape", "Size") for node in graph.node)


def run_polygraphy(case: Case, work: Path, shape: tuple[int, ...], input_name: str) -> None:
    """Times Polygraphy's steps, after untimed runs that fill the bytecode cache: its CLI
    and the lazily imported modules, and the check once on the whole model."""
    folder = work / "polygraphy"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    python = polygraphy_python()
    tool = polygraphy_tool(python)
    side = case.polygraphy
    model = case.model
    env = polygraphy_env(work.parent, PYTHONWARNINGS="ignore")

    def step(label: str, command: list[str]) -> None:
        log = folder / f"{len(side.steps)}-{label.replace(' ', '_')}.log"
        before = counted()
        seconds = timed(command, folder, log, env)
        side.steps.append((label, seconds, counted() - before))

    counter = folder / "checks.txt"

    def counted() -> int:
        return len(statuses())

    def statuses() -> list[str]:
        return counter.read_text().split() if counter.exists() else []

    warm = folder / "warm-up"
    warm.mkdir()
    for n, command in enumerate(
        [
            [str(python), "-c", "import onnx_graphsurgeon, polygraphy.backend.onnx"],
            [*tool, "run", str(model), "--onnxrt", "--load-inputs", str(case.inputs)],
            [*tool, "surgeon", "sanitize", "-h"],
            [*tool, "data", "merge", "-h"],
            [*tool, "debug", "reduce", "-h"],
            [
                str(python),
                __file__,
                "--check-model",
                str(model),
                "--inputs",
                str(case.inputs),
                "--counter",
                str(warm / "checks.txt"),
                *backend_args(),
            ],
        ]
    ):
        timed(command, warm, warm / f"{n}.log", env)

    if needs_sanitize(model):
        folded = folder / "folded.onnx"
        shape_text = f"{input_name}:[{','.join(map(str, shape))}]"
        step(
            "sanitize",
            [
                *tool,
                "surgeon",
                "sanitize",
                str(model),
                "-o",
                str(folded),
                "--fold-constants",
                "--override-input-shapes",
                shape_text,
            ],
        )
        model = folded
    golden = folder / "layerwise_golden.json"
    layerwise = folder / "layerwise_inputs.json"
    step(
        "layerwise run",
        [
            *tool,
            "run",
            str(model),
            "--onnxrt",
            "--load-inputs",
            str(case.inputs),
            "--onnx-outputs",
            "mark",
            "all",
            "--save-outputs",
            str(golden),
        ],
    )
    step(
        "data merge",
        [*tool, "data", "merge", str(case.inputs), str(golden), "-o", str(layerwise)],
    )
    case.polygraphy_nodes = len(polygraphy_node_labels(model))
    check = [str(python), __file__, "--check-model", "polygraphy_debug.onnx"]
    check += ["--inputs", str(layerwise), "--counter", str(counter), *backend_args()]
    filters = ["--fail-code", "1"]
    filters += ["--fail-regex", POLYGRAPHY_NONFINITE] if case.fail_on else []
    reduced = folder / "reduced.onnx"
    step(
        "reduce bisect",
        [
            *tool,
            "debug",
            "reduce",
            str(model),
            "-o",
            str(reduced),
            "--mode",
            "bisect",
            "--load-inputs",
            str(layerwise),
            *filters,
            "--check",
            *check,
        ],
    )
    nodes = polygraphy_node_labels(reduced)
    if len(nodes) > 1:  # the example's step 5: refine a bisect result with linear
        final = folder / "final_reduced.onnx"
        step(
            "reduce linear",
            [
                *tool,
                "debug",
                "reduce",
                str(reduced),
                "-o",
                str(final),
                "--mode",
                "linear",
                "--load-inputs",
                str(layerwise),
                *filters,
                "--check",
                *check,
            ],
        )
        nodes = polygraphy_node_labels(final)
    side.nodes = nodes
    side.checks = counted()
    crashed = statuses().count("3")
    if crashed:
        side.note = f"{crashed} check(s) crashed (counted as passing); see the logs"
    side.wall_s = sum(seconds for _, seconds, _ in side.steps)


def prepare(name: str, work: Path, chain_nodes: int) -> tuple[Case, tuple[int, ...], str]:
    import onnx

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "chain":
        model = chain_model(chain_nodes)
        source = "generated"
        fail_on = False
    else:
        source_path, counts = pick_real_model()
        listing = ", ".join(f"{n}: {c}" for n, c in counts.items())
        print(f"OCR models (graph nodes): {listing}; using {source_path.name}", file=sys.stderr)
        original = onnx.load(str(source_path))
        shape = fixed_shape(original)
        model, target = plant_real(source_path, shape)
        source = f"{source_path.name}, Exp overflow planted after {target!r}"
        fail_on = True
    shape = fixed_shape(model)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    input_name = model.graph.input[0].name
    inputs = folder / "inputs.json"
    subprocess.run(
        [
            str(polygraphy_python()),
            __file__,
            "--write-inputs",
            str(inputs),
            "--input-name",
            input_name,
            "--shape",
            ",".join(map(str, shape)),
        ],
        check=True,
        env=polygraphy_env(work),
    )
    case = Case(name, path, inputs, len(model.graph.node), fail_on)
    print(f"{name}: {source}, {case.graph_nodes} graph nodes, input {shape}", file=sys.stderr)
    return case, shape, input_name


@dataclass
class EngineRun:
    """One reduce session run by the engine alone: its check only looks for the planted
    node, so what is left of the wall time is the engine's own work."""

    name: str
    candidates: int = 0
    checks: int = 0
    reference_runs: int = 0
    wall_s: float = 0.0
    check_s: float = 0.0
    reference_s: float = 0.0
    nodes: list[str] = field(default_factory=list)

    @property
    def overhead_ms(self) -> float:
        """The engine's time per check: cuts, variant models, hashes, journal, the search,
        and writing and re-reading ``minimal_failing/``."""
        own = self.wall_s - self.check_s - self.reference_s
        return 1e3 * own / max(self.checks, 1)


def engine_overhead(name: str, model: Any, shape: tuple[int, ...], folder: Path) -> EngineRun:
    """``ReduceSession.run()`` (no pytest) with a check that says bad exactly when the
    variant holds the planted node, and the reference values from the reference evaluator
    with the project's operators; the check's and the reference's time are measured apart.
    """
    import numpy as np
    from onnx.reference import ReferenceEvaluator

    from pytest_polygraphy.debug import CheckOutcome, ReduceOptions, ReduceSession, Verdict
    from pytest_polygraphy.runners.onnxref_ops import reference_ops

    run = EngineRun(name)
    ops = list(reference_ops())

    def check(variant: Any) -> Any:
        start = time.perf_counter()
        held = variant is None or any(n.name == PLANTED for n in variant.model.graph.node)
        run.check_s += time.perf_counter() - start
        if held:
            return CheckOutcome(Verdict.BAD, "the planted node is in", {"out": (1.0, 1.0)})
        return CheckOutcome(Verdict.GOOD, "the planted node is out")

    def reference(names: Any, feeds: Any) -> Any:
        start = time.perf_counter()
        run.reference_runs += 1
        evaluator = ReferenceEvaluator(model, new_ops=ops)
        with np.errstate(all="ignore"):
            for feed in feeds:
                yield dict(zip(names, evaluator.run(list(names), feed), strict=True))
        run.reference_s += time.perf_counter() - start

    feeds = [{model.graph.input[0].name: input_array(shape)}]
    shutil.rmtree(folder, ignore_errors=True)
    session = ReduceSession(
        name,
        model,
        feeds,
        check=check,
        run_reference=reference,
        folder=folder,
        options=ReduceOptions(),
        confirmed=CheckOutcome(Verdict.BAD, "the test's own run"),
    )
    start = time.perf_counter()
    result = session.run()
    run.wall_s = time.perf_counter() - start
    run.checks = result.checks
    run.nodes = [f"{node} ({op})" for node, op in result.nodes]
    run.candidates = len(session.index.candidates)
    return run


def engine_table(runs: list[EngineRun]) -> str:
    header = (
        "model",
        "N",
        "checks",
        "reference runs",
        "session s",
        "in checks s",
        "reference s",
        "engine ms per check",
        "ended at planted",
    )
    rows = [header]
    for run in runs:
        rows.append(
            (
                run.name,
                str(run.candidates),
                str(run.checks),
                str(run.reference_runs),
                f"{run.wall_s:.3f}",
                f"{run.check_s:.3f}",
                f"{run.reference_s:.3f}",
                f"{run.overhead_ms:.1f}",
                ended_at_planted(run.nodes),
            )
        )
    return render_table(rows)


def run_engine_cases(work: Path) -> list[EngineRun]:
    """The engine alone on a 1000-node chain (the goal's largest N) and on the planted
    PaddleOCR model."""
    import onnx

    runs = []
    chain = chain_model(1000)
    runs.append(engine_overhead("chain-1000", chain, (1, 64), work / "engine" / "chain"))
    real = work / "real" / "model.onnx"
    if real.exists():  # the real case's planted copy
        model = onnx.load(str(real))
    else:
        source, _ = pick_real_model()
        model, _ = plant_real(source, fixed_shape(onnx.load(str(source))))
    runs.append(engine_overhead("real", model, fixed_shape(model), work / "engine" / "real"))
    return runs


def ended_at_planted(nodes: list[str]) -> str:
    return "yes" if len(nodes) == 1 and nodes[0].startswith(f"{PLANTED} ") else "NO"


def table(cases: list[Case]) -> str:
    header = (
        "case",
        "N (ours / Polygraphy)",
        "ceil(log2 N)+3",
        "our checks",
        "Polygraphy checks",
        "our wall s",
        "Polygraphy wall s",
        "speedup",
        "ours ended at planted",
        "Polygraphy ended at planted",
    )
    rows = [header]
    for case in cases:
        bound = (math.ceil(math.log2(case.candidates)) if case.candidates > 1 else 0) + 3
        speedup = case.polygraphy.wall_s / case.ours.wall_s if case.ours.wall_s else float("nan")
        rows.append(
            (
                case.name,
                f"{case.candidates} / {case.polygraphy_nodes}",
                str(bound),
                str(case.ours.checks),
                str(case.polygraphy.checks),
                f"{case.ours.wall_s:.1f}",
                f"{case.polygraphy.wall_s:.1f}",
                f"{speedup:.1f}x",
                ended_at_planted(case.ours.nodes),
                ended_at_planted(case.polygraphy.nodes),
            )
        )
    return render_table(rows)


def details(case: Case) -> str:
    lines = [f"{case.name} ({case.graph_nodes} graph nodes):"]
    ours = ", ".join(case.ours.nodes) or "(nothing)"
    lines.append(f"  ours ended with {len(case.ours.nodes)} node(s): {ours}")
    ours_runs = ", ".join(f"{w:.2f}" for w in case.ours.walls)
    polygraphy_runs = ", ".join(f"{w:.2f}" for w in case.polygraphy.walls)
    lines.append(f"  runs (s): ours {ours_runs}; Polygraphy {polygraphy_runs}")
    lines.append(
        f"  ours: pytest {case.ours.wall_s:.1f} s, of which the reduce session "
        f"{case.ours.session_s:.1f} s (the rest: start-up, collection, the failing run)"
    )
    if case.ours.note:
        lines.append(f"    {case.ours.note}")
    shown = case.polygraphy.nodes[:6]
    more = len(case.polygraphy.nodes) - len(shown)
    poly = ", ".join(shown) + (f", ... (+{more})" if more > 0 else "") or "(nothing)"
    lines.append(f"  Polygraphy ended with {len(case.polygraphy.nodes)} node(s): {poly}")
    if case.polygraphy.note:
        lines.append(f"    {case.polygraphy.note}")
    steps = "; ".join(f"{label} {s:.1f} s ({n} checks)" for label, s, n in case.polygraphy.steps)
    lines.append(f"  Polygraphy steps: {steps}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    every = ["chain", "real", "engine"]
    parser.add_argument("--cases", nargs="+", choices=every, default=every)
    parser.add_argument("--chain-nodes", type=int, default=245, help="nodes of the chain")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each side per case (median shown)"
    )
    parser.add_argument(
        "--backend",
        choices=["onnxref", "onnxrt"],
        default="onnxref",
        help="what both sides run the fp16 and fp32 models on (default: onnxref)",
    )
    parser.add_argument(
        "--providers",
        choices=["cpu", "cuda"],
        default="cpu",
        help="ONNX Runtime's execution provider, with --backend onnxrt (default: cpu)",
    )
    parser.add_argument(
        "--polygraphy-site",
        type=Path,
        help="a folder holding Polygraphy and onnx-graphsurgeon, run by this interpreter "
        "(a machine with no package registry); default: bench/.venv-polygraphy",
    )
    parser.add_argument("--check-model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--counter", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write-inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--input-name", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SETUP
    site = args.polygraphy_site.resolve() if args.polygraphy_site else None
    SETUP = Setup(args.backend, args.providers, site)
    if args.check_model:
        sys.exit(
            check_model(args.check_model, args.inputs, args.counter, args.backend, args.providers)
        )
    if args.write_inputs:
        shape = tuple(int(d) for d in args.shape.split(","))
        write_inputs(args.write_inputs, args.input_name, shape)
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="reduce-bench-"))
    work = work.resolve()
    print(f"work folder: {work}", file=sys.stderr)
    if set(args.cases) - {"engine"}:
        polygraphy_python()
    cases = []
    for name in args.cases:
        if name == "engine":
            continue
        case, shape, input_name = prepare(name, work, args.chain_nodes)
        ours_walls: list[float] = []
        polygraphy_walls: list[float] = []
        for repeat in range(args.repeats):  # interleaved, so that both meet the same noise
            case.ours, case.polygraphy = Side(), Side()
            print(f"{name}: running ours ({repeat + 1})...", file=sys.stderr, flush=True)
            run_ours(case, work / name)
            print(f"{name}: running Polygraphy ({repeat + 1})...", file=sys.stderr, flush=True)
            run_polygraphy(case, work / name, shape, input_name)
            ours_walls.append(case.ours.wall_s)
            polygraphy_walls.append(case.polygraphy.wall_s)
        for side, walls in ((case.ours, ours_walls), (case.polygraphy, polygraphy_walls)):
            side.walls, side.wall_s = walls, statistics.median(walls)
        cases.append(case)
    print(
        f"\nfp16 vs fp32 on {SETUP.describe()}, rtol=atol={RTOL}, cpus: {os.cpu_count()}"
        " (ours without hypothesis's pytest plugin, as in the default install); wall times: "
        f"median of {args.repeats} interleaved runs of each side\n"
    )
    if cases:
        print(table(cases))
        print()
        for case in cases:
            print(details(case))
    if "engine" in args.cases:
        print(
            "\nthe reduce engine alone (no pytest; a check that only looks for the planted "
            "node): its own time per check, the goal being 10 ms for N <= 1000\n"
        )
        print(engine_table(run_engine_cases(work)))
    print(f"\nlogs and models: {work}")


if __name__ == "__main__":
    main()
