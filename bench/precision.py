"""Benchmark: ``pytest --polygraphy-precision`` against Polygraphy's contiguous search and
onnxconverter-common's ``auto_convert_mixed_precision``.

    python bench/precision.py [--cases chain1 chain2 real] [--work DIR] [--real-linear]
                              [--real-max-checks 100] [--converter-timeout 300]

On the real model ours is capped by ``--polygraphy-max-checks`` (``--real-max-checks``, 0 for
no limit): its fp16 error is spread over many nodes, and the uncapped search costs about 10
checks of seconds each per node kept (see README-precision.md).

Three fp16 failures, each on onnx's reference evaluator, fp16 vs fp32 at rtol = atol = 2e-3
(fp16's default tolerance), one input ``x`` drawn once (uniform [0, 1), seed 0):

- ``chain1``: a generated chain of about 245 nodes, all exact in fp16 for values in [0, 1]
  (Neg, Abs, Relu, Mul by 0.5 and 2) except one planted normalization
  ``Div(s, ReduceL2(s))`` with ``s = t * 300``: ReduceL2 squares values past fp16's 65504,
  so in fp16 the norm is inf and the output 0; in fp32 it is finite and fp16 holds it.
  Keeping that one ``ReduceL2`` in fp32 is exactly what makes the model pass.
- ``chain2``: the same with two planted normalizations (at about 30 % and 75 %); both
  ``ReduceL2`` nodes must be kept.
- ``real``: PaddleOCR's text recognizer ``ch_PP-OCRv4_rec_infer.onnx`` (from the
  ``rapidocr-onnxruntime`` wheel, pip-installed with ``--no-deps`` into ``bench/.models``)
  at ``x: [1, 3, 48, 320]``: plain fp16 rounding fails the comparison (a few dozen of its
  265000 output elements), nothing planted.

The oracle ("does keeping these nodes in fp32 pass?") is the same everywhere: the project's
``convert_to_fp16(model, block_list=nodes)`` run on onnx's ``ReferenceEvaluator``, compared
with the fp32 model's outputs by the project's ``CompareFunc.simple(rtol=2e-3, atol=2e-3)``.

- Ours: ``pytest MODEL --onnxref --polygraphy-precisions fp16 --polygraphy-precision`` in a
  subprocess (its check re-runs the test, which is that oracle), after one untimed run
  without ``--polygraphy-precision`` that fills the bytecode cache. Wall time of the whole
  command, and the session's own checks and time from its summary (``N checks, T s``).
  Its answer is verified with the bench's oracle: the kept set passes, and dropping any one
  of its nodes fails (1-minimal).
- Polygraphy: ``polygraphy debug precision`` needs TensorRT (it marks TensorRT layers), so
  the bench replays its documented search over "the first (forward) or last (reverse) M
  layers in higher precision" on our N candidates in topological order (TensorRT's layer
  order follows the ONNX nodes; it skips non-float layers when marking, as the candidates
  leave them out): ``bisect`` starts with all N marked and halves between the largest
  failing and smallest passing M; ``linear`` tries M = 0, 1, 2 ... until one passes. Its
  answer is always a contiguous range of M nodes. Checks and time are the bench oracle's.
  ``linear`` on the real model would cost one check (seconds) per node up to the answer:
  only with ``--real-linear``.
- onnxconverter-common: ``auto_convert_mixed_precision(model, feed, validate_fn,
  keep_io_types=True)`` with ``validate_fn`` the same tolerance rule, run as it is (on ONNX
  Runtime's CPU provider, its own float16 converter), in ``bench/.venv-onnxconverter``
  (onnxconverter-common, onnx, onnxruntime, numpy; created on first use). Reported: the
  nodes it blocks from conversion (its candidates are all graph nodes but Loop/If/Scan),
  its attempts and time, and whether its model passes our comparison on the reference
  evaluator; and its block list through our converter and oracle. A second row drives its
  same search with onnx's reference evaluator instead of ONNX Runtime (its converter still),
  for the synthetic cases only (``--converter-onnxref-real`` for the real one: slow).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchkit import (
    OCR_WHEEL,
    exact_chain,
    input_array,
    ocr_models,
    render_table,
    timed,
    tool_env,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONVERTER_VENV = HERE / ".venv-onnxconverter"
REAL_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
REAL_SHAPE = (1, 3, 48, 320)
CHAIN_NODES = 245
CHAIN_WIDTH = 64
RTOL = ATOL = 2e-3
#: Squares of ``t * 300`` pass fp16's 65504 (and ``300 * ||d|| = 300`` after a previous
#: normalization, ``||d|| = 1``): the fp16 norm is inf, the fp32 one is finite.
CULPRIT_SCALE = 300.0


# -- models -------------------------------------------------------------------------


def chain_model(total: int, culprits: int, width: int = CHAIN_WIDTH) -> tuple[Any, list[str]]:
    """``x[1, width]`` through ``total`` nodes; ``culprits`` planted
    ``Mul(300) -> ReduceL2 -> Div`` normalizations (at 60 %, or at 30 % and 75 %, never on
    a halving boundary), every other node exact in fp16 for values in [0, 1]. Returns the
    model and the planted ReduceL2 names (the nodes to keep in fp32)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []

    def constant(name: str, value: float) -> str:
        """One initializer per reader: onnxconverter-common's converter, given a block
        list, leaves an initializer shared by a blocked and a converted node in one type
        (a float16/float32 mismatch that no runtime accepts)."""
        inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    fractions = {1: (0.6,), 2: (0.3, 0.75)}[culprits]
    planted: list[str] = []

    def plant(k: int, previous: str, out: str) -> list[Any]:
        planted.append(f"culprit{k}_norm")
        return [
            helper.make_node(
                "Mul",
                [previous, constant(f"c{k}_scale", CULPRIT_SCALE)],
                [f"c{k}_s"],
                f"culprit{k}_scale",
            ),
            helper.make_node("ReduceL2", [f"c{k}_s"], [f"c{k}_l2"], planted[-1], axes=[1]),
            helper.make_node("Div", [f"c{k}_s", f"c{k}_l2"], [out], f"culprit{k}_div"),
        ]

    nodes = exact_chain(total, [int(total * f) + 3 for f in fractions], plant, constant)
    graph = helper.make_graph(
        nodes,
        f"chain{culprits}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model, planted


def real_model() -> Path:
    """PaddleOCR's recognizer from the rapidocr wheel, installed on first use."""
    found = [path for path in ocr_models() if path.name == REAL_MODEL]
    if not found:
        raise RuntimeError(f"{REAL_MODEL} is not among the models of {OCR_WHEEL}")
    return found[0]


# -- the oracle ----------------------------------------------------------------------


class Oracle:
    """Keeps ``nodes`` in fp32 (``convert_to_fp16(block_list=nodes)``), runs the model on
    onnx's reference evaluator, and compares with the fp32 run at rtol = atol = 2e-3."""

    def __init__(self, model: Any, feed: dict[str, Any]) -> None:
        from pytest_polygraphy import CompareFunc

        self.model = model
        self.feed = feed
        self.names = [value.name for value in model.graph.output]
        self.expected = self._run(model)
        self.compare = CompareFunc.simple(rtol=RTOL, atol=ATOL)
        self.calls = 0

    def _run(self, model: Any) -> dict[str, Any]:
        """What ``--onnxref`` runs: onnx's evaluator with the project's operators
        (``runners/onnxref_ops``: BatchNormalization corrected to inference mode, faster
        Conv and MaxPool with onnx's results)."""
        from onnx.reference import ReferenceEvaluator

        from pytest_polygraphy.runners.onnxref_ops import reference_ops

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fp16 overflow warnings from numpy
            evaluator = ReferenceEvaluator(model, new_ops=list(reference_ops()))
            outputs = evaluator.run(None, dict(self.feed))
        return dict(zip(self.names, outputs, strict=True))

    def mismatches(self, nodes: tuple[str, ...] | list[str]) -> str:
        """How many output elements fail with ``nodes`` kept (for the case's description)."""
        import numpy as np

        from pytest_polygraphy.models import convert_to_fp16

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            variant = convert_to_fp16(self.model, block_list=tuple(nodes))
        actual = {k: np.asarray(v, np.float32) for k, v in self._run(variant).items()}
        result = self.compare(actual, self.expected)
        failed = sum(result[name].mismatch_count for name in self.names)
        total = sum(int(np.size(self.expected[name])) for name in self.names)
        return f"{failed} of {total} output elements fail"

    def passes_model(self, model: Any) -> bool:
        """Whether ``model`` (any fp16 model, fp32 inputs and outputs) passes the comparison."""
        import numpy as np

        actual = {k: np.asarray(v, np.float32) for k, v in self._run(model).items()}
        return bool(self.compare(actual, self.expected))

    def __call__(self, nodes: tuple[str, ...] | list[str]) -> bool:
        from pytest_polygraphy.models import convert_to_fp16

        self.calls += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Fp16RangeWarning: reported by the test, not here
            variant = convert_to_fp16(self.model, block_list=tuple(nodes))
        return self.passes_model(variant)


# -- Polygraphy's `debug precision` search, replayed ---------------------------------


@dataclass
class Contiguous:
    """One run of the contiguous search: checks, the answer (M, or None: none passed)."""

    mode: str
    direction: str
    checks: int = 0
    kept: int | None = None
    seconds: float = 0.0
    covers: str = ""
    skipped: str = ""


def contiguous_search(n: int, passes: Callable[[int], bool], mode: str) -> tuple[int, int | None]:
    """Polygraphy's marker semantics over ``n`` layers; ``passes(m)`` checks the first (or
    last) ``m`` layers kept. Returns (checks, the M it recommends, or None).

    bisect: the first check marks all ``n``; ``good`` starts one past ``n`` (assumed to pass)
    and ``bad`` at 0; after a pass ``good = m`` and the next ``m`` is the floor of the
    midpoint, after a failure ``bad = m`` and the ceiling; it stops when ``m`` repeats or
    ``good - bad <= 1``, answering ``good`` (no answer when ``good >= n``, as Polygraphy
    reports "Could not find a configuration" then). linear: ``m = 0, 1, ...`` until a pass."""
    checks = 0
    if mode == "linear":
        for m in range(n + 1):
            checks += 1
            if passes(m):
                return checks, m
        return checks, None
    good, bad, m = n + 1, 0, n
    while True:
        checks += 1
        if passes(m):
            good, rounding = m, math.floor
        else:
            bad, rounding = m, math.ceil
        following = int(rounding((good + bad) / 2.0))
        if following == m or abs(good - bad) <= 1 or following > n:
            return checks, (good if good < n else None)
        m = following


def run_contiguous(
    oracle: Oracle, candidates: list[str], mode: str, direction: str, planted: list[str]
) -> Contiguous:
    n = len(candidates)
    result = Contiguous(mode, direction)

    def layers(m: int) -> list[str]:
        return candidates[:m] if direction == "forward" else candidates[n - m :]

    start = time.perf_counter()
    result.checks, result.kept = contiguous_search(n, lambda m: oracle(layers(m)), mode)
    result.seconds = time.perf_counter() - start
    if result.kept is not None and planted:
        kept = set(layers(result.kept))
        result.covers = "yes" if set(planted) <= kept else "NO"
    return result


# -- onnxconverter-common: runs in bench/.venv-onnxconverter -------------------------


def converter_python() -> Path:
    """The onnxconverter-common environment's interpreter, created on first use."""
    python = CONVERTER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {CONVERTER_VENV} with onnxconverter-common ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(CONVERTER_VENV)
        packages = ["onnxconverter-common", "onnx", "onnxruntime", "numpy"]
        subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
    return python


def converter_main(
    model_path: Path, inputs: Path, output: Path, report: Path, backend: str, name_nodes: bool
) -> int:
    """``auto_convert_mixed_precision`` on ``model_path`` (in the converter's venv): writes
    its fp16 model to ``output`` and {blocked, attempts, seconds, error} to ``report``.
    ``name_nodes`` first names each unnamed node with the project's stable id
    (``#<index>:<OpType>:<first output>``, ``models.nodes``): the converter names the casts
    it inserts after the node, and two unnamed blocked nodes give two casts one name."""
    import numpy as np
    import onnx
    from onnxconverter_common import auto_mixed_precision as amp

    model = onnx.load(str(model_path))
    if name_nodes:
        for index, node in enumerate(model.graph.node):
            if not node.name:
                first = next((name for name in node.output if name), "")
                node.name = f"#{index}:{node.op_type}:{first}"
    feed = dict(np.load(inputs))
    attempts: list[list[str]] = []
    convert = amp.float16.convert_float_to_float16

    def recording(*args: Any, **kwargs: Any) -> Any:
        attempts.append(list(kwargs.get("node_block_list") or []))
        return convert(*args, **kwargs)

    amp.float16.convert_float_to_float16 = recording
    if backend == "onnxref":
        from onnx.reference import ReferenceEvaluator

        def on_reference(
            model: Any, input_feed: Any, output_names: Any = None, sess_options: Any = None
        ) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ReferenceEvaluator(model).run(output_names, input_feed)

        amp.get_tensor_values_using_ort = on_reference

    def validate(expected: list[Any], actual: list[Any]) -> bool:
        """The comparison's rule: an element fails when both tolerances are exceeded."""
        for e, a in zip(expected, actual, strict=True):
            e = np.asarray(e, np.float64)
            diff = np.abs(np.asarray(a, np.float64) - e)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = diff / np.abs(e)
            bad = (~(diff <= ATOL)) & (~(rel <= RTOL))
            if e.shape != np.shape(a) or bad.any():
                return False
        return True

    start = time.perf_counter()
    error = ""
    try:
        result = amp.auto_convert_mixed_precision(model, feed, validate, keep_io_types=True)
        onnx.save(result, str(output))
    except Exception as err:  # reported in the table: the tool could not run this case
        error = f"{type(err).__name__}: {str(err)[:300]}"
    seconds = time.perf_counter() - start
    final = attempts[-1] if attempts and not error else []
    data = {
        "blocked": final,
        "attempts": max(len(attempts) - 1, 0) if not error else len(attempts),
        "seconds": seconds,
        "error": error,
        "nodes": len([n for n in model.graph.node if n.op_type not in ("Loop", "If", "Scan")]),
    }
    report.write_text(json.dumps(data), encoding="utf-8")
    return 0


@dataclass
class Converter:
    """One auto_convert_mixed_precision run, as the bench saw it."""

    backend: str
    named: bool = False
    nodes: int = 0
    blocked: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    passes_own: str = ""
    passes_ours: str = ""
    blocked_candidates: int = 0
    covers: str = ""
    skipped: str = ""


def run_converter(
    case: Case, oracle: Oracle, backend: str, named: bool, work: Path, timeout: float
) -> Converter:
    import onnx

    side = Converter(backend, named)
    label = f"{backend}{'-named' if named else ''}"
    output = work / f"converter-{label}.onnx"
    report = work / f"converter-{label}.json"
    log = work / f"converter-{label}.log"
    command = [str(converter_python()), __file__, "--converter-model", str(case.model)]
    command += ["--converter-inputs", str(case.plain_inputs), "--converter-output", str(output)]
    command += ["--converter-report", str(report), "--converter-backend", backend]
    command += ["--converter-name-nodes"] if named else []
    try:
        with open(log, "w", encoding="utf-8") as stream:
            done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        text = log.read_text(encoding="utf-8", errors="replace")
        side.attempts = text.count("Running attempt")
        side.seconds = timeout
        side.error = f"did not finish in {timeout:.0f} s ({side.attempts} attempts so far)"
        return side
    if done.returncode != 0 or not report.exists():
        side.error = f"exit status {done.returncode}, no report; see {log}"
        return side
    data = json.loads(report.read_text(encoding="utf-8"))
    side.nodes, side.blocked = data["nodes"], data["blocked"]
    side.attempts, side.seconds, side.error = data["attempts"], data["seconds"], data["error"]
    if side.error:
        return side
    side.passes_own = "yes" if oracle.passes_model(onnx.load(str(output))) else "NO"
    side.blocked_candidates = len(set(side.blocked) & set(case.candidates))
    blockable = [name for name in side.blocked if name in case.all_names]
    side.passes_ours = "yes" if oracle(blockable) else "NO"
    if case.planted:
        side.covers = "yes" if set(case.planted) <= set(side.blocked) else "NO"
    return side


# -- ours ----------------------------------------------------------------------------


@dataclass
class Ours:
    checks: int = 0
    wall_s: float = 0.0
    session_s: float = 0.0
    candidates: int = 0
    kept: list[str] = field(default_factory=list)
    confirmed: bool = False
    oracle_passes: str = ""
    minimal: str = ""
    exact: str = ""
    note: str = ""
    #: Stopped at --polygraphy-max-checks: a set that passed, not necessarily the smallest.
    stopped: bool = False


@dataclass
class Case:
    name: str
    model: Path
    inputs: Path
    plain_inputs: Path
    description: str
    planted: list[str]
    candidates: list[str] = field(default_factory=list)
    all_names: set[str] = field(default_factory=set)
    ours: Ours = field(default_factory=Ours)
    contiguous: list[Contiguous] = field(default_factory=list)
    converters: list[Converter] = field(default_factory=list)
    oracle_s: float = 0.0
    plain: str = ""


def run_ours(case: Case, work: Path, max_checks: int | None) -> None:
    folder = work / "ours"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "pytest", str(case.model), "--onnxref"]
    command += ["--polygraphy-precisions", "fp16", "--polygraphy-load-inputs", str(case.inputs)]
    command += ["--polygraphy-rtol", str(RTOL), "--polygraphy-atol", str(ATOL)]
    command += ["--polygraphy-debug-dir", str(folder / "debug"), "-p", "no:cacheprovider"]
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = tool_env(work.parent, PYTHONPATH=path)
    timed(command, folder, folder / "warm-up.log", env)
    shutil.rmtree(folder / "debug", ignore_errors=True)
    log = folder / "pytest.log"
    search = ["--polygraphy-precision"]
    search += [] if max_checks is None else ["--polygraphy-max-checks", str(max_checks)]
    case.ours.wall_s = timed([*command, *search], folder, log, env)
    text = log.read_text(encoding="utf-8", errors="replace")
    summary = text.rfind("= polygraphy precision =")
    head = re.compile(r"keep in fp32: (\d+) of (\d+) float compute nodes")
    found = head.search(text, summary)
    checks = re.compile(r"^\s*(\d+) checks\b.*?, ([\d.]+) s;", re.M).search(text, summary)
    if summary < 0 or found is None or checks is None:
        raise RuntimeError(f"no precision summary in {log}:\n{text[-3000:]}")
    case.ours.checks, case.ours.session_s = int(checks.group(1)), float(checks.group(2))
    case.ours.candidates = int(found.group(2))
    for line in text[found.end() :].splitlines()[1:]:
        node = re.match(r"^\s+(\S+) \((\w+)\)$", line)
        if node is None:
            break
        case.ours.kept.append(node.group(1))
    case.ours.confirmed = "confirmed: the test passes" in text[summary:]
    case.ours.stopped = text.startswith(" (stopped at", found.end())
    if len(case.ours.kept) != int(found.group(1)):
        case.ours.note = f"summary says {found.group(1)} nodes, lists {len(case.ours.kept)}"


def verify_ours(case: Case, oracle: Oracle) -> None:
    """The bench oracle's view of our answer: it passes, and no node of it can be dropped."""
    kept = case.ours.kept
    case.ours.oracle_passes = "yes" if oracle(kept) else "NO"
    if case.ours.stopped:
        case.ours.minimal = "not checked (stopped)"
        return
    needed = [not oracle([other for other in kept if other != name]) for name in kept]
    case.ours.minimal = "yes" if all(needed) else f"NO ({needed.count(False)} not needed)"
    if case.planted:
        case.ours.exact = "yes" if sorted(kept) == sorted(case.planted) else "NO"


# -- driver ------------------------------------------------------------------------


def prepare(name: str, work: Path) -> tuple[Case, Any, dict[str, Any]]:
    import numpy as np
    import onnx

    from pytest_polygraphy.data.formats import save_inputs
    from pytest_polygraphy.debug.precision import float_candidates
    from pytest_polygraphy.models.nodes import node_ids

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "real":
        source = real_model()
        model = onnx.load(str(source))
        shape = REAL_SHAPE
        planted: list[str] = []
        description = f"{source.name} at x:{list(shape)}, {len(model.graph.node)} graph nodes"
    else:
        culprits = int(name[-1])
        model, planted = chain_model(CHAIN_NODES, culprits)
        shape = (1, CHAIN_WIDTH)
        description = f"generated chain, {len(model.graph.node)} graph nodes, {culprits} planted"
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    input_name = model.graph.input[0].name
    feed = {input_name: input_array(shape)}
    inputs = save_inputs(folder / "inputs.npz", [feed])
    plain = folder / "inputs-plain.npz"
    np.savez(plain, **feed)
    case = Case(name, path, Path(inputs), plain, description, planted)
    case.candidates = float_candidates(model)
    case.all_names = set(node_ids(model))
    return case, model, feed


def bound(k: int, n: int) -> int:
    return k * ((math.ceil(math.log2(n)) if n > 1 else 0) + 1) + 1


def ours_table(cases: list[Case]) -> str:
    rows = [
        (
            "case",
            "N",
            "k found",
            "bound k*(ceil(log2 N)+1)+1",
            "our checks",
            "pytest wall s",
            "session s",
            "passes oracle",
            "1-minimal",
            "= planted",
        )
    ]
    for case in cases:
        ours = case.ours
        k = len(ours.kept)
        rows.append(
            (
                case.name,
                str(ours.candidates),
                str(k),
                str(bound(k, ours.candidates)),
                str(ours.checks) + (" (stopped)" if ours.stopped else ""),
                f"{ours.wall_s:.1f}",
                f"{ours.session_s:.1f}",
                ours.oracle_passes,
                ours.minimal,
                ours.exact or "-",
            )
        )
    return render_table(rows)


def side_table(cases: list[Case]) -> str:
    rows = [("case", "search", "checks", "kept in fp32", "seconds", "passes our comparison")]
    for case in cases:
        ours = case.ours
        rows.append(
            (
                case.name,
                "ours (peel, pytest command / session)",
                str(ours.checks) + (" (stopped)" if ours.stopped else ""),
                f"{len(ours.kept)} of {ours.candidates}",
                f"{ours.wall_s:.1f} / {ours.session_s:.1f}",
                "yes" if ours.confirmed else "NO",
            )
        )
        for side in case.contiguous:
            label = f"Polygraphy-style {side.mode} {side.direction}"
            if side.skipped:
                rows.append((case.name, label, "-", "-", "-", side.skipped))
                continue
            kept = "none passed" if side.kept is None else f"{side.kept} (contiguous)"
            rows.append(
                (
                    case.name,
                    label,
                    str(side.checks),
                    kept,
                    f"{side.seconds:.1f}",
                    "yes" if side.kept is not None else "NO",
                )
            )
        for conv in case.converters:
            label = (
                f"onnxconverter auto_mixed ({conv.backend}{', nodes named' if conv.named else ''})"
            )
            if conv.skipped or conv.error:
                rows.append((case.name, label, "-", "-", "-", conv.skipped or "cannot run"))
                continue
            rows.append(
                (
                    case.name,
                    label,
                    str(conv.attempts),
                    f"{len(conv.blocked)} of {conv.nodes}",
                    f"{conv.seconds:.1f}",
                    f"{conv.passes_own} (its model); {conv.passes_ours} (its list, our converter)",
                )
            )
    return render_table(rows)


def details(case: Case) -> str:
    lines = [f"{case.name}: {case.description}; N = {len(case.candidates)} float compute nodes"]
    lines.append(f"  bench oracle: one check {case.oracle_s:.2f} s (fp16 conversion and run)")
    lines.append(f"  plain fp16 (nothing kept): {case.plain}")
    if case.planted:
        lines.append(f"  planted: {', '.join(case.planted)}")
    lines.append(f"  ours kept: {', '.join(case.ours.kept) or '(nothing)'}")
    if case.ours.note:
        lines.append(f"    {case.ours.note}")
    for side in case.contiguous:
        if side.skipped:
            continue
        where = "first" if side.direction == "forward" else "last"
        answer = "no M passed" if side.kept is None else f"the {where} {side.kept}"
        covers = f"; covers the planted nodes: {side.covers}" if side.covers else ""
        lines.append(f"  Polygraphy-style {side.mode} {side.direction}: {answer}{covers}")
    for conv in case.converters:
        if conv.skipped:
            continue
        label = f"onnxconverter ({conv.backend}{', nodes named' if conv.named else ''})"
        if conv.error:
            lines.append(f"  {label} could not run: {conv.error}")
            continue
        shown = ", ".join(conv.blocked[:6]) + (" ..." if len(conv.blocked) > 6 else "")
        covers = f"; covers the planted nodes: {conv.covers}" if conv.covers else ""
        lines.append(
            f"  {label}: blocks {len(conv.blocked)} of {conv.nodes} "
            f"graph nodes ({conv.blocked_candidates} of them among our N): "
            f"{shown or '(nothing)'}{covers}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = ["chain1", "chain2", "real"]
    parser.add_argument("--cases", nargs="+", choices=choices, default=choices)
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--real-linear", action="store_true", help="linear search on real too")
    parser.add_argument(
        "--real-max-checks",
        type=int,
        default=100,
        help="--polygraphy-max-checks for ours on the real model (0: no limit; default 100)",
    )
    parser.add_argument(
        "--converter-timeout",
        type=float,
        default=300.0,
        help="seconds before an onnxconverter run is stopped (default 300)",
    )
    parser.add_argument(
        "--converter-onnxref-real", action="store_true", help="onnxconverter on onnxref, real"
    )
    parser.add_argument("--converter-model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--converter-inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--converter-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--converter-report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--converter-backend", help=argparse.SUPPRESS)
    parser.add_argument("--converter-name-nodes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.real_max_checks = args.real_max_checks or None
    if args.converter_model:
        sys.exit(
            converter_main(
                args.converter_model,
                args.converter_inputs,
                args.converter_output,
                args.converter_report,
                args.converter_backend,
                args.converter_name_nodes,
            )
        )

    work = (args.work or Path(tempfile.mkdtemp(prefix="precision-bench-"))).resolve()
    print(f"work folder: {work}", file=sys.stderr)
    converter_python()
    cases = []
    for name in args.cases:
        case, model, feed = prepare(name, work)
        print(f"{name}: {case.description}; running ours ...", file=sys.stderr, flush=True)
        run_ours(case, work / name, args.real_max_checks if name == "real" else None)
        oracle = Oracle(model, feed)
        start = time.perf_counter()
        case.plain = oracle.mismatches([])
        case.oracle_s = time.perf_counter() - start
        print(f"{name}: verifying ours, then Polygraphy-style ...", file=sys.stderr, flush=True)
        verify_ours(case, oracle)
        for mode in ("bisect", "linear"):
            for direction in ("forward", "reverse"):
                if mode == "linear" and name == "real" and not args.real_linear:
                    side = Contiguous(mode, direction, skipped="not run (--real-linear)")
                else:
                    side = run_contiguous(oracle, case.candidates, mode, direction, case.planted)
                case.contiguous.append(side)
        print(f"{name}: onnxconverter ...", file=sys.stderr, flush=True)
        unnamed = any(not node.name for node in model.graph.node)
        runs = [("ort", False), *([("ort", True)] if unnamed else []), ("onnxref", unnamed)]
        for backend, named in runs:
            if backend == "onnxref" and name == "real" and not args.converter_onnxref_real:
                conv = Converter(backend, named, skipped="not run (--converter-onnxref-real)")
            else:
                conv = run_converter(
                    case, oracle, backend, named, work / name, args.converter_timeout
                )
            case.converters.append(conv)
        cases.append(case)
        (work / name / "result.json").write_text(
            json.dumps(asdict(case), default=str, indent=1), encoding="utf-8"
        )
        print(details(case), file=sys.stderr, flush=True)
    cpus = os.cpu_count()
    print(f"\nfp16 vs fp32 on onnx's reference evaluator, rtol=atol={RTOL}, cpus: {cpus}")
    print("\nours: pytest MODEL --onnxref --polygraphy-precisions fp16 --polygraphy-precision\n")
    print(ours_table(cases))
    print("\nside by side (checks: oracle runs; onnxconverter: its attempts)\n")
    print(side_table(cases))
    print()
    for case in cases:
        print(details(case))
    print(f"\nlogs and models: {work}")


if __name__ == "__main__":
    main()
