"""Golden output files: paths, the file format, and what an unreadable file says.
(End to end: ``test_models.py``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.plugin.golden import GoldenFile, file_name, golden_path


def test_golden_paths(tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "sub" / "test_x.py"
    assert golden_path(test_file, "test_y[fp16-x=1x3]", None, tmp_path) == (
        tmp_path / "tests" / "sub" / "golden" / "test_x" / "test_y[fp16-x=1x3].npz"
    )
    assert golden_path(test_file, "test_y", tmp_path / "g", tmp_path) == (
        tmp_path / "g" / "tests" / "sub" / "test_x" / "test_y.npz"
    )
    assert file_name("test_y[a/b c:d]") == "test_y[a_b_c_d]"
    long = file_name("test_" + "x" * 500)
    assert len(long) <= 160 and long != file_name("test_" + "x" * 499)


def test_golden_files_round_trip_dtypes_names_and_iterations(tmp_path: Path) -> None:
    golden = GoldenFile(tmp_path / "g" / "t.npz")
    iterations = [
        {"/model/conv/out:0": np.arange(3, dtype=np.float16), "ids": np.array([1, 2], np.int64)},
        {"/model/conv/out:0": np.zeros(3, np.float16), "ids": np.array([3, 4], np.int64)},
    ]
    golden.write(iterations, {"backend": "onnxrt"})
    back = golden.read()
    assert [list(it) for it in back] == [list(it) for it in iterations]
    for got, want in zip(back, iterations, strict=True):
        for name in want:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])
    assert not list(golden.path.parent.glob(".*tmp"))  # no temporary files left behind


def test_unreadable_golden_files_name_the_problem(tmp_path: Path) -> None:
    from pytest_polygraphy.errors import InputError

    path = tmp_path / "t.npz"
    with pytest.raises(InputError, match="does not exist"):
        GoldenFile(path).read()
    np.savez(path, other=np.zeros(2))
    with pytest.raises(InputError, match="not written by pytest-polygraphy"):
        GoldenFile(path).read()
    good = GoldenFile(tmp_path / "good.npz")
    good.write([{"y": np.ones(4)}], {})
    path.write_bytes(good.path.read_bytes()[:40])
    with pytest.raises(InputError, match=r"t\.npz is corrupt"):
        GoldenFile(path).read()


def test_a_golden_file_is_a_saved_run_that_golden_runner_reads(tmp_path: Path) -> None:
    from pytest_polygraphy.runners import GoldenRunner

    outputs = [{"y": np.arange(4, dtype=np.float32)}, {"y": np.ones(4, dtype=np.float32)}]
    golden = GoldenFile(tmp_path / "g.npz")
    golden.write(outputs, {"backend": "onnxrt"})
    with GoldenRunner(golden.path) as runner:
        assert runner.name == "golden"
        for expected in outputs:
            np.testing.assert_array_equal(runner.infer({})["y"], expected["y"])
