"""Running a model on the selected backends and comparing them with the reference: what a
model-file test does, and what the ``accuracy`` fixture does for a hand-written test.

The reference runs at fp32; the backends under test run at the test's precision. With
one backend selected and a reduced precision, that backend at fp32 is the reference. With
reference ``golden`` every selected backend is compared with the test's golden file
(written, under ``--polygraphy-update-golden``, from the first selected backend at fp32).
Iterations are compared one at a time, so outputs are not kept past their iteration.
A test that compared no output (one backend at fp32 without ``validate``, no
iterations) fails with "nothing was compared: <why>": it would otherwise pass having
checked nothing. A backend's failure on a feed (``InferenceError``) is reported in a few
lines with where the inputs came from and what to try (``error_report``).

Every compared output becomes a record in the item's ``user_properties`` (``records``);
a failure is reported with the compare function's report, never a traceback into the
plugin (``outcomes.fail``).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_polygraphy.errors import (
    BackendUnavailableError,
    InferenceError,
    OutputMismatchError,
    PolygraphyError,
)
from pytest_polygraphy.plugin.backends import FULL_PRECISION, RunnerCache
from pytest_polygraphy.plugin.golden import GoldenFile, update_command
from pytest_polygraphy.plugin.nextstep import side
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.records import COMPARE_PROPERTY, compare_record
from pytest_polygraphy.plugin.settings import AccuracySettings, nonfinite_report
from pytest_polygraphy.plugin.syntax import OptionValueError, shape_set_id

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_polygraphy.plugin.runresults import LoadedOutputs, SavedRun

NO_BACKEND = (
    "no backend selected: pass --onnxrt, --onnxref and/or --trt "
    "(or set polygraphy_backends in the ini file)"
)


@dataclass
class Comparer:
    """Compares outputs for one test and records every compared output."""

    config: pytest.Config
    nodeid: str
    user_properties: list[tuple[str, object]]
    settings: AccuracySettings
    failures: list[str] = field(default_factory=list)
    #: Whether a debug session can replace the test's model and inputs (the next steps
    #: offer one only then).
    reducible: bool = True
    #: What the failure says after the comparisons and before the next steps (the first
    #: divergence under mark_all).
    diagnoses: list[str] = field(default_factory=list)
    #: Outputs compared, and outputs checked for NaN/Inf, over all iterations.
    compared: int = 0
    validated: int = 0
    #: True once a comparison failed under ``fail_fast``: nothing more is compared.
    stopped: bool = False
    #: Generated inputs whose dynamic dims nothing sized (set to 1), with their shapes.
    defaulted_inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _compare_func: Any = None

    @property
    def compare_func(self) -> Any:
        if self._compare_func is None:
            try:
                self._compare_func = self.settings.make_compare_func()
            except OptionValueError as err:
                fail(f"{self.nodeid}: {err}")
        return self._compare_func

    def compare(
        self,
        actual: Mapping[str, Any],
        expected: Mapping[str, Any],
        *,
        actual_name: str,
        reference_name: str,
        iteration: int,
        actual_side: str | None = None,
        expected_side: str | None = None,
    ) -> bool:
        """Compare, record, and remember a failure's report; True when everything matched.

        ``actual_side`` and ``expected_side`` say what each side is (``onnxrt[fp16]``,
        ``onnxref at fp32``, ``golden file g.npz``) in the failure's header; by default
        the names."""
        header = (
            f"{actual_name} vs {reference_name}, iteration {iteration} "
            f"(expected = {expected_side or reference_name}, "
            f"actual = {actual_side or actual_name})"
        )
        if self.settings.postprocess:
            from pytest_polygraphy.plugin.runresults import postprocess

            top_k = self.settings.postprocess
            actual = postprocess(actual, top_k, f"{actual_name}, iteration {iteration}")
            expected = postprocess(expected, top_k, f"{reference_name}, iteration {iteration}")
        try:
            result = self._run_compare(actual, expected)
        except OutputMismatchError as err:
            hint = ""
            if self.settings.load_outputs is not None and self.settings.selects_outputs:
                hint = (
                    f"\n{expected_side or reference_name} holds only the tensors its run "
                    "saved: save that run with the same --polygraphy-outputs, or compare "
                    "the model's outputs alone"
                )
            self.failures.append(f"{header}: {err}{hint}")
            self.stopped = self.settings.fail_fast
            return False
        self.compared += len(result)
        for name in result:
            output = result[name]
            rtol, atol = self.settings.tolerance(name)
            record = compare_record(
                self.nodeid,
                output,
                actual=actual_name,
                reference=reference_name,
                iteration=iteration,
                precision=self.settings.precision,
                rtol=rtol,
                atol=atol,
                rule=self.settings.rule,
            )
            if not output.passed:
                record["detail"] = output.report()
                self._save_artifact(record, actual.get(name), expected.get(name))
            self.user_properties.append((COMPARE_PROPERTY, record))
        if not result:
            self.failures.append(f"{header}:\n{result.report()}")
            self.stopped = self.settings.fail_fast
        return bool(result)

    def _run_compare(self, actual: Mapping[str, Any], expected: Mapping[str, Any]) -> Any:
        """The compare function's result; under ``fail_fast``, output by output in the
        reference's order, stopping after the first that fails (the outputs after it are
        not compared, as Polygraphy's ``--fail-fast``). When the test selects its outputs
        (``outputs``, ``exclude_outputs``, mark all), those are compared."""
        # Selected outputs are compared with a file holding more (loaded or golden outputs
        # of the whole model): each selected one must be in it.
        selected = list(actual) if self.settings.selects_outputs else None
        if not self.settings.fail_fast:
            return self.compare_func(actual, expected, outputs=selected)
        from pytest_polygraphy.compare.pairing import pair_outputs
        from pytest_polygraphy.compare.results import CompareResult

        outputs: dict[str, Any] = {}
        how = repr(self.compare_func)
        for name in pair_outputs(actual, expected, selected):  # a name mismatch raises here
            one = self.compare_func(actual, expected, outputs=[name])
            outputs[name], how = one[name], one.compare
            if not one:
                break
        return CompareResult(outputs, compare=how)

    def validate(self, outputs: Mapping[str, Any], runner: str, iteration: int) -> None:
        """Under ``--polygraphy-validate``: a failure for every output with NaN or Inf."""
        if self.settings.validate:
            self.validated += len(outputs)
            self.failures.extend(nonfinite_report(outputs, runner, iteration))

    def fail_if_any(self, what: str) -> None:
        """Fail the test with every failure's report, under a line saying what ran, and
        ending with what to run next (``nextstep``)."""
        if self.failures:
            from pytest_polygraphy.plugin.nextstep import next_steps

            count = len(self.failures)
            steps = next_steps(
                self.config,
                self.nodeid,
                self.settings.precision,
                reducible=self.reducible,
                mark_all=self.settings.mark_all,
                expected_from_file=self.settings.load_outputs is not None,
            )
            notes = [*self.diagnoses]
            if self.defaulted_inputs:
                notes.append(defaulted_shapes_note(self.defaulted_inputs))
            fail(
                f"{what}: {count} comparison{'s' if count > 1 else ''} failed "
                f"({describe(self.settings)})\n\n" + "\n\n".join([*self.failures, *notes, steps])
            )

    def _save_artifact(self, record: dict[str, Any], actual: Any, expected: Any) -> None:
        if (
            actual is None
            or expected is None
            or getattr(actual, "shape", None) != getattr(expected, "shape", None)
        ):
            return
        from pytest_polygraphy.plugin.report import save_artifact

        path = save_artifact(self.config, record, actual, expected)
        if path is not None:
            record["artifact"] = path


def defaulted_shapes_note(defaulted: Mapping[str, tuple[int, ...]]) -> str:
    """Why a failure on generated inputs may come from their shape, not the backend."""
    listed = ", ".join(f"{name!r} {list(shape)}" for name, shape in defaulted.items())
    example = " ".join(shlex.quote(f"{name}:[...]") for name in defaulted)
    return (
        f"Inputs generated with their unsized dynamic dims set to 1: {listed}. A shape that "
        "small can make a model compute nothing meaningful (empty pooling windows give "
        "NaN, a reshape of the weights fails), and then backends disagree about nothing a "
        "user would run. Unless 1 is a real size, give the shapes the model is used with: "
        f"--polygraphy-input-shapes {example} (the real sizes), or input_shapes in "
        "the model's .polygraphy.json."
    )


def describe(settings: AccuracySettings) -> str:
    """``precision fp16, shapes x=2x4, seed 1, 2 iterations``: what a failure came from."""
    parts = [f"precision {settings.precision}"]
    if settings.input_shapes:
        parts.append(f"shapes {shape_set_id(settings.input_shapes)}")
    if settings.input_sources():
        parts.append("inputs from " + ", ".join(str(p) for p in settings.input_sources()))
    else:
        parts.append(f"seed {settings.seed}")
        if settings.iterations != 1:
            parts.append(f"{settings.iterations} iterations")
    return ", ".join(parts)


def plan(
    backends: Sequence[str], reference: str, precision: str
) -> tuple[tuple[str, str] | None, list[tuple[str, str]]]:
    """``(reference (backend, precision) or None for golden, [(backend, precision)])``."""
    if reference == "golden":
        return None, [(backend, precision) for backend in backends]
    under_test = [(backend, precision) for backend in backends if backend != reference]
    if not under_test and precision != FULL_PRECISION:
        under_test = [(reference, precision)]
    return (reference, FULL_PRECISION), under_test


def feeds_for(settings: AccuracySettings, runners: Sequence[Any]) -> Any:
    """The test's inputs: loaded feeds, or a DataLoader bound to the model's inputs."""
    loader = settings.data_loader()
    if hasattr(loader, "bind"):
        return loader.bind(runners[0].input_metadata)
    return loader


def check_accuracy(
    comparer: Comparer,
    model: Any,
    *,
    backends: Sequence[str],
    reference: str | None,
    cache: RunnerCache,
    golden: GoldenFile | None = None,
    update_golden: bool = False,
    engine: Path | None = None,
) -> None:
    """Run ``model`` on ``backends`` and compare with ``reference`` (module docstring).

    With ``engine`` (a prebuilt TensorRT engine file), that engine is what is tested:
    it is compared with ``model`` (the ONNX model it was built from) on the reference.

    Skips when no backend is selected or one is unavailable; fails with the comparison
    reports, or with the command that creates a missing golden file."""
    settings = comparer.settings
    if settings.skip:
        pytest.skip(settings.skip)
    if not backends or reference is None:
        pytest.skip(NO_BACKEND)
    loaded = None
    if settings.load_outputs is not None:
        from pytest_polygraphy.plugin.runresults import load_outputs

        try:
            loaded = load_outputs(settings.load_outputs, comparer.nodeid)
        except PolygraphyError as err:
            fail_with_error(comparer, err)
        reference = "golden"  # every selected backend is compared with the file's outputs
    reference_spec, under_test = plan(backends, reference, settings.precision)
    first = backends[0]
    if engine is not None:
        engine_plan(backends, reference)
        under_test = [("trt", settings.precision)]
        if update_golden:
            first = next((b for b in backends if b != "trt"), "")
            if not first:
                fail(
                    "golden files of an engine test are written from its ONNX model on "
                    "another backend: select --onnxref or --onnxrt too"
                )
    try:
        reference_runner = (
            None
            if reference_spec is None
            else cache.get(reference_spec[0], model, FULL_PRECISION, settings)
        )
        runners = [
            cache.get(b, engine if engine is not None else model, p, settings)
            for b, p in under_test
        ]
        source = reference_runner
        if golden is not None and update_golden:
            source = cache.get(first, model, FULL_PRECISION, settings)
        if settings.save_engine is not None:
            save_engines(settings.save_engine, comparer.nodeid, reference_runner, runners)
        report_precision_readbacks(comparer, [reference_runner, *runners])
    except BackendUnavailableError as err:
        pytest.skip(str(err))
    except PolygraphyError as err:
        fail_with_error(comparer, err)

    saved = None
    if settings.save_inputs is not None or settings.save_outputs is not None:
        from pytest_polygraphy.plugin.runresults import SavedRun

        saved = SavedRun()
    try:
        count = _compare_iterations(
            comparer, reference_runner, runners, source, golden, update_golden, model, loaded, saved
        )
        if saved is not None and count:
            from pytest_polygraphy.plugin.runresults import write_saved

            write_saved(
                saved,
                comparer.nodeid,
                inputs_dir=settings.save_inputs,
                outputs_dir=settings.save_outputs,
                file_format=settings.save_format,
            )
    except PolygraphyError as err:
        fail_with_error(comparer, err)
    comparer.fail_if_any(comparer.nodeid)
    if not comparer.compared and not comparer.validated:
        fail(nothing_compared(comparer, count, reference_runner, runners))


def engine_plan(backends: Sequence[str], reference: str | None) -> None:
    """Skip or fail an engine test that cannot run as selected: an engine runs on
    TensorRT (``--trt``), and is compared with its ONNX model on another backend."""
    if "trt" not in backends:
        pytest.skip("engine files run on TensorRT: select --trt (with --onnxref or --onnxrt)")
    if reference == "trt":
        fail(
            "an engine file is compared with the ONNX model it was built from on a reference "
            "backend, and TensorRT cannot be its own reference: select --onnxref or --onnxrt "
            "too (or --polygraphy-reference onnxref|onnxrt|golden)"
        )


def report_precision_readbacks(comparer: Comparer, runners: Sequence[Any]) -> None:
    """What each TensorRT runner's engine says of the requested layer precisions
    (``TrtRunner.precision_readback``): on the test's user_properties (shown as its
    "polygraphy TensorRT precisions" report section), and, where TensorRT ignored one or
    it could not be read back, in the failure text too."""
    from pytest_polygraphy.plugin.records import TRT_PRECISIONS_PROPERTY

    for runner in runners:
        readback = getattr(runner, "precision_readback", None)
        if readback is None:
            continue
        lines = readback.lines()
        summary = f"{runner.name}: " + "\n".join(lines)
        comparer.user_properties.append(
            (
                TRT_PRECISIONS_PROPERTY,
                {
                    "runner": runner.name,
                    "summary": summary,
                    "lines": lines,
                    **readback.to_dict(),
                },
            )
        )
        if not readback.complete:
            comparer.diagnoses.append(
                f"{runner.name}: requested layer precisions, read back from the engine:\n"
                + "\n".join(f"  {line}" for line in lines)
            )


def save_engines(
    folder: Path, nodeid: str, reference_runner: Any, runners: Sequence[Any]
) -> list[Path]:
    """``--polygraphy-save-engine DIR``: copy the engines this test's TensorRT runners
    built (or took from the engine cache) into ``DIR/<test id>.engine`` (a TensorRT
    reference's into ``<test id>.reference.engine``), atomically. Prebuilt engine files
    are the user's own and are not copied."""
    from pytest_polygraphy.plugin.runresults import claim_folder, per_test_stem

    saved = []
    for runner, suffix in [
        (reference_runner, ".reference.engine"),
        *((r, ".engine") for r in runners),
    ]:
        if runner is None or not hasattr(runner, "save_engine"):
            continue
        claim_folder(folder, "--polygraphy-save-engine")
        saved.append(runner.save_engine(folder / (per_test_stem(nodeid) + suffix)))
    return saved


def nothing_compared(
    comparer: Comparer, iterations: int, reference_runner: Any, runners: Sequence[Any]
) -> str:
    """Why a test compared no output at all, and what to change: such a test must fail,
    or it would pass while checking nothing."""
    settings = comparer.settings
    if iterations == 0:
        if settings.input_sources():
            files = ", ".join(str(p) for p in settings.input_sources())
            return (
                f"nothing was compared: the inputs loaded from {files} hold 0 iterations; "
                "give at least one feed (an .npz or Polygraphy .json with one entry per "
                "iteration)"
            )
        return "nothing was compared: the data loader gave 0 iterations"
    if not runners and reference_runner is not None:
        return (
            f"nothing was compared: {reference_runner.name} is the only backend selected and "
            f"this test runs at {settings.precision}, the reference's own precision, so its "
            "outputs were compared with nothing; select a second backend (--onnxrt, "
            "--onnxref, --trt), a reduced precision (--polygraphy-precisions fp16), golden "
            "outputs (--polygraphy-reference golden), or --polygraphy-validate to check the "
            "outputs for NaN and Inf only"
        )
    names = ", ".join(r.name for r in runners) or "the backends"
    return (
        f"nothing was compared: {names} produced no outputs in {iterations} iteration(s); "
        "check that the model marks the tensors to compare as graph outputs"
    )


INFERENCE_ADVICE = (
    "The inputs fit the model's declared inputs, but the backend cannot run them. If the "
    "shapes are wrong for the model's weights, give shapes that fit "
    "(--polygraphy-input-shapes, or input_shapes in the model's .polygraphy.json); if the "
    "values are, narrow them (--polygraphy-val-range) or load real inputs "
    "(--polygraphy-load-inputs)."
)


def feed_origin(settings: AccuracySettings) -> str:
    """Where a test's inputs came from: ``loaded from a.npz`` or ``generated (seed 1, ...)``."""
    if settings.input_sources():
        return "loaded from " + ", ".join(str(p) for p in settings.input_sources())
    shapes = (
        f"shapes {shape_set_id(settings.input_shapes)}"
        if settings.input_shapes
        else "shapes from the model's declared dims"
    )
    return f"generated ({shapes}, seed {settings.seed}, {settings.iterations} iteration(s))"


def show_traceback(config: pytest.Config) -> bool:
    """Whether the user asked for tracebacks: ``-v``, ``--tb=long`` or ``--fulltrace``."""
    return (
        config.get_verbosity() > 0
        or config.getoption("tbstyle", "auto") == "long"
        or bool(config.getoption("fulltrace", False))
    )


def error_report(config: pytest.Config, err: BaseException, settings: AccuracySettings) -> str:
    """A user-caused error as a short failure: its message, for a backend failure where
    the inputs came from and what to do, and the traceback only when asked for."""
    import traceback

    lines = [f"{type(err).__name__}: {err}"]
    if isinstance(err, InferenceError):
        lines.append(f"inputs: {feed_origin(settings)}")
        lines.append(INFERENCE_ADVICE)
    if show_traceback(config):
        lines.append("\n" + "".join(traceback.format_exception(err)).rstrip())
    elif isinstance(err, InferenceError):
        lines.append("Run with -v or --tb=long for the backend's traceback.")
    return "\n".join(lines)


def fail_with_error(comparer: Comparer, err: PolygraphyError) -> NoReturn:
    """Fail the test with ``error_report``."""
    fail(error_report(comparer.config, err, comparer.settings))


def _compare_iterations(
    comparer: Comparer,
    reference_runner: Any,
    runners: Sequence[Any],
    source: Any,
    golden: GoldenFile | None,
    update_golden: bool,
    model: Any = None,
    loaded: LoadedOutputs | None = None,
    keep: SavedRun | None = None,
) -> int:
    """Compare iteration by iteration; returns the number of iterations run. ``loaded``
    is the reference of ``load_outputs``; ``keep`` collects the feeds and every runner's
    outputs for ``save_inputs`` / ``save_outputs``.

    Under ``mark_all`` the model's outputs are compared as without it, and every
    intermediate tensor is compared for the first divergence (``MarkAll``)."""
    settings = comparer.settings
    mark_all = MarkAll.of(comparer, model) if settings.mark_all and not update_golden else None
    saved: list[dict[str, Any]] | None = None
    if golden is not None and not update_golden:
        saved = read_golden(comparer.config, golden, comparer.nodeid)
    written: list[dict[str, Any]] = []
    known = [r for r in (reference_runner, *runners, source) if r is not None]
    count = 0
    if loaded is not None:
        expected_side = f"results file {loaded.path}"
    elif golden is not None:
        expected_side = f"golden file {golden.path}"
    else:
        expected_side = side(reference_runner.name, FULL_PRECISION)
    feeds = feeds_for(settings, known)
    comparer.defaulted_inputs = dict(getattr(feeds, "defaulted", {}))
    for iteration, feed in enumerate(feeds):
        count += 1
        if iteration == 0 and settings.warm_up:
            warm_up(known, feed, settings.warm_up)
        if keep is not None:
            keep.feeds.append(dict(feed))
        if comparer.stopped:
            continue  # fail-fast: the feeds are still counted, nothing more runs
        if loaded is not None:
            if iteration >= len(loaded.iterations):
                continue  # counted: the mismatch in iteration counts is reported below
            expected = loaded.iterations[iteration]
            reference_name = loaded.name
        elif golden is None:
            names = None if mark_all is None else mark_all.outputs_of(reference_runner)
            expected = reference_runner.infer(feed, output_names=names)
            reference_name = reference_runner.name
            if keep is not None:
                keep.add_outputs(reference_name, expected)
        elif update_golden:
            expected = source.infer(feed)
            written.append(expected)
            if keep is not None:
                keep.add_outputs(source.name, expected)
            reference_name = "golden"
        else:
            assert saved is not None
            if iteration >= len(saved):
                continue  # counted: the mismatch in iteration counts is reported below
            expected = saved[iteration]
            if mark_all is not None:
                expected = {k: v for k, v in expected.items() if k in mark_all.outputs}
            reference_name = "golden"
        comparer.validate(expected, reference_name, iteration)
        for runner in runners:
            names = None if mark_all is None else mark_all.outputs_of(runner)
            actual = runner.infer(feed, output_names=names)
            if keep is not None:
                keep.add_outputs(runner.name, actual)
            comparer.validate(actual, runner.name, iteration)
            matched = comparer.compare(
                actual,
                expected,
                actual_name=runner.name,
                reference_name=reference_name,
                iteration=iteration,
                actual_side=side(runner.name, settings.precision),
                expected_side=expected_side,
            )
            if mark_all is not None and not comparer.stopped:
                # a file's iteration is scanned for the tensors it holds, as a golden one
                reference = (
                    saved[iteration]
                    if saved is not None
                    else expected
                    if loaded is not None
                    else reference_runner
                )
                mark_all.scan(runner, reference, feed, iteration, matched, reference_name)
            if comparer.stopped:
                break
    if mark_all is not None:
        mark_all.finish()
    if count == 0:
        return 0  # nothing to write or check: the "nothing was compared" failure follows
    if loaded is not None and len(loaded.iterations) != count and not comparer.stopped:
        comparer.failures.append(
            f"results file {loaded.path} holds {len(loaded.iterations)} iteration(s) of "
            f"runner {loaded.runner!r}, the test ran {count}; load outputs made from the same "
            "inputs (same seed, iterations and shapes, or the same inputs file)"
        )
    if golden is not None and update_golden:
        golden.write(written, golden_info(comparer, source.name, FULL_PRECISION))
    elif saved is not None and len(saved) != count:
        comparer.failures.append(
            f"golden file {golden.path if golden else ''} holds {len(saved)} iteration(s), "
            f"the test ran {count}; recreate it with:\n  "
            f"{update_command(comparer.config, comparer.nodeid)}"
        )
    return count


def warm_up(runners: Sequence[Any], feed: Mapping[str, Any], count: int) -> None:
    """Run each runner ``count`` times on ``feed`` before the compared inferences (their
    outputs are dropped), as ``polygraphy run --warm-up``."""
    for runner in dict.fromkeys(runners):
        for _ in range(count):
            runner.infer(feed)


def golden_info(comparer: Comparer, backend: str | None, precision: str) -> dict[str, Any]:
    """The sidecar of a golden file written by this test."""
    settings = comparer.settings
    return {
        "test": comparer.nodeid,
        "backend": backend,
        "precision": precision,
        "seed": settings.seed,
        "input_shapes": {k: list(v) for k, v in (settings.input_shapes or {}).items()},
        "load_inputs": [str(p) for p in settings.input_sources()],
    }


def read_golden(config: pytest.Config, golden: GoldenFile, nodeid: str) -> list[dict[str, Any]]:
    """The golden iterations, or a test failure that says how to (re)create the file."""
    command = update_command(config, nodeid)
    if not golden.exists():
        fail(f"golden file {golden.path} does not exist; create it with:\n  {command}")
    try:
        return golden.read()
    except PolygraphyError as err:
        fail(f"{err}\nrecreate it with:\n  {command}")


class MarkAll:
    """``--polygraphy-mark-all`` for one test: the model's outputs are compared as usual;
    every tensor both sides hold is compared too, in memory-bounded batches, for the first
    divergence (``divergence``). A tensor over its tolerance fails the test (as with
    Polygraphy's mark-all) even when every output passed. The failure tells the first
    divergence; the table of every tensor goes to the report, one per backend under test
    (its first iteration with a failing tensor, else its first)."""

    def __init__(self, comparer: Comparer, order: Any, outputs: list[str]) -> None:
        self.comparer = comparer
        self.order = order
        self.outputs = outputs
        self.kept: dict[str, dict[str, Any]] = {}

    @classmethod
    def of(cls, comparer: Comparer, model: Any) -> MarkAll:
        import onnx

        from pytest_polygraphy.plugin.divergence import GraphOrder

        proto = model if isinstance(model, onnx.ModelProto) else None
        if proto is None:
            proto = onnx.load(str(model), load_external_data=False)
        return cls(comparer, GraphOrder.of(proto), [o.name for o in proto.graph.output])

    def outputs_of(self, runner: Any) -> list[str]:
        """The model's own outputs among what ``runner`` (every tensor marked) returns."""
        held = set(_held(runner))
        return [name for name in self.outputs if name in held]

    def scan(
        self,
        runner: Any,
        reference: Any,
        feed: Mapping[str, Any],
        iteration: int,
        matched: bool,
        reference_name: str,
    ) -> None:
        """Compare every tensor of ``runner`` with ``reference`` (a runner, or a golden
        iteration ``{name: array}``) on ``feed``."""
        from pytest_polygraphy.plugin.divergence import find, scan, summary

        if isinstance(reference, Mapping):
            held = set(reference)

            def expected(batch: Sequence[str]) -> Mapping[str, Any]:
                return {name: reference[name] for name in batch}
        else:
            held = set(_held(reference))

            def expected(batch: Sequence[str]) -> Mapping[str, Any]:
                return reference.infer(feed, output_names=list(batch))

        names = [name for name in _held(runner) if name in held]
        comparer = self.comparer
        table = scan(
            self.order,
            names,
            expected,
            lambda batch: runner.infer(feed, output_names=list(batch)),
            comparer.compare_func,
        )
        failing_outputs = [
            row.tensor for row in table if row.tensor in self.outputs and not row.passed
        ]
        found = find(self.order, table, failing_outputs)
        header = f"{runner.name} vs {reference_name}, iteration {iteration}"
        known = self.kept.get(runner.name)
        if known is None or (not known["failed"] and found["failed"]):
            self.kept[runner.name] = {
                "test": comparer.nodeid,
                "actual": runner.name,
                "reference": reference_name,
                "iteration": iteration,
                "precision": comparer.settings.precision,
                "atol": comparer.settings.tolerance("")[1],
                "rtol": comparer.settings.tolerance("")[0],
                "intermediates": len(table) - len(self.outputs),
                **found,
                "summary": summary(found, header, comparer.settings.tolerance("")),
                "tensors": [dataclasses.asdict(row) for row in table],
            }
        if not found["failed"]:
            return
        if known is None or not known["failed"]:
            comparer.diagnoses.append(self.kept[runner.name]["summary"])
        if matched:
            comparer.failures.append(
                f"{header}: every model output passed, but {found['failed']} intermediate "
                "tensor(s) exceed the tolerance (--polygraphy-mark-all compares them all)"
            )

    def finish(self) -> None:
        """Hand the tables to the report (``DIVERGENCE_PROPERTY``)."""
        from pytest_polygraphy.plugin.records import DIVERGENCE_PROPERTY

        for kept in self.kept.values():
            self.comparer.user_properties.append((DIVERGENCE_PROPERTY, kept))


def _held(runner: Any) -> list[str]:
    """The tensors a runner returns: its session's outputs, else its model's."""
    session = getattr(runner, "session", None)
    if session is not None and hasattr(session, "get_outputs"):
        return [output.name for output in session.get_outputs()]
    return list(runner.output_metadata)
