"""Parsing of the ``polygraphy run`` data and results options: which outputs to compare,
data loader scripts, postprocessing, and the TensorRT build options.

Each parser takes the value as the command line, the ini file or a per-model settings file
gives it and returns the value ``PolygraphyOptions`` and ``AccuracySettings`` hold, or
raises ``OptionValueError`` saying what is accepted. Stdlib only (the plugin entry point
imports this module through ``optionspecs``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_polygraphy.plugin.syntax import OptionValueError, split_all, split_name

#: ``outputs`` value that marks every tensor as an output (Polygraphy's ``mark all``).
MARK_ALL = "mark-all"
#: The function a data loader script is called by when none is named (as in Polygraphy).
DEFAULT_LOADER_FUNCTION = "load_data"
SAVE_FORMATS = ("npz", "json")

#: ``(k, axis)`` of a Top-K postprocessing; axis ``None`` is the last axis.
TopK = tuple[int, int | None]


def parse_outputs(value: Any) -> str | tuple[str, ...]:
    """``["mark", "all"]`` (or ``"mark all"``, ``mark-all``) -> ``MARK_ALL``; names ->
    a tuple of names (duplicates dropped, order kept)."""
    items = split_all([value] if isinstance(value, str) else value)
    if [item.lower() for item in items] in (["mark", "all"], [MARK_ALL]):
        return MARK_ALL
    if not items:
        raise OptionValueError("expected output names, or 'mark all' for every tensor")
    if any(item.lower() == "mark" for item in items) or MARK_ALL in items:
        raise OptionValueError(
            f"'mark all' stands alone (it marks every tensor); got {' '.join(items)!r}"
        )
    return tuple(dict.fromkeys(items))


def parse_names(value: Any) -> tuple[str, ...]:
    """Tensor names (``--polygraphy-exclude-outputs a b``), duplicates dropped."""
    items = split_all([value] if isinstance(value, str) else value)
    if not items:
        raise OptionValueError("expected tensor names")
    return tuple(dict.fromkeys(items))


def split_script(spec: str) -> tuple[str, str]:
    """``"loader.py:make"`` -> ``("loader.py", "make")``; ``"loader.py"`` -> ``(...,
    "load_data")``. The last colon separates the function only when an identifier follows
    it (``C:\\data.py`` keeps its drive)."""
    drive, rest = os.path.splitdrive(spec)
    path, sep, function = rest.rpartition(":")
    if not sep or not function.isidentifier():
        return drive + rest, DEFAULT_LOADER_FUNCTION
    return drive + path, function


def parse_script(value: Any, base: Path) -> str:
    """A data loader script ``FILE[:FUNCTION]`` -> ``"/abs/FILE:FUNCTION"`` (FILE relative
    to ``base``); the file must exist and be a ``.py`` file."""
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise OptionValueError(f"expected one script FILE.py[:FUNCTION], got {len(value)}")
        value = value[0]
    if not isinstance(value, str) or not value:
        raise OptionValueError(f"expected a script FILE.py[:FUNCTION], got {value!r}")
    path_text, function = split_script(value)
    path = Path(path_text)
    if not path.is_absolute():
        path = base / path
    if path.suffix != ".py":
        raise OptionValueError(
            f"expected a Python script FILE.py[:FUNCTION], got {value!r} (inputs files are "
            "loaded with load_inputs)"
        )
    if not path.is_file():
        raise OptionValueError(f"no such data loader script: {path}")
    return f"{path}:{function}"


_TOP_K = re.compile(r"top-(\d+)(?:,axis=(-?\d+))?")


def parse_postprocess(items: Iterable[str] | Mapping[str, Any] | str) -> dict[str, TopK]:
    """``["logits:top-5", "top-3,axis=1"]`` -> ``{"logits": (5, None), "": (3, 1)}``.

    Polygraphy's ``--postprocess [OUTPUT:]top-K[,axis=A]``: each output named (or matched
    by a pattern; a bare item is every other output) is replaced, before comparison, by the
    indices of its K largest values along the axis (default: the last)."""
    if isinstance(items, Mapping):
        pairs = [(str(name), str(text)) for name, text in items.items()]
    else:
        pairs = [
            split_name(item) for item in split_all([items] if isinstance(items, str) else items)
        ]
    if not pairs:
        raise OptionValueError("expected [OUTPUT:]top-K[,axis=A] items, e.g. logits:top-5")
    parsed: dict[str, TopK] = {}
    for name, text in pairs:
        match = _TOP_K.fullmatch(text.strip())
        if match is None or int(match.group(1)) < 1:
            where = f" for {name!r}" if name else ""
            raise OptionValueError(
                f"expected a postprocessing function top-K[,axis=A] with K >= 1{where} "
                f"(e.g. logits:top-5), got {text!r}"
            )
        axis = match.group(2)
        parsed[name] = (int(match.group(1)), None if axis is None else int(axis))
    return parsed


def format_postprocess(value: Mapping[str, TopK]) -> list[str]:
    """The command-line items of a parsed postprocessing dict."""
    items = []
    for name, (k, axis) in value.items():
        text = f"top-{k}" + ("" if axis is None else f",axis={axis}")
        items.append(f"{name}:{text}" if name else text)
    return items


# -- TensorRT build options ----------------------------------------------------------------
#: Names of ``--polygraphy-trt-pool-limit`` pools and ``--polygraphy-trt-tactic-sources``
#: (kept in step with ``runners.trt_settings``, which this stdlib-only module cannot import).
MEMORY_POOLS = (
    "workspace",
    "dla_managed_sram",
    "dla_local_dram",
    "dla_global_dram",
    "tactic_dram",
    "tactic_shared_memory",
)
TACTIC_SOURCES = ("cublas", "cublas_lt", "cudnn", "edge_mask_convolutions", "jit_convolutions")
PRECISION_CONSTRAINTS = ("obey", "prefer", "none")
_SIZE = re.compile(r"(\d+(?:\.\d*)?(?:e\d+)?)([KMG]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_pool_limits(items: Iterable[str] | Mapping[str, Any] | str) -> dict[str, int]:
    """``["workspace:1G", "tactic_dram:512M"]`` -> ``{"workspace": 1073741824, ...}``
    (as Polygraphy's ``--pool-limit``; K, M, G are powers of 1024)."""
    if isinstance(items, Mapping):
        pairs = [(str(k), str(v)) for k, v in items.items()]
    else:
        pairs = [split_name(i) for i in split_all([items] if isinstance(items, str) else items)]
    limits: dict[str, int] = {}
    for pool, text in pairs:
        if pool not in MEMORY_POOLS:
            raise OptionValueError(
                f"expected POOL:SIZE with a pool among {', '.join(MEMORY_POOLS)}, got "
                f"{f'{pool}:{text}' if pool else text!r}"
            )
        match = _SIZE.fullmatch(text.strip())
        if match is None:
            raise OptionValueError(
                f"size of pool {pool!r}: expected e.g. 1G, 512M or 1e9, got {text!r}"
            )
        limits[pool] = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    return limits


def parse_tactic_sources(value: Any) -> tuple[str, ...]:
    """Tactic source names (case-insensitive), e.g. ``cublas cudnn``."""
    names = [item.lower() for item in split_all([value] if isinstance(value, str) else value)]
    unknown = [name for name in names if name not in TACTIC_SOURCES]
    if unknown or not names:
        raise OptionValueError(
            f"expected tactic sources among {', '.join(TACTIC_SOURCES)}, got {unknown or names}"
        )
    return tuple(dict.fromkeys(names))


def parse_optimization_level(value: Any) -> int:
    """TensorRT's builder optimization level, 0 to 5."""
    from pytest_polygraphy.plugin.syntax import parse_int

    level = parse_int(value, "the builder optimization level", 0)
    if level > 5:
        raise OptionValueError(f"the builder optimization level must be 0 to 5, got {value!r}")
    return level
