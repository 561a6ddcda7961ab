"""Synthetic inputs that reproduce Polygraphy's ``DataLoader`` value for value.

Polygraphy's algorithm (0.53), which this module follows so that data made by either tool
is the same bit for bit:

* iteration ``k`` draws from a fresh ``np.random.RandomState(seed + k)``, input after
  input in the model's input order;
* integer inputs: ``randint(min, max + 1, size=shape, dtype=dtype)`` with the range bounds
  truncated by ``int()``, so both ends are included;
* boolean inputs: the same with the bounds passed through ``bool()``;
* floating inputs: ``random_sample(shape) * (max - min) + min`` in float64, then cast to the
  input's dtype; an infinite bound makes the scale that infinity and the shift 0;
* the default range is [0, 1] for every dtype;
* a dynamic dim takes the size given in ``input_shapes``, else the shape range's *min*
  shape (Polygraphy reads a bounded shape's ``min``, then its ``max``), else 1, with a
  warning naming the input;
* an integer input of fixed shape ``[n]`` that is given an ``n``-dim shape in
  ``input_shapes`` is a shape tensor: its values are that shape and nothing is drawn.

Unlike Polygraphy, a shape that does not fit the model, a range that does not fit the
dtype, or a dtype that cannot be generated is an InputError, not a warning and a
fallback. Types Polygraphy cannot generate in numpy (bfloat16, float8, int4 from
``ml_dtypes``) follow the same recipe: floats cast from float64, integers drawn as int64.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from pytest_polygraphy.data import dtypes, options
from pytest_polygraphy.data.options import InputShapes, ValRange
from pytest_polygraphy.data.validate import check_given_shape
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata

Feed = dict[str, np.ndarray]

#: numpy's RandomState accepts seeds in [0, 2**32).
_MAX_SEED = 2**32 - 1


class DataLoader:
    """Generates ``iterations`` random feed dicts for a model's inputs, as Polygraphy does.

    ``val_range`` is an inclusive ``(min, max)`` or a dict of them per input (``""`` for
    the default); ``input_shapes`` is a shape or a dict of shapes per input, likewise.
    The loader knows no model until :meth:`bind` gives it the input metadata.
    """

    def __init__(
        self,
        seed: int = 1,
        iterations: int = 1,
        val_range: ValRange = None,
        input_shapes: InputShapes = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InputError(f"DataLoader seed must be a non-negative int, got {seed!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int | np.integer):
            raise InputError(f"DataLoader iterations must be an int, got {iterations!r}")
        if iterations < 0:
            raise InputError(f"DataLoader iterations must not be negative, got {iterations}")
        if seed + max(int(iterations) - 1, 0) > _MAX_SEED:
            raise InputError(
                f"DataLoader seed + iterations - 1 must stay below 2**32, got seed {seed} "
                f"with {iterations} iterations"
            )
        self.seed = int(seed)
        self.iterations = int(iterations)
        self.val_range = val_range
        self.input_shapes = input_shapes

    def __repr__(self) -> str:
        return (
            f"DataLoader(seed={self.seed}, iterations={self.iterations}, "
            f"val_range={self.val_range!r}, input_shapes={self.input_shapes!r})"
        )

    def bind(self, metadata: TensorMetadata) -> BoundDataLoader:
        """The loader's feeds for a model with these inputs.

        Shapes and ranges are resolved here, once, so that a bad option fails before any
        inference; raises InputError naming the input and the option."""
        options.warn_unknown_names(self.val_range, metadata, "val_range")
        options.warn_unknown_names(self.input_shapes, metadata, "input_shapes")
        plans = [self._plan(meta) for meta in metadata.values()]
        return BoundDataLoader(self.seed, self.iterations, plans)

    def _plan(self, meta: TensorMeta) -> _InputPlan:
        given = options.given_shape(self.input_shapes, meta.name)
        kind = dtypes.kind(meta.dtype)
        if kind == "other":
            raise InputError(
                f"input {meta.name!r}: cannot generate data of dtype {meta.dtype}; "
                f"load inputs from a file or a data loader script instead"
            )
        if (
            given is not None
            and kind == "int"
            and options.is_named(self.input_shapes, meta.name)
            and _is_shape_tensor(meta, given)
        ):
            return _InputPlan(meta.name, meta.dtype, tuple(meta.shape or ()), "values", given)
        low, high = options.value_range(self.val_range, meta.name, meta.dtype)
        return _InputPlan(meta.name, meta.dtype, _static_shape(meta, given), kind, (low, high))


class BoundDataLoader(Sequence[Feed]):
    """The feeds of a :class:`DataLoader` for one model: ``len()`` is the iteration count,
    indexing generates iteration ``k`` afresh (same values every time), iteration repeats."""

    def __init__(self, seed: int, iterations: int, plans: list[_InputPlan]) -> None:
        self.seed = seed
        self.iterations = iterations
        self._plans = plans

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The concrete shape each input is generated with."""
        return {plan.name: plan.shape for plan in self._plans}

    def __len__(self) -> int:
        return self.iterations

    @overload
    def __getitem__(self, index: int) -> Feed: ...
    @overload
    def __getitem__(self, index: slice) -> list[Feed]: ...
    def __getitem__(self, index: int | slice) -> Feed | list[Feed]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(self.iterations))]
        if index < 0:
            index += self.iterations
        if not 0 <= index < self.iterations:
            raise IndexError(f"iteration {index} out of range for {self.iterations} iterations")
        rng = np.random.RandomState(self.seed + index)
        return {plan.name: plan.generate(rng) for plan in self._plans}

    def __iter__(self) -> Iterator[Feed]:
        for index in range(self.iterations):
            yield self[index]

    def __repr__(self) -> str:
        return (
            f"BoundDataLoader(seed={self.seed}, iterations={self.iterations}, shapes={self.shapes})"
        )


@dataclass(frozen=True)
class _InputPlan:
    """How to make one input: its dtype, concrete shape, kind and range (or fixed values)."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    kind: str  # "int" | "bool" | "float" | "values"
    bounds: tuple  # (min, max), or the values of a shape tensor

    def generate(self, rng: np.random.RandomState) -> np.ndarray:
        if self.kind == "values":
            return np.array(self.bounds, dtype=self.dtype)
        if self.kind in ("int", "bool"):
            low, high = self.bounds
            draw_dtype = np.int64 if dtypes.is_extension(self.dtype) else self.dtype
            drawn = rng.randint(low=low, high=high + 1, size=self.shape, dtype=draw_dtype)
            return np.array(drawn).astype(self.dtype, copy=False)
        low, high = self.bounds
        scale, shift = high - low, low
        if math.isinf(low):
            scale, shift = low, 0.0
        if math.isinf(high):
            scale = high
        with np.errstate(invalid="ignore"):
            return np.array((rng.random_sample(size=self.shape) * scale + shift).astype(self.dtype))


def _is_shape_tensor(meta: TensorMeta, given: tuple[int, ...]) -> bool:
    shape = meta.shape
    return shape is not None and not meta.is_dynamic and len(shape) == 1 and len(given) == shape[0]


def _static_shape(meta: TensorMeta, given: tuple[int, ...] | None) -> tuple[int, ...]:
    if given is not None:
        return check_given_shape(meta, given)
    if not meta.is_dynamic:
        return tuple(meta.shape or ())
    if meta.shape_range is not None:
        return tuple(int(d) for d in meta.shape_range[0])
    if meta.shape is None:
        raise InputError(f"input {meta.name!r} has an unknown rank; give its shape in input_shapes")
    static = tuple(d if isinstance(d, int) and d >= 0 else 1 for d in meta.shape)
    warnings.warn(
        f"input {meta.name!r} has dynamic shape {meta.shape_str()}; generating shape "
        f"{list(static)}. Give input_shapes to choose another.",
        stacklevel=4,
    )
    return static
