"""Polygraphy itself reads the JSON files we write.

Polygraphy is not a dependency: these tests run only where it is importable (e.g. the
throwaway venv of tests/data/fixtures/make_polygraphy_fixtures.py with pytest added).
The other direction, our reading of Polygraphy's files, is always tested, from the
committed fixtures (test_formats.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.data import RunResults, save_inputs, save_run_results

polygraphy_json = pytest.importorskip("polygraphy.json", reason="polygraphy is not installed")
comparator = pytest.importorskip("polygraphy.comparator")


def test_polygraphy_loads_our_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    feeds = [
        {"x": rng.random((2, 3), dtype=np.float32), "m": rng.random(3) > 0.5, "s": np.array(3)},
        {"x": rng.random((2, 3), dtype=np.float32), "m": rng.random(3) > 0.5, "s": np.array(4)},
    ]
    loaded = polygraphy_json.load_json(str(save_inputs(tmp_path / "in.json", feeds)))
    assert len(loaded) == 2
    for want, got in zip(feeds, loaded, strict=True):
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == want[name].dtype
            assert np.array_equal(got[name], want[name])


def test_polygraphy_loads_our_run_results(tmp_path: Path) -> None:
    results = RunResults()
    results.add("onnxrt-runner-N0-01/02/25-03:04:05", {"y": np.arange(4.0)}, runtime=0.5)
    results.add("onnxrt-runner-N0-01/02/25-03:04:05", {"y": np.arange(4.0) + 1})
    results.add("onnxref", {"y": np.full(4, np.nan, np.float16)})
    path = save_run_results(tmp_path / "out.json", results)
    loaded = comparator.RunResults.load(str(path))
    assert list(loaded.keys()) == list(results)
    for runner, iterations in loaded.items():
        assert len(iterations) == len(results[runner])
        for want, got in zip(results[runner], iterations, strict=True):
            assert got.runner_name == runner
            assert got.runtime == want.runtime
            for name, array in want.items():
                assert got[name].dtype == array.dtype
                assert np.array_equal(got[name], array, equal_nan=True)
