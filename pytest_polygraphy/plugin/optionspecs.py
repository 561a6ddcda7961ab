"""The table of ``--polygraphy-*`` options: help text, kind, ini type, and how each value
is parsed (from the command line or the ini file) and rendered back to arguments.

Stdlib and pytest only: imported by the plugin entry point through ``options``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin.vocabulary import (
    BACKENDS,
    CHECK_ERROR_STATS,
    COMPARE_FUNCS,
    PRECISIONS,
    REFERENCES,
    OptionValueError,
)

if TYPE_CHECKING:
    from types import ModuleType


@dataclass(frozen=True)
class OptionSpec:
    """One ``--polygraphy-*`` option and its ini twin."""

    attr: str  # field of PolygraphyOptions
    help: str
    #: "flag" (store_true), "value" (one token), "values" (nargs=+), "sets" (repeatable nargs=+)
    kind: str
    metavar: str | None = None
    ini_type: str = "string"
    parse: Callable[[Any, str, pytest.Config, bool], Any] | None = None
    render: Callable[[str, Any], list[str]] | None = None

    @property
    def flag(self) -> str:
        return "--polygraphy-" + self.attr.replace("_", "-")

    @property
    def dest(self) -> str:
        return "polygraphy_" + self.attr


def _render_flag(flag: str, value: Any) -> list[str]:
    return [flag] if value else []


def _render_value(flag: str, value: Any) -> list[str]:
    return [flag, str(value)]


def _render_values(flag: str, value: Any) -> list[str]:
    return [flag, *(str(v) for v in value)]


def _render_per_name(flag: str, value: Any) -> list[str]:
    return [flag, *_syntax().format_per_name(value)]


def _render_sets(flag: str, value: Any) -> list[str]:
    args: list[str] = []
    for shapes in value:
        args += [flag, *_syntax().format_shape_set(shapes)]
    return args


def _choice(choices: Sequence[str]) -> Callable[[Any, str, pytest.Config, bool], str]:
    def parse(value: Any, what: str, config: pytest.Config, from_ini: bool) -> str:
        if value not in choices:
            raise OptionValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _int(minimum: int) -> Callable[[Any, str, pytest.Config, bool], int]:
    return lambda value, what, config, from_ini: _syntax().parse_int(value, "the value", minimum)


def _path(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Path:
    """A path relative to the ini file's folder (ini) or the invocation folder (option)."""
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise OptionValueError(f"expected one path, got {len(value)}")
        value = value[0]
    return _anchor(config, value, from_ini)


def _paths(value: Any, what: str, config: pytest.Config, from_ini: bool) -> tuple[Path, ...]:
    return tuple(_anchor(config, item, from_ini) for item in value)


def _anchor(config: pytest.Config, value: Any, from_ini: bool) -> Path:
    path = Path(value)
    if path.is_absolute():
        return path
    base = (
        config.inipath.parent
        if from_ini and config.inipath is not None
        else config.invocation_params.dir
    )
    return base / path


def _providers(value: Any, what: str, config: pytest.Config, from_ini: bool) -> tuple[str, ...]:
    for provider in value:
        if provider not in ("cpu", "cuda", "tensorrt", "dml", "rocm", "openvino", "coreml") and (
            not provider.endswith("ExecutionProvider")
        ):
            raise OptionValueError(
                "expected ONNX Runtime execution providers by short name (cpu, cuda, tensorrt) "
                f"or full name (CUDAExecutionProvider), got {provider!r}"
            )
    return tuple(value)


def _shape_sets(value: Any, what: str, config: pytest.Config, from_ini: bool) -> tuple:
    return tuple(_syntax().parse_shape_set(items) for items in value)


def model_settings_lines(value: Any, what: str, config: pytest.Config, from_ini: bool) -> tuple:
    from pytest_polygraphy.plugin.modelsettings import validate_settings

    base = config.inipath.parent if config.inipath is not None else config.rootpath
    entries = []
    for line in value:
        glob, _, text = line.strip().partition(" ")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise OptionValueError(
                f"expected lines 'GLOB {{json settings}}', e.g. "
                f'\'detector*.onnx {{"rtol": {{"boxes": 1e-2}}}}\'; line {line!r}: {err}'
            ) from None
        entries.append((glob, validate_settings(raw, base)))
    return tuple(entries)


def _lift(parse: Callable[..., Any]) -> Callable[[Any, str, pytest.Config, bool], Any]:
    return lambda value, what, config, from_ini: parse(value)


def _syntax() -> ModuleType:
    """The parsers, imported when a value is parsed: pytest imports this table at every
    start, and under ``PYTHONDONTWRITEBYTECODE`` compiles each module it imports anew."""
    from pytest_polygraphy.plugin import syntax

    return syntax


def _lifted(name: str, module: str = "runsyntax") -> Callable[[Any, str, pytest.Config, bool], Any]:
    """Parser ``name`` of ``plugin.<module>`` (imported when a value is parsed)."""

    def parse(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Any:
        import importlib

        return getattr(importlib.import_module(f"pytest_polygraphy.plugin.{module}"), name)(value)

    return parse


def _existing_file(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Path:
    path = _path(value, what, config, from_ini)
    if not path.is_file():
        raise OptionValueError(f"no such file: {path}")
    return path


def _until(value: Any, what: str, config: pytest.Config, from_ini: bool) -> int | str:
    from pytest_polygraphy.debug.repeat import parse_until

    try:
        return parse_until(str(value))
    except ValueError as err:
        raise OptionValueError(str(err)) from None


def _regex(value: Any, what: str, config: pytest.Config, from_ini: bool) -> str:
    import re

    try:
        re.compile(str(value))
    except re.error as err:
        raise OptionValueError(f"not a valid regular expression {value!r}: {err}") from None
    return str(value)


def _bool(value: Any, what: str, config: pytest.Config, from_ini: bool) -> bool:
    return bool(value)


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "providers",
        "ONNX Runtime execution providers for --onnxrt, by short name "
        "(cpu, cuda, tensorrt) or full name; with --onnxrt, an absent one is a usage error "
        "(or skips, with --polygraphy-skip-unavailable). Default: cpu.",
        "values",
        "NAME",
        "args",
        _providers,
        _render_values,
    ),
    OptionSpec(
        "reference",
        "What the other backends are compared with: onnxref, onnxrt, trt or "
        "golden (the golden files). It always runs at fp32. Default: the first selected "
        "of onnxref, onnxrt, trt.",
        "value",
        "NAME",
        "string",
        _choice(REFERENCES),
        _render_value,
    ),
    OptionSpec(
        "precisions",
        "Precisions the backends under test run at; each one parametrizes "
        f"the tests ({', '.join(PRECISIONS)}). Default: fp32.",
        "values",
        "NAME",
        "args",
        _lifted("parse_precisions", "syntax"),
        _render_values,
    ),
    OptionSpec(
        "input_shapes",
        "A shape set for the inputs, e.g. 'x:[1,3,224,224]' 'mask:[1,1,224,224]' (quoted: "
        "zsh expands brackets); repeat the option for several shape sets, which "
        "parametrize the tests (ini: one shape set per line). Names may be wildcards "
        "('inp_*:[1,3]'); a name matching no input fails that model's tests. Named dims "
        "size the inputs sharing them.",
        "sets",
        "NAME:[DIMS]",
        "linelist",
        _shape_sets,
        _render_sets,
    ),
    OptionSpec(
        "val_range",
        "Input value ranges, e.g. '[0,1]' 'ids:[0,100]' (quoted: zsh expands brackets; "
        "a bare range is the default for every input; names may be wildcards). "
        "Default: [0,1].",
        "values",
        "[NAME:][MIN,MAX]",
        "args",
        _lifted("parse_ranges", "syntax"),
        _render_per_name,
    ),
    OptionSpec(
        "seed",
        "Seed of the generated inputs. Default: 1.",
        "value",
        "INT",
        "string",
        _int(0),
        _render_value,
    ),
    OptionSpec(
        "iterations",
        "Number of generated inputs (inferences) per test. Default: 1.",
        "value",
        "N",
        "string",
        _int(1),
        _render_value,
    ),
    OptionSpec(
        "load_inputs",
        "Load inputs from these files (.npz or Polygraphy .json, or a "
        "script path.py:function) instead of generating them.",
        "values",
        "PATH",
        "paths",
        _paths,
        _render_values,
    ),
    OptionSpec(
        "rtol",
        "Relative tolerance, e.g. 1e-3 boxes:1e-2 (bare: every output). "
        "Default: the precision's default tolerance.",
        "values",
        "[OUTPUT:]VALUE",
        "args",
        _lift(lambda v: _syntax().parse_tolerances(v, "rtol")),
        _render_per_name,
    ),
    OptionSpec(
        "atol",
        "Absolute tolerance, e.g. 1e-4 boxes:1e-2 (bare: every output). "
        "Default: the precision's default tolerance.",
        "values",
        "[OUTPUT:]VALUE",
        "args",
        _lift(lambda v: _syntax().parse_tolerances(v, "atol")),
        _render_per_name,
    ),
    OptionSpec(
        "check_error_stat",
        "Error statistic checked against the tolerances: "
        f"{', '.join(CHECK_ERROR_STATS)} (bare or OUTPUT:STAT). Default: elemwise.",
        "values",
        "[OUTPUT:]STAT",
        "args",
        _lifted("parse_error_stats", "syntax"),
        _render_per_name,
    ),
    OptionSpec(
        "error_quantile",
        "Quantile checked when check_error_stat is quantile (bare or OUTPUT:Q). Default: 0.99.",
        "values",
        "[OUTPUT:]Q",
        "args",
        _lifted("parse_quantiles", "syntax"),
        _render_per_name,
    ),
    OptionSpec(
        "compare_func",
        f"Comparison: {', '.join(COMPARE_FUNCS)}. Default: simple.",
        "value",
        "NAME",
        "string",
        _choice(COMPARE_FUNCS),
        _render_value,
    ),
    OptionSpec(
        "mark_all",
        "Compare every intermediate tensor too, in topological order and memory-bounded "
        "batches; a failure names the first tensor over the tolerance (its node and op) and "
        "how the error grows to the failing output; every tensor's error goes to the report.",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
    OptionSpec(
        "validate",
        "Fail when an output holds NaN or Inf, saying where the first is.",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
    OptionSpec(
        "cache_dir",
        "Folder of the on-disk engine cache (shared by workers and runs).",
        "value",
        "PATH",
        "paths",
        _path,
        _render_value,
    ),
    OptionSpec(
        "report",
        "Write an HTML accuracy report (and JSON beside it) to PATH.",
        "value",
        "PATH",
        "string",
    ),
    OptionSpec(
        "gpus",
        "GPUs the xdist workers share out, e.g. 0,1,3 (default: all visible).",
        "value",
        "LIST",
        "string",
    ),
    OptionSpec(
        "update_golden",
        "Write (or overwrite) the golden output files instead of failing when they are missing.",
        "flag",
        None,
        "bool",
        _bool,
    ),
    OptionSpec(
        "golden_dir",
        "Folder of the golden output files. Default: golden/ beside each test file or model.",
        "value",
        "PATH",
        "paths",
        _path,
        _render_value,
    ),
    OptionSpec(
        "skip_unavailable",
        "Skip the tests of a backend that cannot run here (mixed fleets). Without it, a "
        "backend switch given on the command line for a backend that cannot run is a usage "
        "error at start, with the reason and the install command.",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,  # so a printed command runs where this one ran
    ),
    OptionSpec(
        "collect_models",
        "Collect *.onnx files as tests even without a backend switch on "
        "the command line (they are collected when one is given).",
        "flag",
        None,
        "bool",
        _bool,
    ),
    OptionSpec(
        "keep_fp32",
        "Nodes kept in fp32 when the backends under test run at fp16 or bf16 (not "
        "converted), int8 (not quantized) or on TensorRT (layers constrained to fp32): node "
        "names, or #<index>:<OpType>:<first output> for an unnamed node, as "
        "--polygraphy-precision prints them.",
        "values",
        "NODE",
        "args",
        _lifted("parse_node_names", "syntax"),
        _render_values,
    ),
    OptionSpec(
        "keep_fp16",
        "Nodes run in fp16 when the backends under test run at bf16 or int8 (int8: not "
        "quantized; TensorRT: layers constrained to fp16), as --polygraphy-precision-to "
        "float16 prints them; nothing to do at fp16 and above. A node may not also be in "
        "--polygraphy-keep-fp32.",
        "values",
        "NODE",
        "args",
        _lifted("parse_node_names", "syntax"),
        _render_values,
    ),
    OptionSpec(
        "reduce",
        "When a model test fails, shrink its model to the smallest subgraph that still "
        "fails, re-running the test itself as the check; files go to --polygraphy-debug-dir.",
        "flag",
        None,
        "bool",
        _bool,
    ),
    OptionSpec(
        "repeat",
        "Run each selected test again until its first good run, its first bad run, or N "
        "times (N|good|bad), and report its pass rate; with --polygraphy-artifacts, sort "
        "each run's files into good/ and bad/.",
        "value",
        "N|good|bad",
        "string",
        _until,
        _render_value,
    ),
    OptionSpec(
        "build",
        "As --polygraphy-repeat, but rebuild every session and engine from scratch before "
        "each run (no cache): for nondeterministic engine builds.",
        "value",
        "N|good|bad",
        "string",
        _until,
        _render_value,
    ),
    OptionSpec(
        "artifacts",
        "Files or folders a run writes that --polygraphy-repeat / --polygraphy-build sort "
        "into good/ and bad/ after each run (with the run's model).",
        "values",
        "PATH",
        "paths",
        _paths,
    ),
    OptionSpec(
        "precision",
        "When a reduced-precision test (fp16, bf16, int8) fails, find the smallest set of "
        "nodes to keep in higher precision (--polygraphy-precision-to) for it to pass, by "
        "name, re-running the test itself; it prints the keep_fp32 (or keep_fp16) line to "
        "paste.",
        "flag",
        None,
        "bool",
        _bool,
    ),
    OptionSpec(
        "precision_mode",
        "How --polygraphy-precision searches: bisect (about log2 N checks a culprit) or "
        "linear (one node at a time). Default: bisect.",
        "value",
        "MODE",
        "string",
        _choice(("bisect", "linear")),
    ),
    OptionSpec(
        "precision_direction",
        "Where --polygraphy-precision grows the kept set from: forward (from the inputs) "
        "or reverse (from the outputs). Default: forward.",
        "value",
        "DIRECTION",
        "string",
        _choice(("forward", "reverse")),
    ),
    OptionSpec(
        "precision_to",
        "The precision --polygraphy-precision keeps nodes in: float32 (keep_fp32) or "
        "float16 (keep_fp16, for bf16 and int8 tests). Default: float32.",
        "value",
        "PRECISION",
        "string",
        _choice(("float32", "float16")),
    ),
    OptionSpec(
        "max_checks",
        "Stop --polygraphy-precision after N checks; it still answers with a set of nodes "
        "that passes.",
        "value",
        "N",
        "string",
        _int(1),
    ),
    OptionSpec(
        "debug_dir",
        "Folder of the debug sessions' files, one folder per test. Default: polygraphy-debug.",
        "value",
        "PATH",
        "paths",
        _path,
    ),
    OptionSpec(
        "fail_on",
        "A debug session counts a variant as failing only when the failure text matches "
        "this regular expression (like Polygraphy's --fail-regex).",
        "value",
        "REGEX",
        "string",
        _regex,
    ),
    OptionSpec(
        "reduce_mode",
        "How --polygraphy-reduce searches: bisect (about log2 N checks) or linear "
        "(one node at a time from each end). Default: bisect.",
        "value",
        "MODE",
        "string",
        _choice(("bisect", "linear")),
    ),
    OptionSpec(
        "no_reduce_inputs",
        "Keep the model's inputs: --polygraphy-reduce cuts from the output side only.",
        "flag",
        None,
        "bool",
        _bool,
    ),
    OptionSpec(
        "no_reduce_outputs",
        "Keep the model's outputs: --polygraphy-reduce cuts from the input side only.",
        "flag",
        None,
        "bool",
        _bool,
    ),
    OptionSpec(
        "load_replay",
        "A debug session's journal (journal.jsonl) whose verdicts are reused instead of "
        "re-running those checks.",
        "value",
        "PATH",
        "paths",
        _existing_file,
    ),
)

#: Ini-only settings (no command-line twin: they describe the project, not one run).
INI_ONLY: tuple[tuple[str, str, str], ...] = (
    (
        "polygraphy_backends",
        "Backends selected when no backend switch is given (onnxrt onnxref trt).",
        "args",
    ),
    (
        "polygraphy_model",
        "Default model (path relative to this file) of the model fixture.",
        "paths",
    ),
    (
        "polygraphy_model_settings",
        "Per-model settings, one line per model: GLOB {json}, "
        "with the keys of a <model>.polygraphy.json file.",
        "linelist",
    ),
)

BACKEND_HELP = {
    "onnxrt": "Run the models on ONNX Runtime (providers: --polygraphy-providers).",
    "onnxref": "Run the models on onnx's reference evaluator (an independent CPU backend).",
    "trt": "Run the models on TensorRT (a usage error where it cannot run, unless "
    "--polygraphy-skip-unavailable).",
}


# -- polygraphy run: which outputs, data and results (issue 11) ------------------------------
# Their own block, so that other option groups grow without touching these.


def _outputs(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Any:
    from pytest_polygraphy.plugin.runsyntax import parse_outputs

    return parse_outputs(value)


def _render_outputs(flag: str, value: Any) -> list[str]:
    return [flag, "mark", "all"] if isinstance(value, str) else [flag, *value]


def _script(value: Any, what: str, config: pytest.Config, from_ini: bool) -> str:
    from pytest_polygraphy.plugin.runsyntax import parse_script

    base = (
        config.inipath.parent
        if from_ini and config.inipath is not None
        else config.invocation_params.dir
    )
    return parse_script(value, base)


def _existing_results(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Path:
    path = _path(value, what, config, from_ini)
    if not path.exists():
        raise OptionValueError(f"no such results file: {path}")
    return path


def _postprocess(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Any:
    from pytest_polygraphy.plugin.runsyntax import parse_postprocess

    return parse_postprocess(value)


def _render_postprocess(flag: str, value: Any) -> list[str]:
    from pytest_polygraphy.plugin.runsyntax import format_postprocess

    return [flag, *format_postprocess(value)]


def _names(value: Any, what: str, config: pytest.Config, from_ini: bool) -> Any:
    from pytest_polygraphy.plugin.runsyntax import parse_names

    return parse_names(value)


RUN_OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "outputs",
        "The tensors to compare, for every backend: output names (they replace the model's "
        "outputs; intermediate tensors are marked as outputs), or 'mark all' for every "
        "tensor (as --polygraphy-mark-all). Default: the model's outputs.",
        "values",
        "NAME",
        "args",
        _outputs,
        _render_outputs,
    ),
    OptionSpec(
        "exclude_outputs",
        "Tensors not to compare, for every backend (applied after --polygraphy-outputs or "
        "mark all).",
        "values",
        "NAME",
        "args",
        _names,
        _render_values,
    ),
    OptionSpec(
        "data_loader_script",
        "A Python script whose function gives the inputs: FILE.py calls load_data(), "
        "FILE.py:FUNC calls FUNC(); it returns an iterable of {input name: array}, one per "
        "iteration (as polygraphy run --data-loader-script).",
        "value",
        "FILE.py[:FUNC]",
        "string",
        _script,
        _render_value,
    ),
    OptionSpec(
        "save_inputs",
        "Write each test's inputs into this folder, one file per test "
        "(format: --polygraphy-save-format).",
        "value",
        "DIR",
        "paths",
        _path,
    ),
    OptionSpec(
        "save_outputs",
        "Write each test's outputs, every backend's, into this folder, one results file per "
        "test (format: --polygraphy-save-format; loadable with --polygraphy-load-outputs and "
        "by polygraphy run --load-outputs when json).",
        "value",
        "DIR",
        "paths",
        _path,
    ),
    OptionSpec(
        "save_format",
        "Format of --polygraphy-save-inputs and --polygraphy-save-outputs files: npz or json "
        "(Polygraphy's JSON). Default: npz.",
        "value",
        "FORMAT",
        "string",
        _choice(("npz", "json")),
    ),
    OptionSpec(
        "load_outputs",
        "Compare the selected backends with the outputs in this results file (Polygraphy "
        "JSON or .npz run results, its first runner, iteration by iteration) instead of a "
        "reference backend, as polygraphy run --load-outputs.",
        "value",
        "FILE",
        "paths",
        _existing_results,
        _render_value,
    ),
    OptionSpec(
        "postprocess",
        "Postprocess outputs before comparing them: [OUTPUT:]top-K[,axis=A] replaces an "
        "output (bare: every output) by the indices of its K largest values along axis A "
        "(default: the last), e.g. logits:top-5.",
        "values",
        "[OUTPUT:]FUNC",
        "args",
        _postprocess,
        _render_postprocess,
    ),
    OptionSpec(
        "fail_fast",
        "Stop comparing a test at its first failing output (the rest are not compared).",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
    OptionSpec(
        "warm_up",
        "Warm-up inferences each backend runs on the first input before the compared "
        "ones. Default: 0.",
        "value",
        "N",
        "string",
        _int(0),
        _render_value,
    ),
)


def _existing_files(value: Any, what: str, config: pytest.Config, from_ini: bool) -> tuple:
    paths = _paths(value, what, config, from_ini)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise OptionValueError(f"no such file: {', '.join(missing)}")
    return paths


#: ``--polygraphy-trt-calibrator`` values (Polygraphy's ``--calibration-base-class``
#: IInt8EntropyCalibrator2 and IInt8MinMaxCalibrator).
TRT_CALIBRATORS = ("entropy2", "minmax")


#: TensorRT build options: each is part of the engine cache key.
TRT_OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "trt_pool_limit",
        "TensorRT memory pool limits, POOL:SIZE, e.g. workspace:1G tactic_dram:512M (pools: "
        "workspace, dla_managed_sram, dla_local_dram, dla_global_dram, tactic_dram, "
        "tactic_shared_memory; K/M/G are powers of 1024).",
        "values",
        "POOL:SIZE",
        "args",
        _lifted("parse_pool_limits"),
        _render_per_name,
    ),
    OptionSpec(
        "trt_builder_optimization_level",
        "TensorRT builder optimization level, 0 to 5 (TensorRT's default: 3).",
        "value",
        "N",
        "string",
        _lifted("parse_optimization_level"),
        _render_value,
    ),
    OptionSpec(
        "trt_tactic_sources",
        "The TensorRT tactic sources to enable, the others disabled: cublas, cublas_lt, "
        "cudnn, edge_mask_convolutions, jit_convolutions. Default: TensorRT's.",
        "values",
        "SOURCE",
        "args",
        _lifted("parse_tactic_sources"),
        _render_values,
    ),
    OptionSpec(
        "trt_strongly_typed",
        "Build strongly typed TensorRT networks (precisions from the model's types).",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
    OptionSpec(
        "trt_precision_constraints",
        "TensorRT layer precision constraints: obey, prefer or none. Default: none.",
        "value",
        "MODE",
        "string",
        _choice(("obey", "prefer", "none")),
        _render_value,
    ),
    OptionSpec(
        "trt_sparse_weights",
        "Let TensorRT use sparse-weight tactics (BuilderFlag.SPARSE_WEIGHTS).",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
    OptionSpec(
        "trt_plugins",
        "TensorRT plugin libraries to load before parsing (their content is part of the "
        "engine cache key).",
        "values",
        "LIB",
        "paths",
        _existing_files,
        _render_values,
    ),
    OptionSpec(
        "trt_use_dla",
        "Build TensorRT engines for DLA core 0.",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
    OptionSpec(
        "trt_min_shapes",
        "TensorRT optimization profile minimum shapes, e.g. 'x:[1,3,224,224]' (quoted: zsh "
        "expands brackets); repeat the option (with -opt-shapes and -max-shapes) once per "
        "profile. Default: one profile covering every shape set of the test (min/max: "
        "elementwise, opt: the first shape set).",
        "sets",
        "NAME:[DIMS]",
        "linelist",
        _shape_sets,
        _render_sets,
    ),
    OptionSpec(
        "trt_opt_shapes",
        "TensorRT optimization profile shapes to tune for, e.g. 'x:[8,3,224,224]'; one per "
        "profile, as --polygraphy-trt-min-shapes.",
        "sets",
        "NAME:[DIMS]",
        "linelist",
        _shape_sets,
        _render_sets,
    ),
    OptionSpec(
        "trt_max_shapes",
        "TensorRT optimization profile maximum shapes, e.g. 'x:[32,3,224,224]'; one per "
        "profile, as --polygraphy-trt-min-shapes.",
        "sets",
        "NAME:[DIMS]",
        "linelist",
        _shape_sets,
        _render_sets,
    ),
    OptionSpec(
        "save_engine",
        "Keep the TensorRT engines the run built: each test's engine is copied into this "
        "folder as <test id>.engine (a TensorRT reference's as <test id>.reference.engine).",
        "value",
        "DIR",
        "paths",
        _path,
    ),
    OptionSpec(
        "trt_timing_cache",
        "A TensorRT timing cache file: each build starts from it (when it exists) and merges "
        "its timings back into it after succeeding, atomically under a lock, so workers and "
        "runs share it (as polygraphy run --timing-cache). Default: a timing cache in "
        "--polygraphy-cache-dir.",
        "value",
        "FILE",
        "paths",
        _path,
    ),
    OptionSpec(
        "trt_calibrator",
        "int8 calibration: entropy2 or minmax. TensorRT int8 then calibrates inside "
        "TensorRT (IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator, with the test's inputs), "
        "and ONNX Runtime int8 quantizes with Entropy / MinMax ranges. Default: none (TensorRT "
        "int8 builds a Q/DQ model quantized with MinMax ranges).",
        "value",
        "NAME",
        "string",
        _choice(TRT_CALIBRATORS),
        _render_value,
    ),
    OptionSpec(
        "calibration_cache",
        "With --polygraphy-trt-calibrator: TensorRT's calibration cache file, read when it "
        "exists (no calibration then) and written after calibrating (as polygraphy run "
        "--calibration-cache).",
        "value",
        "FILE",
        "paths",
        _path,
        _render_value,
    ),
    OptionSpec(
        "trt_allow_gpu_fallback",
        "With --polygraphy-trt-use-dla: layers DLA cannot run fall back to the GPU.",
        "flag",
        None,
        "bool",
        _bool,
        _render_flag,
    ),
)

OPTION_SPECS = (*OPTION_SPECS, *RUN_OPTION_SPECS, *TRT_OPTION_SPECS)


GROUP = "polygraphy"
GROUP_DESCRIPTION = (
    "pytest-polygraphy: model accuracy testing on ONNX Runtime and TensorRT "
    "(each --polygraphy-NAME option has an ini twin polygraphy_NAME; an option taking "
    "several values takes every argument up to the next option: write paths first or "
    "end its values with --). Precedence, highest "
    "first: a test's markers (precisions, shapes, tolerance), the command line, per-model "
    "settings (<model>.polygraphy.json, then the ini polygraphy_model_settings lines), the "
    "ini options, the defaults; -v shows where each setting of a test came from"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the backend switches and the ``polygraphy`` option group."""
    group = parser.getgroup(GROUP, GROUP_DESCRIPTION)
    for backend in BACKENDS:
        group.addoption(
            f"--{backend}", action="store_true", default=None, help=BACKEND_HELP[backend]
        )
    for spec in OPTION_SPECS:
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": None, "help": spec.help}
        if spec.kind == "flag":
            kwargs["action"] = "store_true"
        elif spec.kind == "values":
            kwargs.update(nargs="+", metavar=spec.metavar)
        elif spec.kind == "sets":
            kwargs.update(nargs="+", action="append", metavar=spec.metavar)
        else:
            kwargs["metavar"] = spec.metavar
        group.addoption(spec.flag, **kwargs)
        parser.addini(spec.dest, f"[pytest-polygraphy] {spec.help}", type=spec.ini_type)  # type: ignore[arg-type]
    for name, help, ini_type in INI_ONLY:
        parser.addini(name, f"[pytest-polygraphy] {help}", type=ini_type)  # type: ignore[arg-type]


def ini_value(config: pytest.Config, name: str, ini_type: str) -> Any:
    """The ini value, or ``None`` when the ini file does not set it."""
    value = config.getini(name)
    if ini_type == "bool":
        return True if value else None
    if value in ("", [], None):
        return None
    return value


def gpus_setting(config: pytest.Config, namespace: Any = None) -> str | None:
    """``--polygraphy-gpus`` (from ``namespace``, default the parsed options), else its ini
    twin, as one string (None when unset)."""
    value: Any = getattr(config.option if namespace is None else namespace, "polygraphy_gpus", None)
    if value in (None, "", [], ()):
        try:
            value = config.getini("polygraphy_gpus")
        except ValueError:  # ini not registered: the options are not there
            value = None
    if value in (None, "", [], ()):
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(part) for part in value)
    return str(value)


def needs_gpu_hooks(config: pytest.Config) -> bool:
    """Whether the GPU-per-worker hooks (``plugin.xdist``) have anything to do: in an xdist
    worker or controller, or where ``--polygraphy-gpus`` is given. Elsewhere they are not
    even imported (start-up cost)."""
    return (
        hasattr(config, "workerinput")
        or config.getoption("dist", default="no") != "no"
        or bool(config.getoption("numprocesses", default=None))
        or gpus_setting(config) is not None
    )


def anything_given(config: pytest.Config) -> bool:
    """Whether the run sets any of the plugin's options or switches, on the command line
    or in the ini file. When it sets none, every setting is a default, none can be bad,
    and start-up need not parse (nor import the parsers of) any of them."""
    if any(getattr(config.option, backend, None) for backend in BACKENDS):
        return True
    names = [(spec.dest, spec.ini_type) for spec in OPTION_SPECS]
    names += [(name, ini_type) for name, _, ini_type in INI_ONLY]
    for name, ini_type in names:
        if getattr(config.option, name, None) is not None:
            return True
        if ini_value(config, name, ini_type) is not None:
            return True
    return False


def report_file_asked(config: pytest.Config) -> bool:
    """Whether ``--polygraphy-report`` (or its ini twin) is given."""
    if config.getoption("polygraphy_report", default=None) not in (None, ""):
        return True
    try:
        return config.getini("polygraphy_report") not in (None, "", [])
    except ValueError:  # ini not registered
        return False
