"""The repeat and build sessions: run a test again and again, until its first good run,
its first bad run, or N times; report the pass rate and sort each run's artifacts into
``good/`` and ``bad/``.

Pure: the caller's ``run_once(iteration)`` runs the test once (for ``build``, after
dropping every built session or engine) and answers GOOD (passed), BAD (failed) or INVALID
(an error, a skip). After each run, every artifact path (a file or a folder the run
writes, plus the run's model or engine) is copied to
``good/`` or ``bad/`` as ``<name>.iter<i>.<timestamp>.<outcome><suffix>``, as Polygraphy's
``--artifacts`` sorting does; a missing artifact is noted, never an error. What a run
itself produced (``produced(iteration)``: for ``build`` on TensorRT, the engine it built
and that build's own tactic timing cache) is sorted the same way, and moved rather than
copied; a run that produced nothing (ONNX Runtime has no engine or timing cache) adds
nothing and is not noted.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_polygraphy.debug.search import Verdict
from pytest_polygraphy.debug.session import SessionResult

#: Runs without an end condition met stop here: ``good`` or ``bad`` may never come.
MAX_RUNS = 100


def parse_until(value: str) -> int | str:
    """``N`` (a positive integer), ``good`` or ``bad``; ValueError otherwise."""
    if value in ("good", "bad"):
        return value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"expected a number of runs >= 1, good or bad, got {value!r}")
    return count


@dataclass
class RepeatSession:
    """One repeat (or build) session for one test."""

    kind: str  # repeat | build
    name: str
    until: int | str
    run_once: Callable[[int], Verdict]
    folder: Path
    artifacts: Sequence[Path] = ()
    log: Callable[[str], None] = lambda line: None
    #: Files the run just made (its built engine, its timing cache), sorted then removed.
    produced: Callable[[int], Sequence[Path]] = lambda iteration: ()
    outcomes: list[Verdict] = field(default_factory=list)
    #: What kinds of produced files were sorted (``engine``, ``timing cache``).
    sorted_produced: set[str] = field(default_factory=set)

    def run(self) -> SessionResult:
        start = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        limit = self.until if isinstance(self.until, int) else MAX_RUNS
        missing: set[str] = set()
        for iteration in range(1, limit + 1):
            verdict = self.run_once(iteration)
            self.outcomes.append(verdict)
            missing |= self._sort(iteration, verdict, self.produced(iteration))
            self.log(f"{self.kind} {self.name}: run {iteration}: {verdict.value}")
            if self.until in ("good", "bad") and verdict.value == self.until:
                break
        result = SessionResult(self.kind, self._status(limit), self._summary(missing), self.folder)
        result.checks = len(self.outcomes)
        result.seconds = time.perf_counter() - start
        result.summary += f"\n{len(self.outcomes)} runs, {result.seconds:.2f} s"
        return result

    def _status(self, limit: int) -> str:
        last = self.outcomes[-1].value if self.outcomes else None
        if self.until in ("good", "bad") and last != self.until:
            return f"no {self.until} run in {limit}"
        good = sum(v is Verdict.GOOD for v in self.outcomes)
        bad = sum(v is Verdict.BAD for v in self.outcomes)
        if good and bad:
            return "nondeterministic"
        return "always good" if good else ("always bad" if bad else "invalid")

    def _summary(self, missing: set[str]) -> str:
        good = sum(v is Verdict.GOOD for v in self.outcomes)
        bad = sum(v is Verdict.BAD for v in self.outcomes)
        total = len(self.outcomes)
        rate = 100.0 * good / total if total else 0.0
        lines = [
            f"pass rate: {good} of {total} runs passed ({rate:.0f}%), {bad} failed"
            + (f", {total - good - bad} invalid" if total - good - bad else ""),
            "runs: " + " ".join(v.value for v in self.outcomes),
        ]
        if self.artifacts or self.sorted_produced:
            lines.append(f"artifacts sorted into {self.folder / 'good'} and {self.folder / 'bad'}")
        if self.sorted_produced:
            lines.append(f"with each run's own {', '.join(sorted(self.sorted_produced))}")
        if missing:
            lines.append("not found after some runs: " + ", ".join(sorted(missing)))
        return "\n".join(lines)

    def _sort(self, iteration: int, verdict: Verdict, produced: Sequence[Path] = ()) -> set[str]:
        """Copy every artifact, and move every produced file, into good/ or bad/ (invalid
        runs go to invalid/). Returns the artifacts that were missing."""
        missing: set[str] = set()
        folder = self.folder / {"good": "good", "bad": "bad"}.get(verdict.value, "invalid")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for path in [*self.artifacts, *produced]:
            if not path.exists():
                missing.add(str(path))
                continue
            folder.mkdir(parents=True, exist_ok=True)
            stem, suffix = (path.name, "") if path.is_dir() else (path.stem, path.suffix)
            target = folder / f"{stem}.iter{iteration}.{stamp}.{verdict.value}{suffix}"
            if path in produced:
                self.sorted_produced.add(_kind_of(path))
                shutil.move(path, target)
            elif path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy2(path, target)
        return missing


def _kind_of(path: Path) -> str:
    """What a produced file is, for the summary: ``engine``, ``timing cache``..."""
    return {".engine": "engine", ".cache": "timing cache"}.get(path.suffix, path.suffix)
