"""Load and save input feeds: ``.npz`` or Polygraphy's JSON, chosen by the file suffix.

* ``.json``: Polygraphy's format (``polygraphy run --save-inputs`` / ``--load-inputs``), a
  list of feed dicts with base64 ``.npy`` arrays; a file holding one feed dict is one
  iteration.
* ``.npz``: one archive for all iterations, keys ``<iteration>/<input name>`` plus a small
  manifest (see ``npz``). A plain ``np.savez(path, x=..., y=...)`` file without the manifest
  is read as a single feed whose keys are the input names.
* A folder (loading only): its ``.json``/``.npz`` files in name order, as Polygraphy's
  per-iteration folders (``0000000000.json``, ...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pytest_polygraphy.data import npz, polygraphy_json
from pytest_polygraphy.data.files import (
    PathLike,
    folder_files,
    format_of,
    read_bytes,
    write_atomically,
)
from pytest_polygraphy.errors import InputError

Feed = dict[str, np.ndarray]


def load_inputs(path: PathLike) -> list[Feed]:
    """The feeds stored at ``path``, one dict ``{input name: array}`` per iteration."""
    kind = format_of(path, allow_dir=True)
    if kind == "dir":
        return [feed for file in folder_files(path) for feed in load_inputs(file)]
    if kind == "npz":
        return _load_npz(Path(path))
    return _load_json(Path(path))


def save_inputs(path: PathLike, feeds: Iterable[Mapping[str, np.ndarray]]) -> Path:
    """Write ``feeds`` (one mapping per iteration) to ``path`` atomically; returns the path.

    A ``.json`` file is readable by Polygraphy (``--load-inputs``); it cannot hold the
    ``ml_dtypes`` types (bfloat16, float8, int4), which ``.npz`` keeps."""
    kind = format_of(path, allow_dir=False)
    feeds = [_checked_feed(feed, f"{path}: iteration {k}") for k, feed in enumerate(feeds)]
    if kind == "npz":
        arrays = {
            f"{k}/{name}": array for k, feed in enumerate(feeds) for name, array in feed.items()
        }
        return npz.write(path, arrays, {"format": "inputs", "iterations": len(feeds)})
    encoded = [
        polygraphy_json.encode_feed(feed, f"{path}: iteration {k}") for k, feed in enumerate(feeds)
    ]
    text = polygraphy_json.dumps(encoded)
    return write_atomically(path, lambda file: file.write(text.encode()))


def _checked_feed(feed: object, where: str) -> Feed:
    if not isinstance(feed, Mapping) or not all(isinstance(name, str) for name in feed):
        raise InputError(f"{where}: expected a feed dict {{input name: array}}, got {feed!r:.200}")
    return {name: np.asarray(array) for name, array in feed.items()}


def _load_json(path: Path) -> list[Feed]:
    where = str(path)
    decoded = polygraphy_json.loads(read_bytes(path), where)
    if isinstance(decoded, polygraphy_json.DecodedRunResults):
        raise InputError(
            f"{where}: holds run results (outputs), not input feeds; load it with load_run_results"
        )
    items = decoded if isinstance(decoded, list) else [decoded]
    feeds = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not all(
            isinstance(value, np.ndarray) for value in item.values()
        ):
            raise InputError(
                f"{where}: iteration {k} is not a feed dict {{input name: array}}: {item!r:.200}"
            )
        feeds.append(dict(item))
    return feeds


def _load_npz(path: Path) -> list[Feed]:
    arrays, manifest = npz.read(path)
    if manifest is None:
        return [arrays]
    if manifest.get("format") != "inputs":
        raise InputError(
            f"{path}: holds {manifest.get('format')!r} data, not input feeds"
            + ("; load it with load_run_results" if manifest.get("format") == "run_results" else "")
        )
    feeds: list[Feed] = [{} for _ in range(int(manifest.get("iterations", 0)))]
    for key, array in arrays.items():
        index, sep, name = key.partition("/")
        if not sep or not index.isdigit() or int(index) >= len(feeds):
            raise InputError(f"{path}: unexpected entry {key!r} in an inputs file")
        feeds[int(index)][name] = array
    return feeds


def feeds_fingerprint(feeds: Iterable[Mapping[str, Any]]) -> str:
    """A content hash of feeds (names, dtypes, shapes, bytes): what identifies the inputs of
    an int8 calibration or of a debug session's variant."""
    digest = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()
