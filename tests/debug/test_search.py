"""The searches against oracles: a check is a function of the set of candidates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_polygraphy.debug.search import Nodes, Verdict, expected_checks, peel, reduce_block


def contains_any(culprits: set[int]):
    return lambda nodes: Verdict.BAD if culprits & set(nodes) else Verdict.GOOD


def covers(a: int, b: int):
    """Bad only when every node of a..b is in the set (an error accumulated over them)."""
    return lambda nodes: Verdict.BAD if set(range(a, b + 1)) <= set(nodes) else Verdict.GOOD


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 100, 245, 560, 1000])
def test_one_culprit_in_at_most_ceil_log2_n_plus_1_checks(n: int) -> None:
    for culprit in {0, n // 3, n // 2, n - 1}:
        result = reduce_block(n, contains_any({culprit}))
        assert result.nodes == (culprit,)
        assert not result.accumulated
        assert result.checks <= math.ceil(math.log2(n)) + 1 if n > 1 else result.checks <= 1
        assert result.checks <= expected_checks(n)


def test_accumulated_error_is_found_and_said() -> None:
    result = reduce_block(64, covers(20, 27))
    assert result.nodes == tuple(range(20, 28))
    assert result.accumulated


@given(
    n=st.integers(1, 300),
    culprits=st.sets(st.integers(0, 299), min_size=1, max_size=4),
    mode=st.sampled_from(["bisect", "linear"]),
)
@settings(max_examples=150, deadline=None)
def test_the_result_is_bad_and_one_minimal(n: int, culprits: set[int], mode: str) -> None:
    culprits = {c % n for c in culprits}
    check = contains_any(culprits)
    asked: list[Nodes] = []

    def counted(nodes: Nodes) -> Verdict:
        asked.append(nodes)
        return check(nodes)

    result = reduce_block(n, counted, mode=mode)
    assert check(result.nodes) is Verdict.BAD
    for node in result.nodes:
        rest = tuple(x for x in result.nodes if x != node)
        assert check(rest) is not Verdict.BAD
    assert len(set(asked)) == len(asked) == result.checks  # nothing asked twice


def test_invalid_is_never_taken_as_bad() -> None:
    """A culprit whose left neighbours make the variant invalid is still isolated."""

    def check(nodes: Nodes) -> Verdict:
        if 5 in nodes and 4 in nodes and len(nodes) < 10:
            return Verdict.INVALID
        return Verdict.BAD if 7 in nodes else Verdict.GOOD

    result = reduce_block(16, check)
    assert result.nodes == (7,)


def test_a_node_failing_alone_is_found_behind_removals_that_cannot_run() -> None:
    """Node 6 fails alone, but a set holding one of nodes 3 and 4 without the other cannot
    run, as a cut through the sequence between them cannot: both halves of the first
    bisection are INVALID, the search shrinks to ``{3, 4, 6}``, and removing 3 or 4 from
    it is INVALID too, which says nothing about ``{6}``: the singles are checked."""

    def check(nodes: Nodes) -> Verdict:
        chosen = set(nodes)
        if (3 in chosen) != (4 in chosen):
            return Verdict.INVALID
        return Verdict.BAD if 6 in chosen else Verdict.GOOD

    result = reduce_block(9, check)
    assert result.nodes == (6,)
    assert not result.accumulated


def test_keep_start_and_keep_end_keep_the_ends() -> None:
    assert reduce_block(50, contains_any({30}), keep_start=True).nodes == tuple(range(31))
    assert reduce_block(50, contains_any({30}), keep_end=True).nodes == tuple(range(30, 50))


def test_linear_mode_shrinks_one_node_at_a_time() -> None:
    asked: list[Nodes] = []
    check = contains_any({12})

    def counted(nodes: Nodes) -> Verdict:
        asked.append(nodes)
        return check(nodes)

    result = reduce_block(20, counted, mode="linear")
    assert result.nodes == (12,)
    assert asked[0] == tuple(range(1, 20)) and asked[1] == tuple(range(2, 20))


def test_known_verdicts_are_not_asked_again() -> None:
    first = reduce_block(40, contains_any({9}))
    replay = dict(first.history)
    asked: list[Nodes] = []

    def refuse(nodes: Nodes) -> Verdict:
        asked.append(nodes)
        return Verdict.INVALID

    again = reduce_block(40, refuse, known=replay)
    assert again.nodes == first.nodes and asked == [] and again.checks == 0


def recording(check):
    """``check``, and the list of the sets it is asked, in order."""
    asked: list[Nodes] = []

    def recorded(nodes: Nodes) -> Verdict:
        asked.append(nodes)
        return check(nodes)

    return recorded, asked


@pytest.mark.parametrize("mode", ["bisect", "linear"])
def test_an_unconfirmed_whole_is_checked_only_when_the_search_rests_on_it(mode: str) -> None:
    """``confirmed=False``: a failing cut confirms the whole, which is then never asked;
    the whole is asked when no cut fails first (bisect: an error accumulated across the
    halves), and when it passes, nothing is searched."""
    n = 64
    whole = tuple(range(n))
    for culprit in (3, 40):
        check, asked = recording(contains_any({culprit}))
        result = reduce_block(n, check, mode=mode, confirmed=False)
        assert result.reproduced and result.nodes == (culprit,)
        assert whole not in asked
        if mode == "bisect":
            assert result.checks <= math.ceil(math.log2(n)) + 1
    check, asked = recording(covers(30, 33))
    result = reduce_block(n, check, mode=mode, confirmed=False)
    assert result.reproduced and result.nodes == (30, 31, 32, 33)
    assert (whole in asked) is (mode == "bisect")  # linear's first cut already fails
    check, asked = recording(lambda nodes: Verdict.GOOD)
    result = reduce_block(n, check, mode=mode, confirmed=False)
    assert not result.reproduced and result.nodes == () and asked[-1] == whole
    assert (
        result.checks == len(asked) <= (math.ceil(math.log2(n)) + 2 if mode == "bisect" else 2 * n)
    )


def test_good_is_the_largest_passing_set() -> None:
    result = reduce_block(32, contains_any({20}))
    assert result.good is not None and 20 not in result.good
    assert all(v is not Verdict.GOOD or len(k) <= len(result.good) for k, v in result.history)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        reduce_block(0, contains_any({0}))
    with pytest.raises(ValueError, match="bisect"):
        reduce_block(3, contains_any({0}), mode="binary")


def keeps(culprits: set[int]):
    """Passes only when every culprit is kept."""
    return lambda nodes: Verdict.GOOD if culprits <= set(nodes) else Verdict.BAD


@pytest.mark.parametrize("n", [2, 7, 64, 245, 1000])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_peel_finds_k_culprits_within_the_budget(n: int, direction: str) -> None:
    for culprits in ({0}, {n - 1}, {n // 2}, {1, n - 1}, {n // 3, n // 2, n - 2}):
        culprits = {c % n for c in culprits}
        result = peel(n, keeps(culprits), direction=direction)
        assert set(result.culprits) == culprits and result.finished
        assert result.keep == tuple(sorted(culprits))
        k = len(culprits)
        assert result.checks <= k * (math.ceil(math.log2(n)) + 1), (culprits, result.checks)


def test_peel_linear_mode() -> None:
    result = peel(30, keeps({4, 20}), mode="linear")
    assert set(result.culprits) == {4, 20}


@given(
    n=st.integers(2, 200),
    culprits=st.sets(st.integers(0, 199), min_size=1, max_size=3),
    budget=st.integers(0, 12),
)
@settings(max_examples=100, deadline=None)
def test_peel_stopped_early_still_returns_a_passing_set(n, culprits, budget) -> None:
    culprits = {c % n for c in culprits}
    check = keeps(culprits)
    result = peel(n, check, max_checks=budget)
    assert check(result.keep) is Verdict.GOOD
    assert result.checks <= max(budget, 1) + 1 or result.finished
