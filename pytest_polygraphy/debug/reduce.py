"""The reduce session: shrink a failing model to its smallest failing subgraph.

It knows ONNX and numpy, never pytest: the caller hands it

- ``check(variant)``, which runs the failing test once with the variant's model and feeds
  in place of its own (``None``: the test unchanged) and says whether it failed the same
  way (``CheckOutcome``, see ``session``);
- ``run_reference(names, feeds)``, the test's reference backend at fp32, which computes the
  real value of every tensor a cut may need in the session's model, once, for every
  sample.

Steps: confirm the failure, compute the reference values, search
(``search.reduce_block``), then write ``minimal_failing/`` (an ONNX test-case folder that
reproduces the failure on its own, re-checked after writing) and ``min_good.onnx`` (the
good variant nearest to the answer, when one was checked). The summary notes when the
reference's own values at the answer are not finite, and where the reference first made
them.

Before the search, the unchanged test must fail the same way twice, counting its own run:
one re-run, on the runners it left alive (up to 3 runs in all when they disagree: then
it is reported nondeterministic, or not reproduced, and not reduced). A cut that fails the
same way proves that the test takes its model and inputs from the session, so the model
rebuilt from its own nodes is checked only when the search finds no smaller failing block.
Being the same computation on the same inputs, it must still fail; when it does not, a
third run of the unchanged test tells a nondeterministic failure from one lost by cutting.

Every check goes through the journal, so re-running the same session resumes it with no
check repeated (``journal``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import onnx

from pytest_polygraphy.debug.artifacts import read_test_case, write_test_case
from pytest_polygraphy.debug.blocks import Cut, GraphIndex, relax_dims
from pytest_polygraphy.debug.intermediates import (
    DEFAULT_MEMORY_LIMIT,
    Intermediates,
    ReferenceValues,
)
from pytest_polygraphy.debug.search import Nodes, Verdict, reduce_block
from pytest_polygraphy.debug.session import (
    Check,
    CheckOutcome,
    DebugSession,
    SessionResult,
    Variant,
)

#: Ops whose outputs are input values moved, selected, copied or negated: exact at any
#: precision, so an answer made only of them carries the error of what it was fed.
EXACT_OPS = frozenset(
    {
        "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Pad",
        "Slice", "Gather", "GatherElements", "GatherND", "Concat", "Split", "Expand",
        "Tile", "DepthToSpace", "SpaceToDepth", "Dropout", "MaxPool", "Relu", "Abs",
        "Neg", "Max", "Min", "ReduceMax", "ReduceMin", "Where",
    }
)  # fmt: skip


_Found = TypeVar("_Found")

#: Re-runs of the unchanged test that never ended in earlier runs (``_confirm``) before
#: the session gives up.
MAX_CRASHED_RERUNS = 2

#: The largest finite value of each precision narrower in range than float32 (a value
#: fed to a cut beyond it overflows on the way in).
RANGE_LIMITS = {"fp16": 65504.0}


@dataclass(frozen=True)
class ReduceOptions:
    """How to search (the ``--polygraphy-reduce-*`` options)."""

    mode: str = "bisect"
    #: Keep the model's inputs: only cut from the output side (``--no-reduce-inputs``).
    keep_inputs: bool = False
    #: Keep the model's outputs: only cut from the input side (``--no-reduce-outputs``).
    keep_outputs: bool = False
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    replay: Path | None = None
    #: The precision the test runs at, for the summary's notes (``RANGE_LIMITS``).
    precision: str | None = None


def _describe(nodes: Nodes) -> str:
    if not nodes:
        return "no nodes"
    count = f"{len(nodes)} node{'s' if len(nodes) > 1 else ''}"
    if nodes == tuple(range(nodes[0], nodes[-1] + 1)):
        span = str(nodes[0]) if len(nodes) == 1 else f"{nodes[0]}..{nodes[-1]}"
    else:
        span = ",".join(str(n) for n in nodes[:8]) + (",..." if len(nodes) > 8 else "")
    return f"nodes {span} ({count})"


def _errors(failures: Mapping[str, tuple[float | None, float | None]]) -> str:
    parts = []
    for name, (absdiff, reldiff) in failures.items():
        abs_text = "?" if absdiff is None else f"{absdiff:.4g}"
        rel_text = "?" if reldiff is None else f"{reldiff:.4g}"
        parts.append(f"{name} (max abs {abs_text}, max rel {rel_text})")
    return ", ".join(parts)


class ReduceSession(DebugSession):
    """One reduce session for one failing test; ``run()`` returns its ``SessionResult``."""

    kind = "reduce"

    def __init__(
        self,
        name: str,
        model: str | Path | onnx.ModelProto,
        feeds: Iterable[Mapping[str, Any]],
        *,
        check: Check,
        run_reference: ReferenceValues,
        folder: Path,
        options: ReduceOptions | None = None,
        log: Callable[[str], None] = lambda line: None,
        confirmed: CheckOutcome | None = None,
    ) -> None:
        self.options = options or ReduceOptions()
        super().__init__(name, check=check, folder=folder, replay=self.options.replay, log=log)
        self.model = model
        self.feeds = feeds
        self.run_reference = run_reference
        self.first = confirmed
        self._outcomes: dict[Nodes, CheckOutcome] = {}
        self._flaky: list[str] = []

    def _confirm(self, agreeing: int = 2) -> SessionResult | None:
        """The unchanged test fails the same way ``agreeing`` times in a row, counting its
        own run; else say so (the failure is nondeterministic, or not reproduced).

        A re-run that the journal says never ended (the process was killed, or crashed,
        during it: the journal cannot tell which) is no observation of the test: another
        run takes its place, up to ``MAX_CRASHED_RERUNS`` of them."""
        outcomes = [self.first] if self.first is not None else []
        attempt = len(outcomes)
        crashed = 0
        while len(outcomes) < 3:
            key = f"original#{attempt}:{self.model_key}"
            attempt += 1
            outcome = self.run_check(key, None, "the test unchanged")
            if self.journal.crashed_before(key):
                crashed += 1
                if crashed > MAX_CRASHED_RERUNS:
                    return self._result(
                        "error",
                        f"cannot reduce: {crashed} re-runs of the unchanged test never ended "
                        "in earlier runs of this session (killed, or crashing the process); "
                        f"remove {self.folder} to start over",
                    )
                continue
            outcomes.append(outcome)
            if len(outcomes) >= agreeing and all(o.verdict is Verdict.BAD for o in outcomes):
                return None
        failed = sum(o.verdict is Verdict.BAD for o in outcomes)
        if failed == 0:
            return self._result(
                "not reproduced",
                "the test did not fail again the same way when re-run: "
                + "; ".join(o.detail or o.verdict.value for o in outcomes),
            )
        return self._result(
            "nondeterministic",
            f"nondeterministic ({failed} of {len(outcomes)} failed): the test does not fail "
            "the same way every time, so a reduction could not be trusted",
        )

    def _run(self) -> SessionResult:
        from pytest_polygraphy.models import load_model, model_hash

        model = load_model(self.model)
        self.model_key = model_hash(model)
        self.index = index = GraphIndex(model)
        n = len(index.candidates)
        self.bound = (math.ceil(math.log2(n)) if n > 1 else 0) + 3
        # Before any search, the unchanged test fails the same way twice, counting its own
        # run (its runners are still alive: a re-run is the cheapest check there is).
        confirmed = self._confirm()
        if confirmed is not None:
            return confirmed
        if n == 0:
            return self._result("error", "cannot reduce: the model has no compute nodes")
        outputs = [value.name for value in model.graph.output]
        needed = list(dict.fromkeys([*index.needed_values(), *outputs]))
        self.values = Intermediates.compute(
            self.run_reference,
            needed,
            self.feeds,
            self.folder / "values",
            self.options.memory_limit,
        )
        if len(self.values) == 0:
            return self._result("error", "cannot reduce: the test has no input samples")
        search = reduce_block(
            n,
            lambda nodes: self.check_nodes(nodes).verdict,
            mode=self.options.mode,
            keep_start=self.options.keep_inputs,
            keep_end=self.options.keep_outputs,
            confirmed=False,
        )
        if not search.reproduced:
            # The rebuilt model passing contradicts the unchanged test's failures unless
            # that fails every time: 3 failing runs of 3.
            confirmed = self._confirm(agreeing=3)
            if confirmed is not None:
                return confirmed
            if self._flaky:
                return self._result(
                    "nondeterministic",
                    "nondeterministic: the test gave different verdicts for one variant: "
                    + "; ".join(self._flaky),
                )
            outcome = self._outcomes[tuple(range(n))]
            return self._result(
                "failure lost when cut",
                "failure lost when cut: no cut checked fails the same way, nor the model "
                "rebuilt from its own nodes, fed with the test's inputs "
                f"({outcome.verdict.value}: {outcome.detail})",
            )
        keeping = self.options.keep_inputs or self.options.keep_outputs
        if len(search.nodes) > 1 and not keeping:
            self._confirm_minimal(search.nodes)
        self._check_without(search.nodes)
        return self._finish(search.nodes, search.accumulated, search.good)

    def _check_without(self, nodes: Nodes) -> None:
        """When no variant passed, every cut kept failing: that is also what a failure
        that does not depend on the model looks like, and the search then ends at its
        first node. The model without the answer's nodes is checked once: when it passes,
        the answer is where the failure comes from; when it fails too, the summary says
        so (``_finish``). Not with ``keep_inputs``/``keep_outputs``, whose answers must
        hold the model's inputs or outputs."""
        options = self.options
        rest = self._rest(nodes)
        if options.keep_inputs or options.keep_outputs or not rest:
            return
        if self._good_seen():
            return
        if rest not in self._outcomes:
            self.check_nodes(rest)

    def _good_seen(self) -> bool:
        return any(o.verdict is Verdict.GOOD for o in self._outcomes.values())

    def _rest(self, nodes: Nodes) -> Nodes:
        chosen = set(nodes)
        return tuple(c for c in range(len(self.index.candidates)) if c not in chosen)

    def _confirm_minimal(self, nodes: Nodes) -> None:
        """A result of several nodes rests on each of them passing when left out: those
        verdicts are checked once more, so that a flaky pass never makes the answer. (Not
        under ``keep_inputs``/``keep_outputs``: that answer is the smallest block holding
        the model's inputs or outputs, which rests on its ends, not on single removals.)"""
        for node in nodes:
            rest = tuple(other for other in nodes if other != node)
            before = self._outcomes.get(rest)
            again = self.check_nodes(rest, fresh=True)
            if before is not None and again.verdict is not before.verdict:
                bad = sum(o.verdict is Verdict.BAD for o in (before, again))
                self._flaky.append(f"{_describe(rest)}: nondeterministic ({bad} of 2 failed)")

    def _variant(
        self, nodes: Nodes, cut: Cut | None = None
    ) -> tuple[Cut, onnx.ModelProto, list[dict[str, Any]]]:
        cut = cut or self.index.cut(nodes)
        names = [*cut.inputs, *cut.outputs]
        model = self.index.cut_model(cut, self.values.sample(0, names))
        relax_dims(model, self.values.shapes(names))
        feeds = [self.values.sample(i, cut.inputs) for i in range(len(self.values))]
        return cut, model, feeds

    def check_nodes(self, nodes: Nodes, *, fresh: bool = False) -> CheckOutcome:
        """Check the variant holding candidates ``nodes`` (``fresh``: run it even when the
        journal knows it); contradictions are re-checked."""
        from pytest_polygraphy.data.formats import feeds_fingerprint
        from pytest_polygraphy.models import model_hash

        cut = self.index.cut(nodes)
        through = self.index.through_non_tensors(cut)
        if through:
            outcome = CheckOutcome(
                Verdict.INVALID,
                f"not run: the cut goes through {', '.join(map(repr, through))}, not tensors "
                "(sequences, maps or optionals), which cannot be fed or compared",
            )
            self.log(f"{_describe(nodes)}: invalid ({outcome.detail})")
            self._outcomes[nodes] = outcome
            return outcome
        _, model, feeds = self._variant(nodes, cut)
        digest = model_hash(model)
        key = digest + ":" + feeds_fingerprint(feeds)
        variant = Variant(model=model, feeds=feeds, model_hash=digest)
        outcome = self.run_check(key, variant, _describe(nodes), fresh=fresh)
        if not fresh and self._contradicts(nodes, outcome.verdict):
            again = self.run_check(key, variant, _describe(nodes), fresh=True)
            if again.verdict is not outcome.verdict:
                bad = sum(o.verdict is Verdict.BAD for o in (outcome, again))
                self._flaky.append(f"{_describe(nodes)}: nondeterministic ({bad} of 2 failed)")
                outcome = CheckOutcome(Verdict.INVALID, "nondeterministic", outcome.failures)
        self._outcomes[nodes] = outcome
        return outcome

    def _contradicts(self, nodes: Nodes, verdict: Verdict) -> bool:
        if verdict is Verdict.GOOD and len(nodes) == len(self.index.candidates):
            return True  # the rebuilt model computes what the unchanged test, which failed, does
        mine = set(nodes)
        for other, known in self._outcomes.items():
            if verdict is Verdict.BAD and known.verdict is Verdict.GOOD and mine < set(other):
                return True
            if verdict is Verdict.GOOD and known.verdict is Verdict.BAD and set(other) < mine:
                return True
        return False

    def _finish(self, nodes: Nodes, accumulated: bool, good: Nodes | None) -> SessionResult:
        index = self.index
        cut, model, feeds = self._variant(nodes)
        outcome = self._outcomes.get(nodes) or self.check_nodes(nodes)
        expected = [self.values.sample(i, cut.outputs) for i in range(len(self.values))]
        case = write_test_case(self.folder / "minimal_failing", model, feeds, expected)
        case_model, case_inputs, _ = read_test_case(case)
        recheck = self._check(Variant(model=case_model, feeds=case_inputs))
        reproduces = recheck.verdict is Verdict.BAD
        nearest = self._nearest_good(nodes)
        if nearest is not None:
            from pytest_polygraphy.models import save_model

            save_model(self._variant(nearest)[1], self.folder / "min_good.onnx")
        labels = index.labels(nodes)
        lines = [f"minimal failing subgraph: {len(nodes)} of {len(index.candidates)} nodes"]
        if accumulated:
            first, last = labels[0][0], labels[-1][0]
            lines[0] += f" (accumulated over nodes {first}..{last}: no single node fails alone)"
        lines += [f"  {name} ({op})" for name, op in labels]
        lines.append(f"inputs: {', '.join(cut.inputs) or '(none)'}")
        if outcome.failures:
            lines.append(f"failing outputs: {_errors(outcome.failures)}")
            milder = _much_milder(outcome.failures, self.first.failures if self.first else {})
            if milder is not None:
                lines.append(milder)
        elif outcome.detail:
            lines.append(f"failure: {outcome.detail}")
        rest = self._outcomes.get(self._rest(nodes))
        if rest is not None and rest.verdict is Verdict.BAD and not self._good_seen():
            lines.append(
                "note: no variant passed, and the model without these nodes fails the same "
                "way too: the failure may not come from these nodes at all (a test that "
                "fails whatever its model), or the model holds more than one failing part"
            )
        for note in (self._non_finite_reference(cut), self._beyond_range(cut)):
            if note is not None:
                lines.append(note)
        if all(op in EXACT_OPS for _, op in labels):
            lines.append(
                "note: these nodes only move, select or copy values and round nothing: "
                "their error is what the values fed to them already carry (at a reduced "
                "precision, the rounding of those values on the way in). A tolerance "
                "tighter than that rounding fails wherever a cut falls"
            )
        lines.append(
            f"minimal_failing/ {'reproduces' if reproduces else 'does NOT reproduce'} the "
            f"failure on its own ({recheck.verdict.value})"
        )
        if nearest is not None:
            lines.append(f"min_good.onnx: the passing variant nearest to it ({_describe(nearest)})")
        if self._flaky:
            lines.append("nondeterministic checks: " + "; ".join(self._flaky))
        if self._flaky:
            lines.insert(0, "nondeterministic: the test gave different verdicts for one variant")
        return self._result(
            "nondeterministic" if self._flaky else "reduced",
            "\n".join(lines),
            nodes=labels,
            accumulated=accumulated,
            failures=outcome.failures,
            reproduces=reproduces,
        )

    def _non_finite_reference(self, cut: Cut) -> str | None:
        """A note when the reference's own values at the answer hold NaN or Inf: then the
        expected side is what is non-finite, and the answer is where that first shows
        through the test, not necessarily where it starts. Fed in through the cut's
        inputs, it names the node where the reference first computes a non-finite value
        from finite ones (or says the test's inputs hold it); made inside the cut, it says
        so."""
        known = self.values.names()
        fed = _non_finite(self.values, cut.inputs, known)
        if fed:
            return (
                f"note: the reference's own values fed to this subgraph are not finite "
                f"({_describe_non_finite(fed)}): the failure comes in with them; "
                f"{self._first_non_finite(known)}"
            )
        made = _non_finite(self.values, cut.outputs, known)
        if made:
            return (
                f"note: the reference itself computes non-finite values in this subgraph "
                f"({_describe_non_finite(made)}): the expected side of the comparison is "
                "what is not finite"
            )
        return None

    def _beyond_range(self, cut: Cut) -> str | None:
        """A note when reference values fed to the answer are finite but beyond the test's
        precision's range (float16 holds up to 65504): a node reading them at that
        precision gets inf before it computes anything, whatever the node does.
        Linear mode ends there (the search shrinks from the inputs while the rest fails),
        past the node that made them, which the note names."""
        import numpy as np

        precision = self.options.precision or ""
        limit = RANGE_LIMITS.get(precision)
        if limit is None:
            return None

        def beyond(array: Any) -> float | None:
            finite = np.abs(array[np.isfinite(array)])
            peak = float(finite.max()) if finite.size else 0.0
            return peak if peak > limit else None

        found = _in_first_sample(
            self.values,
            cut.inputs,
            self.values.names(),
            beyond,
            skip=lambda array: array.dtype.kind != "f" or array.size == 0,
        )
        if not found:
            return None
        parts = []
        for name, sample, peak in found:
            i = self.index.producer.get(name)
            source = (
                f"made by node {self.index.names[i]} ({self.index.nodes[i].op_type})"
                if i is not None
                else "one of the test's inputs"
            )
            parts.append(f"{name!r} up to {peak:.4g} in sample {sample}, {source}")
        return (
            f"note: values fed to this subgraph are beyond {precision}'s range, which ends at "
            f"{limit:g} ({'; '.join(parts)}): a node that reads them at {precision} gets "
            "inf before it computes anything, so the failure comes in with them"
        )

    def _first_non_finite(self, known: set[str]) -> str:
        """Where the reference's values first stop being finite, in topological order: the
        node, its non-finite outputs, and the shapes of what it read in that sample (an
        empty tensor, for one, averages to NaN)."""
        index, values = self.index, self.values
        inputs = _non_finite(values, index.graph_inputs, known)
        if inputs:
            return f"the test's inputs hold them ({_describe_non_finite(inputs)})"
        for i in index.candidates:
            node = index.nodes[i]
            found = _non_finite(values, node.output, known)
            if not found:
                continue
            sample = found[0][1]
            read = [
                f"{name!r} {values.get(sample, name).dtype} {list(values.get(sample, name).shape)}"
                for name in dict.fromkeys(index.reads[i])
                if name in known
            ]
            where = ", ".join(repr(name) for name, *_ in found)
            return (
                f"the reference first computes them at node {index.names[i]} ({node.op_type}), "
                f"output {where}" + (f", from {', '.join(read)}" if read else "")
            )
        return "they come from the model's constants"

    def _nearest_good(self, nodes: Nodes) -> Nodes | None:
        goods = [n for n, o in self._outcomes.items() if o.verdict is Verdict.GOOD and n]
        if not goods:
            return None
        mine = set(nodes)
        return min(goods, key=lambda other: (len(mine ^ set(other)), -len(other)))


def _in_first_sample(
    values: Intermediates,
    names: Iterable[str],
    known: set[str],
    measure: Callable[[Any], _Found | None],
    skip: Callable[[Any], bool],
) -> list[tuple[str, int, _Found]]:
    """``(name, sample, found)`` for each of ``names`` with reference values, in the first
    sample where ``measure(array)`` finds something (not None); a name is passed over at
    the first sample ``skip`` says it cannot hold it (a tensor of another dtype)."""
    found = []
    for name in names:
        if name not in known:
            continue
        for sample in range(len(values)):
            array = values.get(sample, name)
            if skip(array):
                break
            result = measure(array)
            if result is not None:
                found.append((name, sample, result))
                break
    return found


def _non_finite(
    values: Intermediates, names: Iterable[str], known: set[str]
) -> list[tuple[str, int, int, int]]:
    """``(name, sample, NaN count, Inf count)`` for each of ``names`` whose reference
    values hold NaN or Inf, in the first sample that does."""
    import numpy as np

    def counts(array: Any) -> tuple[int, int] | None:
        nan = int(np.count_nonzero(np.isnan(array)))
        inf = int(np.count_nonzero(np.isinf(array)))
        return (nan, inf) if nan or inf else None

    def other_dtype(array: Any) -> bool:
        return array.dtype.kind not in "fc"

    found = _in_first_sample(values, names, known, counts, skip=other_dtype)
    return [(name, sample, nan, inf) for name, sample, (nan, inf) in found]


def _describe_non_finite(found: Iterable[tuple[str, int, int, int]]) -> str:
    """``'t': 3 NaN, 1 Inf (sample 0); ...``"""
    parts = []
    for name, sample, nan, inf in found:
        counts = ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "Inf")) if n)
        parts.append(f"{name!r}: {counts} (sample {sample})")
    return "; ".join(parts)


def _worst(failures: Mapping[str, tuple[float | None, float | None]]) -> float | None:
    values = [a for a, _ in failures.values() if a is not None and math.isfinite(a)]
    infinite = any(a is not None and not math.isfinite(a) for a, _ in failures.values())
    return math.inf if infinite else (max(values) if values else None)


def _much_milder(
    found: Mapping[str, tuple[float | None, float | None]],
    original: Mapping[str, tuple[float | None, float | None]],
) -> str | None:
    """A note when the answer's error is a hundredth of the test's or less: it is then the
    first node whose error passes the tolerances, not necessarily what broke the outputs."""
    mine, theirs = _worst(found), _worst(original)
    if mine is None or theirs is None or mine == math.inf or mine * 100 > theirs:
        return None
    if theirs == math.inf:
        hint = "--polygraphy-fail-on 'Inf|NaN'"
    else:
        hint = f"--polygraphy-atol {theirs / 10:.1g} --polygraphy-rtol {theirs / 10:.1g}"
    return (
        f"note: this subgraph's worst error ({mine:.3g}) is far below the test's "
        f"({theirs:.3g}): it is the first place the error passes the tolerances, not "
        f"necessarily what broke the outputs. To look for the larger error, re-run with {hint}"
    )
