"""A test's TensorRT optimization profiles.

Explicit profiles come from ``--polygraphy-trt-min-shapes`` / ``-opt-shapes`` /
``-max-shapes`` (their ini twins, the sidecar keys ``trt_min_shapes`` / ``trt_opt_shapes``
/ ``trt_max_shapes``): the k-th occurrence of each option makes profile k, as in
Polygraphy. Without them, ONE profile covers every shape set the test is parametrized
with: for each dynamic input, min is the elementwise minimum and max the elementwise
maximum of its shapes over the shape sets, and opt is its shape in the FIRST shape set
(a shape the tests really run, chosen by listing it first). So the engine is built once
per model, not once per shape set, and the runner cache keys TensorRT runners by this
profile set (``AccuracySettings.trt_profile_key``).

Shapes are resolved as the data loader resolves them (wildcard names, named dims shared
between inputs), so the profile holds exactly the shapes the tests feed. Imported when a
TensorRT runner is built.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import InputError

if TYPE_CHECKING:
    from pytest_polygraphy.metadata import TensorMetadata
    from pytest_polygraphy.plugin.settings import AccuracySettings
    from pytest_polygraphy.runners.trt_settings import ShapeTriple

Profile = dict[str, "ShapeTriple"]

_OPTIONS = ("trt_min_shapes", "trt_opt_shapes", "trt_max_shapes")


def trt_profiles(settings: AccuracySettings, inputs: TensorMetadata) -> tuple[Profile, ...]:
    """The optimization profiles of a TensorRT runner for a model with ``inputs``: the
    explicit ones, else one covering the test's shape sets, else none (empty)."""
    if settings.trt_min_shapes or settings.trt_opt_shapes or settings.trt_max_shapes:
        return explicit_profiles(
            settings.trt_min_shapes, settings.trt_opt_shapes, settings.trt_max_shapes, inputs
        )
    if settings.parametrized_shapes:
        profile = covering_profile(settings.parametrized_shapes, inputs)
        return (profile,) if profile else ()
    return ()


def explicit_profiles(
    mins: Sequence[Mapping[str, Sequence[int]]],
    opts: Sequence[Mapping[str, Sequence[int]]],
    maxs: Sequence[Mapping[str, Sequence[int]]],
    inputs: TensorMetadata,
) -> tuple[Profile, ...]:
    """Profile k from the k-th min, opt and max shape sets, checked against each other and
    the model: as many of each, the same inputs in each, inputs of the model, the model's
    rank and fixed dims, ``min <= opt <= max`` in every dim. InputError naming the
    profile, the input and what is wrong."""
    counts = dict(zip(_OPTIONS, (len(mins), len(opts), len(maxs)), strict=True))
    if len(set(counts.values())) != 1:
        given = ", ".join(f"{count} {name}" for name, count in counts.items())
        raise InputError(
            f"TensorRT profiles: got {given}; each profile needs one shape set of each "
            "(repeat --polygraphy-trt-min-shapes, -opt-shapes and -max-shapes once per profile)"
        )
    profiles = []
    for index, (lo_set, opt_set, hi_set) in enumerate(zip(mins, opts, maxs, strict=True)):
        where = f"TensorRT profile {index}"
        names = [sorted(lo_set), sorted(opt_set), sorted(hi_set)]
        if not names[0] == names[1] == names[2]:
            listing = ", ".join(
                f"{option} {found}" for option, found in zip(_OPTIONS, names, strict=True)
            )
            raise InputError(f"{where}: min, opt and max must name the same inputs; got {listing}")
        profile: Profile = {}
        for name in names[0]:
            _check_input(name, inputs, where)
            lo, opt, hi = (tuple(int(d) for d in s[name]) for s in (lo_set, opt_set, hi_set))
            if not len(lo) == len(opt) == len(hi):
                raise InputError(
                    f"{where}, input {name!r}: min {list(lo)}, opt {list(opt)} and max "
                    f"{list(hi)} have different ranks"
                )
            bad = [
                axis
                for axis, (a, b, c) in enumerate(zip(lo, opt, hi, strict=True))
                if not a <= b <= c
            ]
            if bad:
                raise InputError(
                    f"{where}, input {name!r}: min <= opt <= max must hold in every dim, but "
                    f"not in dim {bad[0]} of min {list(lo)}, opt {list(opt)}, max {list(hi)}"
                )
            for shape in (lo, opt, hi):
                _check_fits(name, shape, inputs, where)
            profile[name] = (lo, opt, hi)
        profiles.append(profile)
    return tuple(profiles)


def covering_profile(
    shape_sets: Sequence[Mapping[str, Sequence[int]]], inputs: TensorMetadata
) -> Profile:
    """One profile holding every shape set: for each dynamic input, min/max are the
    elementwise min/max of its shapes over the sets, opt its shape in the first set.
    Shapes are resolved as the data loader resolves them."""
    from pytest_polygraphy.data import DataLoader

    resolved = [
        DataLoader(input_shapes=dict(shape_set)).bind(inputs).shapes for shape_set in shape_sets
    ]
    profile: Profile = {}
    for name, meta in inputs.items():
        if not meta.is_dynamic:
            continue
        shapes = [tuple(shapes[name]) for shapes in resolved]
        ranks = {len(shape) for shape in shapes}
        if len(ranks) != 1:
            raise InputError(
                f"TensorRT profile: input {name!r} has shapes of different ranks in the "
                f"test's shape sets ({[list(s) for s in shapes]}); one profile cannot hold them"
            )
        lo = tuple(min(dims) for dims in zip(*shapes, strict=True))
        hi = tuple(max(dims) for dims in zip(*shapes, strict=True))
        profile[name] = (lo, shapes[0], hi)
    return profile


def profile_key(settings: AccuracySettings) -> tuple[Any, ...]:
    """What a TensorRT runner's profiles are made from (for the runner cache key): the
    explicit min/opt/max shape sets, else every shape set of the test."""

    def sets(values: Sequence[Mapping[str, Sequence[int]]]) -> tuple[Any, ...]:
        return tuple(tuple(sorted((k, tuple(v)) for k, v in s.items())) for s in values)

    if settings.trt_min_shapes or settings.trt_opt_shapes or settings.trt_max_shapes:
        return (
            "explicit",
            sets(settings.trt_min_shapes),
            sets(settings.trt_opt_shapes),
            sets(settings.trt_max_shapes),
        )
    return ("covering", sets(settings.parametrized_shapes))


def _check_input(name: str, inputs: TensorMetadata, where: str) -> None:
    if name in inputs:
        return
    close = difflib.get_close_matches(name, list(inputs), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(
        f"{where} names {name!r}, which is not an input of the model (its inputs: "
        f"{list(inputs)}){hint}"
    )


def _check_fits(name: str, shape: tuple[int, ...], inputs: TensorMetadata, where: str) -> None:
    dims = inputs[name].shape
    if dims is None:
        return
    fixed = [isinstance(d, int) and d >= 0 for d in dims]
    if len(shape) != len(dims) or any(
        is_fixed and d != s for is_fixed, d, s in zip(fixed, dims, shape, strict=True)
    ):
        model = "[" + ",".join(str(d) if f else "?" for d, f in zip(dims, fixed, strict=True)) + "]"
        raise InputError(
            f"{where}, input {name!r}: shape {list(shape)} does not fit the model's dims "
            f"{model} (? = dynamic)"
        )
