"""What the ``accuracy`` and ``golden`` fixtures return: the objects whose ``check()``
compares a test's outputs (with the selected backends' reference, or with the test's
golden file) and records every compared output for the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.errors import PolygraphyError
from pytest_polygraphy.plugin import markers
from pytest_polygraphy.plugin.accuracy import (
    Comparer,
    check_accuracy,
    golden_info,
    read_golden,
)
from pytest_polygraphy.plugin.backends import runner_cache
from pytest_polygraphy.plugin.golden import GoldenFile, golden_file, iterations_of, update_command
from pytest_polygraphy.plugin.options import get_options
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.settings import AccuracySettings
from pytest_polygraphy.plugin.syntax import OptionValueError


def golden_file_of(request: pytest.FixtureRequest, name: str | None) -> GoldenFile:
    """The golden file of the requesting test (``name`` tells several of one test apart)."""
    test_name = request.node.name if name is None else f"{request.node.name}.{name}"
    options = get_options(request.config)
    return golden_file(
        request.node.path,
        test_name,
        request.node.nodeid,
        options.golden_dir,
        request.config.rootpath,
    )


def _takes_model_from_plugin(node: pytest.Item) -> bool:
    """Whether the test took its model and settings from the plugin's fixtures, so that a
    debug session can hand it a variant (``debug.remember``)."""
    from pytest_polygraphy.plugin.debug import CONTEXT_KEY

    context = node.stash.get(CONTEXT_KEY, None)
    return context is not None and context.model is not None and context.settings is not None


class Golden:
    """What the ``golden`` fixture returns; see ``check``."""

    def __init__(self, request: pytest.FixtureRequest, settings: AccuracySettings) -> None:
        self._request = request
        self.settings = settings
        self.update = get_options(request.config).update_golden

    def path(self, name: str | None = None) -> Path:
        """The golden file ``check(..., name=name)`` writes (and reads, unless a file an
        older version wrote under its former name is read instead)."""
        return golden_file_of(self._request, name).path

    def check(self, outputs: Any, *, name: str | None = None, backend: str | None = None) -> None:
        """Compare ``outputs`` (``{output: array}``, or a list of those, one per iteration)
        with the test's golden file using the test's tolerances; under
        ``--polygraphy-update-golden`` write the file instead. ``name`` tells several
        golden files of one test apart; ``backend`` is recorded in the sidecar and reports.
        """
        request = self._request
        golden = golden_file_of(request, name)
        nodeid = request.node.nodeid
        comparer = Comparer(request.config, nodeid, request.node.user_properties, self.settings)
        comparer.reducible = _takes_model_from_plugin(request.node)
        try:
            iterations = list(iterations_of(outputs))
            if not iterations or not all(iterations):
                empty = "0 iterations (an empty list)" if not iterations else "an empty {}"
                fail(
                    f"nothing was compared: golden.check() got {empty}; give the outputs as "
                    "{output name: array} with at least one output"
                )
            if self.update:
                golden.write(iterations, golden_info(comparer, backend, self.settings.precision))
                return
            variant = self._variant_reference(iterations)
        except PolygraphyError as err:
            fail(str(err))
        if variant is not None:
            reference, expected_all = variant
            expected_side = f"{reference} at fp32 on the debug session's variant"
            header = f"{nodeid} (a debug session's variant) vs {reference}"
        else:
            expected_all = read_golden(request.config, golden, nodeid)
            if len(expected_all) != len(iterations):
                fail(
                    f"golden file {golden.path} holds {len(expected_all)} iteration(s), the "
                    f"test gave {len(iterations)}; recreate it with:\n  "
                    f"{update_command(request.config, nodeid)}"
                )
            reference, expected_side = "golden", f"golden file {golden.path}"
            header = f"{nodeid} vs golden file {golden.path}"
        for index, (actual, expected) in enumerate(zip(iterations, expected_all, strict=True)):
            comparer.compare(
                actual,
                expected,
                actual_name=backend or "outputs",
                reference_name=reference,
                iteration=index,
                actual_side=backend or "the outputs given to golden.check()",
                expected_side=expected_side,
            )
        comparer.fail_if_any(header)

    def _variant_reference(self, iterations: list[Any]) -> tuple[str, list[Any]] | None:
        """In a debug session's re-run with a model variant: the reference backend's
        outputs at fp32 on the variant and its inputs, which the outputs are compared with
        in place of the golden file (it holds only the whole model's outputs; see
        ``debug.variant_settings``). None outside such a re-run."""
        from pytest_polygraphy.plugin.backends import FULL_PRECISION
        from pytest_polygraphy.plugin.debug import active_variant

        request = self._request
        variant = active_variant(request.node)
        if variant is None or variant.model is None:
            return None
        reference = self.settings.reference
        if reference in (None, "golden") or variant.feeds is None:
            fail(
                "a debug session's variant of a golden test is compared with a backend at "
                "fp32, since the golden file holds only the whole model's outputs: select "
                "one (--onnxrt, --onnxref or --trt)"
            )
        model = request.getfixturevalue("model")
        runner = runner_cache(request.config).get(reference, model, FULL_PRECISION, self.settings)
        expected = [runner.infer(feed) for feed in variant.feeds]
        if len(expected) != len(iterations):
            fail(
                f"the debug session's variant has {len(expected)} input sample(s), the test "
                f"gave golden.check() {len(iterations)} iteration(s)"
            )
        return reference, expected


class Accuracy:
    """What the ``accuracy`` fixture returns; see ``check``."""

    def __init__(self, request: pytest.FixtureRequest, settings: AccuracySettings) -> None:
        self._request = request
        self.settings = settings

    def check(self, model: Any = None) -> None:
        """Run ``model`` (default: the ``model`` fixture) on every selected backend and
        compare every output with the reference, iteration by iteration, with the test's
        tolerances; fail with the comparison report. Every compared output is recorded for
        the accuracy summary and reports."""
        request = self._request
        if model is None:
            model = request.getfixturevalue("model")
        options = get_options(request.config)
        reference = self.settings.reference
        golden = None
        if reference == "golden":
            golden = golden_file_of(request, None)
        comparer = Comparer(
            request.config, request.node.nodeid, request.node.user_properties, self.settings
        )
        comparer.reducible = _takes_model_from_plugin(request.node)
        try:
            engine = markers.engine_path(request.node)
        except OptionValueError as err:
            fail(f"{request.node.nodeid}: {err}")
        check_accuracy(
            comparer,
            model,
            backends=options.backends,
            reference=reference,
            cache=runner_cache(request.config),
            golden=golden,
            update_golden=options.update_golden,
            engine=engine,
        )
