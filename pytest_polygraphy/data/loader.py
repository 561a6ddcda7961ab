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
  warning naming the input; unlike Polygraphy, a named dim (``"batch"``) of an input not
  given takes the size that name has in the given shapes, so ``input:[2,512]`` makes
  ``state: [2,batch,128]`` ``[2,2,128]`` (``?``, ``-1`` and ``unk__N`` stay independent);
* an integer input of fixed shape ``[n]`` that is given an ``n``-dim shape in
  ``input_shapes`` is a shape tensor: its values are that shape and nothing is drawn.

Unlike Polygraphy, a shape that does not fit the model (or another given shape), a range
that does not fit the dtype, an option entry that names no input, or a dtype that cannot
be generated is an InputError, not a warning and a fallback. Types Polygraphy cannot
generate in numpy (bfloat16, float8, int4 from ``ml_dtypes``) follow the same recipe:
floats cast from float64, integers drawn as int64.
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
from pytest_polygraphy.data.validate import DimBindings, check_given_shapes, shape_problem
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata, shared_dim_name

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
        inference; raises InputError naming the input and the option, also for an entry
        of ``val_range`` or ``input_shapes`` that names no input of the model."""
        options.check_names(self.val_range, metadata, "val_range")
        options.check_names(self.input_shapes, metadata, "input_shapes")
        given = {name: options.given_shape(self.input_shapes, name) for name in metadata}
        values = {
            name: shape
            for name, shape in given.items()
            if shape is not None and _is_shape_tensor(metadata[name], shape, self.input_shapes)
        }
        defaulted: set[str] = set()
        shapes = _concrete_shapes(
            metadata,
            {n: s for n, s in given.items() if s is not None and n not in values},
            defaulted,
        )
        plans = [
            self._plan(meta, shapes[name], values.get(name)) for name, meta in metadata.items()
        ]
        guessed = {name: shapes[name] for name in metadata if name in defaulted}
        return BoundDataLoader(self.seed, self.iterations, plans, guessed)

    def _plan(
        self, meta: TensorMeta, shape: tuple[int, ...], values: tuple[int, ...] | None
    ) -> _InputPlan:
        if values is not None:
            return _InputPlan(meta.name, meta.dtype, shape, "values", values)
        kind = dtypes.kind(meta.dtype)
        low, high = options.value_range(self.val_range, meta.name, meta.dtype)
        return _InputPlan(meta.name, meta.dtype, shape, kind, (low, high))


class LoadedFeeds(list[Feed]):
    """Feeds given as they are (loaded with ``--polygraphy-load-inputs``, or a debug
    session's variant): a list that also has ``DataLoader``'s ``bind``, so that a test
    written against the ``data_loader`` fixture (``data_loader.bind(runner.input_metadata)``)
    runs with either. ``bind`` returns the feeds themselves: they are already concrete,
    and the runner checks each against the model when it runs it."""

    def bind(self, metadata: TensorMetadata) -> LoadedFeeds:
        return self


class BoundDataLoader(Sequence[Feed]):
    """The feeds of a :class:`DataLoader` for one model: ``len()`` is the iteration count,
    indexing generates iteration ``k`` afresh (same values every time), iteration repeats."""

    def __init__(
        self,
        seed: int,
        iterations: int,
        plans: list[_InputPlan],
        defaulted: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.seed = seed
        self.iterations = iterations
        self._plans = plans
        #: Inputs with a dynamic dim that nothing sized, generated with it set to 1 (as
        #: Polygraphy does), by name, with the shape generated: a failure on such a shape
        #: may come from the shape, and the test's failure says so.
        self.defaulted: dict[str, tuple[int, ...]] = defaulted or {}

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


def _is_shape_tensor(meta: TensorMeta, given: tuple[int, ...], input_shapes: InputShapes) -> bool:
    """An integer input of fixed shape ``[n]`` given an ``n``-dim shape of its own: the
    shape is its values (Polygraphy's shape-tensor rule)."""
    shape = meta.shape
    return (
        dtypes.kind(meta.dtype) == "int"
        and options.is_named(input_shapes, meta.name)
        and shape is not None
        and not meta.is_dynamic
        and len(shape) == 1
        and len(given) == shape[0]
    )


def _concrete_shapes(
    metadata: TensorMetadata, given: dict[str, tuple[int, ...]], defaulted: set[str]
) -> dict[str, tuple[int, ...]]:
    """The shape every input is generated with.

    ``given`` shapes are checked against the model and each other. Another input's dynamic
    dim takes, in this order: the size its name (``"batch"``) has in a given shape or an
    earlier input, the shape range's min, or 1 with a warning naming the input (and the
    input's name added to ``defaulted``)."""
    for meta in metadata.values():
        if dtypes.kind(meta.dtype) == "other":
            raise InputError(
                f"input {meta.name!r}: cannot generate data of dtype {meta.dtype}; "
                f"load inputs from a file or a data loader script instead"
            )
    bindings = check_given_shapes(metadata, given)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, meta in metadata.items():
        shapes[name] = given[name] if name in given else _generated_shape(meta, bindings, defaulted)
    return shapes


def _generated_shape(
    meta: TensorMeta, bindings: DimBindings, defaulted: set[str]
) -> tuple[int, ...]:
    if meta.shape is None:
        raise InputError(f"input {meta.name!r} has an unknown rank; give its shape in input_shapes")
    if not meta.is_dynamic:
        return tuple(meta.shape)  # type: ignore[arg-type]
    low = meta.shape_range[0] if meta.shape_range is not None else None
    dims: list[int] = []
    any_defaulted = False
    for axis, dim in enumerate(meta.shape):
        symbol = shared_dim_name(dim)
        if isinstance(dim, int) and dim >= 0:
            dims.append(dim)
        elif symbol is not None and symbol in bindings:
            dims.append(bindings[symbol][0])
        elif low is not None:
            dims.append(int(low[axis]))
        else:
            dims.append(1)
            any_defaulted = True
        if symbol is not None:
            bindings.setdefault(symbol, (dims[-1], f"{meta.name}[{axis}]"))
    shape = tuple(dims)
    problem = shape_problem(meta, shape)
    if problem is not None:
        raise InputError(
            f"input {meta.name!r}: the shape its named dims take from the other inputs, "
            f"{list(shape)}, does not fit: {problem}; give its shape in input_shapes"
        )
    if any_defaulted:
        defaulted.add(meta.name)
        warnings.warn(
            f"input {meta.name!r} has dynamic shape {meta.shape_str()}; generating shape "
            f"{list(shape)}. Give input_shapes to choose another.",
            stacklevel=4,
        )
    return shape
