"""The ``--polygraphy-report`` files: a self-contained HTML page and its JSON twin.

The HTML lists every compared output (failing first) with its metrics and, for each failing
output whose arrays were saved (``write_artifact``, through ``report.save_artifact``), an
error histogram and an error heatmap drawn with matplotlib when it is installed; without it
the page says so. Images are embedded as base64 PNG, so the file can be mailed or archived.

Artifact files (``.npz``) hold a bounded summary of one failing comparison, whatever the
output's size: ``absdiff_sample`` and ``reldiff_sample`` (evenly spaced elements, at most
SAMPLE_LIMIT), ``absdiff_map`` (the absolute error as a 2-D grid, block-max-pooled to at most
MAP_LIMIT x MAP_LIMIT, NaN errors stored as +inf, padding as NaN), ``map_block`` (pooling
block rows, cols) and ``shape`` (the output's shape).
"""

from __future__ import annotations

import base64
import datetime
import html
import importlib.util
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pytest_polygraphy.files import write_bytes_atomically
from pytest_polygraphy.plugin.table import (
    OutputRow,
    aggregate,
    failing_first,
    format_error,
    format_number,
)

SAMPLE_LIMIT = 100_000
MAP_LIMIT = 256
MAX_IMAGED_OUTPUTS = 50
REPORT_FORMAT = "pytest-polygraphy-report"
REPORT_VERSION = 1
NO_MATPLOTLIB = (
    "matplotlib is not installed: no error histograms or heatmaps "
    "(pip install matplotlib, or pytest-polygraphy[report])."
)


def _pooled_map(absdiff: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The error as a 2-D grid (leading dims collapsed; 1-D wrapped into a near square),
    reduced by block maxima to at most MAP_LIMIT per side so the worst errors stay visible."""
    errors = np.where(np.isnan(absdiff), np.inf, absdiff)
    if errors.ndim == 0:
        grid = errors.reshape(1, 1)
    elif errors.ndim == 1:
        width = max(1, math.ceil(math.sqrt(errors.size)))
        height = max(1, math.ceil(errors.size / width))
        grid = np.full(height * width, np.nan, dtype=errors.dtype)
        grid[: errors.size] = errors
        grid = grid.reshape(height, width)
    else:
        grid = errors.reshape(-1, errors.shape[-1])
    rows, cols = grid.shape
    if rows == 0 or cols == 0:
        return np.zeros((0, 0), dtype=np.float32), (1, 1)
    block = (math.ceil(rows / MAP_LIMIT), math.ceil(cols / MAP_LIMIT))
    padded = np.full(
        (math.ceil(rows / block[0]) * block[0], math.ceil(cols / block[1]) * block[1]),
        np.nan,
        dtype=grid.dtype,
    )
    padded[:rows, :cols] = grid
    blocks = padded.reshape(padded.shape[0] // block[0], block[0], padded.shape[1] // block[1], -1)
    return np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1), block


def write_artifact(path: Path, actual: np.ndarray, expected: np.ndarray) -> Path:
    """Save the bounded summary of one failing comparison (see the module docstring)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise ValueError(
            f"cannot save {path.name}: actual shape {actual.shape} != expected {expected.shape}"
        )
    single = all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in (actual, expected))
    work = np.float32 if single else np.float64
    absdiff = np.abs(np.subtract(actual, expected, dtype=work))
    flat = absdiff.reshape(-1)
    if flat.size > SAMPLE_LIMIT:
        picked: Any = np.linspace(0, flat.size - 1, SAMPLE_LIMIT).round().astype(np.int64)
    else:
        picked = slice(None)
    abs_sample = flat[picked]
    magnitude = np.abs(expected.reshape(-1)[picked].astype(work))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_sample = np.where(abs_sample == 0, 0, abs_sample / magnitude)
    absdiff_map, block = _pooled_map(absdiff)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        absdiff_sample=abs_sample,
        reldiff_sample=rel_sample.astype(work),
        absdiff_map=absdiff_map.astype(np.float32),
        map_block=np.array(block, dtype=np.int64),
        shape=np.array(actual.shape, dtype=np.int64),
    )
    write_bytes_atomically(path, buffer.getvalue())
    return path


def load_artifact(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def matplotlib_installed() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # present in sys.modules without a spec: treat as absent
        return False


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _histogram(
    axes: Any, sample: np.ndarray, tolerance: float | None, label: str, tol_name: str
) -> None:
    from matplotlib.ticker import MaxNLocator

    finite = sample[np.isfinite(sample)].astype(np.float64)
    positive = finite[finite > 0]
    notes = [f"{sample.size} elements"]
    if finite.size < sample.size:
        notes.append(f"{sample.size - finite.size} non-finite not shown")
    counts = np.zeros(0)
    logscale = positive.size > 0 and positive.max() > 1e3 * positive.min()
    if logscale:
        if positive.size < finite.size:
            notes.append(f"{finite.size - positive.size} exact zeros not shown")
        bins = np.geomspace(positive.min(), positive.max(), 50)
        counts, _, _ = axes.hist(positive, bins=bins, color="#4c72b0")
        axes.set_xscale("log")
    elif finite.size:
        low, high = float(finite.min()), float(finite.max())
        if high - low <= 1e-9 * abs(high):  # (nearly) constant error: give it a visible bar
            pad = max(abs(high) * 0.05, 1e-12)
            low, high = low - pad, high + pad
        counts, _, _ = axes.hist(finite, bins=np.linspace(low, high, 51), color="#4c72b0")
    if tolerance is not None and math.isfinite(tolerance) and tolerance > 0:
        axes.axvline(tolerance, color="#c44e52", linestyle="--", label=f"{tol_name}={tolerance:g}")
        axes.legend(loc="upper right", fontsize="small")
    if counts.size and counts.max() > 20 * max(counts[counts > 0].min(), 1):  # long tails
        axes.set_yscale("log")
        axes.set_ylim(bottom=0.5)
    if not logscale:  # few ticks in scientific notation: labels of tiny errors never overlap
        axes.xaxis.set_major_locator(MaxNLocator(nbins=5))
        axes.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    if axes.get_yscale() == "linear":
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # element counts
    axes.set_xlabel(label)
    axes.set_ylabel("elements")
    axes.set_title("; ".join(notes), fontsize="small")


def render_images(artifact: Mapping[str, np.ndarray], row: OutputRow) -> list[tuple[str, bytes]]:
    """(caption, PNG) pairs: the error histograms, then the error heatmap."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    images = []
    figure = Figure(figsize=(9, 3.2), dpi=90, layout="constrained")
    abs_axes, rel_axes = figure.subplots(1, 2)
    _histogram(abs_axes, artifact["absdiff_sample"], row.atol, "absolute error", "atol")
    _histogram(rel_axes, artifact["reldiff_sample"], row.rtol, "relative error", "rtol")
    images.append(("Error histograms (dashed: tolerance)", _png(figure)))

    grid = artifact["absdiff_map"]
    if grid.size:
        finite = grid[np.isfinite(grid)]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        colormap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd", over="#ff00ff")
        figure = Figure(figsize=(6.5, 4.5), dpi=90, layout="constrained")
        axes = figure.subplots()
        # Inf must be finite to get the "over" colour; NaN (padding) is masked to "bad".
        shown = np.where(np.isposinf(grid), 2 * vmax + 1, grid)
        image = axes.imshow(
            np.ma.masked_where(np.isnan(shown), shown),
            cmap=colormap,
            vmin=0.0,
            vmax=vmax,
            aspect="auto",
            interpolation="nearest",
        )
        figure.colorbar(image, ax=axes, extend="max" if np.isposinf(grid).any() else "neither")
        shape = "x".join(str(int(dim)) for dim in artifact["shape"]) or "scalar"
        block_rows, block_cols = (int(value) for value in artifact["map_block"])
        pooled = (
            f", max over {block_rows}x{block_cols} blocks" if block_rows * block_cols > 1 else ""
        )
        for axis in (axes.xaxis, axes.yaxis):  # cells are whole indices: no 0.5 ticks
            axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set_title(f"|actual - expected|, shape {shape}{pooled}", fontsize="small")
        axes.set_xlabel("last axis" if artifact["shape"].size > 1 else "flat index (wrapped)")
        axes.set_ylabel("leading axes, flattened" if artifact["shape"].size > 1 else "")
        images.append(("Error heatmap (magenta: NaN or Inf; grey: padding)", _png(figure)))
    return images


def _json_safe(value: Any) -> Any:
    """JSON without NaN/Infinity literals, which strict parsers reject: they become strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return format_number(value)
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


#: The outcomes pytest's summary counts, in its order.
OUTCOMES = ("failed", "passed", "skipped", "xfailed", "xpassed", "error")


def report_data(
    records: Sequence[Mapping[str, Any]],
    rows: Sequence[OutputRow],
    debug_sessions: Sequence[Mapping[str, Any]] = (),
    tests: Sequence[Mapping[str, Any]] = (),
    divergences: Sequence[Mapping[str, Any]] = (),
) -> dict:
    """The JSON report: ``tests`` (every test of the run with what pytest counted for it
    and its messages), ``outputs`` (one row per compared output), the raw ``records`` and
    the ``debug_sessions``."""
    failed = sum(1 for row in rows if not row.passed)
    counts = {
        outcome: sum(test["outcomes"].count(outcome) for test in tests) for outcome in OUTCOMES
    }
    return _json_safe(
        {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "matplotlib": matplotlib_installed(),
            "summary": {
                "tests": len(tests) or len({row.test for row in rows}),
                "outcomes": {k: v for k, v in counts.items() if v},
                "compared_outputs": len(rows),
                "passed": len(rows) - failed,
                "failed": failed,
                "records": len(records),
            },
            "tests": list(tests),
            "outputs": [asdict(row) for row in rows],
            "records": list(records),
            "debug_sessions": list(debug_sessions),
            "divergences": list(divergences),
        }
    )


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.fail td{background:#fde8e8}td.verdict{font-weight:bold;white-space:nowrap}
tr.fail td.verdict{color:#b00}tr.pass td.verdict{color:#070}tr.skip td.verdict{color:#777}
.note{background:#fff6d6;border:1px solid #e6c200;padding:.5em}
section{border-top:2px solid #ddd;margin-top:1.5em}figure{display:inline-block;margin:.5em}
figcaption{font-size:.85em;color:#555}code{overflow-wrap:normal;word-break:normal}
pre{white-space:pre;overflow-x:auto;background:#f7f7f7;border:1px solid #e0e0e0;
padding:.5em;font-size:.85em;margin:.25em 0}details summary{cursor:pointer}
table.tests{table-layout:fixed;width:100%}table.tests col.outcome{width:8em}
"""

#: Where a long test id or tensor name may wrap: after these, never inside a number.
_BREAK_AFTER = ("/", "::", "[", "-", "_", ".")


def _breakable(text: str) -> str:
    """``text`` escaped for HTML with a line-break opportunity (``<wbr>``) after path and
    parameter separators, so a long id wraps between its parts, never in a number."""
    escaped = html.escape(text)
    for mark in _BREAK_AFTER:
        escaped = escaped.replace(mark, mark + "<wbr>")
    return escaped.replace("<wbr>:<wbr>", ":")


def _cells(row: OutputRow, anchor: str | None) -> str:
    verdict = "ok" if row.passed else "FAIL"
    if anchor is not None:
        verdict = f'<a href="#{anchor}">{verdict}</a>'
    text = [row.test, row.output, row.backends, row.precision]
    numbers = [
        format_error(row.max_absdiff, row.atol),
        format_number(row.atol),
        format_error(row.max_reldiff, row.rtol),
        format_number(row.rtol),
        row.mismatches,
        str(row.iterations),
    ]
    return (
        f'<td class="verdict">{verdict}</td>'
        + "".join(f"<td><code>{_breakable(cell)}</code></td>" for cell in text)
        + "".join(f'<td class="num">{html.escape(cell)}</td>' for cell in numbers)
        + f"<td>{html.escape(row.rule)}</td>"
    )


def _failure_section(row: OutputRow, anchor: str, body: str) -> str:
    title = f"{row.test} :: {row.output} ({row.backends}, {row.precision})"
    detail = f"<pre>{html.escape(row.detail)}</pre>" if row.detail else ""
    return (
        f'<section id="{anchor}"><h3><code>{_breakable(title)}</code></h3>{detail}{body}</section>'
    )


def _tests_table(tests: Sequence[Mapping[str, Any]]) -> str:
    """Every test of the run, failing first, with its messages (failures open)."""
    if not tests:
        return ""

    def rank(test: Mapping[str, Any]) -> int:
        outcomes = test.get("outcomes", [])
        return (
            0 if "error" in outcomes or "failed" in outcomes else 1 if outcomes != ["passed"] else 2
        )

    rows = []
    for test in sorted(tests, key=rank):
        outcomes = list(test.get("outcomes", []))
        bad = "error" in outcomes or "failed" in outcomes
        css = "fail" if bad else "pass" if outcomes == ["passed"] else "skip"
        messages = "".join(
            f"<details{' open' if bad else ''}><summary>{html.escape(str(m.get('when')))}: "
            f"{html.escape(_first_line(str(m.get('text', ''))))}</summary>"
            f"<pre>{html.escape(str(m.get('text', '')))}</pre></details>"
            for m in test.get("messages", [])
        )
        rows.append(
            f'<tr class="{css}"><td class="verdict">{html.escape(", ".join(outcomes))}</td>'
            f"<td><code>{_breakable(str(test.get('test')))}</code>{messages}</td></tr>"
        )
    return (
        '<h2>Tests</h2><table class="tests"><colgroup><col class="outcome"><col></colgroup>'
        "<thead><tr><th>outcome</th><th>test</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def growth_chart(path: Sequence[Mapping[str, Any]], atol: float | None) -> bytes | None:
    """A small PNG of the max absolute error along the path (log scale), or None without
    matplotlib or without errors to draw."""
    points = [
        (i, float(row["max_absdiff"]))
        for i, row in enumerate(path)
        if isinstance(row.get("max_absdiff"), int | float) and math.isfinite(row["max_absdiff"])
    ]
    if not matplotlib_installed() or len(points) < 2:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6.5, 2.6), dpi=90, layout="constrained")
    axes = figure.subplots()
    xs, ys = zip(*points, strict=True)
    floor = min((y for y in ys if y > 0), default=1e-12) / 10
    axes.plot(xs, [max(y, floor) for y in ys], marker="o", markersize=3, color="#4c72b0")
    if atol is not None and math.isfinite(atol) and atol > 0:
        axes.axhline(atol, color="#c44e52", linestyle="--", label=f"atol={atol:g}")
        axes.legend(loc="upper left", fontsize="small")
    axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("step along the path (first divergence = 0)")
    axes.set_ylabel("max |actual - expected|")
    return _png(figure)


def _divergence_sections(divergences: Sequence[Mapping[str, Any]], draw: bool) -> str:
    """First divergence per test and backend: the summary, the growth chart along the
    path to the failing output, and (folded) the table of every compared tensor."""
    if not divergences:
        return ""
    parts = ["<h2>First divergence (--polygraphy-mark-all)</h2>"]
    for found in divergences:
        title = f"{found.get('test')}: {found.get('actual')} vs {found.get('reference')}"
        chart = ""
        atol = found.get("atol")
        png = growth_chart(found.get("path") or [], atol if isinstance(atol, float) else None)
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            chart = (
                f'<figure><img alt="error growth" src="data:image/png;base64,{data}">'
                "<figcaption>Error growth from the first divergence to the failing output"
                "</figcaption></figure>"
            )
        elif found.get("path") and not draw:
            chart = "<p>No chart: see the note at the top.</p>"
        rows = "".join(
            f'<tr class="{"pass" if t.get("passed") else "fail"}">'
            f'<td class="num">{int(t["position"]) + 1}</td>'
            f"<td><code>{_breakable(str(t['tensor']))}</code></td>"
            f"<td><code>{_breakable(str(t['node']))}</code></td><td>{html.escape(str(t['op']))}</td>"
            f'<td class="num">{html.escape(format_number(_number(t.get("max_absdiff"))))}</td>'
            f'<td class="num">{html.escape(format_number(_number(t.get("max_reldiff"))))}</td>'
            f'<td class="num">{t.get("mismatch_count", "-")}/{t.get("total", "-")}</td>'
            f'<td class="verdict">{"ok" if t.get("passed") else "FAIL"}</td>'
            f"<td>{html.escape(str(t.get('note', '')))}</td></tr>"
            for t in found.get("tensors") or []
        )
        table = (
            f"<details><summary>every compared tensor ({len(found.get('tensors') or [])}), "
            "in topological order</summary><table><thead><tr><th>#</th><th>tensor</th>"
            "<th>node</th><th>op</th><th>max_absdiff</th><th>max_reldiff</th>"
            f"<th>mismatches</th><th>verdict</th><th>note</th></tr></thead><tbody>{rows}"
            "</tbody></table></details>"
        )
        parts.append(
            f"<section><h3><code>{_breakable(title)}</code></h3>"
            f"<pre>{html.escape(str(found.get('summary', '')))}</pre>{chart}{table}</section>"
        )
    return "".join(parts)


def _number(value: Any) -> float | None:
    """A metric from the JSON-safe data (NaN arrives as the string "nan")."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _failure_body(row: OutputRow, draw: bool, imaged: int) -> str:
    if not row.artifacts:
        return "<p>No arrays were saved for this output, so there are no images.</p>"
    if not draw:
        return "<p>Images: see the note at the top.</p>"
    if imaged >= MAX_IMAGED_OUTPUTS:
        return f"<p>Images are drawn for the first {MAX_IMAGED_OUTPUTS} failing outputs only.</p>"
    parts = []
    try:
        # The first iteration that failed stands for the row.
        for caption, png in render_images(load_artifact(row.artifacts[0]), row):
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    except Exception as error:  # a broken artifact must not cost the whole report
        return f"<p>Could not draw {html.escape(row.artifacts[0])}: {html.escape(repr(error))}</p>"
    return "".join(parts)


def render_html(rows: Sequence[OutputRow], data: Mapping[str, Any]) -> str:
    ordered = failing_first(rows)
    summary = data["summary"]
    draw = bool(data["matplotlib"])
    anchors = {id(row): f"fail-{index}" for index, row in enumerate(ordered) if not row.passed}
    head = (
        "<th>verdict</th><th>test</th><th>output</th><th>backends</th><th>precision</th>"
        "<th>max_absdiff</th><th>atol</th><th>max_reldiff</th><th>rtol</th>"
        "<th>mismatches</th><th>iterations</th><th>rule</th>"
    )
    body_rows = "".join(
        f'<tr class="{"pass" if row.passed else "fail"}">{_cells(row, anchors.get(id(row)))}</tr>'
        for row in ordered
    )
    sections = []
    imaged = 0
    for row in ordered:
        if not row.passed:
            body = _failure_body(row, draw, imaged)
            imaged += "<img" in body
            sections.append(_failure_section(row, anchors[id(row)], body))
    note = "" if draw else f'<p class="note">{html.escape(NO_MATPLOTLIB)}</p>'
    table = "<h2>Compared outputs</h2>" + (
        f"<table><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table>"
        if rows
        else "<p>No outputs were compared in this run.</p>"
    )
    tests = data.get("tests") or []
    outcomes = summary.get("outcomes") or {}
    counted = ", ".join(
        f"{count} {'errors' if outcome == 'error' and count > 1 else outcome}"
        for outcome, count in outcomes.items()
    )
    tests_line = f"<p>{summary['tests']} tests: <b>{html.escape(counted)}</b>.</p>" if tests else ""
    failing = "<h2>Failing outputs</h2>" + "".join(sections) if sections else ""
    failing += _divergence_sections(data.get("divergences") or [], draw)
    sessions = data.get("debug_sessions") or []
    if sessions:
        failing += "<h2>Debug sessions</h2>" + "".join(
            f"<section><h3><code>{html.escape(str(s['test']))}</code>: "
            f"{html.escape(str(s.get('status')))}</h3>"
            f"<pre>{html.escape(str(s.get('summary', '')))}</pre></section>"
            for s in sessions
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>pytest-polygraphy accuracy report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>pytest-polygraphy accuracy report</h1>"
        f"{tests_line}"
        f"<p>{summary['compared_outputs']} compared outputs: "
        f"<b>{summary['failed']} failed</b>, {summary['passed']} passed "
        f"({summary['records']} comparisons). Created {html.escape(data['created'])}.</p>"
        f"{note}{_tests_table(tests)}{table}{failing}</body></html>\n"
    )


def write_report(
    html_path: Path,
    records: Sequence[Mapping[str, Any]],
    test_order: Mapping[str, int] | None = None,
    debug_sessions: Sequence[Mapping[str, Any]] = (),
    tests: Sequence[Mapping[str, Any]] = (),
    divergences: Sequence[Mapping[str, Any]] = (),
) -> tuple[Path, Path]:
    """Write the HTML report and, beside it, the JSON (same name, suffix .json).

    ``test_order`` (test id -> collection index) orders the rows and tests; see
    ``table.aggregate``. ``debug_sessions`` are the debug sessions' results, each with
    its ``test``; ``tests`` every test of the run (``ReportPlugin.tests``).
    """
    rows = aggregate(records, test_order)
    if test_order:
        tests = sorted(tests, key=lambda t: test_order.get(str(t.get("test")), len(test_order)))
    data = report_data(records, rows, debug_sessions, tests, divergences)
    json_path = html_path.with_suffix(".json")
    write_bytes_atomically(json_path, json.dumps(data, indent=1, allow_nan=False).encode("utf-8"))
    write_bytes_atomically(html_path, render_html(rows, data).encode("utf-8"))
    return html_path, json_path
