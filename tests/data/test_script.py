"""Data loader scripts (``path.py:function``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.data import load_script_loader
from pytest_polygraphy.data.script import parse_script_spec
from pytest_polygraphy.errors import InputError

SCRIPT = """
import numpy as np
from helper_{tag} import SHAPE

def load_data():
    for k in range(3):
        yield {{"x": np.full(SHAPE, k, np.float32)}}

def as_list():
    return [{{"x": np.zeros(SHAPE, np.float32)}}]

def not_feeds():
    return [1, 2]

def returns_dict():
    return {{"x": np.zeros(SHAPE)}}

def raises():
    raise RuntimeError("no data today")

VALUE = 3
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    # a helper module name unique to this test, since imported modules stay in sys.modules
    tag = re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"helper_{tag}.py").write_text("SHAPE = (2, 2)\n")
    path = tmp_path / "loader.py"
    path.write_text(SCRIPT.format(tag=tag))
    return path


def test_default_function_is_load_data_and_generators_reiterate(script: Path) -> None:
    loader = load_script_loader(str(script))
    for _ in range(2):
        feeds = list(loader)
        assert [float(f["x"][0, 0]) for f in feeds] == [0.0, 1.0, 2.0]
    assert str(script) not in sys.path


def test_named_function(script: Path) -> None:
    [feed] = list(load_script_loader(f"{script}:as_list"))
    assert np.array_equal(feed["x"], np.zeros((2, 2), np.float32))


@pytest.mark.parametrize(
    ("suffix", "match"),
    [
        (":missing", "has no function 'missing'.*load_data"),
        (":VALUE", "'VALUE' is not a function"),
    ],
)
def test_missing_or_non_callable_function(script: Path, suffix: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as err:
        load_script_loader(f"{script}{suffix}")
    assert str(script) in str(err.value)


@pytest.mark.parametrize(
    ("function", "match"),
    [
        ("not_feeds", "iteration 0 is not a feed dict"),
        ("returns_dict", "must return an iterable of feed dicts"),
        ("raises", "no data today"),
    ],
)
def test_bad_output_is_an_error_naming_the_script(script: Path, function: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as err:
        list(load_script_loader(f"{script}:{function}"))
    assert f"{script}:{function}" in str(err.value)


def test_missing_file_and_broken_script(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.py: data loader script not found"):
        load_script_loader(str(tmp_path / "nope.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("def load_data(:\n")
    with pytest.raises(InputError, match=r"broken\.py: importing the data loader script failed"):
        load_script_loader(str(broken))


@pytest.mark.parametrize(
    ("spec", "path", "function"),
    [
        ("data.py", "data.py", "load_data"),
        ("dir/data.py:make", "dir/data.py", "make"),
        ("C:\\data\\x.py", "C:\\data\\x.py", "load_data"),
    ],
)
def test_parse_script_spec(spec: str, path: str, function: str) -> None:
    assert parse_script_spec(spec) == (Path(path), function)
