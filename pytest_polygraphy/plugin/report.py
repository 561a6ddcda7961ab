"""Accuracy records: the terminal table (built by ``table``), junitxml properties, and the
``--polygraphy-report`` files (written by ``html_report``).

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
import re
import warnings
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin.records import (
    COMPARE_PROPERTY,
    DEBUG_CHECK_RUNNING,
    DEBUG_PROPERTY,
    DIVERGENCE_PROPERTY,
    SOURCES_PROPERTY,
    TRT_PRECISIONS_PROPERTY,
)
from pytest_polygraphy.plugin.table import (
    DEFAULT_WIDTH,
    aggregate,
    format_table,
    records_of,
    summary_title,
)

if TYPE_CHECKING:
    import numpy as np

JUNIT_PREFIX = "polygraphy"
WORKERINPUT_ARTIFACT_DIR = "polygraphy_artifact_dir"


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
            ours = (
                COMPARE_PROPERTY,
                SOURCES_PROPERTY,
                DIVERGENCE_PROPERTY,
                TRT_PRECISIONS_PROPERTY,
            )
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
