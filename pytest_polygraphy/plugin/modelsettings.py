"""Per-model settings: a ``<model stem>.polygraphy.json`` file beside the model, or a line
``GLOB {json}`` of the ini option ``polygraphy_model_settings``.

Both take the same keys as the options, without the prefix, e.g. ``resnet.polygraphy.json``::

    {
      "input_shapes": ["x:[1,3,224,224]", {"x": [8, 3, 224, 224]}],
      "val_range": {"x": [-1, 1]},
      "rtol": {"": 1e-3, "boxes": 1e-2},
      "precisions": ["fp32", "fp16"]
    }

Precedence, highest first: a hand-written test's markers (``precisions``, ``shapes``,
``tolerance``: the test's own explicit choice); values given on the command line; the
model's ``.polygraphy.json``; the ini ``polygraphy_model_settings`` lines (a later matching
line over an earlier one); the ini options (``polygraphy_rtol`` ...); the defaults. So a
file beside the model refines what the project's ini says for every model, and
``--polygraphy-precisions fp32`` on the command line still runs fp32 only. Per-output dicts
(tolerances, value ranges) merge key by key: ``--polygraphy-rtol 1e-3`` replaces the
default for every output, while a sidecar's ``"rtol": {"boxes": 1e-2}`` still applies to
``boxes`` unless the command line names ``boxes`` too. ``pytest -v`` lists where each
setting of each test came from.

The key ``model`` names the ONNX model a prebuilt TensorRT engine (``det.plan``) was
built from: the engine's reference (``{"model": "det.onnx"}``); model files ignore it.

A bad per-model setting (bad JSON, an unknown key or value) fails that model's test only,
with the file and key named; the other tests still run. JSON rather than TOML because
``tomllib`` is not available on every Python this plugin supports.
Stdlib only: parsed while collecting, before anything heavy is needed.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_polygraphy.plugin import runsyntax, syntax
from pytest_polygraphy.plugin.syntax import COMPARE_FUNCS, REFERENCES, OptionValueError
from pytest_polygraphy.plugin.vocabulary import TRT_CALIBRATORS

SUFFIX = ".polygraphy.json"


def _shape_sets(value: Any, base: Path) -> tuple[syntax.ShapeSet, ...]:
    if isinstance(value, str | Mapping):
        value = [value]
    if not isinstance(value, list) or not value:
        raise OptionValueError('expected a list of shape sets like ["x:[1,3,224,224]"]')
    return tuple(syntax.parse_shape_set(item) for item in value)


def _ranges(value: Any, base: Path) -> dict[str, tuple[float, float]]:
    if isinstance(value, str):
        value = syntax.split_items(value)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        value = {"": value}
    return syntax.parse_ranges(value)


def _per_name(parse: Callable[[Any], Any]) -> Callable[[Any, Path], Any]:
    def parse_value(value: Any, base: Path) -> Any:
        return parse(value.split() if isinstance(value, str) else value)

    return parse_value


def _int(minimum: int) -> Callable[[Any, Path], int]:
    return lambda value, base: syntax.parse_int(value, "the value", minimum)


def _bool(value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise OptionValueError(f"expected true or false, got {value!r}")
    return value


def _paths(value: Any, base: Path) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OptionValueError(f"expected a list of paths, got {value!r}")
    return tuple(base / v for v in value)


def _compare_func(value: Any, base: Path) -> str:
    if value not in COMPARE_FUNCS:
        raise OptionValueError(f"expected one of {', '.join(COMPARE_FUNCS)}, got {value!r}")
    return str(value)


def _reference(value: Any, base: Path) -> str:
    if value not in REFERENCES:
        raise OptionValueError(f"expected one of {', '.join(REFERENCES)}, got {value!r}")
    return str(value)


def _compare_args(value: Any, base: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OptionValueError(
            'expected an object of compare function arguments, e.g. {"index_tolerance": 1}'
        )
    return dict(value)


def _skip(value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise OptionValueError("expected the reason to skip, as a string")
    return value


def _one_path(value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise OptionValueError(f"expected a path, got {value!r}")
    return base / value


def _existing(path: Path) -> Path:
    if not path.exists():
        raise OptionValueError(f"no such file: {path}")
    return path


def _choice(value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise OptionValueError(f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _precisions(value: Any, base: Path) -> tuple[str, ...]:
    return syntax.parse_precisions([value] if isinstance(value, str) else value)


PARSERS: dict[str, Callable[[Any, Path], Any]] = {
    "precisions": _precisions,
    "reference": _reference,
    "input_shapes": _shape_sets,
    "val_range": _ranges,
    "seed": _int(0),
    "iterations": _int(1),
    "load_inputs": _paths,
    "rtol": _per_name(lambda v: syntax.parse_tolerances(v, "rtol")),
    "atol": _per_name(lambda v: syntax.parse_tolerances(v, "atol")),
    "check_error_stat": _per_name(syntax.parse_error_stats),
    "error_quantile": _per_name(syntax.parse_quantiles),
    "compare_func": _compare_func,
    "compare_args": _compare_args,
    "mark_all": _bool,
    "validate": _bool,
    "keep_fp32": lambda value, base: syntax.parse_node_names(value),
    "keep_fp16": lambda value, base: syntax.parse_node_names(value),
    "skip": _skip,
    # polygraphy run's output, data and results options (settings.RUN_OPTIONS)
    "outputs": lambda value, base: runsyntax.parse_outputs(value),
    "exclude_outputs": lambda value, base: runsyntax.parse_names(value),
    "data_loader_script": runsyntax.parse_script,
    "save_inputs": lambda value, base: _one_path(value, base),
    "save_outputs": lambda value, base: _one_path(value, base),
    "save_format": lambda value, base: _choice(value, runsyntax.SAVE_FORMATS),
    "load_outputs": lambda value, base: _existing(_one_path(value, base)),
    "postprocess": lambda value, base: runsyntax.parse_postprocess(value),
    "fail_fast": _bool,
    "warm_up": _int(0),
    # TensorRT build options (settings.TRT_BUILD_OPTIONS)
    "trt_pool_limit": lambda value, base: runsyntax.parse_pool_limits(value),
    "trt_builder_optimization_level": lambda value, base: runsyntax.parse_optimization_level(value),
    "trt_tactic_sources": lambda value, base: runsyntax.parse_tactic_sources(value),
    "trt_strongly_typed": _bool,
    "trt_precision_constraints": lambda value, base: _choice(
        value, runsyntax.PRECISION_CONSTRAINTS
    ),
    "trt_sparse_weights": _bool,
    "trt_plugins": _paths,
    "trt_use_dla": _bool,
    "trt_allow_gpu_fallback": _bool,
    "trt_min_shapes": _shape_sets,
    "trt_opt_shapes": _shape_sets,
    "trt_max_shapes": _shape_sets,
    "save_engine": lambda value, base: _one_path(value, base),
    "trt_timing_cache": lambda value, base: _one_path(value, base),
    "trt_calibrator": lambda value, base: _choice(value, TRT_CALIBRATORS),
    "calibration_cache": lambda value, base: _one_path(value, base),
    # the ONNX model a prebuilt engine (.engine/.plan) was built from: its reference
    "model": lambda value, base: _one_path(value, base),
}


def validate_settings(raw: Any, base: Path) -> dict[str, Any]:
    """Parse a settings object; relative paths are taken from ``base``.

    Raises OptionValueError naming the bad key and what it accepts."""
    if not isinstance(raw, dict):
        raise OptionValueError(f"settings must be a JSON object, got {type(raw).__name__}")
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        parse = PARSERS.get(key)
        if parse is None:
            raise OptionValueError(f"unknown key {key!r}; accepted keys: {', '.join(PARSERS)}")
        try:
            parsed[key] = parse(value, base)
        except OptionValueError as err:
            raise OptionValueError(f"{key}: {err}") from None
    return parsed


def sidecar_path(model: Path) -> Path:
    """``models/resnet.onnx`` -> ``models/resnet.polygraphy.json``."""
    return model.with_name(model.stem + SUFFIX)


def load_sidecar(model: Path) -> dict[str, Any]:
    """The parsed settings file beside ``model`` (empty when there is none).

    Raises OptionValueError naming the file for bad JSON or a bad key."""
    path = sidecar_path(model)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return validate_settings(raw, path.parent)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OptionValueError(f"{path}: not valid JSON: {err}") from None
    except OptionValueError as err:
        raise OptionValueError(f"{path}: {err}") from None


@dataclass(frozen=True)
class Layer:
    """Settings from one place (``source``: "command line", "net.polygraphy.json", ...)."""

    source: str
    values: Mapping[str, Any]


def merge_sourced(layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """``merge`` of the layers' values, and the source of every merged value: keyed by the
    setting (``seed``), or ``rtol[boxes]`` for a named entry of a per-name dict (its ``""``
    entry is keyed ``rtol``)."""
    sources: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.values.items():
            if isinstance(value, dict):
                for name in value:
                    sources[f"{key}[{name}]" if name else key] = layer.source
            else:
                sources[key] = layer.source
    return merge(*(layer.values for layer in layers)), sources


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; per-name dicts (tolerances, ranges) merge key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def model_layers(
    model: Path,
    ini_settings: tuple[tuple[str, dict[str, Any]], ...],
    rootpath: Path,
) -> list[Layer]:
    """The ini lines whose glob matches the model (path relative to rootdir, or file name),
    in order, then the file beside the model (when there is one).

    Raises OptionValueError naming the sidecar for a bad one."""
    try:
        relative = model.resolve().relative_to(rootpath.resolve()).as_posix()
    except ValueError:
        relative = model.as_posix()
    layers = [
        Layer(f"ini polygraphy_model_settings {glob}", settings)
        for glob, settings in ini_settings
        if fnmatch.fnmatch(relative, glob) or fnmatch.fnmatch(model.name, glob)
    ]
    sidecar = load_sidecar(model)
    if sidecar:
        layers.append(Layer(sidecar_path(model).name, sidecar))
    return layers


def settings_for_model(
    model: Path,
    ini_settings: tuple[tuple[str, dict[str, Any]], ...],
    rootpath: Path,
) -> dict[str, Any]:
    """The merged per-model settings of ``model`` (see ``model_layers``)."""
    return merge(*(layer.values for layer in model_layers(model, ini_settings, rootpath)))
