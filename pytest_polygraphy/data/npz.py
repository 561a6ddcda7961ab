"""The ``.npz`` container under pytest-polygraphy's input and run-result files.

A file written here is an ordinary ``np.savez`` archive plus one manifest entry, the key
``__pytest_polygraphy__``: a uint8 array holding UTF-8 JSON ``{"format": "inputs" |
"run_results", "version": 1, "dtypes": {key: dtype name}, ...}``. ``dtypes`` records the
arrays whose dtype ``.npy`` cannot describe (bfloat16, float8, int4 from ``ml_dtypes``);
they are stored as unsigned integers of the same width and viewed back on load. The key
scheme of the other entries is up to the format (see ``formats`` and ``results``).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pytest_polygraphy.data import dtypes
from pytest_polygraphy.data.files import PathLike, write_atomically
from pytest_polygraphy.errors import InputError

MANIFEST_KEY = "__pytest_polygraphy__"
VERSION = 1


def write(path: PathLike, arrays: Mapping[str, np.ndarray], manifest: dict[str, Any]) -> Path:
    """Atomically write ``arrays`` (in order) and ``manifest`` to ``path``."""
    stored: dict[str, np.ndarray] = {}
    extension: dict[str, str] = {}
    for key, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise InputError(f"{path}: {key!r} is an object array, which .npz cannot hold safely")
        if dtypes.is_extension(array.dtype):
            extension[key] = dtypes.name(array.dtype)
        stored[key] = dtypes.storage_view(array)
    meta = {**manifest, "version": VERSION, "dtypes": extension}
    stored[MANIFEST_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def dump(file: Any) -> None:
        # A dict passed through ** cannot clash with savez's own parameter names: every key
        # here holds a "/" or is the manifest key.
        np.savez(file, **stored)

    return write_atomically(path, dump)


def read(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """``(arrays in file order, manifest or None for a plain np.savez file)``."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise InputError(f"{path}: holds a single .npy array, not an .npz archive")
        with archive:
            arrays = {key: archive[key] for key in archive.files}
    except InputError:
        raise
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        # A damaged archive raises any of these from zipfile (a flipped bit in a header
        # reads as "File ... is encrypted" RuntimeError, in the data as a bad CRC).
        raise InputError(f"{path}: not a readable .npz file (damaged?): {err}") from err
    raw = arrays.pop(MANIFEST_KEY, None)
    if raw is None:
        return arrays, None
    try:
        manifest = json.loads(raw.tobytes().decode())
        for key, dtype_name in manifest.get("dtypes", {}).items():
            arrays[key] = arrays[key].view(dtypes.from_name(dtype_name))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise InputError(f"{path}: corrupt pytest-polygraphy manifest: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        raise InputError(
            f"{path}: written by an unknown version of pytest-polygraphy's format "
            f"({manifest.get('version') if isinstance(manifest, dict) else manifest!r})"
        )
    return arrays, manifest
