"""What every debug session shares: the variant a check runs, its outcome, the journal,
the progress lines and the result.

A session asks its caller's ``check(variant)`` to run the failing test once with a
``Variant`` in place of its model, inputs or precision settings (``None``: the test
unchanged) and to say whether it failed the same way (``CheckOutcome``). Every check goes
through the journal (``journal``), so re-running a session resumes it with no check
repeated, and writes a progress line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_polygraphy.debug.journal import Journal, JournalEntry
from pytest_polygraphy.debug.search import Verdict
from pytest_polygraphy.errors import PolygraphyError

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class Variant:
    """What replaces part of a test for one check; ``None`` fields stay the test's own."""

    #: A model in place of the test's model.
    model: onnx.ModelProto | None = None
    #: One feed per sample in place of the test's inputs (with ``model``).
    feeds: Sequence[Mapping[str, Any]] | None = None
    #: Nodes kept in fp32, added to the test's own ``keep_fp32``.
    keep_fp32: tuple[str, ...] | None = None
    #: Nodes kept in fp16, added to the test's own ``keep_fp16``.
    keep_fp16: tuple[str, ...] | None = None
    #: ``models.model_hash(model)`` when the caller has it already (hashing takes time).
    model_hash: str | None = None


@dataclass
class CheckOutcome:
    """What one run of the test said."""

    verdict: Verdict
    #: Why: the failure's first line, or why the run is invalid.
    detail: str = ""
    #: Failing outputs: ``{name: (max abs error, max rel error)}``.
    failures: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: What the backends said of the run besides its verdict: e.g. the layer precisions
    #: TensorRT ignored, read back from its engine.
    notes: tuple[str, ...] = ()

    def to_entry(self) -> JournalEntry:
        failures = {k: list(v) for k, v in self.failures.items()}
        extra: dict[str, Any] = {"failures": failures}
        if self.notes:
            extra["notes"] = list(self.notes)
        return JournalEntry(self.verdict.value, self.detail, extra)

    @classmethod
    def from_entry(cls, entry: JournalEntry) -> CheckOutcome:
        failures = {k: (v[0], v[1]) for k, v in (entry.extra.get("failures") or {}).items()}
        notes = tuple(str(n) for n in entry.extra.get("notes") or ())
        return cls(Verdict(entry.verdict), entry.detail, failures, notes)


class Check(Protocol):
    def __call__(self, variant: Variant | None) -> CheckOutcome: ...


@dataclass
class SessionResult:
    """A session's answer; ``summary`` is what the reports show."""

    session: str  # reduce | precision
    #: reduced / found | not reproduced | nondeterministic | failure lost when cut |
    #: not a precision problem | stopped | usage error | error
    status: str
    summary: str
    folder: Path
    nodes: list[tuple[str, str]] = field(default_factory=list)
    checks: int = 0
    replayed: int = 0
    accumulated: bool = False
    failures: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    reproduces: bool | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "status": self.status,
            "summary": self.summary,
            "folder": str(self.folder),
            "nodes": [list(n) for n in self.nodes],
            "checks": self.checks,
            "replayed": self.replayed,
            "accumulated": self.accumulated,
            "failures": {k: list(v) for k, v in self.failures.items()},
            "reproduces": self.reproduces,
            "seconds": round(self.seconds, 3),
        }


class DebugSession:
    """The journal, progress lines and counters of one session; subclasses ``_run()``."""

    kind = "debug"

    def __init__(
        self,
        name: str,
        *,
        check: Check,
        folder: Path,
        replay: Path | None = None,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.name = name
        self._check = check
        self.folder = folder
        self.replay = replay
        self._log = log
        self.checks = 0
        self.replayed = 0
        self.bound = 0

    def log(self, line: str) -> None:
        self._log(f"{self.kind} {self.name}: {line}")
        with open(self.folder / "progress.log", "a", encoding="utf-8") as stream:
            stream.write(line + "\n")

    def run(self) -> SessionResult:
        start = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.folder / "journal.jsonl", self.replay)
        try:
            result = self._run()
        except PolygraphyError as err:
            result = self._result("error", f"cannot {self.kind}: {type(err).__name__}: {err}")
        finally:
            self.journal.close()
        result.seconds = time.perf_counter() - start
        result.checks, result.replayed = self.checks, self.replayed
        result.summary += (
            f"\n{self.checks} checks"
            + (f" (+{self.replayed} answered from the journal)" if self.replayed else "")
            + f", {result.seconds:.2f} s; files in {self.folder}"
        )
        return result

    def _run(self) -> SessionResult:
        raise NotImplementedError

    def _result(self, status: str, summary: str, **kwargs: Any) -> SessionResult:
        return SessionResult(self.kind, status, summary, self.folder, **kwargs)

    def run_check(
        self, key: str, variant: Variant | None, what: str, *, fresh: bool = False
    ) -> CheckOutcome:
        """One check through the journal: answered from it when known (unless ``fresh``)."""
        entry = None if fresh else self.journal.lookup(key)
        if entry is not None:
            self.replayed += 1
            outcome = CheckOutcome.from_entry(entry)
            why = f": {outcome.detail}" if outcome.verdict is Verdict.INVALID else ""
            self.log(f"{what}: {outcome.verdict.value} (from the journal{why})")
            return outcome
        self.checks += 1
        self.journal.begin(key, what=what)
        outcome = self._check(variant)
        self.journal.end(key, outcome.to_entry())
        bound = f" of <={self.bound}" if self.checks <= self.bound else ""
        detail = f" ({outcome.detail})" if outcome.verdict is Verdict.INVALID else ""
        self.log(f"check {self.checks}{bound}, {what}: {outcome.verdict.value}{detail}")
        return outcome
