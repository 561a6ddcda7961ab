"""Run several runners on the same feeds and compare them, one iteration at a time.

Design: streaming, not batch.
Polygraphy runs each runner over every iteration, keeps all outputs of all runners in
memory, and compares at the end. With ``mark all`` outputs on a large model that is many
gigabytes. Here:

* ``run(runners, data_loader)`` returns a ``RunStream``: a lazy, single-pass iterable of
  ``IterationOutputs`` (iteration index, the feed, every runner's outputs and times).
  Nothing runs until it is iterated. While it is being iterated, every runner is active
  at once (those that were inactive are activated at the start and deactivated at the
  end, also on error); each feed goes through every runner before the next feed is drawn.
* ``compare(stream, compare_func, reference="onnxref")`` consumes the stream: for every
  iteration it compares each runner's outputs with the reference runner's, keeps only
  the (small) comparison results and drops the arrays. Memory is one iteration's outputs
  of all runners, whatever the iteration count.
* ``stream.collect()`` materializes a ``data.RunResults`` instead (to save golden outputs
  with ``stream.save(path)``, or to compare the same outputs with several functions);
  ``compare()`` accepts a ``RunResults`` too, and walks it iteration by iteration.

The comparison (``RunComparison``) is per iteration, per runner (against the reference),
per output; ``bool()`` of it is the overall verdict and ``to_dict()`` is JSON-serializable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from pytest_polygraphy.runners.base import Runner

Feed = Mapping[str, Any]
Outputs = dict[str, "np.ndarray"]


@dataclass
class IterationOutputs:
    """Everything one iteration produced: the feed, and per runner its outputs and the
    backend time of its ``infer()`` (None for outputs that came from a file)."""

    index: int
    feed: Feed | None
    outputs: dict[str, Outputs]
    times: dict[str, float | None] = field(default_factory=dict)


def _feeds_for(runners: Sequence[Runner], data_loader: Any) -> Iterable[Feed]:
    """Feeds from a ``DataLoader`` (bound to the first runner that knows its inputs) or
    from any iterable of feed dicts (loaded inputs, a data loader script)."""
    if hasattr(data_loader, "bind"):
        for runner in runners:
            metadata = runner.input_metadata
            if len(metadata):
                return data_loader.bind(metadata)
        raise InputError(
            "none of the runners knows its model's inputs, so the DataLoader cannot make "
            "feeds; pass a list of feeds instead"
        )
    if isinstance(data_loader, Mapping):
        raise InputError(
            "run() got a single feed dict where an iterable of feeds was expected; "
            "wrap it in a list: run(runners, [feed])"
        )
    return data_loader


class RunStream:
    """The lazy, single-pass result of ``run()``; see the module docstring.

    Iterate it (once) for ``IterationOutputs``, or ``collect()`` it into a ``RunResults``.
    """

    def __init__(self, runners: Sequence[Runner], data_loader: Any) -> None:
        names = [r.name for r in runners]
        if not runners:
            raise InputError("run() needs at least one runner")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(
                f"runner names must be unique, {duplicates} appear more than once; "
                "give runners distinct names with name=..."
            )
        self.runners = list(runners)
        self.data_loader = data_loader
        self._consumed = False

    @property
    def runner_names(self) -> list[str]:
        return [r.name for r in self.runners]

    def __repr__(self) -> str:
        state = "consumed" if self._consumed else "not run yet"
        return f"<RunStream of {', '.join(self.runner_names)} ({state})>"

    def __iter__(self) -> Iterator[IterationOutputs]:
        if self._consumed:
            raise RuntimeError(
                "this RunStream was already consumed; call run() again, or collect() it "
                "once and compare the RunResults as often as needed"
            )
        self._consumed = True
        return self._generate()

    def _generate(self) -> Iterator[IterationOutputs]:
        activated: list[Runner] = []
        try:
            for runner in self.runners:
                if not runner.is_active:
                    runner.activate()
                    activated.append(runner)
            for index, feed in enumerate(_feeds_for(self.runners, self.data_loader)):
                outputs: dict[str, Outputs] = {}
                times: dict[str, float | None] = {}
                for runner in self.runners:
                    outputs[runner.name] = runner.infer(feed)
                    times[runner.name] = runner.last_inference_time()
                yield IterationOutputs(index, feed, outputs, times)
        finally:
            for runner in reversed(activated):
                runner.deactivate()

    def collect(self) -> Any:
        """Run everything and return a ``data.RunResults`` (runner name -> iterations)."""
        from pytest_polygraphy.data import RunResults

        results = RunResults()
        for item in self:
            for name, outputs in item.outputs.items():
                results.add(name, outputs, runtime=item.times.get(name))
        return results

    def save(self, path: str | os.PathLike[str]) -> Any:
        """``collect()`` and write the results (Polygraphy JSON or ``.npz`` by suffix)."""
        from pytest_polygraphy.data import save_run_results

        results = self.collect()
        save_run_results(path, results)
        return results


def run(runners: Sequence[Runner], data_loader: Any) -> RunStream:
    """Feed every runner the same inputs; returns a lazy ``RunStream`` (see module doc).

    ``data_loader`` is a ``DataLoader`` (bound to the first runner's input metadata) or
    any iterable of feed dicts, such as ``data.load_inputs(path)``.
    """
    return RunStream(runners, data_loader)


def _iterations_of(results: Any) -> Iterator[IterationOutputs]:
    """Walk a ``RunStream``, an iterable of ``IterationOutputs`` or a ``RunResults``
    (mapping runner name -> per-iteration outputs) one iteration at a time."""
    if isinstance(results, Mapping):
        counts = {name: len(iterations) for name, iterations in results.items()}
        if len(set(counts.values())) > 1:
            raise InputError(
                f"the runners in these results ran different numbers of iterations {counts}; "
                "cannot compare them iteration by iteration"
            )
        total = next(iter(counts.values()), 0)
        for index in range(total):
            outputs = {name: dict(results[name][index]) for name in results}
            yield IterationOutputs(index, None, outputs, dict.fromkeys(outputs))
        return
    yield from results


@dataclass
class IterationComparison:
    """One iteration: each runner's ``CompareResult`` against the reference."""

    index: int
    results: dict[str, Any]

    def __bool__(self) -> bool:
        return all(bool(r) for r in self.results.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.index,
            "passed": bool(self),
            "runners": {name: result.to_dict() for name, result in self.results.items()},
        }


@dataclass(repr=False)
class RunComparison:
    """All iterations compared; ``bool()`` is the overall verdict.

    ``comparison.result("onnxrt[fp16]", iteration=0)["logits"]`` is one output's
    ``OutputCompareResult`` (metrics and pass/fail).
    """

    reference: str
    runners: list[str]
    iterations: list[IterationComparison] = field(default_factory=list)

    def __bool__(self) -> bool:
        return all(bool(it) for it in self.iterations)

    @property
    def passed(self) -> bool:
        return bool(self)

    def result(self, runner: str, iteration: int = 0) -> Any:
        """The ``CompareResult`` of ``runner`` against the reference at ``iteration``."""
        try:
            return self.iterations[iteration].results[runner]
        except IndexError:
            raise InputError(
                f"there are {len(self.iterations)} iteration(s); iteration {iteration} "
                "was asked for"
            ) from None
        except KeyError:
            raise InputError(
                f"no comparison for runner {runner!r}; compared runners: {self.runners}"
            ) from None

    def failures(self) -> list[tuple[int, str, str]]:
        """``(iteration, runner, output)`` for every output that did not match."""
        return [
            (it.index, runner, output)
            for it in self.iterations
            for runner, result in it.results.items()
            for output in result.failed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "runners": self.runners,
            "passed": bool(self),
            "iterations": [it.to_dict() for it in self.iterations],
        }

    def __repr__(self) -> str:
        """One line, as ``assert compare(...)`` shows it: the sides, and what failed."""
        sides = f"{', '.join(self.runners)} vs {self.reference}"
        count = f"{len(self.iterations)} iteration(s)"
        failed = self.failures()
        if not failed:
            return f"<RunComparison {sides}: {count}, passed>"
        shown = ", ".join(f"{runner} {name!r} (iteration {i})" for i, runner, name in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        return f"<RunComparison {sides}: {count}, failed: {shown}{more}>"

    def report(self) -> str:
        """A short human-readable summary, with the compare function's report of every
        failing (iteration, runner) pair."""
        lines = [
            f"compared {self.runners} against {self.reference!r} over "
            f"{len(self.iterations)} iteration(s): {'PASSED' if self else 'FAILED'}"
        ]
        for it in self.iterations:
            for runner, result in it.results.items():
                if not result:
                    lines.append(f"--- iteration {it.index}, {runner} vs {self.reference}:")
                    lines.append(result.report())
        return "\n".join(lines)


def compare(
    results: RunStream | Iterable[IterationOutputs] | Mapping[str, Any],
    compare_func: Callable[..., Any] | None = None,
    reference: str | None = None,
    *,
    outputs: Sequence[str] | None = None,
) -> RunComparison:
    """Compare every runner against ``reference`` (default: the first runner), iteration
    by iteration, without keeping outputs past their iteration (see the module docstring).

    ``compare_func`` is a ``CompareFunc`` callable ``func(actual, expected, outputs=...)``;
    by default ``CompareFunc.simple()``. ``outputs`` restricts which outputs are compared.
    """
    if compare_func is None:
        from pytest_polygraphy.compare import CompareFunc

        compare_func = CompareFunc.simple()
    comparison: RunComparison | None = None
    for item in _iterations_of(results):
        names = list(item.outputs)
        if comparison is None:
            ref = reference if reference is not None else names[0]
            if ref not in item.outputs:
                raise InputError(f"reference runner {ref!r} is not among the runners {names}")
            comparison = RunComparison(ref, [n for n in names if n != ref])
            if not comparison.runners:
                raise InputError(
                    f"nothing to compare: {ref!r} is the only runner; add another runner "
                    "or golden outputs"
                )
        expected = item.outputs[comparison.reference]
        per_runner = {
            name: compare_func(item.outputs[name], expected, outputs=outputs)
            for name in comparison.runners
        }
        empty = [name for name, result in per_runner.items() if len(result) == 0]
        if empty:
            why = "outputs=[] selects none" if outputs is not None else "they hold no outputs"
            raise InputError(
                f"nothing was compared: in iteration {item.index}, {empty} vs "
                f"{comparison.reference!r} compared no output ({why}); a comparison of "
                "nothing would pass while checking nothing"
            )
        comparison.iterations.append(IterationComparison(item.index, per_runner))
    if comparison is None:
        raise InputError("nothing to compare: the results hold no iterations")
    return comparison
