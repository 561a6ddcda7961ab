"""Input and run-result files: Polygraphy's JSON (theirs and ours), .npz, folders, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from pytest_polygraphy.data import (
    RunResults,
    load_inputs,
    load_run_results,
    save_inputs,
    save_run_results,
)
from pytest_polygraphy.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


def _expected() -> tuple[dict[str, np.ndarray], dict]:
    with np.load(FIXTURES / "serde_expected.npz") as arrays:
        expected = {key: arrays[key] for key in arrays.files}
    return expected, json.loads((FIXTURES / "serde_expected.json").read_text())


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected)


def _sample_feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {
            "x": rng.random((2, 3), dtype=np.float32),
            "mask/0": rng.random(4) > 0.5,
            "ids:0": rng.integers(-(2**62), 2**62, size=3, dtype=np.int64),
            "scalar": np.array(np.float16(2.5)),
            "empty": np.zeros((0, 2), np.int32),
            "t": np.asfortranarray(rng.random((3, 2))),
        }
        for _ in range(2)
    ]


def _sample_results() -> RunResults:
    rng = np.random.default_rng(1)
    results = RunResults()
    for runner, runtime in (("onnxrt-runner-N0-01/02/25-03:04:05", 0.25), ("onnxref", None)):
        for _ in range(2):
            results.add(
                runner,
                {"y": rng.random((1, 4), dtype=np.float32), "nan/inf": np.array([np.nan, np.inf])},
                runtime=runtime,
            )
    return results


# --- files written by Polygraphy 0.53.6 itself (tests/data/fixtures/make_polygraphy_fixtures.py)


def test_loads_inputs_saved_by_polygraphy() -> None:
    expected, manifest = _expected()
    feeds = load_inputs(FIXTURES / "polygraphy_inputs.json")
    assert len(feeds) == 2
    for k, feed in enumerate(feeds):
        assert list(feed) == manifest["input_names"]
        for name, array in feed.items():
            _assert_same(array, expected[f"inputs/{k}/{name}"])


def test_loads_a_single_feed_dict_saved_by_polygraphy_as_one_iteration() -> None:
    expected, _ = _expected()
    [feed] = load_inputs(FIXTURES / "polygraphy_single_feed.json")
    _assert_same(feed["input:0"], expected["single/input:0"])


def test_loads_run_results_saved_by_polygraphy() -> None:
    expected, manifest = _expected()
    results = load_run_results(FIXTURES / "polygraphy_run_results.json")
    assert list(results) == manifest["runners"]
    for r, (runner, runtimes) in enumerate(
        zip(manifest["runners"], manifest["runtimes"], strict=True)
    ):
        assert [it.runtime for it in results[runner]] == runtimes
        for k, outputs in enumerate(results[runner]):
            assert list(outputs) == manifest["output_names"]
            for name, array in outputs.items():
                _assert_same(array, expected[f"results/{r}/{k}/{name}"])


def test_polygraphy_run_results_given_as_inputs_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"polygraphy_run_results\.json.*load_run_results"):
        load_inputs(FIXTURES / "polygraphy_run_results.json")
    with pytest.raises(InputError, match=r"polygraphy_inputs\.json.*load_inputs"):
        load_run_results(FIXTURES / "polygraphy_inputs.json")


def test_our_json_matches_polygraphys_encoding(tmp_path: Path) -> None:
    theirs = json.loads((FIXTURES / "polygraphy_run_results.json").read_text())
    results = load_run_results(FIXTURES / "polygraphy_run_results.json")
    ours = json.loads(save_run_results(tmp_path / "r.json", results).read_text())
    assert ours == theirs
    theirs = json.loads((FIXTURES / "polygraphy_inputs.json").read_text())
    ours = json.loads(
        save_inputs(
            tmp_path / "i.json", load_inputs(FIXTURES / "polygraphy_inputs.json")
        ).read_text()
    )
    assert ours == theirs


# --- round trips of our own files


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_inputs_round_trip(tmp_path: Path, suffix: str) -> None:
    feeds = _sample_feeds()
    path = save_inputs(tmp_path / f"inputs{suffix}", feeds)
    loaded = load_inputs(path)
    assert len(loaded) == len(feeds)
    for want, got in zip(feeds, loaded, strict=True):
        assert list(got) == list(want)
        for name in want:
            _assert_same(got[name], want[name])


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_run_results_round_trip(tmp_path: Path, suffix: str) -> None:
    results = _sample_results()
    loaded = load_run_results(save_run_results(tmp_path / f"out{suffix}", results))
    assert loaded == results
    assert [it.runtime for it in loaded["onnxref"]] == [None, None]
    assert loaded.num_iterations == 2
    assert list(loaded.iteration(1)) == list(results)


def test_npz_keeps_ml_dtypes_and_json_refuses_them(tmp_path: Path) -> None:
    feed = {
        "bf": np.array([1.5, -2.0, np.nan], dtype=ml_dtypes.bfloat16),
        "i4": np.array([-8, 7], ml_dtypes.int4),
    }
    [loaded] = load_inputs(save_inputs(tmp_path / "x.npz", [feed]))
    for name in feed:
        assert loaded[name].dtype == feed[name].dtype
        assert loaded[name].tobytes() == feed[name].tobytes()
    with pytest.raises(InputError, match=r"x\.json.*'bf'.*bfloat16.*\.npz"):
        save_inputs(tmp_path / "x.json", [feed])
    assert not (tmp_path / "x.json").exists()


def test_plain_npz_is_one_feed(tmp_path: Path) -> None:
    np.savez(tmp_path / "plain.npz", x=np.arange(3.0), **{"y/0": np.ones(2, np.int8)})
    [feed] = load_inputs(tmp_path / "plain.npz")
    assert list(feed) == ["x", "y/0"]
    _assert_same(feed["y/0"], np.ones(2, np.int8))
    with pytest.raises(InputError, match=r"plain\.npz.*save_run_results"):
        load_run_results(tmp_path / "plain.npz")


def test_npz_formats_are_not_confused(tmp_path: Path) -> None:
    save_run_results(tmp_path / "r.npz", _sample_results())
    save_inputs(tmp_path / "i.npz", _sample_feeds())
    with pytest.raises(InputError, match=r"r\.npz.*load_run_results"):
        load_inputs(tmp_path / "r.npz")
    with pytest.raises(InputError, match=r"i\.npz.*'inputs'"):
        load_run_results(tmp_path / "i.npz")


def test_folder_of_per_iteration_files_loads_in_name_order(tmp_path: Path) -> None:
    feeds = _sample_feeds()
    folder = tmp_path / "inputs"
    save_inputs(folder / "0000000001.npz", feeds[1:])
    save_inputs(folder / "0000000000.json", feeds[:1])
    loaded = load_inputs(folder)
    assert [f["x"].tobytes() for f in loaded] == [f["x"].tobytes() for f in feeds]

    results = _sample_results()
    out = tmp_path / "outputs"
    for k in range(2):
        single = RunResults()
        for runner in results:
            it = results[runner][k]
            single.add(runner, it, runtime=it.runtime)
        save_run_results(out / f"{k:010d}.json", single)
    assert load_run_results(out) == results


# --- errors name the file


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.json", b"{not json", "not valid JSON"),
        ("bad.json", b'[{"x": {"array": "AAAA", "polygraphy_class": "ndarray"}}]', "corrupt"),
        ("bad.json", b'[{"x": 1}]', "iteration 0 is not a feed dict"),
        ("bad.json", b'{"polygraphy_class": "Tensor", "tensor": ""}', "torch"),
        ("bad.json", b'{"polygraphy_class": "TacticReplayData"}', "TacticReplayData"),
        ("bad.npz", b"PK\x03\x04 broken", "not a readable .npz"),
        ("bad.txt", b"", "unsupported data file"),
    ],
)
def test_bad_files_are_errors_naming_the_file(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as err:
        load_inputs(path)
    assert str(path) in str(err.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    for load in (load_inputs, load_run_results):
        for suffix in (".json", ".npz"):
            with pytest.raises(InputError, match=f"missing{suffix}"):
                load(tmp_path / f"missing{suffix}")


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \.json or \.npz"):
        load_inputs(tmp_path)


def test_legacy_polygraphy_markers_are_read(tmp_path: Path) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(4, dtype=np.int16))
    legacy = {
        "x": {
            "array": buffer.getvalue().decode("latin-1"),
            "__polygraphy_encoded_ndarray": "polygraphy_serialized_json_type",
        }
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps([legacy]))
    [feed] = load_inputs(path)
    _assert_same(feed["x"], np.arange(4, dtype=np.int16))


# --- atomic writes


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = save_inputs(tmp_path / "keep.json", _sample_feeds())
    before = path.read_bytes()
    with pytest.raises(InputError):
        save_inputs(path, [{"bad": np.array([1.0], ml_dtypes.bfloat16)}])
    with pytest.raises(InputError):
        save_inputs(tmp_path / "keep.npz", [{"o": np.array([object()])}])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.json"]


def test_save_creates_parent_folders_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.npz"
    save_run_results(path, _sample_results())
    save_run_results(path, RunResults())
    assert len(load_run_results(path)) == 0
    assert os.listdir(path.parent) == ["r.npz"]


def test_a_repeated_runner_name_is_refused_saying_why(tmp_path: Path) -> None:
    # Polygraphy allows it; a deliberate difference listed in the README
    from pytest_polygraphy.data import polygraphy_json

    run = [({"y": np.zeros(2, np.float32)}, None)]
    encoded = polygraphy_json.encode_run_results([("onnxrt", run), ("onnxrt", run)], "f")
    path = tmp_path / "results.json"
    path.write_text(polygraphy_json.dumps(encoded))
    with pytest.raises(InputError, match=r"runner 'onnxrt' appears twice.*Rename one of the runs"):
        load_run_results(path)
