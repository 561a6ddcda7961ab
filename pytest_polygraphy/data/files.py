"""Atomic writes (as InputError) and the suffix dispatch shared by the data file formats."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pytest_polygraphy import files
from pytest_polygraphy.errors import InputError

PathLike = str | os.PathLike[str]


def write_atomically(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """``files.write_atomically``, with a failure to write reported as an InputError
    naming the file."""
    try:
        return files.write_atomically(path, write)
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err}") from err


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
