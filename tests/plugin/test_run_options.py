"""``polygraphy run``'s output, data and results options from pytest: which tensors are
compared (``--polygraphy-outputs``, ``--polygraphy-exclude-outputs``, mark all), data
loader scripts, saving inputs and outputs, loading outputs made elsewhere, Top-K
postprocessing, fail-fast and warm-up runs.

Every check compares with an independent reference: the model's numpy twin
(``harness.exp_sigmoid``), numpy's own argsort, or the files read back with the data
package. Runs are in process (pytester) on ONNX Runtime and onnx's reference evaluator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.data import load_inputs, load_run_results, save_run_results
from pytest_polygraphy.plugin.runresults import OWNER_MARKER, postprocess
from tests.plugin import harness

pytest.importorskip("onnxruntime")

#: The feeds the data loader scripts below yield (x: [3, 4], two iterations).
FEEDS = [
    {"x": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)},
    {"x": np.linspace(0, 2, 12, dtype=np.float32).reshape(3, 4)},
]

LOADER = """
import numpy as np

def load_data():
    yield {"x": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
    yield {"x": np.linspace(0, 2, 12, dtype=np.float32).reshape(3, 4)}

def one_feed():
    return [{"x": np.full((3, 4), 0.25, np.float32)}]
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """``m.onnx`` (``x -> m = x * SCALE; y = exp(m), z = sigmoid(m)``) and ``loader.py``."""
    harness.save(harness.exp_sigmoid_model(), pytester.path / "m.onnx")
    (pytester.path / "loader.py").write_text(LOADER)
    return pytester.path


def twin(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs and its intermediate ``m`` from numpy, in float64."""
    m = feed["x"].astype(np.float64) * harness.SCALE.astype(np.float64)
    return {"m": m, **harness.exp_sigmoid(feed["x"])}


def compared_outputs(result: pytest.RunResult) -> list[str]:
    """The ``output`` column of the accuracy summary table."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("verdict"))
    rows = []
    for line in lines[start + 1 :]:
        parts = line.split()
        if line.startswith("  ") and len(parts) >= 2 and parts[0] in ("ok", "FAIL"):
            rows.append(parts[1])  # a row under its test's line: verdict, output, ...
        elif not parts or parts[0] not in ("ok", "FAIL"):
            break
    return rows


SCRIPT = ("--polygraphy-data-loader-script", "loader.py")


# ----------------------------------------------------------------------------- which outputs


def test_outputs_name_the_tensors_compared_on_every_backend(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-outputs", "m", "z",
        "--polygraphy-save-outputs", "out",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    assert sorted(set(compared_outputs(result))) == ["m", "z"]
    saved = load_run_results(project / "out" / "m.onnx.accuracy[fp32].outputs.npz")
    assert list(saved) == ["onnxref", "onnxrt"]
    for runner in saved:
        for feed, outputs in zip(FEEDS, saved[runner], strict=True):
            assert list(outputs) == ["m", "z"]
            for name in ("m", "z"):
                np.testing.assert_allclose(outputs[name], twin(feed)[name], rtol=1e-6)


def test_exclude_outputs_and_mark_all(pytester: pytest.Pytester, project: Path) -> None:
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-exclude-outputs", "z"
    )
    result.assert_outcomes(passed=1)
    assert set(compared_outputs(result)) == {"y"}
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-outputs", "mark", "all"
    )
    result.assert_outcomes(passed=1)
    assert set(compared_outputs(result)) == {"m", "y", "z"}
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-outputs", "mark", "all",
        "--polygraphy-exclude-outputs", "y",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    assert set(compared_outputs(result)) == {"m", "z"}


def test_an_unknown_output_name_fails_listing_the_tensors(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest("m.onnx", "--onnxrt", "--onnxref", "--polygraphy-outputs", "logits")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["ModelError: *m.onnx*: outputs to mark ?'logits'? not found in the model; tensors that "
         "can be marked: ?'m', 'y', 'z', 'x'?"]
    )  # fmt: skip


def test_outputs_and_mark_all_together_fail_saying_give_one(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-mark-all", "--polygraphy-outputs", "y"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mark_all and outputs ?'y'? are both given; give one*"])


def test_outputs_in_a_sidecar_and_the_accuracy_fixture(
    pytester: pytest.Pytester, project: Path
) -> None:
    (project / "m.polygraphy.json").write_text(json.dumps({"outputs": ["m"]}))
    pytester.makepyfile(
        test_acc="""
        import pytest

        @pytest.mark.model("m.onnx")
        def test_acc(accuracy):
            accuracy.check()
        """
    )
    result = pytester.runpytest("test_acc.py", "m.onnx", "--onnxrt", "--onnxref")
    result.assert_outcomes(passed=2)
    assert set(compared_outputs(result)) == {"m"}


# ----------------------------------------------------------------------------- data loader script


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("loader.py", FEEDS), ("loader.py:one_feed", [{"x": np.full((3, 4), 0.25, np.float32)}])],
    ids=["default load_data", "file:func"],
)
def test_a_data_loader_script_gives_the_inputs(
    pytester: pytest.Pytester, project: Path, spec: str, expected: list[dict[str, np.ndarray]]
) -> None:
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-data-loader-script", spec,
        "--polygraphy-save-inputs", "in", "--polygraphy-save-outputs", "out",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    feeds = load_inputs(project / "in" / "m.onnx.accuracy[fp32].inputs.npz")
    assert len(feeds) == len(expected)
    for got, want in zip(feeds, expected, strict=True):
        np.testing.assert_array_equal(got["x"], want["x"])
    outputs = load_run_results(project / "out" / "m.onnx.accuracy[fp32].outputs.npz")["onnxrt"]
    for got, feed in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got["y"], twin(feed)["y"], rtol=1e-6)


def test_loaded_inputs_bind_like_a_data_loader(pytester: pytest.Pytester, project: Path) -> None:
    """The README's fixture pattern, ``data_loader.bind(runner.input_metadata)``, also runs
    when the inputs are loaded (``data_loader`` is then the loaded feeds): the test gets
    exactly the script's feeds."""
    pytester.makepyfile(
        test_bound="""
import numpy as np
import pytest


@pytest.mark.model("m.onnx")
def test_bound(onnxrt_runner, data_loader):
    feeds = list(data_loader.bind(onnxrt_runner.input_metadata))
    np.save("seen.npy", np.stack([feed["x"] for feed in feeds]))
    assert all(onnxrt_runner.infer(feed) for feed in feeds)
"""
    )
    result = pytester.runpytest(
        "test_bound.py", "--onnxrt", "--polygraphy-data-loader-script", "loader.py"
    )
    result.assert_outcomes(passed=1)
    seen = np.load(project / "seen.npy")
    np.testing.assert_array_equal(seen, np.stack([feed["x"] for feed in FEEDS]))


def test_a_data_loader_script_from_the_ini_and_a_sidecar(
    pytester: pytest.Pytester, project: Path
) -> None:
    sub = project / "sub"
    sub.mkdir()
    (sub / "other.py").write_text(LOADER)
    (project / "m.polygraphy.json").write_text(
        json.dumps({"data_loader_script": "sub/other.py:one_feed"})
    )
    result = pytester.runpytest("m.onnx", "--onnxrt", "--onnxref", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*m.polygraphy.json: data_loader_script*"])
    (project / "m.polygraphy.json").unlink()
    pytester.makeini("[pytest]\npolygraphy_data_loader_script = sub/other.py\n")
    result = pytester.runpytest("m.onnx", "--onnxrt", "--onnxref", "--polygraphy-save-inputs", "in")
    result.assert_outcomes(passed=1)
    assert len(load_inputs(project / "in" / "m.onnx.accuracy[fp32].inputs.npz")) == 2


def test_bad_data_loader_scripts_say_what_is_wrong(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest("m.onnx", "--onnxrt", "--polygraphy-data-loader-script", "no.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--polygraphy-data-loader-script: no such data loader script*no.py*"]
    )
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-data-loader-script", "loader.py:nope"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*loader.py: has no function 'nope'*load_data*one_feed*"])
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-load-inputs", "in.npz"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*load_inputs and data_loader_script*are both given*"])


# ----------------------------------------------------------------------------- save and load


@pytest.mark.parametrize("file_format", ["json", "npz"])
def test_saved_files_read_back_in_their_format(
    pytester: pytest.Pytester, project: Path, file_format: str
) -> None:
    args = ("m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-save-format", file_format)
    result = pytester.runpytest(
        *args, "--polygraphy-save-inputs", "io", "--polygraphy-save-outputs", "io"
    )
    result.assert_outcomes(passed=1)
    name = f"m.onnx.accuracy[fp32].{{}}.{file_format}"
    feeds = load_inputs(project / "io" / name.format("inputs"))
    np.testing.assert_array_equal(feeds[1]["x"], FEEDS[1]["x"])
    results = load_run_results(project / "io" / name.format("outputs"))
    assert [len(results[r]) for r in results] == [2, 2]
    np.testing.assert_allclose(results["onnxref"][1]["z"], twin(FEEDS[1])["z"], rtol=1e-6)
    # A second run replaces the files of the first (the folder is the plugin's).
    pytester.runpytest(*args, "--polygraphy-save-inputs", "io").assert_outcomes(passed=1)


def test_a_folder_with_a_users_files_is_refused_and_left_alone(
    pytester: pytest.Pytester, project: Path
) -> None:
    mine = project / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-save-outputs", "mine"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--polygraphy-save-outputs *mine: cannot write there: it holds files this plugin "
         "did not write (notes.txt)*"]
    )  # fmt: skip
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"


def test_saving_under_xdist_writes_one_file_per_test(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(
        "m.onnx", "--onnxrt", "--onnxref", "-n", "2", "--polygraphy-precisions", "fp32", "fp16",
        "--polygraphy-save-outputs", "out", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    names = sorted(p.name for p in (project / "out").iterdir())
    assert names == [
        OWNER_MARKER,
        "m.onnx.accuracy[fp16].outputs.npz",
        "m.onnx.accuracy[fp32].outputs.npz",
    ]
    fp16 = load_run_results(project / "out" / "m.onnx.accuracy[fp16].outputs.npz")
    assert list(fp16) == ["onnxref", "onnxrt[fp16]"]


def reference_file(path: Path, feeds: list[dict[str, np.ndarray]], scale: float = 1.0) -> Path:
    """Run results of a "numpy" runner, the model's twin, optionally scaled."""
    outputs = [
        {n: (v * scale).astype(np.float32) for n, v in harness.exp_sigmoid(f["x"]).items()}
        for f in feeds
    ]
    return save_run_results(path, {"numpy": outputs})


@pytest.mark.parametrize("suffix", ["json", "npz"])
def test_load_outputs_compares_every_backend_with_the_file(
    pytester: pytest.Pytester, project: Path, suffix: str
) -> None:
    reference_file(project / f"ref.{suffix}", FEEDS)
    args = ("m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-precisions", "fp32", "fp16")
    result = pytester.runpytest(*args, "--polygraphy-load-outputs", f"ref.{suffix}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [f"*onnxref vs numpy from ref.{suffix}*", f"*onnxrt vs numpy from ref.{suffix}*"],
        consecutive=False,
    )
    reference_file(project / f"ref.{suffix}", FEEDS, scale=1.01)
    result = pytester.runpytest(*args, "--polygraphy-load-outputs", f"ref.{suffix}")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"*onnxrt vs numpy from ref.{suffix}, iteration 0*"])


def test_load_outputs_with_other_iterations_or_outputs_fails_naming_the_file(
    pytester: pytest.Pytester, project: Path
) -> None:
    reference_file(project / "one.json", FEEDS[:1])
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", *SCRIPT, "--polygraphy-load-outputs", "one.json"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*results file *one.json holds 1 iteration(s) of runner 'numpy', the test ran 2*"]
    )
    save_run_results(project / "other.json", {"numpy": [{"w": np.zeros(1)}] * 2})
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", *SCRIPT, "--polygraphy-load-outputs", "other.json"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["onnxrt vs numpy from other.json, iteration 0 (expected = results file *other.json,"
         " actual = onnxrt at fp32): Output names do not match:",
         "  missing from actual:   ?'w'?"]
    )  # fmt: skip
    result = pytester.runpytest("m.onnx", "--onnxrt", "--polygraphy-load-outputs", "missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--polygraphy-load-outputs: no such results file*missing.json*"])


def test_load_outputs_from_a_saved_folder_reads_each_tests_own_file(
    pytester: pytest.Pytester, project: Path
) -> None:
    """The folder one run's --polygraphy-save-outputs wrote is the reference of the next,
    test by test (not its files' iterations one after the other); a test without a file
    there fails naming the file it looked for."""
    shapes = ("--polygraphy-input-shapes", "x:[3,4]", "--polygraphy-input-shapes", "x:[2,4]")
    saved = pytester.runpytest(
        "m.onnx", "--onnxref", "--polygraphy-validate", *shapes, "--polygraphy-save-outputs", "out"
    )  # fmt: skip
    saved.assert_outcomes(passed=2)
    assert len(list((project / "out").glob("*.outputs.npz"))) == 2
    args = ("m.onnx", "--onnxrt", *shapes, "--polygraphy-load-outputs", "out")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*onnxrt vs onnxref from m.onnx.accuracy*x=3x4*.outputs.npz*"])
    for file in (project / "out").glob("*x=2x4*"):
        file.unlink()
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*out: the folder --polygraphy-save-outputs wrote holds no outputs of this test"
         " (m.onnx.accuracy?fp32-x=2x4?.outputs.npz or *.outputs.json)*"]
    )  # fmt: skip


def test_mark_all_with_loaded_outputs_scans_the_tensors_the_file_holds(
    pytester: pytest.Pytester, project: Path
) -> None:
    """With --polygraphy-mark-all, a results file is scanned as a golden file is: every
    tensor both the run and the file hold is compared. A file of outputs alone compares
    the outputs; one that also holds the intermediate ``m`` (as Polygraphy's
    ``--onnx-outputs mark all`` saves) has it compared too, and a wrong ``m`` fails."""
    args = ("m.onnx", "--onnxrt", *SCRIPT, "--polygraphy-mark-all", "--polygraphy-load-outputs")
    reference_file(project / "outputs.json", FEEDS)
    result = pytester.runpytest(*args, "outputs.json")
    result.assert_outcomes(passed=1)
    every = [{n: v.astype(np.float32) for n, v in twin(f).items()} for f in FEEDS]
    save_run_results(project / "all.json", {"numpy": every})
    result = pytester.runpytest(*args, "all.json")
    result.assert_outcomes(passed=1)
    wrong_m = [{**tensors, "m": tensors["m"] + np.float32(1)} for tensors in every]
    save_run_results(project / "wrong_m.json", {"numpy": wrong_m})
    result = pytester.runpytest(*args, "wrong_m.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*every model output passed, but 1 intermediate tensor(s)*"])


def test_a_loaded_outputs_failure_leads_to_what_the_file_can_answer(
    pytester: pytest.Pytester, project: Path
) -> None:
    """Its next steps offer no --polygraphy-mark-all run (the file holds only what its run
    saved); selecting a tensor the file lacks says where that tensor would come from."""
    reference_file(project / "ref.json", FEEDS, scale=1.01)
    args = ("m.onnx", "--onnxrt", *SCRIPT, "--polygraphy-load-outputs", "ref.json")
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    steps = result.stdout.str().split("Next steps:")[1]
    assert "--polygraphy-reduce" in steps and "--polygraphy-mark-all" not in steps
    result = pytester.runpytest(*args, "--polygraphy-outputs", "m")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*Requested outputs are missing:*",
         "  missing from expected: ?'m'?",
         "*results file *ref.json holds only the tensors its run saved: save that run with the"
         " same --polygraphy-outputs, or compare the model's outputs alone"],
        consecutive=False,
    )  # fmt: skip


# ----------------------------------------------------------------------------- postprocess


def test_top_k_is_numpys_argsort_largest_first() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 10)).astype(np.float32)
    got = postprocess({"logits": logits, "other": logits}, {"logits": (3, None)}, "t")
    np.testing.assert_array_equal(got["logits"], np.argsort(-logits, axis=-1)[:, :3])
    assert got["other"] is logits  # not named, no default: untouched
    got = postprocess({"a": logits}, {"": (20, 0)}, "t")  # K clamped to the axis
    np.testing.assert_array_equal(got["a"], np.argsort(-logits, axis=0))
    ties = np.array([1, 3, 3, 0], np.uint8)
    np.testing.assert_array_equal(postprocess({"t": ties}, {"": (3, None)}, "t")["t"], [1, 2, 0])
    with pytest.raises(Exception, match="axis 2 does not exist in its shape \\[4, 10\\]"):
        postprocess({"a": logits}, {"a": (1, 2)}, "t")
    with pytest.raises(Exception, match="postprocess names \\['logit'\\], which t does not"):
        postprocess({"logits": logits}, {"logit": (1, None)}, "t")


def test_postprocess_top_k_compares_rankings(pytester: pytest.Pytester, project: Path) -> None:
    # y = exp(x * SCALE) scaled by 1.5 keeps every row's ranking: top-k indices match.
    reference_file(project / "ref.json", FEEDS, scale=1.5)
    args = ("m.onnx", "--onnxrt", *SCRIPT, "--polygraphy-load-outputs", "ref.json")
    result = pytester.runpytest(*args, "--polygraphy-outputs", "y")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Outputs are not close: 1 of 1 failed ('y')*"])
    result = pytester.runpytest(
        *args, "--polygraphy-outputs", "y", "--polygraphy-postprocess", "y:top-2"
    )
    result.assert_outcomes(passed=1)
    # Reversed rankings fail.
    flipped = [
        {n: v[:, ::-1].astype(np.float32) for n, v in harness.exp_sigmoid(f["x"]).items()}
        for f in FEEDS
    ]
    save_run_results(project / "flipped.json", {"numpy": flipped})
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", *SCRIPT, "--polygraphy-load-outputs", "flipped.json",
        "--polygraphy-outputs", "y", "--polygraphy-postprocess", "top-2",
    )  # fmt: skip
    result.assert_outcomes(failed=1)


# ----------------------------------------------------------------------------- fail-fast, warm-up


def test_fail_fast_stops_at_the_first_failing_output(
    pytester: pytest.Pytester, project: Path
) -> None:
    reference_file(project / "ref.json", FEEDS, scale=2.0)  # y and z both wrong, both iterations
    args = ("m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-load-outputs", "ref.json")
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    assert len(compared_outputs(result)) == 4  # 2 backends x 2 outputs (rows merge iterations)
    result.stdout.fnmatch_lines(["*4 comparisons failed*"])
    result = pytester.runpytest(*args, "--polygraphy-fail-fast")
    result.assert_outcomes(failed=1)
    assert compared_outputs(result) == ["y"]
    result.stdout.fnmatch_lines(["*1 comparison failed*"])


WARM_UP_COUNTER = """
import json

from pytest_polygraphy.runners.onnxref import OnnxrefRunner

CALLS = []
_original = OnnxrefRunner._infer


def pytest_configure(config):
    def counting(self, feed):
        CALLS.append(self.name)
        return _original(self, feed)

    OnnxrefRunner._infer = counting


def pytest_unconfigure(config):
    OnnxrefRunner._infer = _original
    with open("calls.json", "w") as handle:
        json.dump(CALLS, handle)
"""


@pytest.mark.parametrize(("warm_up", "calls"), [(0, 2), (3, 5)])
def test_warm_up_runs_before_the_compared_inferences(
    pytester: pytest.Pytester, project: Path, warm_up: int, calls: int
) -> None:
    pytester.makeconftest(WARM_UP_COUNTER)
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", *SCRIPT, "--polygraphy-warm-up", str(warm_up)
    )
    result.assert_outcomes(passed=1)
    assert json.loads((project / "calls.json").read_text()) == ["onnxref"] * calls
