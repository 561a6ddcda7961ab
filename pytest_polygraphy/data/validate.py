"""Check a feed dict against a model's inputs before it reaches a backend.

A backend given a wrong feed either fails deep inside (a bare onnxruntime traceback) or,
worse, casts or broadcasts silently. ``validate_feed`` names the source, the input, what
the model expects and what was given instead.

Casting policy (values are never changed silently):

* the same dtype passes unchanged; a numpy "safe" cast (``int32`` to ``int64``,
  ``float16`` to ``float32``, ``bool`` to anything numeric) is applied;
* integers to a narrower integer type, or to a floating type, are cast when every value
  survives the round trip exactly (``int64`` data holding small numbers feeds an ``int32``
  input);
* floats to a narrower floating type (``float64`` data to a ``float32``/``float16``/bfloat16
  input) are cast when no finite value overflows; rounding is accepted, as it is the point
  of the narrower type;
* everything else (floats to integers, anything but bools to bool, strings, objects) is
  an InputError.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pytest_polygraphy.data import dtypes
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata, shared_dim_name

#: Symbolic dim name -> (its size, where it was first bound, e.g. ``"x[0]"``).
DimBindings = dict[str, tuple[int, str]]


def validate_feed(
    feed: Mapping[str, object], metadata: TensorMetadata, *, source: str
) -> dict[str, np.ndarray]:
    """Return ``feed`` as ``{input name: ndarray}`` in the model's input order, each array
    cast to the model's dtype by the policy above.

    ``source`` names where the feed came from (a file, a script, "iteration 3 of ...") and
    starts every error message. Raises InputError for an unknown or missing input, a wrong
    rank, a dim that differs from a fixed dim of the model (or from the size the same
    symbolic dim has elsewhere in the feed, or from the shape range), or a dtype that cannot
    be cast without changing values.
    """
    if not isinstance(feed, Mapping):
        raise InputError(
            f"{source}: expected a feed dict {{input name: array}}, got {type(feed).__name__}"
        )
    unknown = [name for name in feed if name not in metadata]
    missing = [name for name in metadata if name not in feed]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown input(s) {unknown}")
        if missing:
            parts.append(f"missing input(s) {missing}")
        raise InputError(f"{source}: {' and '.join(parts)}; the model's inputs are {metadata}")

    bindings: DimBindings = {}
    validated: dict[str, np.ndarray] = {}
    for name, meta in metadata.items():
        array = _as_array(feed[name], meta, source)
        problem = shape_problem(meta, array.shape, bindings)
        if problem is not None:
            raise InputError(
                f"{source}: input {name!r}: expected shape {meta.shape_str()}, "
                f"got {list(array.shape)}: {problem}"
            )
        validated[name] = cast_safely(array, meta, source)
    return validated


def check_given_shapes(
    metadata: TensorMetadata, given: Mapping[str, tuple[int, ...]]
) -> DimBindings:
    """Check the shapes given in ``input_shapes`` (``{input name: shape}``) against the
    model's inputs and against each other: a named dim (``"batch"``) has one size in all
    of them. Returns the size each named dim got, for the inputs not given; raises
    InputError naming the input, the shape and the model's dims."""
    bindings: DimBindings = {}
    for name, shape in given.items():
        meta = metadata[name]
        problem = shape_problem(meta, shape, bindings)
        if problem is not None:
            raise InputError(
                f"input_shapes for input {name!r}: {list(shape)} does not fit the model's "
                f"shape {meta.shape_str()}: {problem}"
            )
    return bindings


def shape_problem(
    meta: TensorMeta, shape: tuple[int, ...], bindings: DimBindings | None = None
) -> str | None:
    """Why ``shape`` cannot be input ``meta``, or None when it fits.

    Fixed dims must match; unknown dims (``None``, negative, ``?``, ``unk__N``, see
    ``shared_dim_name``) are free; a named dim binds to the first size seen for it in
    ``bindings`` (shared across one feed's inputs) when given."""
    if meta.shape is not None:
        if len(shape) != len(meta.shape):
            return f"rank {len(meta.shape)} expected, got rank {len(shape)}"
        for axis, (want, got) in enumerate(zip(meta.shape, shape, strict=True)):
            if isinstance(want, int) and want >= 0 and want != got:
                return f"dim {axis} must be {want}, got {got}"
            symbol = shared_dim_name(want)
            if symbol is not None and bindings is not None:
                size, where = bindings.setdefault(symbol, (got, f"{meta.name}[{axis}]"))
                if size != got:
                    return f"dim {axis} is {symbol!r}, which is {size} in {where}, got {got}"
    if meta.shape_range is not None:
        low, _, high = meta.shape_range
        fits = len(low) == len(shape) and all(
            lo <= dim <= hi for lo, dim, hi in zip(low, shape, high, strict=True)
        )
        if not fits:
            return f"outside the shape range min {list(low)} .. max {list(high)}"
    return None


def cast_safely(array: np.ndarray, meta: TensorMeta, source: str) -> np.ndarray:
    """``array`` cast to ``meta.dtype`` by the module's policy, else InputError."""
    src, dst = array.dtype, meta.dtype
    if src == dst:
        return array
    src_kind, dst_kind = dtypes.kind(src), dtypes.kind(dst)

    def refuse(why: str) -> InputError:
        return InputError(
            f"{source}: input {meta.name!r}: expected dtype {dtypes.name(dst)}, "
            f"got {dtypes.name(src)}: {why}"
        )

    if src_kind == "bool" and dst_kind in ("bool", "int", "float"):
        return array.astype(dst)
    if src_kind == "int" and dst_kind == "int":
        low, high = dtypes.finite_range(dst)
        outside = (array < low) | (array > high) if array.size else np.zeros(array.shape, bool)
        if outside.any():
            index = tuple(int(i) for i in np.argwhere(outside)[0])
            raise refuse(f"value {array[index]} at index {list(index)} is out of its range")
        return array.astype(dst)
    if src_kind == "int" and dst_kind == "float":
        with np.errstate(all="ignore"):
            cast = array.astype(dst)
            changed = cast.astype(src) != array
        if changed.any():
            index = tuple(int(i) for i in np.argwhere(changed)[0])
            raise refuse(f"value {array[index]} at index {list(index)} does not survive the cast")
        return cast
    if src_kind == "float" and dst_kind == "float":
        with np.errstate(all="ignore"):
            cast = array.astype(dst)
            overflow = np.isfinite(array) & ~np.isfinite(cast.astype(np.float64))
        if overflow.any():
            index = tuple(int(i) for i in np.argwhere(overflow)[0])
            raise refuse(f"value {array[index]} at index {list(index)} overflows the model's dtype")
        return cast
    raise refuse("that cast could change values; convert the data first")


def _as_array(value: object, meta: TensorMeta, source: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as err:
        raise InputError(
            f"{source}: input {meta.name!r}: cannot make an array of {type(value).__name__}: {err}"
        ) from err
    if dtypes.kind(array.dtype) == "other" and array.dtype != meta.dtype:
        raise InputError(
            f"{source}: input {meta.name!r}: expected dtype {dtypes.name(meta.dtype)}, "
            f"got {array.dtype}"
        )
    return array
