"""Command-line options and their ini twins, parsed once into ``PolygraphyOptions``.

Backend switches (``--onnxrt``, ``--onnxref``, ``--trt``) are named as in ``polygraphy run``;
every other option lives in the ``polygraphy`` help group with the ``--polygraphy-`` prefix
and has an ini twin of the same name with underscores (``--polygraphy-rtol`` and
``polygraphy_rtol``). Each parsed option remembers where it came from (``command_line``,
``from_ini``), because per-model settings rank between the two: a value given on the
command line wins over a model's settings, which win over the ini file (see ``settings``
for the whole order). Values follow
``polygraphy run``'s syntax (see ``syntax``). A bad value is a ``pytest.UsageError``
that names the option and says what is accepted.

Stdlib and pytest only. Imported when an option is first read: a run that sets none
never imports it (start-up cost, see the entry point).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.plugin.optionparsers import model_settings_lines
from pytest_polygraphy.plugin.optionspecs import (
    INI_ONLY,
    OPTION_SPECS,
    gpus_setting,
    ini_value,
    needs_gpu_hooks,
    pytest_addoption,
)
from pytest_polygraphy.plugin.syntax import (
    BACKENDS,
    BELOW_FP16,
    COMPARE_FUNCS,
    ENGINE_SUFFIXES,
    REFERENCES,
    OptionValueError,
    ShapeSet,
    split_items,
)

__all__ = [
    "BACKENDS",
    "COMPARE_FUNCS",
    "INI_ONLY",
    "OPTION_SPECS",
    "REFERENCES",
    "PolygraphyOptions",
    "get_options",
    "gpus_setting",
    "needs_gpu_hooks",
    "parse_options",
    "pytest_addoption",
]


@dataclass(frozen=True)
class TrtBuildOptions:
    """TensorRT build options (``optionspecs.TRT_OPTION_SPECS``): each is part of the engine
    cache key. Options, per-model settings and a test's settings share these fields."""

    trt_pool_limit: dict[str, int] = field(default_factory=dict)
    trt_builder_optimization_level: int | None = None
    trt_tactic_sources: tuple[str, ...] = ()
    trt_strongly_typed: bool = False
    trt_precision_constraints: str | None = None
    trt_sparse_weights: bool = False
    trt_plugins: tuple[Path, ...] = ()
    trt_use_dla: bool = False
    trt_allow_gpu_fallback: bool = False
    #: Explicit optimization profiles: the k-th min, opt and max shape sets make profile k.
    trt_min_shapes: tuple[ShapeSet, ...] = ()
    trt_opt_shapes: tuple[ShapeSet, ...] = ()
    trt_max_shapes: tuple[ShapeSet, ...] = ()
    #: A timing cache file shared by builds (seeded from, merged back into).
    trt_timing_cache: Path | None = None
    #: ``entropy2`` or ``minmax``: int8 calibrated inside TensorRT (and the calibration
    #: method of ONNX Runtime's int8 quantization); None: Q/DQ models, MinMax ranges.
    trt_calibrator: str | None = None
    #: TensorRT's calibration cache file (with ``trt_calibrator``).
    calibration_cache: Path | None = None


@dataclass(frozen=True)
class RunOptions(TrtBuildOptions):
    """``polygraphy run``'s output, data and results options
    (``optionspecs.RUN_OPTION_SPECS``), shared like ``TrtBuildOptions``."""

    #: Output names to compare, or ``"mark-all"``; empty: the model's outputs.
    outputs: str | tuple[str, ...] = ()
    exclude_outputs: tuple[str, ...] = ()
    #: ``"/path/loader.py:function"``.
    data_loader_script: str | None = None
    save_inputs: Path | None = None
    save_outputs: Path | None = None
    save_format: str = "npz"
    load_outputs: Path | None = None
    #: ``{output or "": (k, axis or None)}``: Top-K before comparison.
    postprocess: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    fail_fast: bool = False
    warm_up: int = 0
    #: Folder the run's TensorRT engines are copied into (``--polygraphy-save-engine``).
    save_engine: Path | None = None


@dataclass(frozen=True)
class PolygraphyOptions(RunOptions):
    """Every plugin option after parsing (command line over ini over default).

    One instance per run lives on ``config.stash[OPTIONS_KEY]``; read it with
    ``get_options(config)``. Dict fields map a tensor name to its value, with ``""`` as
    the default for the tensors not named.
    """

    #: Backends selected by switches (or the ``polygraphy_backends`` ini), canonical order.
    backends: tuple[str, ...] = ()
    #: True when a backend switch was given on the command line.
    backends_on_command_line: bool = False
    providers: tuple[str, ...] = ("cpu",)
    #: The backend (or ``"golden"``) others are compared with; ``None`` picks the default.
    reference: str | None = None
    precisions: tuple[str, ...] = ("fp32",)
    input_shapes: tuple[ShapeSet, ...] = ()
    val_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int = 1
    iterations: int = 1
    load_inputs: tuple[Path, ...] = ()
    rtol: dict[str, float] = field(default_factory=dict)
    atol: dict[str, float] = field(default_factory=dict)
    check_error_stat: dict[str, str] = field(default_factory=dict)
    error_quantile: dict[str, float] = field(default_factory=dict)
    compare_func: str = "simple"
    mark_all: bool = False
    validate: bool = False
    cache_dir: Path | None = None
    report: str | None = None
    gpus: str | None = None
    update_golden: bool = False
    skip_unavailable: bool = False
    golden_dir: Path | None = None
    collect_models: bool = False
    keep_fp32: tuple[str, ...] = ()
    keep_fp16: tuple[str, ...] = ()
    reduce: bool = False
    repeat: int | str | None = None
    build: int | str | None = None
    artifacts: tuple[Path, ...] = ()
    precision: bool = False
    precision_mode: str = "bisect"
    precision_direction: str = "forward"
    precision_to: str = "float32"
    max_checks: int | None = None
    debug_dir: Path | None = None
    fail_on: str | None = None
    reduce_mode: str = "bisect"
    no_reduce_inputs: bool = False
    no_reduce_outputs: bool = False
    load_replay: Path | None = None
    #: Default model of the ``model`` fixture (ini ``polygraphy_model``).
    model: Path | None = None
    #: ``(glob, settings)`` pairs from the ini ``polygraphy_model_settings`` lines.
    model_settings: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: The attributes given on the command line (they win over per-model settings).
    command_line: frozenset[str] = frozenset()
    #: The attributes read from the ini file (per-model settings win over them).
    from_ini: frozenset[str] = frozenset()

    def source(self, attr: str) -> str:
        """Where an attribute's value came from: ``command line``, ``ini`` or ``default``.

        A value set without either (options built in code) counts as ``ini``: the lowest
        rank a value that was given can have."""
        if attr in self.command_line:
            return COMMAND_LINE
        if attr in self.from_ini or getattr(self, attr) != getattr(_DEFAULTS, attr):
            return INI
        return DEFAULT

    def reference_backend(self) -> str | None:
        """The explicit reference, else the first selected backend in ``BACKENDS`` order
        (onnxref, then onnxrt, then trt), else ``None`` when nothing is selected."""
        if self.reference is not None:
            return self.reference
        return self.backends[0] if self.backends else None

    def to_args(self) -> list[str]:
        """Command-line arguments reproducing every non-default setting that changes what
        a test runs (used to print the exact command that recreates a golden file)."""
        default = PolygraphyOptions()
        args = [f"--{backend}" for backend in self.backends]
        for spec in OPTION_SPECS:
            if spec.render is None:
                continue
            value = getattr(self, spec.attr)
            if value != getattr(default, spec.attr):
                args.extend(spec.render(spec.flag, value))
        return args


COMMAND_LINE = "command line"
INI = "ini"
DEFAULT = "default"
_DEFAULTS = PolygraphyOptions()


def get_options(config: pytest.Config) -> PolygraphyOptions:
    """The run's parsed options (parsed on first use, then kept on ``config.stash``)."""
    options = config.stash.get(OPTIONS_KEY, None)
    if options is None:
        options = parse_options(config)
        config.stash[OPTIONS_KEY] = options
    return options


OPTIONS_KEY = pytest.StashKey[PolygraphyOptions]()


def parse_options(config: pytest.Config) -> PolygraphyOptions:
    """Read every option (command line, else ini, else default) into PolygraphyOptions.

    Raises ``pytest.UsageError`` naming the option (or ini key) and what it accepts."""
    values: dict[str, Any] = {}
    command_line: set[str] = set()
    from_ini: set[str] = set()
    for spec in OPTION_SPECS:
        given = config.getoption(spec.dest)
        from_ini_file = given is None
        source = f"{spec.flag}" if not from_ini_file else f"ini option {spec.dest}"
        if from_ini_file:
            given = ini_value(config, spec.dest, spec.ini_type)
        if given is None:
            continue
        (from_ini if from_ini_file else command_line).add(spec.attr)
        if spec.parse is None:
            values[spec.attr] = str(given)
            continue
        if spec.kind == "sets" and from_ini_file:
            given = [split_items(line) for line in given]
        if not from_ini and spec.kind in ("values", "sets"):
            _refuse_swallowed_paths(spec.flag, spec.attr, given, config.invocation_params.dir)
        try:
            values[spec.attr] = spec.parse(given, source, config, from_ini_file)
        except OptionValueError as err:
            raise pytest.UsageError(f"{source}: {err}") from None

    cli_backends = tuple(b for b in BACKENDS if config.getoption(b))
    ini_backends = ini_value(config, "polygraphy_backends", "args") or []
    for backend in ini_backends:
        if backend not in BACKENDS:
            raise pytest.UsageError(
                f"ini option polygraphy_backends: expected some of {', '.join(BACKENDS)}, "
                f"got {backend!r}"
            )
    values["backends"] = cli_backends or tuple(b for b in BACKENDS if b in ini_backends)
    values["backends_on_command_line"] = bool(cli_backends)

    model = ini_value(config, "polygraphy_model", "paths")
    if model:
        if len(model) != 1:
            raise pytest.UsageError(f"ini option polygraphy_model: expected one path, got {model}")
        values["model"] = model[0]
    settings = ini_value(config, "polygraphy_model_settings", "linelist")
    if settings:
        try:
            values["model_settings"] = model_settings_lines(settings, "", config, True)
        except OptionValueError as err:
            raise pytest.UsageError(f"ini option polygraphy_model_settings: {err}") from None
    _refuse_precision_to_float16_without_gain(values, command_line)
    values["command_line"] = frozenset(command_line)
    values["from_ini"] = frozenset(from_ini)
    known = {f.name for f in fields(PolygraphyOptions)}
    assert known >= set(values), set(values) - known
    return PolygraphyOptions(**values)


def _refuse_precision_to_float16_without_gain(values: dict[str, Any], given: set[str]) -> None:
    """UsageError for ``--polygraphy-precision-to float16`` when the command line's
    precisions hold none below fp16: their nodes already run in fp16 or better. (Markers
    and per-model settings may still pick bf16 or int8 elsewhere; the session refuses
    per test then.)"""
    if values.get("precision_to") != "float16" or "precisions" not in given:
        return
    precisions = values["precisions"]
    if not set(precisions) & set(BELOW_FP16):
        raise pytest.UsageError(
            f"--polygraphy-precision-to float16 with --polygraphy-precisions "
            f"{' '.join(precisions)}: nothing to gain, those tests already run every node in "
            "fp16 or better. Keeping nodes in fp16 is for bf16, int8 and fp8 tests; for "
            "fp16 tests use --polygraphy-precision-to float32 (the default)"
        )


def _refuse_swallowed_paths(flag: str, attr: str, given: Any, cwd: Path) -> None:
    """UsageError when a value of an option that takes several values is a test path.

    argparse gives such an option every argument up to the next option, so in
    ``pytest --polygraphy-precisions fp16 net.onnx`` the model became a precision (and
    was not tested). A value is taken for a path when it ends in ``.onnx`` (or an engine
    file's ``.engine`` / ``.plan``) or names an existing file or folder (a node id's ``::``
    part aside); for ``load_inputs`` and ``artifacts``, whose values are paths, when it
    ends in one of those suffixes, names a folder, or
    is a ``.py`` file without ``:function``."""
    values = [v for item in given for v in (item if isinstance(item, list) else [item])]
    for value in values:
        text = str(value)
        path = cwd / text.split("::")[0]
        text_is_model = text.endswith((".onnx", *ENGINE_SUFFIXES))
        if attr in ("load_inputs", "artifacts"):
            looks_like_a_test = (
                text_is_model or path.is_dir() or (text.endswith(".py") and path.is_file())
            )
        else:
            looks_like_a_test = text_is_model or path.exists()
        if looks_like_a_test:
            raise pytest.UsageError(
                f"{flag}: {text!r} looks like a path to test, not a value of this option, "
                "which takes every argument after it up to the next option. Put the paths "
                f"first (pytest {text} {flag} ...), or end the option's values with -- "
                f"(pytest {flag} ... -- {text})."
            )
