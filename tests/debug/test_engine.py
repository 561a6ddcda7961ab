"""The engine's parts without pytest: intermediates spilled to disk, the journal's resume
rules, test-case folders, and a whole session driven by a plain-Python check."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from pytest_polygraphy.debug import CheckOutcome, ReduceOptions, ReduceSession, Variant, Verdict
from pytest_polygraphy.debug.artifacts import read_test_case, write_test_case
from pytest_polygraphy.debug.blocks import GraphIndex
from pytest_polygraphy.debug.intermediates import Intermediates
from pytest_polygraphy.debug.journal import Journal, JournalEntry, read_journal
from pytest_polygraphy.files import current_umask
from pytest_polygraphy.models import convert_to_fp16, mark_outputs
from tests.debug import models


def test_values_past_the_memory_limit_go_to_disk(tmp_path: Path) -> None:
    store = Intermediates(tmp_path, memory_limit=1000)
    samples = [{"a": np.full(100, i, np.float32), "b": np.arange(300.0) + i} for i in range(3)]
    for sample in samples:
        store.add(sample)
    assert store.in_memory <= 1000 and store.spilled > 0
    assert list(tmp_path.rglob("*.npy"))
    for i, sample in enumerate(samples):
        got = store.sample(i, ["a", "b"])
        for name in sample:
            np.testing.assert_array_equal(got[name], sample[name])
    assert store.shapes(["b"]) == {"b": [(300,)] * 3}


def test_the_journal_resumes_and_ignores_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.begin("a")
    journal.end("a", JournalEntry("bad", "why", {"failures": {"y": [1.0, 2.0]}}))
    journal.begin("b")  # the process dies during b
    journal.close()
    with open(path, "a") as stream:
        stream.write('{"event": "end", "key": "c", "verd')  # killed mid-write
    finished, crashed = read_journal(path)
    assert set(finished) == {"a"} and finished["a"].extra["failures"]["y"] == [1.0, 2.0]
    assert crashed == {"b"}
    again = Journal(path)
    assert again.lookup("a").verdict == "bad"
    assert again.lookup("b").verdict == "invalid"
    assert "crashed" in again.lookup("b").detail
    assert again.lookup("c") is None
    again.close()


def test_a_replay_file_answers_checks(tmp_path: Path) -> None:
    first = Journal(tmp_path / "one.jsonl")
    first.begin("k")
    first.end("k", JournalEntry("good"))
    first.close()
    second = Journal(tmp_path / "two.jsonl", replay=tmp_path / "one.jsonl")
    assert second.lookup("k").verdict == "good"
    second.close()


def test_test_case_folders_round_trip(tmp_path: Path) -> None:
    model = models.chain(length=4, culprit=2)
    inputs = [{"x": np.full((1, 16), v, np.float32)} for v in (0.1, 0.2)]
    outputs = [{"y": np.full((1, 16), v, np.float32)} for v in (1.0, 2.0)]
    folder = write_test_case(tmp_path / "case", model, inputs, outputs)
    write_test_case(folder, model, inputs, outputs)  # replacing one is atomic too
    read_model, read_inputs, read_outputs = read_test_case(folder)
    assert read_model == model
    assert [set(f) for f in read_inputs] == [{"x"}, {"x"}]
    np.testing.assert_array_equal(read_outputs[1]["y"], outputs[1]["y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
    mask = os.umask(0o027)  # the folder gets the umask's permissions, not mkdtemp's 0700
    current_umask.cache_clear()
    try:
        write_test_case(folder, model, inputs, outputs)
    finally:
        os.umask(mask)
        current_umask.cache_clear()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def _ort(model: onnx.ModelProto, feed: dict) -> dict:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def _evaluator(model: onnx.ModelProto, feed: dict) -> dict:
    from onnx.reference import ReferenceEvaluator

    names = [o.name for o in model.graph.output]
    with np.errstate(all="ignore"):
        return dict(zip(names, ReferenceEvaluator(model).run(None, feed), strict=True))


class Fp16Check:
    """A check in plain Python: fp16 (reference evaluator) against fp32 (ONNX Runtime)."""

    def __init__(self, model: onnx.ModelProto, feeds: list[dict], flaky_every: int = 0):
        self.model, self.feeds, self.calls, self.flaky_every = model, feeds, 0, flaky_every

    def __call__(self, variant: Variant | None) -> CheckOutcome:
        self.calls += 1
        if self.flaky_every and self.calls % self.flaky_every == 0:
            return CheckOutcome(Verdict.GOOD, "flaked")
        model = self.model if variant is None or variant.model is None else variant.model
        feeds = self.feeds if variant is None or variant.feeds is None else variant.feeds
        failures = {}
        for feed in feeds:
            expected = _ort(model, feed)
            actual = _evaluator(convert_to_fp16(model), feed)
            for name, value in expected.items():
                diff = np.abs(actual[name].astype(np.float64) - value)
                if not np.all(np.isfinite(diff)) or diff.max() > 2e-3:
                    failures[name] = (float(np.nanmax(diff)), None)
        if failures:
            return CheckOutcome(Verdict.BAD, "mismatch", failures)
        return CheckOutcome(Verdict.GOOD, "passed")


def _session(tmp_path: Path, check: Fp16Check, **kwargs) -> ReduceSession:
    def reference(names, feeds):
        marked = mark_outputs(check.model, names)
        for feed in feeds:
            outputs = _ort(marked, feed)
            yield {name: outputs[name] for name in names}

    return ReduceSession(
        "chain",
        check.model,
        check.feeds,
        check=check,
        run_reference=reference,
        folder=tmp_path / "session",
        options=ReduceOptions(**kwargs),
        confirmed=CheckOutcome(Verdict.BAD, "original"),
    )


def test_a_session_without_pytest_finds_the_planted_node(tmp_path: Path) -> None:
    model = models.chain()
    check = Fp16Check(model, [{"x": np.full((1, 16), 0.9, np.float32)}])
    result = _session(tmp_path, check).run()
    assert result.status == "reduced" and result.nodes == [("planted_exp", "Exp")]
    assert result.reproduces is True
    assert "round nothing" not in result.summary  # an Exp computes
    lines = (tmp_path / "session" / "journal.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["event"] == "end" for line in lines) == result.checks


def test_values_fed_beyond_fp16s_range_are_said_and_traced(tmp_path: Path) -> None:
    """Linear mode shrinks from the inputs past the planted Exp: the Log it ends at fails
    only because the reference's exp(18), fed to it, overflows float16 on the way in. The
    summary says so and names the Exp; bisect ends at the Exp itself, with no such note."""
    feeds = [{"x": np.full((1, 16), 0.9, np.float32)}]
    note = "beyond fp16's range, which ends at 65504 ('t23' up to 6.566e+07 in sample 0"
    linear = Fp16Check(models.chain(), feeds)
    result = _session(tmp_path / "linear", linear, mode="linear", precision="fp16").run()
    assert result.nodes == [("log24", "Log")], result.summary
    assert note in result.summary and "made by node planted_exp (Exp)" in result.summary
    unknown = _session(tmp_path / "unknown", linear, mode="linear").run()
    assert unknown.nodes == [("log24", "Log")] and "range" not in unknown.summary
    bisect = _session(tmp_path / "bisect", Fp16Check(models.chain(), feeds), precision="fp16")
    result = bisect.run()
    assert result.nodes == [("planted_exp", "Exp")] and "range" not in result.summary


def test_a_rerun_killed_in_an_earlier_run_is_no_observation(tmp_path: Path) -> None:
    """A kill during the re-run of the unchanged test leaves its journal entry begun and
    never ended: resumed, the session runs the test once more in its place, and neither
    calls the failure nondeterministic nor reruns the killed check; killed re-runs past
    the limit end the session with an error that says how to start over."""
    from pytest_polygraphy.debug.reduce import MAX_CRASHED_RERUNS
    from pytest_polygraphy.models import model_hash

    model = models.chain()
    feeds = [{"x": np.full((1, 16), 0.9, np.float32)}]
    key = model_hash(model)
    journal = tmp_path / "once" / "session" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"event": "begin", "key": f"original#1:{key}"}) + "\n")
    result = _session(tmp_path / "once", Fp16Check(model, feeds)).run()
    assert result.status == "reduced" and result.nodes == [("planted_exp", "Exp")], result.summary
    progress = (journal.parent / "progress.log").read_text()
    assert "the test unchanged: invalid (from the journal" in progress
    assert "check 1 of <=9, the test unchanged: bad" in progress

    killed = [f"original#{i}:{key}" for i in range(1, MAX_CRASHED_RERUNS + 2)]
    journal = tmp_path / "often" / "session" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text("".join(json.dumps({"event": "begin", "key": k}) + "\n" for k in killed))
    result = _session(tmp_path / "often", Fp16Check(model, feeds)).run()
    assert result.status == "error" and result.checks == 0, result.summary
    assert f"{len(killed)} re-runs of the unchanged test never ended" in result.summary


def test_spilled_values_give_the_same_answer(tmp_path: Path) -> None:
    model = models.branchy()
    check = Fp16Check(model, [{"x": np.full((1, 16), 0.9, np.float32)}])
    result = _session(tmp_path, check, memory_limit=0).run()
    assert result.nodes == [("planted_exp", "Exp")]
    assert list((tmp_path / "session" / "values").rglob("*.npy"))


def test_a_contradicting_verdict_is_checked_again(tmp_path: Path) -> None:
    """Every third check flakes to good: the session re-checks what contradicts an earlier
    verdict and says so, and never reports a passing set as the answer."""
    model = models.chain()
    check = Fp16Check(model, [{"x": np.full((1, 16), 0.9, np.float32)}], flaky_every=3)
    result = _session(tmp_path, check).run()
    if result.status == "reduced":
        assert result.nodes == [("planted_exp", "Exp")], result.summary
    else:
        assert result.status == "nondeterministic", result.summary
        assert "nondeterministic (1 of 2 failed)" in result.summary


def test_flaky_passes_never_make_an_answer(tmp_path: Path) -> None:
    """Whatever the flaking period, the answer is a node that really fails alone (the
    planted Exp, or the Log that reads its overflow), or the session says it is unsure."""
    model = models.chain()
    for every in (2, 3, 4, 5, 7):
        check = Fp16Check(model, [{"x": np.full((1, 16), 0.9, np.float32)}], flaky_every=every)
        result = _session(tmp_path / str(every), check).run()
        unsure = result.status in ("nondeterministic", "failure lost when cut")
        failing_alone = ([("planted_exp", "Exp")], [("log24", "Log")])
        assert unsure or result.nodes in failing_alone, (every, result.summary)


class NodeCheck(Fp16Check):
    """Bad exactly when the variant holds the node named ``culprit`` (a backend that fails
    there, or that cannot run the nodes before it alone)."""

    def __init__(self, model: onnx.ModelProto, feeds: list[dict], culprit: str):
        super().__init__(model, feeds)
        self.culprit = culprit

    def __call__(self, variant: Variant | None) -> CheckOutcome:
        model = self.model if variant is None or variant.model is None else variant.model
        if self.culprit in {node.name for node in model.graph.node}:
            return CheckOutcome(Verdict.BAD, "mismatch", {"y": (float("nan"), None)})
        return CheckOutcome(Verdict.GOOD, "passed")


def test_non_finite_reference_values_fed_in_are_traced_to_their_node(tmp_path: Path) -> None:
    """The answer is fed NaN by the reference itself: the summary says so and names the
    node where the reference first makes it, with the shapes that node read."""
    check = NodeCheck(models.nan_making(), [{"x": np.zeros((1, 16), np.float32)}], "late")
    result = _session(tmp_path, check).run()
    assert result.nodes == [("late", "Neg")], result.summary
    assert (
        "note: the reference's own values fed to this subgraph are not finite ('a': 16 NaN "
        "(sample 0)): the failure comes in with them; the reference first computes them at "
        "node nan_maker (Sqrt), output 'r', from 'd' float32 [1, 16]"
    ) in result.summary


def test_non_finite_reference_values_made_inside_are_said(tmp_path: Path) -> None:
    check = NodeCheck(models.nan_making(), [{"x": np.zeros((1, 16), np.float32)}], "nan_maker")
    result = _session(tmp_path, check).run()
    assert result.nodes == [("nan_maker", "Sqrt")], result.summary
    assert "the reference itself computes non-finite values in this subgraph ('r': 16 NaN" in (
        result.summary
    )
    assert "fed to this subgraph" not in result.summary


def test_finite_reference_values_get_no_note(tmp_path: Path) -> None:
    check = NodeCheck(models.nan_making(), [{"x": np.full((1, 16), 3.0, np.float32)}], "late")
    result = _session(tmp_path, check).run()
    assert result.nodes == [("late", "Neg")], result.summary
    assert "not finite" not in result.summary and "non-finite" not in result.summary


class AlwaysBad(Fp16Check):
    """A test that fails the same way whatever its model."""

    def __call__(self, variant: Variant | None) -> CheckOutcome:
        return CheckOutcome(Verdict.BAD, "fails regardless")


def test_a_failure_that_does_not_depend_on_the_model_is_said(tmp_path: Path) -> None:
    """Every cut fails, so the search ends at the first node; the model without it fails
    too, and the summary says the answer may not be where the failure comes from."""
    check = AlwaysBad(models.chain(), [{"x": np.full((1, 16), 0.9, np.float32)}])
    result = _session(tmp_path, check).run()
    assert "no variant passed, and the model without these nodes fails the same way" in (
        result.summary
    )


def test_a_culprit_at_the_first_node_is_confirmed_by_the_rest_passing(tmp_path: Path) -> None:
    model = models.chain()
    check = NodeCheck(model, [{"x": np.full((1, 16), 0.9, np.float32)}], "n0")
    result = _session(tmp_path, check).run()
    assert [name for name, _ in result.nodes] == ["n0"], result.summary
    assert "no variant passed" not in result.summary
    n = len(GraphIndex(model).candidates)
    assert result.checks <= math.ceil(math.log2(n)) + 3, result.summary
    assert (tmp_path / "session" / "min_good.onnx").exists()


def test_an_answer_of_exact_ops_says_its_error_came_in_with_its_inputs(tmp_path: Path) -> None:
    """A Neg computes nothing that rounds: when it is the answer (here a test that fails
    wherever a cut falls on it), the summary says the error is what it was fed."""
    check = NodeCheck(models.chain(), [{"x": np.full((1, 16), 0.9, np.float32)}], "n0")
    result = _session(tmp_path, check).run()
    assert result.nodes == [("n0", "Neg")], result.summary
    assert "these nodes only move, select or copy values and round nothing" in result.summary
