"""A JSON-lines journal of checks, so that a session can resume and be replayed.

Each check writes a ``begin`` line before it runs and an ``end`` line (with its verdict)
after, both keyed by a content hash of the variant. Reading the journal back gives the
verdict of every finished check (asked again, it is answered from the journal: a resumed
session repeats no check) and the keys of checks that began and never ended: the process
died during them (a crash, a kill, Ctrl-C), and a resumed session records them as invalid
instead of running them again. Lines are flushed as they are written, which is all a
killed process needs (they are not synced to disk: after a power loss a resumed session
may repeat the last checks); a torn last line (a kill mid-write) is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class JournalEntry:
    """The outcome of a finished check."""

    verdict: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def read_journal(path: Path) -> tuple[dict[str, JournalEntry], set[str]]:
    """``(finished checks by key, keys of checks that began and never ended)``."""
    finished: dict[str, JournalEntry] = {}
    begun: set[str] = set()
    if not path.exists():
        return finished, begun
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or "key" not in entry:
                continue
            key = str(entry["key"])
            if entry.get("event") == "begin":
                begun.add(key)
            elif entry.get("event") == "end":
                finished[key] = JournalEntry(
                    verdict=str(entry.get("verdict")),
                    detail=str(entry.get("detail", "")),
                    extra=dict(entry.get("extra") or {}),
                )
    return finished, begun - set(finished)


class Journal:
    """Appends to the journal file; see the module docstring."""

    def __init__(self, path: Path, replay: Path | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.finished, self.crashed = read_journal(path)
        if replay is not None:
            finished, crashed = read_journal(replay)
            for key, entry in finished.items():
                self.finished.setdefault(key, entry)
            self.crashed |= crashed - set(self.finished)
        self._stream: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def lookup(self, key: str) -> JournalEntry | None:
        """A finished check's outcome, or one saying that it crashed the process before."""
        if key in self.finished:
            return self.finished[key]
        if self.crashed_before(key):
            return JournalEntry("invalid", "this check crashed the process in an earlier run")
        return None

    def crashed_before(self, key: str) -> bool:
        """Whether the check ``key`` began in an earlier run and never ended."""
        return key in self.crashed and key not in self.finished

    def begin(self, key: str, **info: Any) -> None:
        self._write({"event": "begin", "key": key, **info})

    def end(self, key: str, entry: JournalEntry) -> None:
        self.finished[key] = entry
        self._write(
            {
                "event": "end",
                "key": key,
                "verdict": entry.verdict,
                "detail": entry.detail,
                "extra": entry.extra,
            }
        )

    def close(self) -> None:
        self._stream.close()

    def _write(self, entry: dict[str, Any]) -> None:
        self._stream.write(json.dumps(entry, default=str) + "\n")
        self._stream.flush()
