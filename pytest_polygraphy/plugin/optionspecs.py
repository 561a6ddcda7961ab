"""The ``--polygraphy-*`` options and the markers: their table, their registration with
pytest, and the cheap reads start-up needs (is any option given; the GPU list; is a report
file asked for).

The table itself (names, help texts, kinds, ini types, and the names of the functions that
parse and render each value) is data, ``options.json``, read here. pytest imports this
module at every start; when ``PYTHONDONTWRITEBYTECODE`` is set (containers often set it)
it cannot cache its assert-rewritten copy and compiles it anew each time, and a Python
table of 65 options cost more to compile than everything else the plugin loads at start.
The parse and render functions are in ``optionparsers``, imported on first use.

Stdlib and pytest only: imported by the plugin entry point.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin.vocabulary import BACKENDS, TRT_CALIBRATORS

if TYPE_CHECKING:
    from pytest_polygraphy.plugin.optionparsers import Parse, Render

__all__ = [
    "BACKEND_HELP",
    "GROUP",
    "GROUP_DESCRIPTION",
    "INI_ONLY",
    "MARKERS",
    "OPTION_SPECS",
    "RUN_OPTION_SPECS",
    "TRT_CALIBRATORS",
    "TRT_OPTION_SPECS",
    "OptionSpec",
    "anything_given",
    "gpus_setting",
    "ini_value",
    "needs_gpu_hooks",
    "pytest_addoption",
    "register_markers",
    "report_file_asked",
]


@dataclass(frozen=True)
class OptionSpec:
    """One ``--polygraphy-*`` option and its ini twin (a row of ``options.json``)."""

    attr: str  # field of PolygraphyOptions
    help: str
    #: "flag" (store_true), "value" (one token), "values" (nargs=+), "sets" (repeatable nargs=+)
    kind: str
    metavar: str | None = None
    ini_type: str = "string"
    #: How the value is parsed and rendered back, by name (``optionparsers.parser``).
    parse_with: Any = None
    render_with: str | None = None
    #: "run" (``polygraphy run``'s output, data and results options), "trt" (TensorRT
    #: build options), or None.
    group: str | None = None

    @property
    def flag(self) -> str:
        return "--polygraphy-" + self.attr.replace("_", "-")

    @property
    def dest(self) -> str:
        return "polygraphy_" + self.attr

    @functools.cached_property
    def parse(self) -> Parse | None:
        """``parse(value, where, config, from_ini)``, or None (kept as a string)."""
        from pytest_polygraphy.plugin.optionparsers import parser

        return parser(self.parse_with)

    @functools.cached_property
    def render(self) -> Render | None:
        """``render(flag, value)``: the arguments that give the value again."""
        from pytest_polygraphy.plugin.optionparsers import renderer

        return renderer(self.render_with)


def _read_table() -> dict[str, Any]:
    return json.loads(Path(__file__).with_name("options.json").read_text(encoding="utf-8"))


_TABLE = _read_table()
OPTION_SPECS: tuple[OptionSpec, ...] = tuple(
    OptionSpec(
        row["attr"],
        row["help"],
        row["kind"],
        row.get("metavar"),
        row.get("ini_type", "string"),
        row.get("parse"),
        row.get("render"),
        row.get("group"),
    )
    for row in _TABLE["options"]
)
#: ``polygraphy run``'s which-outputs, data and results options.
RUN_OPTION_SPECS = tuple(spec for spec in OPTION_SPECS if spec.group == "run")
#: TensorRT build options: each is part of the engine cache key.
TRT_OPTION_SPECS = tuple(spec for spec in OPTION_SPECS if spec.group == "trt")
#: Ini-only settings (no command-line twin: they describe the project, not one run), as
#: ``(name, help, ini type)``.
INI_ONLY: tuple[tuple[str, str, str], ...] = tuple(
    (name, help, ini_type) for name, help, ini_type in _TABLE["ini_only"]
)
BACKEND_HELP: dict[str, str] = dict(_TABLE["backends"])
#: ``(signature, description)`` of every marker (``plugin.markers`` reads their arguments).
MARKERS: tuple[tuple[str, str], ...] = tuple(
    (signature, description) for signature, description in _TABLE["markers"]
)
GROUP: str = _TABLE["group"]
GROUP_DESCRIPTION: str = _TABLE["group_description"]


def register_markers(config: pytest.Config) -> None:
    """Register every marker with its signature (shown by ``pytest --markers``)."""
    for signature, description in MARKERS:
        config.addinivalue_line("markers", f"{signature}: {description}")


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
