"""What one test runs with: options, per-model settings and markers resolved into
``AccuracySettings`` for one precision and one shape set.

Layers, each winning over the ones before (per-output dicts merge key by key):

1. the precision's default tolerances (``compare.default_tolerances``);
2. the options (command line over ini);
3. per-model settings (ini ``polygraphy_model_settings``, then ``<model>.polygraphy.json``);
4. the test's ``tolerance`` marker.

Stdlib only at import; the compare module is imported when a compare function is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_polygraphy.per_name import value_for
from pytest_polygraphy.plugin.modelsettings import merge
from pytest_polygraphy.plugin.options import PolygraphyOptions
from pytest_polygraphy.plugin.syntax import OptionValueError, ShapeSet

TOLERANCE_KEYS = ("rtol", "atol", "check_error_stat", "error_quantile")


@dataclass(frozen=True)
class AccuracySettings:
    """Everything that decides how a test's inputs are made and its outputs compared."""

    precision: str = "fp32"
    input_shapes: ShapeSet | None = None
    #: What the backends are compared with (a backend or ``"golden"``); None: nothing selected.
    reference: str | None = None
    val_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int = 1
    iterations: int = 1
    load_inputs: tuple[Path, ...] = ()
    rtol: dict[str, float] = field(default_factory=dict)
    atol: dict[str, float] = field(default_factory=dict)
    check_error_stat: dict[str, str] = field(default_factory=dict)
    error_quantile: dict[str, float] = field(default_factory=dict)
    compare_func: str = "simple"
    compare_args: dict[str, Any] = field(default_factory=dict)
    mark_all: bool = False
    validate: bool = False
    skip: str | None = None
    #: The feeds of a debug session's variant, which replace the test's own inputs.
    feeds: Any = None

    def tolerance(self, output: str) -> tuple[float | None, float | None]:
        """``(rtol, atol)`` that apply to ``output`` (``None`` when not ``simple``)."""
        if self.compare_func != "simple":
            return None, None
        rtol = value_for(self.rtol, output)
        atol = value_for(self.atol, output)
        return rtol, atol

    @property
    def rule(self) -> str:
        """How tolerances combine (``simple``'s rule), else the compare function's name."""
        if self.compare_func != "simple":
            return self.compare_func
        return str(self.compare_args.get("rule", "polygraphy"))

    def make_compare_func(self) -> Any:
        """The ``CompareFunc`` callable these settings describe.

        Raises OptionValueError when ``compare_args`` do not fit the compare function."""
        from pytest_polygraphy.compare import CompareFunc

        factory = getattr(CompareFunc, self.compare_func)
        kwargs = dict(self.compare_args)
        if self.compare_func == "simple":
            kwargs.update(rtol=self.rtol, atol=self.atol)
            if self.check_error_stat:
                kwargs["check_error_stat"] = self.check_error_stat
            if self.error_quantile:
                kwargs["error_quantile"] = self.error_quantile
        try:
            return factory(**kwargs)
        except TypeError as err:
            raise OptionValueError(
                f"compare function {self.compare_func!r} does not accept {sorted(kwargs)}: {err}"
            ) from None

    def data_loader(self) -> Any:
        """A ``DataLoader`` for these settings, or the loaded feeds when inputs are loaded
        (checked against the test's shape set, which names them in its id), or the feeds
        of a debug session's variant."""
        if self.feeds is not None:
            return self.feeds
        if self.load_inputs:
            feeds = load_feeds(self.load_inputs)
            if self.input_shapes:
                check_loaded_shapes(feeds, self.input_shapes, self.load_inputs)
            return feeds
        from pytest_polygraphy.data import DataLoader

        val_range: Any = dict(self.val_range) or None
        return DataLoader(
            seed=self.seed,
            iterations=self.iterations,
            val_range=val_range,
            input_shapes=dict(self.input_shapes) if self.input_shapes else None,
        )


def load_feeds(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Feeds from every file in order (``.npz``, Polygraphy ``.json``, ``script.py:func``)."""
    from pytest_polygraphy.data import load_inputs, load_script_loader

    feeds: list[dict[str, Any]] = []
    for path in paths:
        text = str(path)
        if ".py:" in text:
            feeds.extend(dict(feed) for feed in load_script_loader(text))
        else:
            feeds.extend(load_inputs(path))
    return feeds


def check_loaded_shapes(
    feeds: Sequence[Mapping[str, Any]], shapes: ShapeSet, paths: Sequence[Path]
) -> None:
    """InputError unless every loaded input that the shape set sizes has that shape: the
    test's id names the shape set, so loaded inputs of another shape would make it lie.

    An entry that names no loaded input (nor matches one) is the same error."""
    import numpy as np

    from pytest_polygraphy.errors import InputError
    from pytest_polygraphy.per_name import unknown_names
    from pytest_polygraphy.plugin.syntax import shape_set_id

    source = "inputs loaded from " + ", ".join(str(p) for p in paths)
    names = {name for feed in feeds for name in feed}
    unknown = unknown_names(shapes, names)
    if unknown:
        raise InputError(
            f"input_shapes ({shape_set_id(shapes)}) names {unknown}, which the {source} do "
            f"not hold (they hold {sorted(names)}); name those inputs, or drop input_shapes "
            "when inputs are loaded"
        )
    for index, feed in enumerate(feeds):
        for name, value in feed.items():
            want = value_for(shapes, name)
            got = tuple(np.shape(value))
            if want is None or got == tuple(want):
                continue
            raise InputError(
                f"{source}, iteration {index}: input {name!r} has shape {list(got)}, but the "
                f"test's shape set {shape_set_id(shapes)} gives it {list(want)}; load inputs "
                "of that shape, or drop input_shapes when inputs are loaded"
            )


def resolve(
    options: PolygraphyOptions,
    *,
    precision: str,
    input_shapes: ShapeSet | None,
    layers: Sequence[Mapping[str, Any]] = (),
) -> AccuracySettings:
    """The settings of one test (see the module docstring for the precedence)."""
    from pytest_polygraphy.compare import default_tolerances

    defaults = default_tolerances(precision)
    base: dict[str, Any] = {
        "rtol": {"": float(defaults["rtol"])},
        "atol": {"": float(defaults["atol"])},
    }
    given = {
        "reference": options.reference_backend(),
        "val_range": options.val_range,
        "seed": options.seed,
        "iterations": options.iterations,
        "load_inputs": options.load_inputs,
        "rtol": options.rtol,
        "atol": options.atol,
        "check_error_stat": options.check_error_stat,
        "error_quantile": options.error_quantile,
        "compare_func": options.compare_func,
        "mark_all": options.mark_all,
        "validate": options.validate,
    }
    merged = merge(base, given, *layers)
    merged.pop("precisions", None)
    merged.pop("input_shapes", None)
    if merged["compare_func"] != "simple":
        explicit = [
            key for key in TOLERANCE_KEYS if any(layer.get(key) for layer in (given, *layers))
        ]
        if explicit:
            raise OptionValueError(
                f"{', '.join(explicit)} apply to compare function 'simple' only, but "
                f"{merged['compare_func']!r} is selected; give its own arguments instead "
                "(tolerance marker keywords or compare_args)"
            )
        for key in TOLERANCE_KEYS:
            merged.pop(key, None)
    return AccuracySettings(precision=precision, input_shapes=input_shapes, **merged)


def nonfinite_report(outputs: Mapping[str, Any], runner: str, iteration: int) -> list[str]:
    """A line for every output holding NaN or Inf: how many, and where the first one is."""
    import numpy as np

    lines = []
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fc":
            continue
        nan = np.isnan(array)
        inf = np.isinf(array)
        bad = nan | inf
        if not bad.any():
            continue
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if nan[first] else "Inf"
        lines.append(
            f"output {name!r} of {runner} (iteration {iteration}) holds {int(nan.sum())} NaN "
            f"and {int(inf.sum())} Inf of {array.size} values; the first ({kind}) is at index "
            f"{list(first)}"
        )
    return lines
