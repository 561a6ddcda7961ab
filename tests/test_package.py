"""Package-level guarantees: a light import, the entry point, typing marker."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest_polygraphy

HEAVY = ("numpy", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx", "cuda", "hypothesis")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_importing_the_plugin_entry_point_loads_nothing_heavy() -> None:
    loaded = _modules_after("import pytest_polygraphy.plugin")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_public_names_resolve_lazily() -> None:
    for name in pytest_polygraphy.__all__:
        assert getattr(pytest_polygraphy, name) is not None


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    """``import pytest_polygraphy.x`` sets attribute ``x``: an export named like a
    subpackage would change meaning once that subpackage is imported."""
    import importlib
    import types

    for name in pytest_polygraphy.__all__:
        value = getattr(pytest_polygraphy, name)
        assert not isinstance(value, types.ModuleType), name
        try:
            importlib.import_module(f"pytest_polygraphy.{name}")
        except ModuleNotFoundError:
            continue
        raise AssertionError(f"{name} is both an export and a submodule")


def test_entry_point_is_registered() -> None:
    eps = metadata.entry_points(group="pytest11")
    assert any(ep.name == "polygraphy" and ep.value == "pytest_polygraphy.plugin" for ep in eps)


def test_py_typed_is_shipped() -> None:
    assert (Path(pytest_polygraphy.__file__).parent / "py.typed").is_file()


def test_strategies_without_hypothesis_say_what_to_install() -> None:
    """hypothesis is an extra: its absence is met at ``import pytest_polygraphy.strategies``
    with the command that installs it, and nowhere else."""
    code = (
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"  # as if hypothesis were not installed
        "import pytest_polygraphy, pytest_polygraphy.data, pytest_polygraphy.plugin\n"
        "try:\n"
        "    import pytest_polygraphy.strategies\n"
        "except ModuleNotFoundError as err:\n"
        "    print(err.name, err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.startswith("hypothesis "), out
    assert 'pip install "pytest-polygraphy[hypothesis]"' in out, out


def _unquoted_brackets(command: str) -> list[str]:
    """Words of a shell command that zsh would glob: brackets outside quotes."""
    import shlex

    lexer = shlex.shlex(command, posix=False, punctuation_chars=False)
    lexer.whitespace_split = True
    return [word for word in lexer if "[" in word and word[0] not in "'\""]


def test_shell_examples_quote_shapes_and_ranges() -> None:
    """zsh (macOS's default shell) fails on an unquoted ``x:[8,3,224,224]``: every shell
    command in the README and in ``pytest --help`` quotes its brackets."""
    import re

    from pytest_polygraphy.plugin.optionspecs import OPTION_SPECS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", readme, flags=re.S)
    commands = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
    assert any("--polygraphy-input-shapes" in line for line in commands)
    for command in commands:
        assert not _unquoted_brackets(command), command
    for spec in OPTION_SPECS:
        example = spec.help.partition("e.g. ")[2].partition(" (")[0]
        assert not _unquoted_brackets(example), (spec.flag, example)
