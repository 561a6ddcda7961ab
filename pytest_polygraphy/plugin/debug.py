"""Debug sessions from pytest: after a model test fails, ``--polygraphy-reduce`` shrinks its
model and ``--polygraphy-precision`` finds the nodes to keep in fp32, with the test itself
as the check.

This is the only pytest-aware part of the debug sessions. After a test fails normally, it
builds the check that the engine (``pytest_polygraphy.debug``) calls: re-run that same
item in process, as pytest-rerunfailures does (``runtestprotocol`` again, so
function-scoped fixtures are rebuilt and nothing is reported twice), with the variant in
place of its model and the variant's inputs in place of its own, or with nodes kept in
fp32. The variant reaches the test through the item's stash, read by the ``model``,
``polygraphy_settings`` and ``data_loader`` fixtures and by model-file items.

A re-run is classified as the engine asks:

- **bad**: it failed the same way as the original: an accuracy failure (on the same
  failing outputs, where the variant still has them), or an exception of the same type;
  and, under ``--polygraphy-fail-on REGEX``, its failure text matches;
- **good**: it passed, or (as with Polygraphy's ``--fail-regex``) it failed the same way
  but its failure text does not match ``--polygraphy-fail-on``;
- **invalid**: anything else (an error in setup, a skip, another failure, a test that did
  not take the variant's inputs). Never counted as bad.

The test's own reports keep their outcome; the session's summary is added to the call
report as a section, to its ``user_properties`` (``polygraphy_debug``) for the HTML/JSON
reports, and to the terminal summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.errors import raised_preparing_runner
from pytest_polygraphy.plugin.options import PolygraphyOptions, get_options
from pytest_polygraphy.plugin.records import (
    DEBUG_CHECK_RUNNING,
    DEBUG_PROPERTY,
    DIVERGENCE_PROPERTY,
    TRT_PRECISIONS_PROPERTY,
)
from pytest_polygraphy.plugin.runsyntax import MARK_ALL
from pytest_polygraphy.plugin.table import records_of


class VariantFeeds(list):  # type: ignore[type-arg]
    """The variant's feeds; remembers whether the test iterated over them. Like
    ``data.LoadedFeeds`` (not imported here: it imports numpy), ``bind`` returns them."""

    used = False

    def __iter__(self) -> Iterator[Any]:
        self.used = True
        return super().__iter__()

    def bind(self, metadata: Any) -> VariantFeeds:
        return self


@dataclass
class ActiveVariant:
    """What a debug re-run hands the test instead of its own model, inputs or precision
    settings; ``None`` fields stay the test's own."""

    model: Path | None = None
    feeds: VariantFeeds | None = None
    keep_fp32: tuple[str, ...] | None = None
    keep_fp16: tuple[str, ...] | None = None
    #: The variant model's tensors (graph inputs and node outputs), when it has a model.
    tensors: frozenset[str] = frozenset()
    #: The variant model's node names (or stable ids), when it has a model.
    nodes: frozenset[str] = frozenset()


@dataclass
class DebugContext:
    """What the original run of a test used: recorded by the fixtures and model items."""

    model: Any = None
    settings: Any = None
    #: Why no debug session can vary this test (e.g. it runs a prebuilt engine).
    cannot: str | None = None


VARIANT_KEY = pytest.StashKey[ActiveVariant]()
CONTEXT_KEY = pytest.StashKey[DebugContext]()
EXCINFO_KEY = pytest.StashKey[Any]()


def active_variant(node: pytest.Item) -> ActiveVariant | None:
    """The variant a debug re-run of ``node`` runs with, or None (a normal run)."""
    return node.stash.get(VARIANT_KEY, None)


def remember(
    node: pytest.Item, *, model: Any = None, settings: Any = None, cannot: str | None = None
) -> None:
    """Record the model and settings a test runs with (what a debug session starts from),
    or why a debug session cannot vary it."""
    if active_variant(node) is not None:
        return
    context = node.stash.setdefault(CONTEXT_KEY, DebugContext())
    if cannot is not None:
        context.cannot = cannot
    if model is not None:
        context.model = model
    if settings is not None:
        context.settings = settings


def variant_settings(node: pytest.Item, settings: Any, options: PolygraphyOptions) -> Any:
    """``settings`` for a debug re-run: the variant's feeds and shapes (a golden test, or
    one compared with ``--polygraphy-load-outputs``, is compared with its first selected
    backend at fp32 when the model is a variant: the file holds only the whole model's
    outputs, for the whole model's inputs) and its nodes kept in fp32, added to the
    test's own. A cut keeps in fp32 (or fp16) the nodes of the test's lists that it
    holds, and its TensorRT profile covers its own samples' shapes (the test's profiles
    name the whole model's inputs).

    A variant writes nothing of the user's: it saves no inputs, outputs or engines (the
    files under the test's name hold what the test itself ran, not the last variant's),
    and it reads the user's TensorRT calibration cache only when the test's own run left
    one, calibrating on its own inputs otherwise (writing it would leave a cut's scales
    where the user's next run reads the model's). Unchanged outside a debug re-run."""
    variant = active_variant(node)
    if variant is None:
        return settings
    changes: dict[str, Any] = {"save_inputs": None, "save_outputs": None, "save_engine": None}
    cache = settings.calibration_cache
    if cache is not None and not Path(cache).is_file():
        changes["calibration_cache"] = None
    for attr, added in (("keep_fp32", variant.keep_fp32), ("keep_fp16", variant.keep_fp16)):
        keep: tuple[str, ...] = getattr(settings, attr)
        if variant.model is not None:  # a cut keeps what the test keeps of the nodes it holds
            keep = tuple(name for name in keep if name in variant.nodes)
        if added is not None:
            keep = tuple(dict.fromkeys((*keep, *added)))
        changes[attr] = keep
    if variant.feeds is None:
        return dataclasses.replace(settings, **changes)
    sample_shapes: list[dict[str, tuple[int, ...]]] = []
    for i in range(len(variant.feeds)):  # by index: iterating the feeds marks them used
        one = {name: tuple(value.shape) for name, value in variant.feeds[i].items()}
        if one not in sample_shapes:
            sample_shapes.append(one)
    reference = settings.reference
    if reference == "golden" and options.backends:
        reference = options.backends[0]
    changes.update(
        feeds=variant.feeds,
        input_shapes=(sample_shapes[0] or None) if sample_shapes else None,
        reference=reference,
        load_outputs=None,
    )
    if variant.model is not None:
        # Output names select among the whole model's outputs; a cut compares its own.
        # Exclusions still hold for the tensors the variant has.
        if settings.outputs and settings.outputs != MARK_ALL:
            changes["outputs"] = ()
        changes["exclude_outputs"] = tuple(
            name for name in settings.exclude_outputs if name in variant.tensors
        )
        # TensorRT profiles name the whole model's inputs: a cut's cover its own samples.
        changes.update(
            trt_min_shapes=(),
            trt_opt_shapes=(),
            trt_max_shapes=(),
            parametrized_shapes=tuple(sample_shapes),
        )
    return dataclasses.replace(settings, **changes)


def variant_model(node: pytest.Item, model: Any) -> Any:
    """The model a (debug re-)run of ``node`` runs: the variant's, else ``model``."""
    variant = active_variant(node)
    return model if variant is None or variant.model is None else variant.model


def folder_for(options: PolygraphyOptions, config: pytest.Config, nodeid: str) -> Path:
    """The test's debug folder: readable from the test id, unique by its hash."""
    base = options.debug_dir or (config.invocation_params.dir / "polygraphy-debug")
    readable = re.sub(r"[^A-Za-z0-9._=-]+", "_", nodeid).strip("_")[:100]
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    return base / f"{readable}-{digest}"


@dataclass
class Signature:
    """How a run failed, to tell the same failure from another."""

    kind: str
    failures: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    text: str = ""
    #: The exception's own first line where the report starts with a traceback instead.
    headline: str = ""

    @property
    def first_line(self) -> str:
        return self.headline or _first_line(self.text, self.kind)


_MISSING_GOLDEN = re.compile(r"^(?:\w+: )?golden file .* does not exist")
_ERROR_PREFIX = re.compile(r"^\s*(?:E\s+)?(\w+(?:Error|Exception)):")


def _signature(
    call: pytest.TestReport,
    excinfo: Any,
    records: Sequence[Mapping[str, Any]],
    properties: Sequence[tuple[str, object]] = (),
) -> Signature:
    """How a run failed. Its failing outputs come from its comparison ``records``, and
    under ``--polygraphy-mark-all`` also from its divergence tables (in ``properties``):
    there a failing intermediate tensor fails the test too, and a cut's tensors are
    outputs of one variant and intermediates of another, so both are the same kind of
    failure."""
    failures = {
        str(r["output"]): (r.get("max_absdiff"), r.get("max_reldiff"))
        for r in records
        if not r.get("passed", True)
    }
    for name, value in properties:
        if name != DIVERGENCE_PROPERTY or not isinstance(value, Mapping):
            continue
        for row in value.get("tensors") or ():
            if isinstance(row, Mapping) and not row.get("passed", True):
                failures.setdefault(
                    str(row["tensor"]), (row.get("max_absdiff"), row.get("max_reldiff"))
                )
    text = call.longreprtext
    if failures:
        return Signature("accuracy failure", failures, text)
    if excinfo is None:
        return Signature("failure", {}, text)
    if isinstance(excinfo.value, pytest.fail.Exception):
        match = _ERROR_PREFIX.match(str(excinfo.value.msg or ""))
        return Signature(match.group(1) if match else "failure", {}, text)
    compared = _compared_failures(excinfo.value)
    if compared:  # assert_outputs_close in a hand-written test: an accuracy failure too
        return Signature("accuracy failure", compared, text, _first_line(str(excinfo.value), ""))
    # A plain exception's report starts with the test's source and arguments: its own
    # line ("AssertionError: assert ...") is what says how it failed.
    headline = _first_line(excinfo.exconly(), "")
    return Signature(type(excinfo.value).__name__, {}, text, headline)


def _compared_failures(error: BaseException) -> dict[str, tuple[float | None, float | None]]:
    """The failing outputs of ``assert_outputs_close``'s ``AssertionError`` (its
    ``result`` is the comparison), with their worst errors; empty for any other
    exception."""
    result = getattr(error, "result", None)
    if not isinstance(error, AssertionError) or result is None:
        return {}
    from pytest_polygraphy.compare.results import CompareResult  # loaded: the test compared

    if not isinstance(result, CompareResult):
        return {}
    return {
        name: (
            getattr(result[name], "max_absdiff", None),
            getattr(result[name], "max_reldiff", None),
        )
        for name in result.failed
    }


class DebugPlugin:
    """Runs the selected debug sessions: after each failing test ``--polygraphy-reduce``
    and ``--polygraphy-precision``; after every test ``--polygraphy-repeat`` and
    ``--polygraphy-build``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[tuple[str, dict[str, Any]]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        if call.when == "call":
            item.stash[EXCINFO_KEY] = call.excinfo
        yield

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        from _pytest.runner import runtestprotocol

        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        # nextitem=item.parent: tear down the function's fixtures only, so that re-runs
        # reuse the module's and session's; the rest is torn down after the sessions.
        reports = runtestprotocol(item, nextitem=item.parent, log=False)  # type: ignore[arg-type]
        call = next((r for r in reports if r.when == "call"), None)
        if call is not None and call.failed:
            self._debug(item, call)
        if call is not None:
            self._repeat(item, call)
        final = pytest.CallInfo.from_call(
            lambda: item.session._setupstate.teardown_exact(nextitem), when="teardown"
        )
        if final.excinfo is not None:
            report = item.ihook.pytest_runtest_makereport(item=item, call=final)
            reports = [r for r in reports if r.when != "teardown"] + [report]
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _debug(self, item: pytest.Item, call: pytest.TestReport) -> None:
        options = get_options(self.config)
        checker = ItemCheck(item, self.config, call)
        kinds = [
            kind
            for kind, on in (("reduce", options.reduce), ("precision", options.precision))
            if on
        ]
        for kind in kinds:
            run = checker.run_reduce if kind == "reduce" else checker.run_precision
            result = _guarded(kind, folder_for(options, self.config, item.nodeid), run)
            call.sections.append((f"polygraphy {kind}", result["summary"]))
            call.user_properties.append((DEBUG_PROPERTY, result))

    def _repeat(self, item: pytest.Item, call: pytest.TestReport) -> None:
        """``--polygraphy-repeat`` / ``--polygraphy-build``: run the test again; sort."""
        from pytest_polygraphy.debug.repeat import RepeatSession

        options = get_options(self.config)
        for kind, until in (("repeat", options.repeat), ("build", options.build)):
            if until is None:
                continue
            context = item.stash.get(CONTEXT_KEY, None)
            artifacts = list(options.artifacts)
            if context is not None and isinstance(context.model, str | Path):
                artifacts.append(Path(context.model))
            folder = folder_for(options, self.config, item.nodeid) / kind
            session = RepeatSession(
                kind,
                item.nodeid,
                until,
                lambda iteration, kind=kind: self._run_again(item, fresh=kind == "build"),
                folder,
                artifacts,
                log=_terminal_log(self.config),
                produced=(lambda i, f=folder: self._built(f))
                if kind == "build"
                else (lambda i: ()),
            )
            result = _guarded(kind, folder.parent, lambda s=session: s.run().to_dict())
            call.sections.append((f"polygraphy {kind}", result["summary"]))
            call.user_properties.append((DEBUG_PROPERTY, result))

    def _built(self, folder: Path) -> list[Path]:
        """The engines that the run just built (without the engine cache, from a fresh
        timing cache: ``--polygraphy-build``), each with that build's own timing cache
        (TensorRT 10 has no tactic replay API for Python: the timing cache is what a
        build's tactics can be kept as), saved under ``folder/.built`` for sorting.
        Nothing for runners that build no engine (ONNX Runtime)."""
        import shutil

        from pytest_polygraphy.plugin.backends import runner_cache

        staging = folder / ".built"
        shutil.rmtree(staging, ignore_errors=True)
        saved: list[Path] = []
        for runner in runner_cache(self.config).active_runners():
            if not getattr(runner, "engine_was_built", False):
                continue
            if not hasattr(runner, "save_engine") or not hasattr(runner, "save_timing_cache"):
                continue
            stem = re.sub(r"[^A-Za-z0-9._\[\],=-]+", "_", runner.name)
            saved.append(runner.save_engine(staging / f"{stem}.engine"))
            timing = runner.save_timing_cache(staging / f"{stem}.timing.cache")
            if timing is not None:
                saved.append(timing)
        return saved

    def _run_again(self, item: pytest.Item, *, fresh: bool) -> Any:
        from pytest_polygraphy.debug.search import Verdict
        from pytest_polygraphy.plugin.backends import runner_cache

        if fresh:
            runner_cache(self.config).close()  # every session and engine built anew
        reports, _ = rerun(item, self.config)
        if any(r.when != "call" and r.failed for r in reports) or any(r.skipped for r in reports):
            return Verdict.INVALID
        call = next((r for r in reports if r.when == "call"), None)
        return Verdict.GOOD if call is not None and call.passed else Verdict.BAD

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == DEBUG_PROPERTY and isinstance(value, Mapping):
                self.results.append((report.nodeid, dict(value)))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for kind in ("reduce", "precision", "repeat", "build"):
            results = [(n, r) for n, r in self.results if r.get("session") == kind]
            if not results:
                continue
            terminalreporter.section(f"polygraphy {kind}")
            for nodeid, result in results:
                terminalreporter.write_line(f"{nodeid}: {result.get('status')}")
                for line in str(result.get("summary", "")).splitlines():
                    terminalreporter.write_line(f"  {line}")


def _refused(kind: str, status: str, why: str) -> dict[str, Any]:
    return {"session": kind, "status": status, "summary": why}


def _guarded(kind: str, folder: Path, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s session result, or an ``error`` result when the session raised: a bad
    setting (``PolygraphyError``) says why; anything else is a fault of the session, with
    its traceback written to ``<folder>/<kind>/error.txt``. Either way the test keeps its
    own outcome and the rest of the run goes on."""
    from pytest_polygraphy.errors import PolygraphyError

    try:
        return run()
    except PolygraphyError as err:
        return _refused(kind, "error", f"cannot {kind}: {type(err).__name__}: {err}")
    except Exception as err:
        import traceback

        path = folder / kind / "error.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(err)), encoding="utf-8")
        return _refused(
            kind,
            "error",
            f"the {kind} session failed: {type(err).__name__}: {err} (traceback in {path}; "
            "please report it)",
        )


class ItemCheck:
    """The check the engine's sessions call for one failing item: re-run it in process
    with a variant in place of its model, inputs or precision settings; classify it."""

    def __init__(self, item: pytest.Item, config: pytest.Config, call: pytest.TestReport):
        self.item = item
        self.config = config
        self.options = get_options(config)
        self.folder = folder_for(self.options, config, item.nodeid)
        records = records_of(item.user_properties)
        self.original = _signature(
            call, item.stash.get(EXCINFO_KEY, None), records, item.user_properties
        )
        #: What the original run compared with, when it was a file's outputs.
        self.file_reference = next(
            (
                "its golden file"
                if r.get("reference") == "golden"
                else f"outputs loaded from a file ({r['reference']})"
                for r in records
                if r.get("reference") == "golden" or " from " in str(r.get("reference", ""))
            ),
            None,
        )
        self.context = item.stash.get(CONTEXT_KEY, None)
        self.model_outputs: set[str] = set()

    def log(self, line: str) -> None:
        _terminal_log(self.config)(line)

    def _refusal(self, kind: str) -> dict[str, Any] | None:
        context = self.context
        if context is not None and context.cannot is not None:
            return _refused(kind, f"cannot {kind}", f"cannot {kind}: {context.cannot}")
        if context is None or context.model is None or context.settings is None:
            return _refused(
                kind,
                f"cannot {kind}",
                f"cannot {kind}: the test does not take its model from the model fixture "
                "(with accuracy, the runners or data_loader), so a variant cannot replace it",
            )
        if not isinstance(context.model, str | Path):
            return _refused(
                kind,
                f"cannot {kind}",
                f"cannot {kind}: the model fixture returned an in-memory model, not a file",
            )
        if _MISSING_GOLDEN.match(self.original.first_line):
            return _refused(
                kind,
                f"cannot {kind}",
                f"cannot {kind}: the test fails because its golden file is missing "
                f"({self.original.first_line.split(';')[0]}): there is nothing to compare "
                "with yet; create it with --polygraphy-update-golden",
            )
        fail_on = self.options.fail_on
        if fail_on is not None and not re.search(fail_on, self.original.text):
            return _refused(
                kind,
                "not reproduced",
                f"the failure does not match --polygraphy-fail-on {fail_on!r}; nothing to do",
            )
        self.model_outputs = _output_names(context.model)
        return None

    def run_reduce(self) -> dict[str, Any]:
        from pytest_polygraphy.debug import CheckOutcome, ReduceOptions, ReduceSession, Verdict

        refused = self._refusal("reduce")
        if refused is not None:
            return refused
        context = self.context
        assert context is not None
        reference = context.settings.reference
        if reference is None or (reference == "golden" and not self.options.backends):
            return _refused(
                "reduce",
                "cannot reduce",
                "cannot reduce: no backend is selected to compute the reference values",
            )
        first = CheckOutcome(Verdict.BAD, self.original.first_line, self.original.failures)
        session = ReduceSession(
            self.item.nodeid,
            context.model,
            self._feeds(context),
            check=self,
            run_reference=self._reference_runner(context),
            folder=self.folder / "reduce",
            options=ReduceOptions(
                mode=self.options.reduce_mode,
                keep_inputs=self.options.no_reduce_inputs,
                keep_outputs=self.options.no_reduce_outputs,
                replay=self.options.load_replay,
                # nodes kept in fp32 read their inputs unconverted: no range note then
                precision=None if context.settings.keep_fp32 else context.settings.precision,
            ),
            log=self.log,
            confirmed=first,
        )
        result = session.run().to_dict()
        if result["status"] == "failure lost when cut" and self.file_reference is not None:
            backend = reference if reference != "golden" else self.options.backends[0]
            *lines, last = result["summary"].split("\n")
            lines.append(
                f"note: the test compares with {self.file_reference}, which holds only the "
                f"whole model's outputs, so its cuts are compared with {backend} at fp32 "
                "instead, and the failure does not show between those: it is a difference "
                "from the file (another backend, version or input), which cutting the model "
                "cannot narrow down"
            )
            result["summary"] = "\n".join([*lines, last])
        return result

    def run_precision(self) -> dict[str, Any]:
        from pytest_polygraphy.debug.precision import PrecisionOptions, PrecisionSession

        refused = self._refusal("precision")
        if refused is not None:
            return refused
        context = self.context
        assert context is not None
        settings = context.settings
        own, other = settings.keep_fp32, settings.keep_fp16
        if self.options.precision_to == "float16":
            own, other = other, own
        session = PrecisionSession(
            self.item.nodeid,
            context.model,
            check=self,
            folder=self.folder / "precision",
            precision=settings.precision,
            already_kept=tuple(own),
            kept_otherwise=tuple(other),
            options=PrecisionOptions(
                mode=self.options.precision_mode,
                direction=self.options.precision_direction,
                max_checks=self.options.max_checks,
                replay=self.options.load_replay,
                to=self.options.precision_to,
            ),
            save_passing=lambda kept, path: self._save_passing(context, kept, path),
            log=self.log,
            tensorrt_layers=self._tensorrt_layers(context),
        )
        result = session.run().to_dict()
        cpu_only = tuple(self.options.providers) in (("cpu",), ("CPUExecutionProvider",))
        on_cpu = cpu_only and "onnxrt" in self.options.backends and settings.precision == "int8"
        if result["nodes"] and session.options.to == "float16" and on_cpu:
            result["summary"] += (
                "\nnote: ONNX Runtime's CPU provider has float16 kernels for few ops and "
                "runs the others in float32 (the run's warnings name them): confirm the "
                "answer's fp16 numerics on the CUDA provider or TensorRT"
            )
        return result

    def _save_passing(self, context: DebugContext, kept: tuple[str, ...], path: Path) -> bool:
        """Write the model ONNX Runtime runs for this int8 test with ``kept`` in fp16 (the
        runner cache's int8 variant: the test's calibration data and method, its nodes
        kept in fp32 left out); False for another precision (bf16 and fp8 run on TensorRT
        only: no ONNX model of them exists)."""
        settings = context.settings
        if settings.precision != "int8":
            return False
        import warnings

        from pytest_polygraphy.models import save_model
        from pytest_polygraphy.plugin.backends import model_key, runner_cache

        variant = dataclasses.replace(settings, feeds=None, keep_fp16=kept)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = runner_cache(self.item.config).int8_model(
                context.model, model_key(context.model), variant
            )
        save_model(quantized, path)
        return True

    def _tensorrt_layers(self, context: DebugContext) -> Any:
        """When the test's backend under test is TensorRT: a function listing the layers
        each ONNX node becomes in the network its runner parses (``network_layers`` of a
        runner built with the test's settings); else None."""
        from pytest_polygraphy.plugin.accuracy import plan

        settings = context.settings
        if settings.reference is None:
            return None
        _, under_test = plan(self.options.backends, settings.reference, settings.precision)
        if not any(backend == "trt" for backend, _ in under_test):
            return None

        def layers(nodes: Sequence[str]) -> Mapping[str, Sequence[str]]:
            from pytest_polygraphy.plugin.backends import build_runner

            runner = build_runner("trt", context.model, settings.precision, settings, self.options)
            return runner.network_layers(nodes)

        return layers

    def _feeds(self, context: DebugContext) -> Any:
        """The test's inputs, from its own data loader settings. Binding them to the model
        repeats the test's own warning about dynamic dims it had to choose, which the test
        already gave: that one is not given twice."""
        from pytest_polygraphy.models import input_metadata

        loader = dataclasses.replace(context.settings, feeds=None).data_loader()
        if hasattr(loader, "bind"):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", r"input .* has dynamic shape", UserWarning)
                return loader.bind(input_metadata(context.model))
        return loader

    def _reference_runner(self, context: DebugContext) -> Any:
        """The session's ``run_reference``: the test's reference backend at fp32, on the
        test's model. onnx's reference evaluator returns any tensor by name, so the
        reference runner the test itself ran answers (it is cached, and still active);
        another backend gets a new runner on a copy of the model with the tensors marked
        as outputs."""
        from pytest_polygraphy.models import load_model, mark_outputs
        from pytest_polygraphy.plugin.backends import FULL_PRECISION, build_runner, runner_cache

        settings = context.settings
        backend = settings.reference
        if backend == "golden":
            backend = self.options.backends[0]

        def run(names: Sequence[str], feeds: Any) -> Iterator[dict[str, Any]]:
            if backend == "onnxref":
                runner = runner_cache(self.config).get(
                    backend, context.model, FULL_PRECISION, settings
                )
                for feed in feeds:
                    yield runner.infer(feed, output_names=names)
                return
            marked = mark_outputs(load_model(context.model), names)
            with build_runner(backend, marked, FULL_PRECISION, settings, self.options) as runner:
                for feed in feeds:
                    yield runner.infer(feed, output_names=names)

        return run

    def __call__(self, variant: Any) -> Any:
        """Re-run the item with ``variant`` (None: unchanged) and classify the outcome;
        what TensorRT's engine said of requested layer precisions comes with it."""
        from pytest_polygraphy.models import model_hash, save_model

        item = self.item
        active = None
        if variant is not None:
            path = None
            if variant.model is not None:
                digest = variant.model_hash or model_hash(variant.model)
                path = self.folder / "variants" / f"{digest[:16]}.onnx"
                if not path.exists():
                    save_model(variant.model, path, durable=False)  # recomputed if lost
            feeds = None if variant.feeds is None else VariantFeeds(variant.feeds)
            tensors: frozenset[str] = frozenset()
            nodes: frozenset[str] = frozenset()
            if variant.model is not None:
                from pytest_polygraphy.models.nodes import node_ids

                graph = variant.model.graph
                tensors = frozenset([*(value.name for value in graph.input), *_node_outputs(graph)])
                nodes = frozenset(node_ids(variant.model))
            active = ActiveVariant(
                path, feeds, variant.keep_fp32, variant.keep_fp16, tensors, nodes
            )
            item.stash[VARIANT_KEY] = active
        try:
            reports, properties = rerun(item, self.config)
        finally:
            if active is not None:
                del item.stash[VARIANT_KEY]
        outcome = self._classify(reports, properties, active)
        return dataclasses.replace(outcome, notes=precision_notes(properties))

    def _classify(
        self,
        reports: Sequence[pytest.TestReport],
        properties: Sequence[tuple[str, object]],
        active: ActiveVariant | None,
    ) -> Any:
        from pytest_polygraphy.debug import CheckOutcome, Verdict

        item = self.item
        for report in reports:
            if report.when != "call" and report.failed:
                return CheckOutcome(Verdict.INVALID, f"error in {report.when}: {_first(report)}")
            if report.skipped:
                return CheckOutcome(Verdict.INVALID, f"skipped: {_first(report)}")
        call = next((r for r in reports if r.when == "call"), None)
        excinfo = item.stash.get(EXCINFO_KEY, None)
        if active is not None and active.feeds is not None and not active.feeds.used:
            # Failing while its runner was made ready for the variant's model (a precision
            # conversion, a session, an engine build), the test failed before any input
            # mattered: that failure is the model's, and classified as any other.
            preparing = excinfo is not None and raised_preparing_runner(excinfo.value)
            if call is None or call.passed or not preparing:
                return CheckOutcome(
                    Verdict.INVALID,
                    "the test did not take the variant's inputs: it makes its own inputs "
                    "instead of using data_loader (or accuracy), so it cannot be reduced",
                )
        if call is None or call.passed:
            return CheckOutcome(Verdict.GOOD, "passed")
        signature = _signature(call, excinfo, records_of(properties), properties)
        if signature.kind != self.original.kind:
            return CheckOutcome(
                Verdict.INVALID,
                f"failed differently ({signature.kind}, not {self.original.kind}): "
                f"{signature.first_line}",
            )
        fail_on = self.options.fail_on
        if fail_on is not None and not re.search(fail_on, signature.text):
            return CheckOutcome(Verdict.GOOD, f"failed, but not matching {fail_on!r}")
        kept = set(signature.failures) & self.model_outputs
        if kept and not kept & set(self.original.failures):
            return CheckOutcome(
                Verdict.INVALID, f"failed on other outputs ({', '.join(sorted(kept))})"
            )
        return CheckOutcome(Verdict.BAD, signature.first_line, signature.failures)


def rerun(
    item: pytest.Item, config: pytest.Config
) -> tuple[list[pytest.TestReport], list[tuple[str, object]]]:
    """Run ``item`` once more in process, as pytest-rerunfailures does: its function-scoped
    fixtures are rebuilt, nothing is reported, and its user properties and report
    sections are left as the original run made them. Returns the reports and the user
    properties this run added (its comparison records among them)."""
    from _pytest.runner import runtestprotocol

    properties = list(item.user_properties)
    sections = list(item._report_sections)
    item.stash[EXCINFO_KEY] = None
    config.stash[DEBUG_CHECK_RUNNING] = True
    try:
        reports = runtestprotocol(item, nextitem=item.parent, log=False)  # type: ignore[arg-type]
        added = list(item.user_properties[len(properties) :])
    finally:
        config.stash[DEBUG_CHECK_RUNNING] = False
        item.user_properties[:] = properties
        item._report_sections[:] = sections
    return reports, added


def precision_notes(properties: Sequence[tuple[str, object]]) -> tuple[str, ...]:
    """What TensorRT's engine inspector said of a run's requested layer precisions, one
    line each, prefixed by the runner (``TRT_PRECISIONS_PROPERTY``)."""
    notes = []
    for name, value in properties:
        if name == TRT_PRECISIONS_PROPERTY and isinstance(value, Mapping):
            notes += [f"{value.get('runner')}: {line}" for line in value.get("lines", ())]
    return tuple(notes)


def _terminal_log(config: pytest.Config) -> Any:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    return (lambda line: None) if terminal is None else terminal.write_line


def _first_line(text: str, default: str) -> str:
    """The first non-blank line of a failure text (at most 200 characters), else ``default``."""
    return next((line.strip()[:200] for line in text.splitlines() if line.strip()), default)


def _first(report: pytest.TestReport) -> str:
    return _first_line(report.longreprtext, report.outcome)


def _node_outputs(graph: Any) -> list[str]:
    return [name for node in graph.node for name in node.output if name]


def _output_names(model: Any) -> set[str]:
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return {value.name for value in proto.graph.output}
