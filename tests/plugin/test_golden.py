"""Golden output files: paths, the file format, and what an unreadable file says.
(End to end: ``test_models.py``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.plugin.golden import GoldenFile, file_name, golden_path, legacy_file_name


def test_golden_paths(tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "sub" / "test_x.py"
    assert golden_path(test_file, "test_y[fp16-x=1x3]", None, tmp_path) == (
        tmp_path / "tests" / "sub" / "golden" / "test_x" / "test_y[fp16-x=1x3].npz"
    )
    assert golden_path(test_file, "test_y", tmp_path / "g", tmp_path) == (
        tmp_path / "g" / "tests" / "sub" / "test_x" / "test_y.npz"
    )
    assert file_name("test_y[a/b c:d]").startswith("test_y[a_b_c_d]-")
    long = file_name("test_" + "x" * 500)
    assert len(long) <= 160 and long != file_name("test_" + "x" * 499)


def test_two_test_ids_never_share_a_golden_file_and_simple_ones_keep_their_names() -> None:
    assert file_name("test_x[fp16-x=1x3]") == "test_x[fp16-x=1x3]"  # unchanged paths
    assert file_name("net_a") == "net_a"
    ids = ["net a", "net_a", "net/a", "net:a", "net\ta", ".net_a", "net_a."]
    assert len({file_name(i) for i in ids}) == len(ids)
    assert len({legacy_file_name(i) for i in ids}) == 1  # what older versions did
    assert legacy_file_name("test_y[a/b c:d]") == "test_y[a_b_c_d]"


def test_writing_nothing_is_refused(tmp_path: Path) -> None:
    from pytest_polygraphy.errors import InputError

    golden = GoldenFile(tmp_path / "t.npz")
    with pytest.raises(InputError, match=r"nothing was compared: .* 0 iterations"):
        golden.write([], {})
    with pytest.raises(InputError, match=r"iteration 1 .* holds no outputs"):
        golden.write([{"y": np.ones(2)}, {}], {})
    assert not list(tmp_path.iterdir())


def test_the_sidecar_carries_the_outputs_hash_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    import json

    from pytest_polygraphy.errors import InputError

    golden = GoldenFile(tmp_path / "t.npz")
    golden.write([{"y": np.ones(2)}], {"backend": "onnxrt"})
    sidecar = json.loads(golden.sidecar.read_text())
    assert len(sidecar["npz_sha256"]) == 64
    old_sidecar = golden.sidecar.read_bytes()
    golden.write([{"y": np.zeros(2)}], {"backend": "onnxrt"})
    golden.sidecar.write_bytes(old_sidecar)  # killed between the two writes of an update
    with pytest.raises(InputError, match="is corrupt or does not match its sidecar"):
        golden.read()
    # A sidecar from before hashes were recorded still reads as before.
    del sidecar["npz_sha256"]
    golden.sidecar.write_text(json.dumps(sidecar))
    assert golden.read()[0]["y"].tolist() == [0.0, 0.0]
    golden.sidecar.write_text("{not json")
    with pytest.raises(InputError, match=r"sidecar .*t\.json is corrupt"):
        golden.read()


def test_a_flipped_bit_anywhere_is_an_input_error_or_reads_the_same(tmp_path: Path) -> None:
    """Without a sidecar to check against, the archive's own checks still never let a
    damaged file through as different outputs, nor raise anything but InputError."""
    from pytest_polygraphy.errors import InputError

    golden = GoldenFile(tmp_path / "t.npz")
    golden.write([{"y": np.arange(4, dtype=np.float32)}], {})
    golden.sidecar.unlink()
    data = golden.path.read_bytes()
    damaged = GoldenFile(tmp_path / "d.npz")
    for index in range(len(data)):
        flipped = bytearray(data)
        flipped[index] ^= 0x01
        damaged.path.write_bytes(bytes(flipped))
        try:
            back = damaged.read()
        except InputError as err:
            assert "d.npz is corrupt" in str(err)
            continue
        assert back[0]["y"].tolist() == [0.0, 1.0, 2.0, 3.0], index


def test_a_file_belongs_to_the_test_its_sidecar_names(tmp_path: Path) -> None:
    from pytest_polygraphy.errors import InputError
    from pytest_polygraphy.plugin.golden import golden_file

    test_file = tmp_path / "test_n.py"
    spaced = golden_file(test_file, "test_n[a b]", "test_n.py::test_n[a b]", None, tmp_path)
    plain = golden_file(test_file, "test_n[a_b]", "test_n.py::test_n[a_b]", None, tmp_path)
    assert spaced.path != plain.path and spaced.legacy == plain.path and plain.legacy is None
    # A file an older version wrote for "a b" at the shared name: "a b" reads it...
    GoldenFile(plain.path).write([{"y": np.ones(1)}], {"test": "other/root/test_n.py::test_n[a b]"})
    assert spaced.exists() and spaced.read()[0]["y"].tolist() == [1.0]
    # ...and "a_b", which owns that name now, neither reads nor overwrites it.
    for action in (plain.read, lambda: plain.write([{"y": np.zeros(1)}], {})):
        with pytest.raises(InputError, match=r"belongs to test .*test_n\[a b\].*test_n\[a_b\]"):
            action()
    assert GoldenFile(plain.path).read()[0]["y"].tolist() == [1.0]
    # Updating "a b" writes its own file and leaves the old one in place.
    spaced.write([{"y": np.full(1, 2.0)}], {"test": spaced.test})
    assert spaced.read()[0]["y"].tolist() == [2.0] and plain.path.is_file()


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
