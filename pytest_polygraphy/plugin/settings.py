"""What one test runs with: options, per-model settings and markers resolved into
``AccuracySettings`` for one precision and one shape set.

Layers, each winning over the ones before (per-output dicts merge key by key):

1. the defaults: the precision's default tolerances (``compare.default_tolerances``) and
   the options' defaults (the reference: the first selected backend);
2. the options read from the ini file;
3. per-model settings (ini ``polygraphy_model_settings`` lines, then
   ``<model>.polygraphy.json``): more specific than the project's ini options;
4. the options given on the command line: what the person running pytest asked for now;
5. the test's markers (``precisions``, ``shapes``, ``tolerance``): the test's own explicit
   choice, the most specific of all.

Every resolved value remembers its layer (``AccuracySettings.sources``), which ``pytest
-v`` lists for each test.

Stdlib only at import; the compare module is imported when a compare function is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pytest_polygraphy.per_name import value_for
from pytest_polygraphy.plugin.modelsettings import Layer, merge_sourced
from pytest_polygraphy.plugin.options import (
    COMMAND_LINE,
    DEFAULT,
    INI,
    PolygraphyOptions,
    RunOptions,
    TrtBuildOptions,
)
from pytest_polygraphy.plugin.syntax import OptionValueError, ShapeSet

TOLERANCE_KEYS = ("rtol", "atol", "check_error_stat", "error_quantile")

#: TensorRT build options (``optionspecs.TRT_OPTION_SPECS``): each is part of the engine
#: cache key; per-model settings may set them too.
TRT_BUILD_OPTIONS = tuple(f.name for f in fields(TrtBuildOptions))

#: ``polygraphy run``'s output, data and results options (``optionspecs.RUN_OPTION_SPECS``):
#: per-model settings may set them too.
RUN_OPTIONS = (
    *(f.name for f in fields(RunOptions) if f.name not in TRT_BUILD_OPTIONS),
    *TRT_BUILD_OPTIONS,
)

#: Options that per-model settings and markers may also set (same names everywhere).
LAYERED_OPTIONS = (
    "reference",
    "precisions",
    "input_shapes",
    "val_range",
    "seed",
    "iterations",
    "load_inputs",
    *TOLERANCE_KEYS,
    "compare_func",
    "mark_all",
    "validate",
    "keep_fp32",
    "keep_fp16",
    *RUN_OPTIONS,
)


@dataclass(frozen=True)
class AccuracySettings(RunOptions):
    """Everything that decides how a test's inputs are made and its outputs compared (the
    ``RunOptions`` fields included)."""

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
    #: Nodes kept in fp32 in reduced-precision variants (names or stable ids).
    keep_fp32: tuple[str, ...] = ()
    #: Nodes run in fp16 in bf16 and int8 variants (names or stable ids).
    keep_fp16: tuple[str, ...] = ()
    #: The feeds of a debug session's variant, which replace the test's own inputs.
    feeds: Any = None
    #: Every shape set the test is parametrized with (``input_shapes`` is this test's
    #: one): a TensorRT engine's default profile covers them all.
    parametrized_shapes: tuple[ShapeSet, ...] = ()
    #: Where each value came from (see ``modelsettings.merge_sourced`` for the keys):
    #: "command line", "ini", "net.polygraphy.json", "@pytest.mark.tolerance", "default"...
    sources: dict[str, str] = field(default_factory=dict, compare=False)

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
        if self.load_inputs or self.data_loader_script:
            sources = self.input_sources()
            feeds = load_feeds(sources)
            if self.input_shapes:
                check_loaded_shapes(feeds, self.input_shapes, sources)
            from pytest_polygraphy.data import LoadedFeeds

            return LoadedFeeds(feeds)
        from pytest_polygraphy.data import DataLoader

        val_range: Any = dict(self.val_range) or None
        return DataLoader(
            seed=self.seed,
            iterations=self.iterations,
            val_range=val_range,
            input_shapes=dict(self.input_shapes) if self.input_shapes else None,
        )

    def input_sources(self) -> tuple[Path, ...]:
        """Where loaded inputs come from: the inputs files, else the data loader script
        (``path.py:function``); empty when inputs are generated."""
        if self.data_loader_script:
            return (Path(self.data_loader_script),)
        return self.load_inputs

    def trt_build_kwargs(self) -> dict[str, Any]:
        """The TensorRT build options as ``TrtRunner`` keyword arguments."""
        constraints = self.trt_precision_constraints
        return {
            "memory_pool_limits": dict(self.trt_pool_limit),
            "optimization_level": self.trt_builder_optimization_level,
            "tactic_sources": self.trt_tactic_sources or None,
            "strongly_typed": self.trt_strongly_typed,
            "precision_constraints": None if constraints in (None, "none") else constraints,
            "sparse_weights": self.trt_sparse_weights,
            "plugins": tuple(str(p) for p in self.trt_plugins),
            "use_dla": self.trt_use_dla,
            "allow_gpu_fallback": self.trt_allow_gpu_fallback,
        }

    def output_selection(self) -> tuple[str | tuple[str, ...] | None, tuple[str, ...]]:
        """``(outputs, exclude)`` for ``models.mark_outputs``: ``"mark-all"``, output
        names, or None for the model's own outputs; and the tensors to exclude."""
        from pytest_polygraphy.plugin.runsyntax import MARK_ALL

        if self.mark_all or self.outputs == MARK_ALL:
            return MARK_ALL, self.exclude_outputs
        return (self.outputs or None), self.exclude_outputs

    @property
    def selects_outputs(self) -> bool:
        """Whether the compared tensors are not simply the model's outputs."""
        outputs, exclude = self.output_selection()
        return outputs is not None or bool(exclude)


def load_feeds(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Feeds from every file in order (``.npz``, Polygraphy ``.json``, a data loader script
    ``script.py[:func]``, whose function defaults to ``load_data``)."""
    from pytest_polygraphy.data import load_inputs, load_script_loader

    feeds: list[dict[str, Any]] = []
    for path in paths:
        text = str(path)
        if ".py:" in text or text.endswith(".py"):
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


def ordered_layers(
    options: PolygraphyOptions,
    model: Sequence[Layer | Mapping[str, Any]] = (),
    markers: Sequence[Layer] = (),
) -> list[Layer]:
    """Every layer of settings, lowest first (see the module docstring): defaults, ini
    options, per-model settings (a plain mapping counts as per-model settings), command-line
    options, markers."""
    layers = {DEFAULT: {}, INI: {}, COMMAND_LINE: {}}
    for key in LAYERED_OPTIONS:
        layers[options.source(key)][key] = getattr(options, key)
    if options.source("reference") == DEFAULT:
        layers[DEFAULT]["reference"] = options.reference_backend()
    per_model = [
        layer if isinstance(layer, Layer) else Layer("per-model settings", layer) for layer in model
    ]
    return [
        Layer(DEFAULT, layers[DEFAULT]),
        Layer(INI, layers[INI]),
        *per_model,
        Layer(COMMAND_LINE, layers[COMMAND_LINE]),
        *markers,
    ]


def pick(layers: Sequence[Layer], key: str) -> tuple[Any, str]:
    """The value of ``key`` from the highest layer that gives one, and that layer's
    source; ``(None, "default")`` when none does (empty values count as not given)."""
    for layer in reversed(layers):
        value = layer.values.get(key)
        if value is not None and value != () and value != {}:
            return value, layer.source
    return None, DEFAULT


def resolve(
    options: PolygraphyOptions,
    *,
    precision: str,
    input_shapes: ShapeSet | None,
    layers: Sequence[Layer | Mapping[str, Any]] = (),
    markers: Sequence[Layer] = (),
) -> AccuracySettings:
    """The settings of one test (see the module docstring for the precedence).

    ``layers`` are the model's settings (``modelsettings.model_layers``), ``markers`` the
    test's marker layers. The sources of ``precision`` and ``input_shapes`` are those of
    the layers that give ``precisions`` and ``input_shapes``, as at collection."""
    from pytest_polygraphy.compare import default_tolerances

    defaults = default_tolerances(precision)
    base = Layer(
        f"default ({precision})",
        {"rtol": {"": float(defaults["rtol"])}, "atol": {"": float(defaults["atol"])}},
    )
    ordered = ordered_layers(options, layers, markers)
    merged, sources = merge_sourced([base, *ordered])
    merged.pop("precisions", None)
    merged.pop("input_shapes", None)
    shape_sets = pick(ordered, "input_shapes")[0] or ()  # as the tests are parametrized
    merged.pop("model", None)  # an engine's ONNX model: read by the engine's collector
    sources.pop("precisions", None)
    sources.pop("input_shapes", None)
    sources.pop("model", None)
    sources["precision"] = pick(ordered, "precisions")[1]
    if input_shapes is not None:
        sources["input_shapes"] = pick(ordered, "input_shapes")[1]
    _check_run_options(merged)
    for key in (
        *RUN_OPTIONS,
        *TRT_BUILD_OPTIONS,
    ):  # unused run options would only lengthen every test's -v listing
        if sources.get(key) == DEFAULT:
            del sources[key]
    if merged["compare_func"] != "simple":
        explicit = [
            key
            for key in TOLERANCE_KEYS
            if any(layer.values.get(key) for layer in ordered if layer.source != DEFAULT)
        ]
        if explicit:
            raise OptionValueError(
                f"{', '.join(explicit)} apply to compare function 'simple' only, but "
                f"{merged['compare_func']!r} is selected; give its own arguments instead "
                "(tolerance marker keywords or compare_args)"
            )
        for key in TOLERANCE_KEYS:
            merged.pop(key, None)
            for name in [k for k in sources if k == key or k.startswith(key + "[")]:
                del sources[name]
    return AccuracySettings(
        precision=precision,
        input_shapes=input_shapes,
        parametrized_shapes=tuple(shape_sets) if input_shapes is not None else (),
        sources=_ordered_sources(sources, [base, *ordered]),
        **merged,
    )


def _check_run_options(merged: Mapping[str, Any]) -> None:
    """OptionValueError for run options that contradict each other."""
    from pytest_polygraphy.plugin.runsyntax import MARK_ALL

    outputs = merged.get("outputs")
    if merged.get("mark_all") and outputs and outputs != MARK_ALL:
        raise OptionValueError(
            f"mark_all and outputs {list(outputs)} are both given; give one: the output "
            "names, or mark all"
        )
    if merged.get("load_inputs") and merged.get("data_loader_script"):
        raise OptionValueError(
            f"load_inputs and data_loader_script ({merged['data_loader_script']}) are both "
            "given; the inputs come from one of them"
        )
    if merged.get("load_outputs") and merged.get("reference") == "golden":
        raise OptionValueError(
            f"load_outputs ({merged['load_outputs']}) and reference golden are both given; "
            "the outputs are compared with one of them"
        )


def describe_sources(sources: Mapping[str, str]) -> list[str]:
    """``source: setting, setting`` lines in the order of ``sources`` (``resolve`` orders
    them highest-ranking source first), for ``-v``."""
    by_source: dict[str, list[str]] = {}
    for key, source in sources.items():
        by_source.setdefault(source, []).append(key)
    return [f"{source}: {', '.join(keys)}" for source, keys in by_source.items()]


def _ordered_sources(sources: Mapping[str, str], layers: Sequence[Layer]) -> dict[str, str]:
    """``sources`` with the highest layer's settings first, each layer's in a fixed order."""
    rank = {layer.source: index for index, layer in enumerate(layers)}
    names = ("precision", "input_shapes", *LAYERED_OPTIONS)

    def order(key: str) -> tuple[int, int, str]:
        base = key.split("[", 1)[0]
        position = names.index(base) if base in names else len(names)
        return -rank.get(sources[key], -1), position, key

    return {key: sources[key] for key in sorted(sources, key=order)}


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
