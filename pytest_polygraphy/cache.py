"""On-disk artifact cache (TensorRT engines, timing caches), shared safely by many processes.

Entries are keyed by a dict of key parts (model hash, builder settings, backend version,
GPU, ...) which is hashed into a file name. Every entry is two files: the artifact bytes
(``<key>.bin``) and a metadata JSON (``<key>.json``) that stores the artifact's sha256, its
size and the key parts in clear text (so a human can tell what an entry is).

Safety under pytest-xdist and parallel CI jobs:

* Each key has its own lock file (``filelock``): only one process builds a given entry,
  the others wait and then read what it wrote. Different keys never wait on each other.
* Files are written to a temporary name in the same folder and moved into place with
  ``os.replace`` (atomic on POSIX and Windows), data first, metadata last. A reader thus
  never sees a half-written file.
* A reader first tries without the lock (the common case: the entry exists and is valid).
  The entry counts as valid only when the data's sha256 equals the one in the metadata;
  anything else (missing file, truncated or corrupt data, unreadable metadata) sends it to
  the locked path, which checks again and rebuilds the entry.

The default root is ``$PYTEST_POLYGRAPHY_CACHE_DIR``, else ``~/.cache/pytest-polygraphy``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_polygraphy.files import write_bytes_atomically

#: Environment variable that overrides the default cache root.
CACHE_DIR_ENV = "PYTEST_POLYGRAPHY_CACHE_DIR"

#: Bumped when the on-disk layout changes; part of every key.
_LAYOUT_VERSION = 1


def default_cache_dir() -> Path:
    """``$PYTEST_POLYGRAPHY_CACHE_DIR`` if set, else ``~/.cache/pytest-polygraphy``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pytest-polygraphy"


def cache_key(key_parts: Mapping[str, Any]) -> str:
    """The hex sha256 of the key parts as canonical JSON (sorted keys, no whitespace).

    Values must be JSON serializable (str, numbers, bools, None, lists, dicts); tuples are
    written as lists. Anything else is a programming error and raises ``TypeError``.
    """
    text = json.dumps(
        {"layout": _LAYOUT_VERSION, **key_parts}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedArtifact:
    """An artifact read from (or just written to) the cache.

    ``built`` is True when this call ran the build function, False on a cache hit.
    """

    data: bytes
    path: Path
    key: str
    built: bool


class ArtifactCache:
    """A folder of keyed, checksummed artifacts; see the module docstring for the protocol.

    ``namespace`` separates kinds of artifacts (``"trt-engine"``, ``"trt-timing-cache"``)
    into sub-folders; it is not part of the key.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, lock_timeout: float = -1):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        #: Seconds to wait for another process's build; -1 waits forever.
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ArtifactCache({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------
    def paths(self, key_parts: Mapping[str, Any], namespace: str = "artifacts") -> tuple[Path, ...]:
        """``(data path, metadata path, lock path)`` of the entry for ``key_parts``."""
        key = cache_key(key_parts)
        folder = self.root / namespace / key[:2]
        return folder / f"{key}.bin", folder / f"{key}.json", folder / f"{key}.lock"

    # -- reading -----------------------------------------------------------------------
    def get(self, key_parts: Mapping[str, Any], namespace: str = "artifacts") -> bytes | None:
        """The artifact's bytes if a valid entry exists, else None (never raises for a
        missing or corrupt entry)."""
        data_path, meta_path, _ = self.paths(key_parts, namespace)
        return self._read_valid(data_path, meta_path)

    @staticmethod
    def _read_valid(data_path: Path, meta_path: Path) -> bytes | None:
        try:
            meta = json.loads(meta_path.read_text())
            data = data_path.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            return None
        return data

    # -- writing -----------------------------------------------------------------------
    def _lock(self, lock_path: Path) -> Any:
        from filelock import FileLock

        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(lock_path), timeout=self.lock_timeout)

    def _write(
        self, data_path: Path, meta_path: Path, key_parts: Mapping[str, Any], data: bytes
    ) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"a cache build must return bytes, got {type(data).__name__}")
        data = bytes(data)
        meta = {
            "key": data_path.stem,
            "key_parts": dict(key_parts),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "created": time.time(),
        }
        write_bytes_atomically(data_path, data)
        write_bytes_atomically(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())

    def get_or_create(
        self,
        key_parts: Mapping[str, Any],
        build: Callable[[], bytes],
        *,
        namespace: str = "artifacts",
        validate: Callable[[bytes], bool] | None = None,
    ) -> CachedArtifact:
        """Return the cached artifact for ``key_parts``, building and storing it if absent.

        ``build`` runs at most once across all processes sharing the cache for a given
        key (others wait on the key's lock). ``validate`` is an optional extra check on
        cached bytes beyond the checksum (e.g. "the engine deserializes"); an entry
        failing it is rebuilt. The built bytes themselves are not validated.
        """
        data_path, meta_path, lock_path = self.paths(key_parts, namespace)
        key = data_path.stem

        def usable(data: bytes | None) -> bool:
            return data is not None and (validate is None or validate(data))

        data = self._read_valid(data_path, meta_path)
        if data is not None and usable(data):
            return CachedArtifact(data, data_path, key, built=False)

        with self._lock(lock_path):
            data = self._read_valid(data_path, meta_path)  # another process may have built it
            if data is not None and usable(data):
                return CachedArtifact(data, data_path, key, built=False)
            data = bytes(build())
            self._write(data_path, meta_path, key_parts, data)
        return CachedArtifact(data, data_path, key, built=True)

    def update(
        self,
        key_parts: Mapping[str, Any],
        merge: Callable[[bytes | None], bytes | None],
        *,
        namespace: str = "artifacts",
    ) -> bytes | None:
        """Locked read-modify-write: ``merge(current bytes or None) -> new bytes``.

        Used for artifacts that accumulate (TensorRT timing caches). ``merge`` returning
        None leaves the entry as it is. Returns what is stored afterwards.
        """
        data_path, meta_path, lock_path = self.paths(key_parts, namespace)
        with self._lock(lock_path):
            current = self._read_valid(data_path, meta_path)
            new = merge(current)
            if new is None:
                return current
            self._write(data_path, meta_path, key_parts, bytes(new))
            return bytes(new)

    def invalidate(self, key_parts: Mapping[str, Any], namespace: str = "artifacts") -> None:
        """Remove an entry (under its lock), e.g. one whose bytes the backend rejected."""
        data_path, meta_path, lock_path = self.paths(key_parts, namespace)
        with self._lock(lock_path):
            for path in (meta_path, data_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def update_user_file(
    path: str | os.PathLike[str],
    merge: Callable[[bytes | None], bytes | None],
    *,
    lock_timeout: float = -1,
) -> bytes | None:
    """Locked read-modify-write of a file the user named (a TensorRT timing or calibration
    cache): ``merge(current bytes, or None when the file is absent) -> new bytes``.

    Processes sharing the file (xdist workers, parallel CI jobs) take turns on a lock file
    next to it (``<name>.lock``), so one's merge never drops another's. The new bytes are
    written atomically: a reader sees the old file or the new one, and a ``merge`` that
    raises (or returns None) leaves the file as it was, never truncated. Returns what the
    file holds afterwards. OSError when it cannot be read or written."""
    from filelock import FileLock

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.with_name(target.name + ".lock")), timeout=lock_timeout):
        try:
            current: bytes | None = target.read_bytes()
        except FileNotFoundError:
            current = None
        new = merge(current)
        if new is None:
            return current
        write_bytes_atomically(target, bytes(new))
        return bytes(new)
