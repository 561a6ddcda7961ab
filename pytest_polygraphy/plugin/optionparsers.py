"""How each ``--polygraphy-*`` option's value is parsed (from the command line or the ini
file) and rendered back to arguments: the functions that the option table
(``options.json``, read by ``optionspecs``) names by ``parse`` and ``render``.

Imported when the first value is parsed or rendered, never at start-up (see
``optionspecs`` for why the table itself is data). Stdlib and pytest only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.plugin import syntax
from pytest_polygraphy.plugin.vocabulary import (
    COMPARE_FUNCS,
    REFERENCES,
    TRT_CALIBRATORS,
    OptionValueError,
)

#: ``parse(value, where, config, from_ini)``: the option's value as PolygraphyOptions holds it.
Parse = Callable[[Any, str, pytest.Config, bool], Any]
#: ``render(flag, value)``: the arguments that give the value again.
Render = Callable[[str, Any], list[str]]


def _render_flag(flag: str, value: Any) -> list[str]:
    return [flag] if value else []


def _render_value(flag: str, value: Any) -> list[str]:
    return [flag, str(value)]


def _render_values(flag: str, value: Any) -> list[str]:
    return [flag, *(str(v) for v in value)]


def _render_per_name(flag: str, value: Any) -> list[str]:
    return [flag, *syntax.format_per_name(value)]


def _render_sets(flag: str, value: Any) -> list[str]:
    args: list[str] = []
    for shapes in value:
        args += [flag, *syntax.format_shape_set(shapes)]
    return args


def _choice(choices: Sequence[str]) -> Callable[[Any, str, pytest.Config, bool], str]:
    def parse(value: Any, what: str, config: pytest.Config, from_ini: bool) -> str:
        if value not in choices:
            raise OptionValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _int(minimum: int) -> Callable[[Any, str, pytest.Config, bool], int]:
    return lambda value, what, config, from_ini: syntax.parse_int(value, "the value", minimum)


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
    return tuple(syntax.parse_shape_set(items) for items in value)


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


def _existing_files(value: Any, what: str, config: pytest.Config, from_ini: bool) -> tuple:
    paths = _paths(value, what, config, from_ini)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise OptionValueError(f"no such file: {', '.join(missing)}")
    return paths


#: Parsers the table names by a plain string.
_NAMED: dict[str, Parse] = {
    "bool": _bool,
    "path": _path,
    "paths": _paths,
    "existing_file": _existing_file,
    "existing_files": _existing_files,
    "existing_results": _existing_results,
    "providers": _providers,
    "shape_sets": _shape_sets,
    "until": _until,
    "regex": _regex,
    "outputs": _outputs,
    "names": _names,
    "script": _script,
    "postprocess": _postprocess,
}
#: Constants a ``["choice", NAME]`` entry names.
_CHOICES: dict[str, Sequence[str]] = {
    "REFERENCES": REFERENCES,
    "COMPARE_FUNCS": COMPARE_FUNCS,
    "TRT_CALIBRATORS": TRT_CALIBRATORS,
}
_RENDERERS: dict[str, Render] = {
    "flag": _render_flag,
    "value": _render_value,
    "values": _render_values,
    "per_name": _render_per_name,
    "sets": _render_sets,
    "outputs": _render_outputs,
    "postprocess": _render_postprocess,
}


def parser(entry: Any) -> Parse | None:
    """The parse function a table entry names: ``"path"`` (``_NAMED``), ``["int", MIN]``,
    ``["choice", [...] or CONSTANT]``, ``["tolerances", "rtol" | "atol"]``, or
    ``["syntax" | "runsyntax", FUNCTION]`` (a parser of that module, given the value
    only). None: the value is kept as a string."""
    if entry is None:
        return None
    if isinstance(entry, str):
        return _NAMED[entry]
    kind, argument = entry
    if kind == "int":
        return _int(int(argument))
    if kind == "choice":
        return _choice(_CHOICES[argument] if isinstance(argument, str) else tuple(argument))
    if kind == "tolerances":
        return _lift(lambda value: syntax.parse_tolerances(value, argument))
    if kind in ("syntax", "runsyntax"):
        return _lifted(argument, kind)
    raise ValueError(f"the option table names an unknown parser {entry!r}")


def renderer(name: str | None) -> Render | None:
    """The render function a table entry names (``_RENDERERS``); None: not rendered."""
    return None if name is None else _RENDERERS[name]
