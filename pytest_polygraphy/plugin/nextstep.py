"""What a failing accuracy test says last: which side is which, and what to run next.

A comparison failure names its two sides (``expected = onnxref at fp32``, ``actual =
onnxrt[fp16]``) and ends with the commands that re-run just that test to find the cause:
``--polygraphy-mark-all`` for the first tensor that diverges (unless the run already
compared every tensor, or its expected outputs come from a results file, which holds only
the tensors its run saved), then the debug session that finds the nodes:
``--polygraphy-precision`` (the nodes to keep in fp32) for a reduced-precision failure
when the plugin has that option, else ``--polygraphy-reduce`` (the smallest failing
subgraph). A looser tolerance is mentioned last and never alone: it hides a cause
rather than finding it.

Each command is the test's node id, quoted for the shell, with the run's own backend
switches and options (``PolygraphyOptions.to_args``), prefixed by ``cd <rootdir> &&``
where pytest was started elsewhere (node ids are relative to the rootdir).

Stdlib and pytest only.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_polygraphy.plugin.options import get_options
from pytest_polygraphy.plugin.optionspecs import OPTION_SPECS

#: Precisions whose failures the precision session (nodes to keep in fp32) addresses.
REDUCED_PRECISIONS = ("fp16", "bf16", "int8")
PRECISION_FLAG = "--polygraphy-precision"
REDUCE_FLAG = "--polygraphy-reduce"
MARK_ALL_FLAG = "--polygraphy-mark-all"
DEFAULT_REPORT = "polygraphy-report.html"


def rerun_command(config: pytest.Config, nodeid: str, extra: Sequence[str] = ()) -> str:
    """The shell command that re-runs test ``nodeid`` alone, as this run ran it, plus
    ``extra`` arguments."""
    args = ["pytest", nodeid, *get_options(config).to_args(), *extra]
    command = shlex.join(args)
    if Path(config.invocation_params.dir).resolve() != config.rootpath.resolve():
        command = f"cd {shlex.quote(str(config.rootpath))} && {command}"
    return command


def has_option(flag: str) -> bool:
    """Whether this version of the plugin has option ``flag``."""
    return any(spec.flag == flag for spec in OPTION_SPECS)


def side(name: str, precision: str) -> str:
    """``onnxrt[fp16]`` as is, ``onnxref at fp32`` where the name does not say it."""
    return name if precision in name else f"{name} at {precision}"


def next_steps(
    config: pytest.Config,
    nodeid: str,
    precision: str,
    *,
    reducible: bool = True,
    mark_all: bool | None = None,
    expected_from_file: bool = False,
) -> str:
    """The lines that end a comparison failure (module docstring).

    ``reducible``: whether the test takes its model and inputs from the plugin, so a
    debug session can replace them; ``mark_all``: whether every tensor was compared
    (default: the run's option), in which case the first divergence is already reported;
    ``expected_from_file``: whether the expected outputs come from a results file
    (``--polygraphy-load-outputs``), which has no other tensors to compare.
    """
    options = get_options(config)
    if mark_all is None:
        mark_all = options.mark_all
    steps: list[tuple[str, str]] = []
    if not mark_all and not expected_from_file:
        steps.append(
            (
                "find the first tensor that diverges (every intermediate tensor compared; "
                "the full table goes to the report)",
                rerun_command(config, nodeid, [MARK_ALL_FLAG, *_report_args(config)]),
            )
        )
    if reducible:
        if precision in REDUCED_PRECISIONS and has_option(PRECISION_FLAG):
            what, flag = f"find the nodes to keep in fp32 for {precision} to pass", PRECISION_FLAG
        else:
            what, flag = "shrink the model to the smallest subgraph that still fails", REDUCE_FLAG
        steps.append((what, rerun_command(config, nodeid, [flag])))
    lines = ["Next steps:"]
    for number, (what, command) in enumerate(steps, 1):
        lines += [f"  {number}. {what}:", f"       {command}"]
    lines.append(
        f"  {len(steps) + 1}. only when the error is what {precision} is expected to cost: "
        "loosen this output's tolerance to the smallest that passes (above), for this "
        "output only (--polygraphy-rtol NAME:VALUE, or rtol in the model's .polygraphy.json)"
    )
    return "\n".join(lines)


def _report_args(config: pytest.Config) -> list[str]:
    """``--polygraphy-report PATH``: the run's own report (absolute, since the command may
    change folder), else ``polygraphy-report.html``."""
    from pytest_polygraphy.plugin.report import report_path

    path = report_path(config)
    return ["--polygraphy-report", DEFAULT_REPORT if path is None else str(path)]
