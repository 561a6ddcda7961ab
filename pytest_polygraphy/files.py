"""Atomic file writes: every file the project writes (data files, golden outputs, cached
engines, reports) goes through here, so a reader sees the old file or the complete new
one, never a partial write, even with many xdist workers writing side by side. And what
tells one version of a file from another (``file_version``), for what is cached per file."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from stat import S_ISREG
from typing import IO

PathLike = str | os.PathLike[str]


def write_atomically(
    path: PathLike, write: Callable[[IO[bytes]], None], *, durable: bool = True
) -> Path:
    """Write a new file at ``path`` through ``write(file)``: into a temporary file in the
    same folder, synced, then renamed over ``path``. A failed write leaves no file behind
    and the old one intact. Parent folders are created. Returns the path written.

    ``durable=False`` skips the sync (a few milliseconds each on some disks): the rename
    still makes the write atomic for every reader and survives a killed process, but not
    a power loss. For files that are recomputed anyway, such as debug-session variants.

    Raises OSError when the file cannot be written; callers turn it into their own error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp's 0600 hides the file from others
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path


def write_bytes_atomically(path: PathLike, data: bytes, *, durable: bool = True) -> Path:
    """``write_atomically`` for bytes already in memory."""
    return write_atomically(path, lambda file: file.write(data), durable=durable)


@functools.cache
def current_umask() -> int:
    """The process umask, read once: by setting it and back (there is no getter), which
    another thread creating a file meanwhile would see."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def folder_write_problem(folder: PathLike) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing), or None when they
    can. Tried for real (a temporary file created and removed), since permission bits do
    not tell: root ignores them, and read-only mounts do not show in them."""
    folder = Path(folder)
    existing = next((f for f in (folder, *folder.parents) if f.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".pytest-polygraphy-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        return err.strerror or str(err)
    return None


def file_version(path: PathLike) -> tuple[int, int, int, int] | None:
    """What tells one version of a file from another: its device, inode, size and
    modification time (a rewrite changes the last two, a replace the inode even when it
    keeps them); None when ``path`` is not a regular file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
