"""Accuracy records: terminal table, junitxml properties, and the ``--polygraphy-report`` files.

Every comparison the plugin makes appends ``(COMPARE_PROPERTY, record)`` to the test item's
``user_properties`` (the record is described in ``records.py``; metrics a compare function
does not compute are None, shown as "-"). pytest copies user_properties into each
TestReport and xdist ships those reports to the controller, so ``ReportPlugin`` collects
records in ``pytest_runtest_logreport`` wherever reports end up (the controller, or the
only process without xdist) and nothing else needs to travel. Records are read from the
*teardown* report, the last one of a test, so comparisons made in fixture teardown count too.

Light at import: numpy and matplotlib are imported only when a report file is written.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin.records import (
    COMPARE_PROPERTY,
    DEBUG_CHECK_RUNNING,
    DEBUG_PROPERTY,
    DIVERGENCE_PROPERTY,
    SOURCES_PROPERTY,
)

if TYPE_CHECKING:
    import numpy as np

JUNIT_PREFIX = "polygraphy"
WORKERINPUT_ARTIFACT_DIR = "polygraphy_artifact_dir"

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


def _property_safe(text: str) -> str:
    return re.sub(r"\s+", "_", text)


def junit_properties(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, object]]:
    """Flat junitxml properties for one test's records, worst case over iterations.

    Names: ``polygraphy.<output>.<actual>_vs_<reference>.<metric>``, with ``.<precision>``
    before the metric when the test compared the same pair at several precisions. The
    metric is always the last dot-separated part (output names may contain dots).
    """
    rows = aggregate(records)
    precisions: dict[tuple[str, str, str], set[str]] = {}
    for row in rows:
        precisions.setdefault((row.output, row.actual, row.reference), set()).add(row.precision)
    properties: list[tuple[str, object]] = []
    for row in rows:
        name = f"{JUNIT_PREFIX}.{row.output}.{row.actual}_vs_{row.reference}"
        if len(precisions[(row.output, row.actual, row.reference)]) > 1:
            name += f".{row.precision}"
        name = _property_safe(name)
        metrics: dict[str, object] = {
            "passed": row.passed,
            "precision": row.precision,
            "max_absdiff": row.max_absdiff,
            "max_reldiff": row.max_reldiff,
            "mismatch_count": row.mismatch_count,
            "total": row.total,
            "rtol": row.rtol,
            "atol": row.atol,
            "rule": row.rule,
        }
        properties += [
            (f"{name}.{metric}", value) for metric, value in metrics.items() if value is not None
        ]
    return properties


def _setting(config: pytest.Config, name: str) -> tuple[str | None, str]:
    """An option's value and where it came from ("cli" or "ini"); (None, "") when unset."""
    value = config.getoption(name, default=None)
    if value not in (None, ""):
        return str(value), "cli"
    try:
        value = config.getini(name)
    except ValueError:  # ini not registered
        return None, ""
    return (str(value), "ini") if value not in (None, "", []) else (None, "")


def report_path(config: pytest.Config) -> Path | None:
    """The HTML report's absolute path, or None when no report was asked for.

    A command-line path is relative to the invocation directory, an ini path to the ini
    file's directory. Raises UsageError for a path whose JSON twin would be itself.
    """
    value, source = _setting(config, "polygraphy_report")
    if value is None:
        return None
    base = config.inipath.parent if source == "ini" and config.inipath else None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or config.invocation_params.dir) / path
    if path.suffix.lower() == ".json" or path.name.endswith("."):
        raise pytest.UsageError(
            f"--polygraphy-report got {value!r}: expected the HTML report's path, e.g. "
            "'accuracy.html'; the JSON file is written beside it with the suffix .json"
        )
    return path


def output_path_problems(config: pytest.Config) -> list[str]:
    """What stands in the way of writing the report and its artifacts (``--polygraphy-report``),
    one line each naming the path; empty when all can be written. Checked at start, so a
    long run does not end in a report it cannot write."""
    from pytest_polygraphy.files import folder_write_problem

    path = report_path(config)
    if path is None:
        return []
    problems = []
    if path.is_dir():
        problems.append(f"--polygraphy-report {path}: is a folder; give a file name, e.g. acc.html")
    else:
        problem = folder_write_problem(path.parent)
        if problem is not None:
            problems.append(
                f"--polygraphy-report {path}: cannot write into {path.parent}: {problem}"
            )
    artifacts = path.with_name(f"{path.stem}_artifacts")
    if artifacts.exists() and not artifacts.is_dir():
        problems.append(
            f"--polygraphy-report {path}: its artifact folder {artifacts} is a file; "
            "move it away or pick another report name"
        )
    return problems


def artifact_dir(config: pytest.Config) -> Path | None:
    """Where the plugin saves the arrays of failing outputs for the report's images.

    None when no report was asked for (then nothing should be saved). On an xdist worker the
    controller's answer arrives through workerinput, so every process uses the same folder.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_ARTIFACT_DIR in workerinput:
        value = workerinput[WORKERINPUT_ARTIFACT_DIR]
        return Path(value) if value else None
    path = report_path(config)
    return None if path is None else path.with_name(f"{path.stem}_artifacts")


def save_artifact(
    config: pytest.Config,
    record: Mapping[str, Any],
    actual: np.ndarray,
    expected: np.ndarray,
) -> str | None:
    """Save what the report needs to draw a failing output; returns the path for
    ``record["artifact"]``, or None when no report was asked for.

    The caller passes the two compared arrays (same shape); only a bounded summary is kept
    (see ``html_report.write_artifact``), written atomically, one file per record.
    """
    directory = artifact_dir(config)
    if directory is None or config.stash.get(DEBUG_CHECK_RUNNING, False):
        return None  # a debug session's re-runs are not reported, so nothing to draw
    from pytest_polygraphy.plugin.html_report import write_artifact

    key = "\0".join(
        str(record.get(name, ""))
        for name in ("test", "output", "actual", "reference", "precision", "iteration")
    )
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{record.get('output', '')}")[:40]
    path = directory / f"{slug}-{digest}.npz"
    try:
        return str(write_artifact(path, actual, expected))
    except OSError as err:  # the report loses a picture; the test's verdict stands
        warnings.warn(
            f"pytest-polygraphy: could not save {path} for the report: {err}",
            pytest.PytestWarning,
            stacklevel=2,
        )
        return None


#: How long a test's failure message may be in the report (the rest is cut, saying so).
MAX_MESSAGE_CHARS = 20_000


def test_outcome(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """What pytest's summary counts for ``report``: ``passed``, ``failed``, ``error``,
    ``skipped``, ``xfailed`` or ``xpassed``; None for a report it does not count (a
    passing setup or teardown)."""
    when = getattr(report, "when", "collect")
    xfail = hasattr(report, "wasxfail")
    if when == "collect":
        return "error" if report.failed else None
    if when == "call":
        if xfail:
            return "xfailed" if report.skipped else "xpassed"
        return str(report.outcome)
    if report.failed:
        return "error"
    if report.skipped and when == "setup":
        return "xfailed" if xfail else "skipped"
    return None


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The report's message as pytest prints it (a skip's reason), cut to MAX_MESSAGE_CHARS."""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2])
    else:
        text = report.longreprtext
    if len(text) > MAX_MESSAGE_CHARS:
        cut = len(text) - MAX_MESSAGE_CHARS
        text = text[:MAX_MESSAGE_CHARS] + f"\n... ({cut} more characters in the terminal output)"
    return text


class ReportPlugin:
    """Collects records and prints/writes them; registered by the plugin in pytest_configure."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[dict[str, Any]] = []
        self.debug_sessions: list[dict[str, Any]] = []
        #: First divergences with their tables (``--polygraphy-mark-all``).
        self.divergences: list[dict[str, Any]] = []
        self.is_worker = hasattr(config, "workerinput")
        self.report_path = None if self.is_worker else report_path(config)
        self.written: tuple[Path, Path] | None = None
        #: Why the report could not be written at the end (shown in the summary).
        self.write_error: str | None = None
        #: Every test of the run, in the order reports came: what pytest counts for it.
        self.tests: dict[str, dict[str, Any]] = {}
        self.test_order: dict[str, int] = {}
        #: test id -> {setting: source}, for the ``-v`` list of where settings came from.
        self.sources: dict[str, dict[str, str]] = {}

    def _remember_order(self, nodeids: Iterable[str]) -> None:
        for nodeid in nodeids:
            self.test_order.setdefault(nodeid, len(self.test_order))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._remember_order(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """xdist controller: the tests as the workers collected them (all alike)."""
        self._remember_order(ids)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        """Collect a test's records; show junitxml flat properties instead of the raw dict.

        junitxml writes ``str(value)`` of every user property at teardown; for the duration
        of this hook call the report carries the flattened properties instead (a new list:
        the item's own user_properties stay as they are).
        """
        original = None
        if not self.is_worker:
            self._remember_outcome(report)
        if report.when == "call" and not self.is_worker:
            self.debug_sessions.extend(
                {"test": report.nodeid, **value}
                for name, value in report.user_properties
                if name == DEBUG_PROPERTY and isinstance(value, Mapping)
            )
        if report.when == "teardown" and not self.is_worker:
            records = records_of(report.user_properties)
            self.records.extend(records)
            for name, value in report.user_properties:
                if name == SOURCES_PROPERTY and isinstance(value, Mapping):
                    self.sources[report.nodeid] = dict(value)
                if name == DIVERGENCE_PROPERTY and isinstance(value, Mapping):
                    self.divergences.append(dict(value))
            ours = (COMPARE_PROPERTY, SOURCES_PROPERTY, DIVERGENCE_PROPERTY)
            has_ours = any(item[0] in ours for item in report.user_properties)
            if has_ours and getattr(self.config.option, "xmlpath", None):
                original = report.user_properties
                report.user_properties = [
                    item for item in original if item[0] not in ours
                ] + junit_properties(records)
        try:
            return (yield)
        finally:
            if original is not None:
                report.user_properties = original

    def _remember_outcome(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        """Keep what pytest counts for this report (``test_outcome``), with its message."""
        outcome = test_outcome(report)
        if outcome is None:
            return
        entry = self.tests.setdefault(
            report.nodeid, {"test": report.nodeid, "outcomes": [], "messages": []}
        )
        entry["outcomes"].append(outcome)
        if outcome not in ("passed",):
            message = _message(report)
            if message:
                entry["messages"].append({"when": report.when, "text": message})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A file that could not be collected is a test of the run too (pytest counts it
        as an error)."""
        if not self.is_worker and report.failed:
            self._remember_outcome(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: tell each worker where to save arrays for the report."""
        directory = artifact_dir(self.config)
        node.workerinput[WORKERINPUT_ARTIFACT_DIR] = "" if directory is None else str(directory)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.report_path is None or self.config.option.collectonly:
            return
        from pytest_polygraphy.plugin.html_report import write_report

        try:
            self.written = write_report(
                self.report_path,
                self.records,
                self.test_order,
                self.debug_sessions,
                list(self.tests.values()),
                self.divergences,
            )
        except Exception as err:  # never lose the run's summary over its report file
            self.write_error = f"{type(err).__name__}: {err}"

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> Generator[None, None, None]:
        """Print the table after pytest's own summary (short test summary included)."""
        try:
            return (yield)
        finally:
            self._write_summary(terminalreporter)

    def _write_summary(self, terminal: pytest.TerminalReporter) -> None:
        if self.is_worker:
            return
        if self.sources and self.config.get_verbosity() >= 1:
            self._write_sources(terminal)
        if self.records:
            rows = aggregate(self.records, self.test_order)
            failed = any(not row.passed for row in rows)
            terminal.write_sep("=", summary_title(rows), red=failed, green=not failed)
            width = getattr(getattr(terminal, "_tw", None), "fullwidth", DEFAULT_WIDTH)
            for line, is_failing in format_table(rows, self.config.get_verbosity(), width):
                terminal.write_line(line, red=is_failing)
        if self.written is not None:
            html_path, json_path = self.written
            terminal.write_line(f"polygraphy report: {html_path} (data: {json_path.name})")
        if self.write_error is not None:
            terminal.write_line(
                f"polygraphy report: could not write {self.report_path}: {self.write_error}",
                red=True,
            )

    def _write_sources(self, terminal: pytest.TerminalReporter) -> None:
        """Under ``-v``: for each test, where each of its settings came from."""
        from pytest_polygraphy.plugin.settings import describe_sources

        terminal.write_sep("=", "polygraphy settings: where each came from")
        order = self.test_order
        for nodeid in sorted(self.sources, key=lambda n: (order.get(n, len(order)), n)):
            terminal.write_line(nodeid)
            for line in describe_sources(self.sources[nodeid]):
                terminal.write_line(f"    {line}")
