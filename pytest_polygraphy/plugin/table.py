"""The accuracy summary: comparison records aggregated into rows (one per test, output and
backend pair), and those rows formatted for the terminal (grouped by test, fitted to its
width) and for the reports (numbers, errors against their tolerance).

Stdlib only: the terminal table and the HTML report both build on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_polygraphy.plugin.records import COMPARE_PROPERTY

# Terminal table limits when not verbose: every row if the suite is small, otherwise the
# failing rows (up to a cap) and a count of the rest; -v lists every row, -vv stops truncating.
SMALL_TABLE_ROWS = 20
MAX_FAILING_ROWS = 50


@dataclass
class OutputRow:
    """One compared output of one test and one backend pair, worst case over iterations."""

    test: str
    output: str
    actual: str
    reference: str
    precision: str
    max_absdiff: float | None
    max_reldiff: float | None
    mismatch_count: int | None
    total: int | None
    rtol: float | None
    atol: float | None
    rule: str
    passed: bool
    iterations: int = 1
    artifacts: list[str] = field(default_factory=list)
    #: The compare function's report of the first failing iteration (worst elements,
    #: the tolerance that would pass), for the HTML report.
    detail: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.test, self.output, self.actual, self.reference, self.precision)

    @property
    def mismatches(self) -> str:
        """``"12/1024"``: elements out of tolerance over elements compared."""
        if self.mismatch_count is None:
            return "-"
        return f"{self.mismatch_count}/{'-' if self.total is None else self.total}"

    @property
    def backends(self) -> str:
        return f"{self.actual} vs {self.reference}"

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> OutputRow:
        artifact = record.get("artifact")
        return cls(
            test=str(record.get("test", "?")),
            output=str(record.get("output", "?")),
            actual=str(record.get("actual", "?")),
            reference=str(record.get("reference", "?")),
            precision=str(record.get("precision", "")),
            max_absdiff=_float(record.get("max_absdiff")),
            max_reldiff=_float(record.get("max_reldiff")),
            mismatch_count=_int(record.get("mismatch_count")),
            total=_int(record.get("total")),
            rtol=_float(record.get("rtol")),
            atol=_float(record.get("atol")),
            rule=str(record.get("rule", "")),
            passed=bool(record.get("passed", False)),
            artifacts=[str(artifact)] if artifact else [],
            detail=str(record["detail"]) if record.get("detail") else None,
        )

    def merge(self, other: OutputRow) -> None:
        """Fold another iteration in: worst errors, summed counts, failed if any failed."""
        self.max_absdiff = _worst(self.max_absdiff, other.max_absdiff)
        self.max_reldiff = _worst(self.max_reldiff, other.max_reldiff)
        self.mismatch_count = _sum(self.mismatch_count, other.mismatch_count)
        self.total = _sum(self.total, other.total)
        self.passed = self.passed and other.passed
        self.iterations += other.iterations
        self.artifacts.extend(other.artifacts)
        self.detail = self.detail or other.detail


def _float(value: Any) -> float | None:
    """A metric as float; None stays None (the compare function has no such metric)."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _sum(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


def _worst(a: float | None, b: float | None) -> float | None:
    """The larger error, where NaN (a NaN output) is worse than any number."""
    if a is None or b is None:
        return b if a is None else a
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


def records_of(user_properties: Iterable[tuple[str, object]]) -> list[dict[str, Any]]:
    """The comparison records among a report's user_properties."""
    return [
        dict(value)
        for name, value in user_properties
        if name == COMPARE_PROPERTY and isinstance(value, Mapping)
    ]


def aggregate(
    records: Iterable[Mapping[str, Any]], test_order: Mapping[str, int] | None = None
) -> list[OutputRow]:
    """One row per (test, output, actual, reference, precision).

    Rows follow ``test_order`` (test id -> collection index) where given, so that reports
    do not depend on the order xdist workers finish in; otherwise the order records came in.
    """
    rows: dict[tuple[str, str, str, str, str], OutputRow] = {}
    for record in records:
        row = OutputRow.from_record(record)
        if row.key in rows:
            rows[row.key].merge(row)
        else:
            rows[row.key] = row
    ordered = list(rows.values())
    if test_order:
        ordered.sort(key=lambda row: test_order.get(row.test, len(test_order)))
    return ordered


def failing_first(rows: Sequence[OutputRow]) -> list[OutputRow]:
    return [row for row in rows if not row.passed] + [row for row in rows if row.passed]


def format_number(value: float | None) -> str:
    """Three significant digits; 'nan' and 'inf' spelled out, '-' for a missing metric."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def format_error(value: float | None, limit: float | None) -> str:
    """``format_number``, with as many more digits as it takes for an error that differs
    from its tolerance not to print equal to it (0.00100106 against 0.001 reads
    ``0.001001``, not ``0.001``)."""
    text = format_number(value)
    if value is None or limit is None or value == limit or not math.isfinite(value):
        return text
    digits = 3
    while digits < 9 and f"{value:.{digits}g}" == f"{limit:.{digits}g}":
        digits += 1
    return f"{value:.{digits}g}"


def _truncate(text: str, width: int | None) -> str:
    """Middle ellipsis keeping more of the tail (an output name's last part tells it apart)."""
    if width is None or len(text) <= width:
        return text
    if width <= 3:
        return text[len(text) - width :]
    head = (width - 3) // 3
    return text[:head] + "..." + text[len(text) - (width - 3 - head) :]


def shorten_test_id(nodeid: str, width: int | None) -> str:
    """``nodeid`` within ``width`` characters, keeping what tells tests apart: the file name
    and everything after it (function, parameters) stay whole; leading folders go first,
    replaced by ``.../``. A name that does not fit even so is kept whole (wrapped by the
    terminal) rather than cut: two tests must never print alike."""
    if width is None or len(nodeid) <= width:
        return nodeid
    path, sep, rest = nodeid.partition("::")
    folders, slash, name = path.rpartition("/")
    tail = name + sep + rest
    if not slash:
        return nodeid
    room = width - len(tail) - len(".../")
    if room <= 0:
        return ".../" + tail
    return "..." + folders[len(folders) - room :] + "/" + tail if room < len(folders) else nodeid


# fmt: off
_HEADERS = ("verdict", "output", "backends", "precision",
            "max_absdiff", "atol", "max_reldiff", "rtol", "mismatches")
# fmt: on
_NUMERIC_COLUMNS = range(4, len(_HEADERS))
_OUTPUT_COLUMN = 1
_INDENT = "  "
_GAP = "  "
#: The narrowest the output column gets when the terminal is narrow (then lines wrap).
_MIN_OUTPUT_WIDTH = 12
#: Width when the terminal's is not known.
DEFAULT_WIDTH = 80


def _cells(row: OutputRow) -> list[str]:
    return [
        "ok" if row.passed else "FAIL",
        row.output,
        row.backends,
        row.precision,
        format_error(row.max_absdiff, row.atol),
        format_number(row.atol),
        format_error(row.max_reldiff, row.rtol),
        format_number(row.rtol),
        row.mismatches,
    ]


def group_by_test(rows: Sequence[OutputRow]) -> list[tuple[str, list[OutputRow]]]:
    """Rows grouped by test, failing tests first (each keeping the rows' order), failing
    rows first within a test."""
    groups: dict[str, list[OutputRow]] = {}
    for row in rows:
        groups.setdefault(row.test, []).append(row)
    ordered = [(test, failing_first(group)) for test, group in groups.items()]
    return [g for g in ordered if not all(r.passed for r in g[1])] + [
        g for g in ordered if all(r.passed for r in g[1])
    ]


def format_table(
    rows: Sequence[OutputRow], verbosity: int = 0, width: int | None = DEFAULT_WIDTH
) -> list[tuple[str, bool]]:
    """The accuracy table as (line, is_failing) pairs, grouped by test, failing first.

    Each test's id is a line of its own (``FAIL``/``ok`` and the id, shortened to ``width``
    by ``shorten_test_id``, which keeps the file name and the parameters), followed by one
    indented line per compared output. Output names longer than the room ``width`` leaves
    are shortened in the middle; ``-vv`` (verbosity 2) shortens nothing. Not verbose:
    every row when there are at most SMALL_TABLE_ROWS, else the failing rows (at most
    MAX_FAILING_ROWS) and a line counting what was left out.
    """
    if verbosity >= 2:
        width = None
    failing = [row for row in rows if not row.passed]
    if verbosity >= 1 or len(rows) <= SMALL_TABLE_ROWS:
        shown_rows = list(rows)
    else:
        kept = {id(row) for row in failing[:MAX_FAILING_ROWS]}
        shown_rows = [row for row in rows if id(row) in kept]
    groups = group_by_test(shown_rows)
    shown = [row for _, group in groups for row in group]
    table = [list(_HEADERS), *(_cells(row) for row in shown)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADERS))]
    if width is not None:
        fixed = len(_INDENT) + sum(widths) - widths[_OUTPUT_COLUMN] + len(_GAP) * (len(widths) - 1)
        room = max(width - fixed, _MIN_OUTPUT_WIDTH)
        if widths[_OUTPUT_COLUMN] > room:
            for line in table:
                line[_OUTPUT_COLUMN] = _truncate(line[_OUTPUT_COLUMN], room)
            widths[_OUTPUT_COLUMN] = room

    def join(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(size) if i in _NUMERIC_COLUMNS else cell.ljust(size)
            for i, (cell, size) in enumerate(zip(cells, widths, strict=True))
        ]
        return (_INDENT + _GAP.join(parts)).rstrip()

    lines = [(join(table[0]), False)]
    cells_of = {id(row): cells for row, cells in zip(shown, table[1:], strict=True)}
    for test, group in groups:
        test_failed = any(not row.passed for row in group)
        verdict = "FAIL" if test_failed else "ok"
        room = None if width is None else width - len(verdict) - 1
        lines.append((f"{verdict} {shorten_test_id(test, room)}", test_failed))
        lines += [(join(cells_of[id(row)]), not row.passed) for row in group]
    hidden_failing = len(failing) - sum(1 for row in shown if not row.passed)
    hidden_passing = len(rows) - len(failing) - sum(1 for row in shown if row.passed)
    left_out = []
    if hidden_failing:
        left_out.append(f"{hidden_failing} failing")
    if hidden_passing:
        left_out.append(f"{hidden_passing} passing")
    if left_out:
        lines.append((f"... and {' and '.join(left_out)} outputs not listed (-v lists all)", False))
    return lines


def summary_title(rows: Sequence[OutputRow]) -> str:
    failed = sum(1 for row in rows if not row.passed)
    return f"polygraphy accuracy: {len(rows) - failed} passed, {failed} failed compared outputs"
