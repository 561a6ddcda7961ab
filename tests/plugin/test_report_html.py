"""``--polygraphy-report``: artifacts, the HTML page and its JSON twin."""

from __future__ import annotations

import base64
import json
import math
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_polygraphy.plugin import html_report
from pytest_polygraphy.plugin.html_report import load_artifact, write_artifact, write_report
from pytest_polygraphy.plugin.table import aggregate
from tests.plugin.test_report import MODES, PYTESTER_CONFTEST, make_record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Tags, image sources and text of a page, to check it without string matching."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _png_images(page: _Page) -> list[bytes]:
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in page.images)
    images = [base64.b64decode(src[len(prefix) :]) for src in page.images]
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    return images


def _strict_json(path: Path) -> Any:
    def reject(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


# ----------------------------------------------------------------------------- artifacts


def test_artifact_keeps_errors_of_small_outputs_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(2, 3, 5)).astype(np.float32)
    actual = expected + rng.normal(scale=1e-2, size=expected.shape).astype(np.float32)
    expected[0, 0, 0] = 0.0
    actual[0, 0, 0] = 0.5  # x / 0: infinite relative error
    actual[1, 2, 4] = np.nan

    artifact = load_artifact(write_artifact(tmp_path / "a.npz", actual, expected))

    absdiff = np.abs(actual.astype(np.float64) - expected)
    np.testing.assert_allclose(artifact["absdiff_sample"], absdiff.ravel(), rtol=1e-6)
    reldiff = artifact["reldiff_sample"]
    assert np.isinf(reldiff[0])
    with np.errstate(divide="ignore"):
        expected_reldiff = (absdiff / np.abs(expected)).ravel()
    np.testing.assert_allclose(reldiff[1:-1], expected_reldiff[1:-1], rtol=1e-5)
    grid = artifact["absdiff_map"]
    assert grid.shape == (6, 5)
    assert np.isposinf(grid[5, 4])  # the NaN error, kept visible
    np.testing.assert_allclose(grid.ravel()[:-1], absdiff.reshape(6, 5).ravel()[:-1], rtol=1e-6)
    assert artifact["shape"].tolist() == [2, 3, 5]
    assert artifact["map_block"].tolist() == [1, 1]


def test_artifact_of_a_big_output_is_bounded_and_keeps_the_worst_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html_report, "SAMPLE_LIMIT", 1000)
    monkeypatch.setattr(html_report, "MAP_LIMIT", 16)
    rng = np.random.default_rng(1)
    expected = rng.normal(size=(1, 2, 40, 37))
    actual = expected + rng.normal(scale=1e-3, size=expected.shape)
    actual[0, 1, 21, 30] += 7.0

    artifact = load_artifact(write_artifact(tmp_path / "big.npz", actual, expected))

    absdiff = np.abs(actual - expected).reshape(80, 37)
    assert artifact["absdiff_sample"].shape == (1000,)
    assert artifact["absdiff_sample"][0] == absdiff.ravel()[0]
    assert artifact["absdiff_sample"][-1] == absdiff.ravel()[-1]
    block_rows, block_cols = artifact["map_block"].tolist()
    assert (block_rows, block_cols) == (5, 3)
    grid = artifact["absdiff_map"]
    assert grid.shape == (16, 13)
    for i in range(16):
        for j in range(13):
            cell = absdiff[i * 5 : (i + 1) * 5, j * 3 : (j + 1) * 3]
            assert grid[i, j] == np.float32(cell.max())
    assert np.unravel_index(np.argmax(grid), grid.shape) == ((40 + 21) // 5, 30 // 3)


def test_one_dimensional_outputs_wrap_into_a_square(tmp_path: Path) -> None:
    expected = np.zeros(10, dtype=np.float32)
    actual = np.arange(10, dtype=np.float32)
    grid = load_artifact(write_artifact(tmp_path / "v.npz", actual, expected))["absdiff_map"]
    assert grid.shape == (3, 4)
    np.testing.assert_array_equal(grid.ravel()[:10], actual)
    assert np.isnan(grid.ravel()[10:]).all()  # padding


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        pytest.param(np.full((3, 4), 1.1), np.ones((3, 4)), id="constant-error"),
        pytest.param(np.float32(2.0), np.float32(1.0), id="scalar"),
        pytest.param(np.full(5, np.nan), np.zeros(5), id="all-nan"),
        pytest.param(np.array([0.0, 1e-9, 1.0]), np.zeros(3), id="wide-range"),
    ],
)
def test_images_of_unusual_errors(tmp_path: Path, actual: np.ndarray, expected: np.ndarray) -> None:
    pytest.importorskip("matplotlib", reason="drawing needs matplotlib")
    artifact = load_artifact(write_artifact(tmp_path / "e.npz", actual, expected))
    row = aggregate([make_record(passed=False)])[0]
    images = html_report.render_images(artifact, row)
    assert [caption.split()[1] for caption, _ in images] == ["histograms", "heatmap"]
    assert all(png.startswith(PNG_SIGNATURE) for _, png in images)


def test_artifact_needs_equal_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"actual shape \(2,\) != expected \(3,\)"):
        write_artifact(tmp_path / "x.npz", np.zeros(2), np.zeros(3))


# ----------------------------------------------------------------------------- the files


def _failing_record(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    expected = rng.normal(size=(4, 8, 8)).astype(np.float32)
    actual = expected + rng.normal(scale=0.1, size=expected.shape).astype(np.float32)
    path = write_artifact(tmp_path / f"{len(list(tmp_path.iterdir()))}.npz", actual, expected)
    return make_record(passed=False, max_absdiff=0.3, artifact=str(path), **overrides)


def test_report_escapes_names_and_embeds_images(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="images need matplotlib")
    hostile = "t.py::test[<script>alert(1)</script>&\"']"
    records = [
        make_record(test=hostile, output="<b>y</b>", max_absdiff=float("nan")),
        _failing_record(tmp_path, test="t.py::test_bad", output="logits"),
    ]
    html_path, json_path = write_report(tmp_path / "out" / "report.html", records)

    assert json_path == tmp_path / "out" / "report.json"
    page = _Page(html_path.read_text(encoding="utf-8"))
    assert "script" not in page.tags and "b" in page.tags  # only the page's own <b>
    assert hostile in "".join(page.text)
    assert "<b>y</b>" in "".join(page.text)
    assert len(_png_images(page)) == 2  # histograms + heatmap of the one failing output

    data = _strict_json(json_path)
    assert data["summary"] == {
        "tests": 2,
        "outcomes": {},
        "compared_outputs": 2,
        "passed": 1,
        "failed": 1,
        "records": 2,
    }
    assert data["matplotlib"] is True
    assert data["records"][0]["test"] == hostile
    assert data["records"][0]["max_absdiff"] == "nan"
    assert data["outputs"][1]["artifacts"] == [records[1]["artifact"]]


def test_report_without_matplotlib_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    html_path, json_path = write_report(tmp_path / "r.html", [_failing_record(tmp_path)])
    page = _Page(html_path.read_text(encoding="utf-8"))
    assert page.images == []
    assert html_report.NO_MATPLOTLIB in "".join(page.text)
    assert _strict_json(json_path)["matplotlib"] is False


def test_broken_or_missing_artifacts_do_not_cost_the_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="drawing needs matplotlib")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz")
    records = [
        make_record(test="t.py::a", passed=False, artifact=str(broken)),
        make_record(test="t.py::b", passed=False),
    ]
    page = _Page(write_report(tmp_path / "r.html", records)[0].read_text(encoding="utf-8"))
    text = "".join(page.text)
    assert f"Could not draw {broken}" in text
    assert "No arrays were saved for this output" in text


def test_images_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib", reason="drawing needs matplotlib")
    monkeypatch.setattr(html_report, "MAX_IMAGED_OUTPUTS", 1)
    records = [_failing_record(tmp_path, test=f"t.py::test_{i}") for i in range(2)]
    page = _Page(write_report(tmp_path / "r.html", records)[0].read_text(encoding="utf-8"))
    assert len(page.images) == 2
    assert "Images are drawn for the first 1 failing outputs only." in "".join(page.text)


def test_empty_run_still_writes_a_report(tmp_path: Path) -> None:
    html_path, json_path = write_report(tmp_path / "r.html", [])
    assert "No outputs were compared in this run." in html_path.read_text(encoding="utf-8")
    assert _strict_json(json_path)["summary"]["compared_outputs"] == 0


# ----------------------------------------------------------------------------- pytester runs

SAVING_TESTS = """
import numpy as np
import pytest
from pytest_polygraphy.plugin.report import save_artifact


@pytest.mark.parametrize("case", range(3))
def test_output(case, request, record_property):
    expected = np.linspace(-1, 1, 60, dtype=np.float32).reshape(3, 20)
    actual = expected + np.float32(0.1 * case)
    absdiff = float(np.abs(actual - expected).max())
    record = {"test": request.node.nodeid, "output": "y", "actual": "onnxrt",
              "reference": "onnxref", "iteration": 0, "precision": "fp32",
              "max_absdiff": absdiff, "max_reldiff": None, "mismatch_count": None,
              "total": 60, "rtol": 1e-5, "atol": 0.05, "rule": "polygraphy",
              "passed": absdiff <= 0.05}
    if not record["passed"]:
        record["artifact"] = save_artifact(request.config, record, actual, expected)
    record_property("polygraphy_compare", record)
"""


@pytest.mark.parametrize("mode", MODES)
def test_report_option_end_to_end(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile(test_saving=SAVING_TESTS)
    result = pytester.runpytest(*mode, "--polygraphy-report", "reports/acc.html")
    result.assert_outcomes(passed=3)
    html_path = pytester.path / "reports" / "acc.html"
    result.stdout.fnmatch_lines([f"polygraphy report: {html_path} (data: acc.json)"])

    data = _strict_json(html_path.with_suffix(".json"))
    assert [output["test"] for output in data["outputs"]] == [
        f"test_saving.py::test_output[{case}]" for case in range(3)
    ]
    assert [output["passed"] for output in data["outputs"]] == [True, False, False]
    artifacts = [Path(output["artifacts"][0]) for output in data["outputs"][1:]]
    assert all(path.parent == pytester.path / "reports" / "acc_artifacts" for path in artifacts)
    assert math.isclose(load_artifact(artifacts[1])["absdiff_sample"].max(), 0.2, rel_tol=1e-5)
    page = _Page(html_path.read_text(encoding="utf-8"))
    if html_report.matplotlib_installed():
        assert len(_png_images(page)) == 4
    else:
        assert html_report.NO_MATPLOTLIB in "".join(page.text)


def test_report_path_must_not_be_its_json_twin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--polygraphy-report", "acc.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--polygraphy-report got 'acc.json': expected the HTML*"])


def test_ini_report_path_is_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makeini("[pytest]\npolygraphy_report = out/ini.html\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    sub = pytester.mkdir("sub")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sub)
        result = pytester.runpytest(str(pytester.path))
    result.assert_outcomes(passed=1)
    assert (pytester.path / "out" / "ini.html").is_file()
    assert (pytester.path / "out" / "ini.json").is_file()


@pytest.mark.parametrize("mode", MODES)
def test_the_report_lists_every_test_of_the_run(pytester: pytest.Pytester, mode: list[str]) -> None:
    from tests.plugin import harness

    harness.save(harness.scale_model(), pytester.path / "models" / "net.onnx")
    pytester.makepyfile(
        test_kinds=harness.EVERY_KIND_OF_TEST, test_broken="import nonexistent_module\n"
    )
    result = pytester.runpytest(
        *mode, "models", "test_kinds.py", "test_broken.py", "--continue-on-collection-errors",
        "--onnxref",
        "--polygraphy-precisions", "fp16", "--polygraphy-atol", "1e-6", "--polygraphy-rtol",
        "1e-6", "--polygraphy-report", "acc.html",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=2, errors=2, skipped=1, xfailed=1)
    data = _strict_json(pytester.path / "acc.json")
    assert data["summary"]["outcomes"] == {
        "failed": 2, "passed": 1, "skipped": 1, "xfailed": 1, "error": 2
    }  # fmt: skip
    tests = {test["test"]: test for test in data["tests"]}
    assert tests["test_kinds.py::test_setup_error"]["outcomes"] == ["error"]
    assert "fixture broke before comparing" in tests["test_kinds.py::test_setup_error"][
        "messages"][0]["text"]  # fmt: skip
    assert tests["test_kinds.py::test_fails_before_comparing"]["outcomes"] == ["failed"]
    assert tests["test_broken.py"]["outcomes"] == ["error"]
    assert "nonexistent_module" in tests["test_broken.py"]["messages"][0]["text"]
    assert tests["test_kinds.py::test_skipped"]["messages"][0]["text"] == "Skipped: not today"

    page = _Page((pytester.path / "acc.html").read_text(encoding="utf-8"))
    text = "".join(page.text)
    for nodeid in tests:
        assert nodeid in text
    assert "no outputs to compare" in text
    # The accuracy failure's detail is in the page, not only in the terminal.
    assert "Worst mismatched elements" in text
    assert "Smallest tolerance that passes alone" in text


@pytest.mark.parametrize("shape", [(2, 3), (1, 2), (1, 1)])
def test_heatmaps_of_tiny_outputs_have_whole_index_ticks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int]
) -> None:
    pytest.importorskip("matplotlib", reason="images need matplotlib")
    figures: list[Any] = []
    monkeypatch.setattr(html_report, "_png", lambda figure: figures.append(figure) or b"")
    expected = np.zeros(shape, np.float32)
    path = write_artifact(tmp_path / "a.npz", expected + 1, expected)
    row = aggregate([make_record(passed=False, artifact=str(path))])[0]
    html_report.render_images(load_artifact(path), row)
    heatmap = figures[-1].axes[0]
    for ticks in (heatmap.get_xticks(), heatmap.get_yticks()):
        visible = [t for t in ticks if -0.5 <= t <= max(shape) - 0.5]
        assert visible and all(float(t).is_integer() for t in visible)


def test_growth_chart_is_drawn_or_skipped_without_matplotlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = [{"max_absdiff": v} for v in (1e-3, 1e-2, 1e-1)]
    if html_report.matplotlib_installed():
        png = html_report.growth_chart(path, 1e-3)
        assert png is not None and png.startswith(b"\x89PNG")
    monkeypatch.setattr(html_report, "matplotlib_installed", lambda: False)
    assert html_report.growth_chart(path, 1e-3) is None
