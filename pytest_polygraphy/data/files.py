"""Atomic file writes and the suffix dispatch shared by the data file formats."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pytest_polygraphy.errors import InputError

PathLike = str | os.PathLike[str]


def write_atomically(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a new file at ``path`` through ``write(file)``, atomically: readers see the old
    file or the complete new one, never a partial write, and a failed write leaves no file.

    Parent folders are created. Returns the path written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err}") from err
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        os.replace(tmp_name, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(err, OSError):
            raise InputError(f"{path}: cannot write: {err}") from err
        raise
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def format_of(path: PathLike, *, allow_dir: bool) -> str:
    """``"json"``, ``"npz"`` or ``"dir"`` for a data file path, else InputError."""
    path = Path(path)
    if allow_dir and path.is_dir():
        return "dir"
    suffix = path.suffix.lower()
    if suffix in (".json", ".npz"):
        return suffix[1:]
    accepted = "a .json or .npz file" + (", or a folder of them" if allow_dir else "")
    raise InputError(f"{path}: unsupported data file; expected {accepted}")


def read_bytes(path: PathLike) -> bytes:
    """The file's content, or InputError naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from err


def folder_files(path: PathLike) -> list[Path]:
    """The ``*.json`` and ``*.npz`` files of a folder in name order (Polygraphy writes one
    zero-padded ``<iteration>.json`` per iteration, so name order is iteration order)."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in (".json", ".npz"))
    if not files:
        raise InputError(f"{path}: the folder holds no .json or .npz data files")
    return files
