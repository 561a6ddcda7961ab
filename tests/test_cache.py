"""The artifact cache: one build per key across processes, checksums, corrupt entries."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.cache import (
    CACHE_DIR_ENV,
    ArtifactCache,
    cache_key,
    default_cache_dir,
    update_user_file,
)

KEY = {"model": "abc123", "precision": "fp16", "shapes": {"x": [[1, 3], [4, 3], [8, 3]]}}


def _payload(tag: str) -> bytes:
    return (tag.encode() + bytes(range(256))) * 512


SPAWN = multiprocessing.get_context("spawn")


def _all_at_once(target: Any, n: int, *args: Any) -> None:
    """Run ``target(*args, barrier, index)`` in ``n`` spawned processes that wait for each
    other on ``barrier``; each must exit cleanly."""
    barrier = SPAWN.Barrier(n)
    procs = [SPAWN.Process(target=target, args=(*args, barrier, i)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def _build_in_process(root: str, builds_dir: str, results: Any, barrier: Any, index: int) -> None:
    """Worker: wait for every process, then all ask for the same key at once."""

    def build() -> bytes:
        Path(builds_dir, f"build-{os.getpid()}").write_text("built")
        import time

        time.sleep(0.3)  # long enough that the other processes queue on the lock
        return _payload(f"built-by-{os.getpid()}")

    barrier.wait()
    entry = ArtifactCache(root).get_or_create(KEY, build)
    results[index] = entry.data


def test_concurrent_processes_build_a_key_exactly_once(tmp_path: Path) -> None:
    n = 4
    manager = SPAWN.Manager()
    results = manager.dict()
    builds = tmp_path / "builds"
    builds.mkdir()
    _all_at_once(_build_in_process, n, str(tmp_path / "c"), str(builds), results)
    assert len(list(builds.iterdir())) == 1
    got = [results[i] for i in range(n)]
    assert len(set(got)) == 1
    builder_pid = next(builds.iterdir()).name.removeprefix("build-")
    assert got[0] == _payload(f"built-by-{builder_pid}")
    manager.shutdown()


def test_hit_returns_stored_bytes_without_building(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    first = cache.get_or_create(KEY, lambda: _payload("one"))
    assert first.built and first.path.read_bytes() == _payload("one")

    def must_not_build() -> bytes:
        raise AssertionError("cache hit expected")

    second = cache.get_or_create(KEY, must_not_build)
    assert not second.built
    assert second.data == _payload("one")
    assert cache.get(KEY) == _payload("one")


def test_metadata_records_checksum_and_key_parts(tmp_path: Path) -> None:
    import hashlib

    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_create(KEY, lambda: b"engine bytes")
    _, meta_path, _ = cache.paths(KEY)
    meta = json.loads(meta_path.read_text())
    assert meta["sha256"] == hashlib.sha256(b"engine bytes").hexdigest()
    assert meta["key_parts"]["precision"] == "fp16"
    assert meta["key"] == entry.key == cache_key(KEY)


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete_data", "garble_meta"])
def test_a_corrupt_entry_is_detected_and_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = ArtifactCache(tmp_path)
    cache.get_or_create(KEY, lambda: _payload("good"))
    data_path, meta_path, _ = cache.paths(KEY)
    if damage == "flip_byte":
        raw = bytearray(data_path.read_bytes())
        raw[100] ^= 0xFF
        data_path.write_bytes(bytes(raw))
    elif damage == "truncate":
        data_path.write_bytes(data_path.read_bytes()[:10])
    elif damage == "delete_data":
        data_path.unlink()
    else:
        meta_path.write_text("{not json")
    assert cache.get(KEY) is None

    rebuilt = cache.get_or_create(KEY, lambda: _payload("rebuilt"))
    assert rebuilt.built
    assert rebuilt.data == _payload("rebuilt")
    assert cache.get(KEY) == _payload("rebuilt")


def test_validate_rejecting_cached_bytes_forces_a_rebuild(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    cache.get_or_create(KEY, lambda: b"stale format")
    entry = cache.get_or_create(
        KEY, lambda: b"new format", validate=lambda data: data.startswith(b"new")
    )
    assert entry.built and entry.data == b"new format"


def test_different_key_parts_are_different_entries(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    a = cache.get_or_create({**KEY, "precision": "fp32"}, lambda: b"fp32")
    b = cache.get_or_create(KEY, lambda: b"fp16")
    assert a.path != b.path and (a.data, b.data) == (b"fp32", b"fp16")
    # dict order does not matter
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})


def test_update_merges_under_lock(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    assert cache.update(KEY, lambda cur: (cur or b"") + b"a", namespace="timing") == b"a"
    assert cache.update(KEY, lambda cur: (cur or b"") + b"b", namespace="timing") == b"ab"
    assert cache.update(KEY, lambda cur: None, namespace="timing") == b"ab"
    assert cache.get(KEY) is None  # other namespace
    cache.invalidate(KEY, namespace="timing")
    assert cache.get(KEY, namespace="timing") is None


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    cache.get_or_create(KEY, lambda: b"x")
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failing_build_stores_nothing(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def broken() -> bytes:
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        cache.get_or_create(KEY, broken)
    assert cache.get(KEY) is None
    assert cache.get_or_create(KEY, lambda: b"ok").data == b"ok"


def test_default_root_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert ArtifactCache().root == tmp_path / "env-cache"
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert default_cache_dir() == Path.home() / ".cache" / "pytest-polygraphy"


def _append_line_in_process(path: str, barrier: Any, index: int) -> None:
    """Worker: merge one line into the shared file, all at once (as xdist workers merge
    their builds' timing caches into one named file)."""
    barrier.wait()
    update_user_file(path, lambda current: (current or b"") + f"worker {index}\n".encode())


def test_a_user_file_is_merged_by_every_process_and_never_truncated(tmp_path: Path) -> None:
    shared = tmp_path / "timing" / "shared.cache"
    n = 4
    _all_at_once(_append_line_in_process, n, str(shared))
    lines = shared.read_bytes().decode().splitlines()
    assert sorted(lines) == [f"worker {i}" for i in range(n)]  # no merge lost another's

    def failing_merge(current: bytes | None) -> bytes:
        raise RuntimeError("the build failed")

    before = shared.read_bytes()
    with pytest.raises(RuntimeError, match="the build failed"):
        update_user_file(shared, failing_merge)
    assert update_user_file(shared, lambda current: None) == before
    assert shared.read_bytes() == before
    assert [p.name for p in shared.parent.iterdir() if p.name.endswith(".tmp")] == []
