"""Hypothesis strategies that draw feed dicts for a model's inputs.

Hypothesis draws only a few small choices per input and numpy builds the arrays from them,
so drawing stays fast for large tensors and a failure shrinks to a simple input:

* dynamic dims, each in ``[1, max_dim]`` (within the shape range when the metadata has one;
  dims sharing a name share their size, also with a shape ``input_shapes`` fixes; ``?``,
  ``-1`` and ``unk__N`` dims are each drawn alone), unless ``input_shapes`` fixes the shape;
* a seed for numpy's generator (shrinks toward 0);
* a scale in [0, 1] (shrinks toward 0): values are drawn from the bottom ``scale`` part of
  the input's range, so the shrunk input is constant at the range's minimum;
* an ``edges`` flag (shrinks toward off): when on, about one element in eight is set to the
  range's minimum and one in eight to its maximum, the values most likely to break a model.

Every value lies within the input's ``val_range`` (Polygraphy's semantics: inclusive, per
input with a ``""`` default, [0, 1] by default), compared in the input's own dtype.

hypothesis is an extra (``pytest-polygraphy[hypothesis]``), not a requirement: installed,
its own pytest plugin loads on every pytest start. Importing this module without it raises
``ModuleNotFoundError`` saying what to install.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pytest_polygraphy.data import dtypes, options
from pytest_polygraphy.data.options import InputShapes, ValRange
from pytest_polygraphy.data.validate import check_given_shapes
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata, shared_dim_name

#: What to install when hypothesis is missing.
INSTALL_HINT = (
    "pytest_polygraphy.strategies needs hypothesis, an optional dependency: "
    'pip install "pytest-polygraphy[hypothesis]" (or pip install hypothesis)'
)

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as err:
    if err.name != "hypothesis":
        raise
    raise ModuleNotFoundError(INSTALL_HINT, name="hypothesis") from err

Feed = dict[str, np.ndarray]
_Draw = Callable[[st.SearchStrategy], object]


def feeds(
    metadata: TensorMetadata,
    *,
    val_range: ValRange = None,
    input_shapes: InputShapes = None,
    max_dim: int = 4,
) -> st.SearchStrategy[Feed]:
    """A strategy of feed dicts ``{input name: ndarray}`` for inputs ``metadata``.

    Raises InputError now (not during the test) for a range that does not fit an input's
    dtype, a shape that does not fit the model, an unknown-rank input without a shape,
    or a dtype that cannot be drawn."""
    if max_dim < 1:
        raise InputError(f"max_dim must be at least 1, got {max_dim}")
    options.check_names(val_range, metadata, "val_range")
    options.check_names(input_shapes, metadata, "input_shapes")
    ranges = {}
    for meta in metadata.values():
        if dtypes.kind(meta.dtype) == "other":
            raise InputError(f"input {meta.name!r}: cannot draw data of dtype {meta.dtype}")
        low, high = options.value_range(val_range, meta.name, meta.dtype)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InputError(
                f"val_range for input {meta.name!r}: strategies need finite bounds, "
                f"got [{low}, {high}]"
            )
        ranges[meta.name] = (low, high)
    fixed = {name: _fixed_shape(meta, input_shapes) for name, meta in metadata.items()}
    given = {name: shape for name, shape in fixed.items() if shape is not None}
    bound = {symbol: size for symbol, (size, _) in check_given_shapes(metadata, given).items()}

    @st.composite
    def draw_feed(draw: _Draw) -> Feed:
        sizes = dict(bound)
        feed = {}
        for name, meta in metadata.items():
            shape = fixed[name] or _draw_shape(draw, meta, sizes, max_dim)
            seed = draw(st.integers(0, 2**32 - 1))
            scale = draw(st.floats(0.0, 1.0))
            edges = draw(st.booleans())
            feed[name] = _build(meta.dtype, shape, ranges[name], seed, scale, edges)
        return feed

    return draw_feed()


def _fixed_shape(meta: TensorMeta, input_shapes: InputShapes) -> tuple[int, ...] | None:
    given = options.given_shape(input_shapes, meta.name)
    if given is not None:
        return given
    if meta.shape is None:
        raise InputError(f"input {meta.name!r} has an unknown rank; give its shape in input_shapes")
    return tuple(meta.shape) if not meta.is_dynamic else None  # type: ignore[arg-type]


def _draw_shape(
    draw: _Draw, meta: TensorMeta, sizes: dict[str, int], max_dim: int
) -> tuple[int, ...]:
    shape = []
    for axis, dim in enumerate(meta.shape or ()):
        if isinstance(dim, int) and dim >= 0:
            shape.append(dim)
            continue
        low, high = 1, max_dim
        if meta.shape_range is not None:
            low = meta.shape_range[0][axis]
            high = max(low, min(meta.shape_range[2][axis], max_dim))
        symbol = shared_dim_name(dim)
        if symbol is not None:
            if symbol not in sizes:
                sizes[symbol] = draw(st.integers(low, high))
            shape.append(sizes[symbol])
        else:
            shape.append(draw(st.integers(low, high)))
    return tuple(shape)


def _build(
    dtype: np.dtype,
    shape: tuple[int, ...],
    bounds: tuple[float, float],
    seed: int,
    scale: float,
    edges: bool,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = bounds
    if dtypes.kind(dtype) == "float":
        values = low + (high - low) * scale * rng.random(shape)
        array = np.asarray(values).astype(dtype)
    else:
        # bools are drawn as 0/1; integer bounds stay Python ints (exact for 64-bit ranges)
        low, high = int(low), int(high)
        top = min(high, low + int(scale * (high - low)))
        draw_dtype = (
            np.int64 if dtypes.kind(dtype) == "bool" or dtypes.is_extension(dtype) else dtype
        )
        array = rng.integers(low, top, size=shape, dtype=draw_dtype, endpoint=True).astype(dtype)
    if edges:
        pick = rng.random(shape)
        array = np.array(array)
        array[pick < 0.125] = np.asarray(low).astype(dtype)
        array[pick > 0.875] = np.asarray(high).astype(dtype)
    if dtypes.kind(dtype) == "float":
        # rounding into a narrower float type may step just past a bound it cannot hold
        array = np.clip(array, np.asarray(low).astype(dtype), np.asarray(high).astype(dtype))
    return np.asarray(array, dtype=dtype)
