"""Searching for the smallest failing set of candidates: integers and a check, nothing else.

The candidates are ``0 .. n-1`` (nodes in topological order, for the reduce session). A
check takes a sorted tuple of candidate indices and answers ``Verdict.GOOD``, ``BAD`` or
``INVALID``; it knows what the indices mean, this module does not. So every search here
is unit-tested with oracles, no model needed.

``reduce_block`` is given that the whole range ``[0, n)`` is bad and returns a 1-minimal
bad set. The caller may have seen the whole fail only outside the check (a test's own
failing runs, before any variant): the search then checks the whole itself only when it
ends up resting on it, with no smaller set found bad (no single culprit, or none that the
search could remove); when the whole is not bad then, it stops with ``reproduced`` false.

- **bisect** first assumes one culprit: it checks the left half of the current block and
  keeps it when bad, else moves to the right half without checking it (a block with no
  culprit passes, so the culprit is on the right). That costs one check per halving, and
  one more to verify the single node it ends on: ``ceil(log2 n) + 1`` checks.
- When that node alone is not bad (the failure needs several nodes: error accumulated
  along a path, or an interaction), it shrinks the last block known to be bad from both
  ends by bisection: the largest start, then the smallest end, that still fail.
- **linear** shrinks from both ends one node at a time and stops at the first node whose
  removal loses the failure.
- Finally, a result of more than one node is checked without each of its nodes; a
  removal that still fails is taken, until no single removal does (1-minimal). Where a
  removal was ``INVALID``, each remaining node is also checked alone.

``INVALID`` (the variant could not run, or failed differently) is never taken as bad.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class Verdict(str, enum.Enum):
    """What one check said about one variant."""

    GOOD = "good"
    BAD = "bad"
    INVALID = "invalid"


Nodes = tuple[int, ...]
Check = Callable[[Nodes], Verdict]


@dataclass
class SearchResult:
    """The smallest bad set found, and how it was found."""

    nodes: Nodes
    #: True when no single node fails alone: the failure needs several nodes together.
    accumulated: bool = False
    #: Checks asked of the check callable by the search (the caller's own are not counted).
    checks: int = 0
    #: The largest set checked and found good, when one was (``min_good``).
    good: Nodes | None = None
    #: False when the whole range, checked, was not bad: nothing was searched.
    reproduced: bool = True
    history: list[tuple[Nodes, Verdict]] = field(default_factory=list)


class _Recorder:
    """Calls the check once per distinct set and remembers every verdict."""

    def __init__(self, check: Check, known: dict[Nodes, Verdict] | None = None) -> None:
        self._check = check
        self.known: dict[Nodes, Verdict] = dict(known or {})
        self.result = SearchResult(nodes=())

    def __call__(self, nodes: Sequence[int]) -> Verdict:
        key = tuple(sorted(nodes))
        if key in self.known:
            return self.known[key]
        verdict = self._check(key)
        self.known[key] = verdict
        self.result.checks += 1
        self.result.history.append((key, verdict))
        if verdict is Verdict.GOOD and (
            self.result.good is None or len(key) > len(self.result.good)
        ):
            self.result.good = key
        return verdict


def block(lo: int, hi: int) -> Nodes:
    """The contiguous candidates ``lo .. hi-1``."""
    return tuple(range(lo, hi))


def expected_checks(n: int) -> int:
    """Checks ``reduce_block`` needs (bisect mode) to isolate one culprit among ``n``."""
    return math.ceil(math.log2(n)) + 1 if n > 1 else 1


def reduce_block(
    n: int,
    check: Check,
    *,
    mode: str = "bisect",
    keep_start: bool = False,
    keep_end: bool = False,
    known: dict[Nodes, Verdict] | None = None,
    confirmed: bool = True,
) -> SearchResult:
    """A 1-minimal bad set of candidates ``0 .. n-1``, given that all of them are bad.

    ``keep_start`` keeps candidate 0 (the original inputs: ``--no-reduce-inputs``),
    ``keep_end`` keeps candidate ``n-1`` (the original outputs); both make the result a
    contiguous block. ``known`` are verdicts already obtained (never asked again).
    ``confirmed=False``: the whole was seen failing, but not through ``check``; the search
    confirms it on the way (see the module docstring)."""
    if n < 1:
        raise ValueError("nothing to search: no candidates")
    if mode not in ("bisect", "linear"):
        raise ValueError(f"mode must be 'bisect' or 'linear', not {mode!r}")
    run = _Recorder(check, known)
    whole = block(0, n)
    if confirmed:
        run.known.setdefault(whole, Verdict.BAD)
    lo, hi = 0, n
    if mode == "bisect":
        if not (keep_start or keep_end):
            lo, hi = _halve(run, lo, hi)
        if run(block(lo, hi)) is not Verdict.BAD:
            lo, hi = _last_bad_block(run, n)
        if (lo, hi) == (0, n) and run(whole) is not Verdict.BAD:
            return _not_reproduced(run)
        if hi - lo > 1:
            if not keep_start:
                lo = _largest_bad_start(run, lo, hi)
            if not keep_end:
                hi = _smallest_bad_end(run, lo, hi)
    else:
        if not keep_start:
            while lo + 1 < hi and run(block(lo + 1, hi)) is Verdict.BAD:
                lo += 1
        if not keep_end:
            while hi - 1 > lo and run(block(lo, hi - 1)) is Verdict.BAD:
                hi -= 1
        if (lo, hi) == (0, n) and run(whole) is not Verdict.BAD:
            return _not_reproduced(run)
    nodes = block(lo, hi)
    if not (keep_start or keep_end):
        nodes = _one_minimal(run, nodes)
    result = run.result
    result.nodes = nodes
    result.accumulated = len(nodes) > 1 and not (keep_start or keep_end)
    return result


def _not_reproduced(run: _Recorder) -> SearchResult:
    run.result.reproduced = False
    return run.result


def _halve(run: _Recorder, lo: int, hi: int) -> tuple[int, int]:
    """Single-culprit bisection: keep the left half when bad, else take the right one."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        verdict = run(block(lo, mid))
        if verdict is Verdict.BAD:
            hi = mid
        elif verdict is Verdict.GOOD or run(block(mid, hi)) is Verdict.BAD:
            lo = mid
        else:
            break
    return lo, hi


def _last_bad_block(run: _Recorder, n: int) -> tuple[int, int]:
    """The smallest contiguous block checked and found bad (the whole range at least)."""
    best = (0, n)
    for nodes, verdict in run.known.items():
        if (
            verdict is Verdict.BAD
            and nodes
            and nodes == block(nodes[0], nodes[-1] + 1)
            and len(nodes) < best[1] - best[0]
        ):
            best = (nodes[0], nodes[-1] + 1)
    return best


def _largest_bad_start(run: _Recorder, lo: int, hi: int) -> int:
    """The largest ``start`` in ``[lo, hi)`` with ``[start, hi)`` bad (``[lo, hi)`` is)."""
    bad, not_bad = lo, hi
    while not_bad - bad > 1:
        mid = (bad + not_bad) // 2
        if run(block(mid, hi)) is Verdict.BAD:
            bad = mid
        else:
            not_bad = mid
    return bad


def _smallest_bad_end(run: _Recorder, lo: int, hi: int) -> int:
    """The smallest ``end`` in ``(lo, hi]`` with ``[lo, end)`` bad (``[lo, hi)`` is)."""
    not_bad, bad = lo, hi
    while bad - not_bad > 1:
        mid = (bad + not_bad) // 2
        if run(block(lo, mid)) is Verdict.BAD:
            bad = mid
        else:
            not_bad = mid
    return bad


def _one_minimal(run: _Recorder, nodes: Nodes) -> Nodes:
    """Drop single nodes while the rest still fails, until no single removal fails.

    When a removal could not be checked (``INVALID``: the rest cannot run on its own),
    that says nothing about the smaller sets inside it, so each node of the result is
    then also checked alone: one that fails alone is the answer."""
    changed = len(nodes) > 1
    unsure = False
    while changed and len(nodes) > 1:
        changed = False
        for node in nodes:
            rest = tuple(other for other in nodes if other != node)
            verdict = run(rest)
            if verdict is Verdict.BAD:
                nodes = rest
                changed = True
                break
            unsure = unsure or verdict is Verdict.INVALID
    if unsure and len(nodes) > 1:
        for node in nodes:
            if run((node,)) is Verdict.BAD:
                return (node,)
    return nodes


@dataclass
class PeelResult:
    """The culprits found, the set to keep, and whether the search finished."""

    #: Candidates that must be kept, in the order found.
    culprits: Nodes
    #: A set known to pass: the culprits, plus the prefix (or suffix) still unsearched
    #: when a stop at ``max_checks`` cut the search short.
    keep: Nodes
    finished: bool
    checks: int = 0
    history: list[tuple[Nodes, Verdict]] = field(default_factory=list)


def peel(
    n: int,
    check: Check,
    *,
    mode: str = "bisect",
    direction: str = "forward",
    max_checks: int | None = None,
    known: dict[Nodes, Verdict] | None = None,
    on_culprit: Callable[[int], None] | None = None,
) -> PeelResult:
    """The candidates that must be kept (in higher precision) for ``check`` to pass, given
    that keeping all ``n`` passes and keeping none fails.

    ``check(kept)`` says GOOD when the test passes with ``kept`` kept. Forward, each round
    finds the smallest prefix that passes together with the culprits found so far: its
    last candidate is a culprit (the prefix without it failed). A check of the culprits
    alone then ends the search or starts the next round, below the culprit just found.
    With k independent culprits that is at most ``k * (ceil(log2 n) + 1)`` checks.
    ``reverse`` searches suffixes instead; ``linear`` grows the prefix one candidate at a
    time. Anything but GOOD counts as failing. The search is anytime: stopped by
    ``max_checks``, ``keep`` is still a set that passed. ``on_culprit(index)`` is told of
    each culprit as it is found (a caller's progress bound grows by one round each time)."""
    if n < 1:
        raise ValueError("nothing to search: no candidates")
    if mode not in ("bisect", "linear"):
        raise ValueError(f"mode must be 'bisect' or 'linear', not {mode!r}")
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', not {direction!r}")

    def position(i: int) -> int:
        return i if direction == "forward" else n - 1 - i

    def as_set(prefix: int, found: list[int]) -> Nodes:
        return tuple(sorted({position(i) for i in range(prefix)} | set(found)))

    run = _Recorder(check, known)
    run.known.setdefault(block(0, n), Verdict.GOOD)
    run.known.setdefault((), Verdict.BAD)
    found: list[int] = []
    hi = n  # the prefix [0, hi) with the culprits found passes
    finished = True
    while True:
        if found and run(tuple(sorted(found))) is Verdict.GOOD:
            break
        if hi == 0:  # nothing left below: the culprits alone must pass; they did not
            finished = False
            break
        lo = 0  # the prefix [0, lo) with the culprits found fails
        if mode == "bisect":
            while hi - lo > 1:
                if max_checks is not None and run.result.checks >= max_checks:
                    finished = False
                    break
                mid = (lo + hi) // 2
                if run(as_set(mid, found)) is Verdict.GOOD:
                    hi = mid
                else:
                    lo = mid
        else:
            probe = 1
            while probe < hi:
                if max_checks is not None and run.result.checks >= max_checks:
                    finished = False
                    break
                if run(as_set(probe, found)) is Verdict.GOOD:
                    hi = probe
                    break
                probe += 1
        if not finished:
            break
        found.append(position(hi - 1))
        if on_culprit is not None:
            on_culprit(found[-1])
        hi -= 1
        if max_checks is not None and run.result.checks >= max_checks:
            finished = False
            break
    culprits = tuple(found)
    if finished:
        keep = tuple(sorted(culprits))
    else:  # the smallest set that passed (the invariant's prefix, unless a check flaked)
        passed = [nodes for nodes, verdict in run.known.items() if verdict is Verdict.GOOD]
        keep = min(passed, key=len)
    return PeelResult(culprits, keep, finished, run.result.checks, run.result.history)
