"""``polygraphy run``-style option values: shapes, ranges, per-output tolerances."""

from __future__ import annotations

import math

import pytest

from pytest_polygraphy.plugin import syntax
from pytest_polygraphy.plugin.syntax import OptionValueError


def test_shape_sets_parse_names_with_colons_and_scalars() -> None:
    shapes = syntax.parse_shape_set(["x:[1,3,224,224]", "input:0:[2]", "s:[]"])
    assert shapes == {"x": (1, 3, 224, 224), "input:0": (2,), "s": ()}
    assert syntax.parse_shape_set("x:[1, 3] mask:[1,1]") == {"x": (1, 3), "mask": (1, 1)}
    assert syntax.parse_shape_set({"x": [8, 3]}) == {"x": (8, 3)}
    assert syntax.parse_shape_set(["[4,2]"]) == {"": (4, 2)}


def test_a_quoted_set_given_as_one_argument_is_its_items() -> None:
    # what argparse hands over for --polygraphy-input-shapes 'input:[1,512] state:[2,1,128] sr:[]'
    one_token = ["input:[1,512] state:[2,1,128] sr:[]"]
    assert syntax.parse_shape_set(one_token) == {"input": (1, 512), "state": (2, 1, 128), "sr": ()}
    assert syntax.parse_shape_set(["inp_*:[1, 3] [ab]_m:[2]"]) == {"inp_*": (1, 3), "[ab]_m": (2,)}
    assert syntax.parse_ranges(["[0,1] ids:[0,9]"]) == {"": (0, 1), "ids": (0, 9)}
    assert syntax.parse_tolerances(["1e-3 boxes:1e-2"], "rtol") == {"": 1e-3, "boxes": 1e-2}
    assert syntax.parse_error_stats(["max y:elemwise"]) == {"": "max", "y": "elemwise"}


@pytest.mark.parametrize("bad", ["x:1x3", "x:[1,-3]", "x:[1,a]", "x:[1.5]", "x:(1,3)", ""])
def test_bad_shapes_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(OptionValueError, match=r"\[1,3,224,224\]|non-negative int|names no input"):
        syntax.parse_shape_set(bad)


def test_an_input_given_twice_in_one_shape_set_is_refused() -> None:
    """``--polygraphy-input-shapes 'x:[1,512]' 'x:[2,512]'`` is one shape set naming x
    twice (the later shape used to win silently, and the first was never tested)."""
    for given in (["x:[1,512]", "x:[2,512]"], "x:[1,512] y:[3] x:[1,512]"):
        with pytest.raises(OptionValueError, match=r"'x' is given twice in one shape set"):
            syntax.parse_shape_set(given)


def test_shape_set_ids_are_stable_and_readable() -> None:
    assert syntax.shape_set_id({"x": (8, 3, 224, 224)}) == "x=8x3x224x224"
    assert syntax.shape_set_id({"x": (1, 3), "m": ()}) == "x=1x3,m=scalar"
    assert syntax.format_shape_set({"x": (1, 3), "": (2,)}) == ["x:[1,3]", "[2]"]
    shapes = {"x": (1, 3), "in:0": (5,)}
    assert syntax.parse_shape_set(syntax.format_shape_set(shapes)) == shapes


def test_value_ranges_keep_ints_and_take_infinity() -> None:
    ranges = syntax.parse_ranges(["[0,1]", "ids:[0,30521]", "f:[-1.5,inf]"])
    assert ranges == {"": (0, 1), "ids": (0, 30521), "f": (-1.5, math.inf)}
    assert isinstance(ranges["ids"][1], int)
    assert syntax.parse_ranges({"x": [-1, 1]}) == {"x": (-1, 1)}
    for bad in (["x:[1,0]"], ["x:[0]"], ["x:[a,b]"], ["x:[nan,1]"]):
        with pytest.raises(OptionValueError, match="value range of 'x'"):
            syntax.parse_ranges(bad)


def test_tolerances_per_output_with_a_default() -> None:
    assert syntax.parse_tolerances(["1e-3", "boxes:1e-2"], "rtol") == {"": 1e-3, "boxes": 1e-2}
    assert syntax.parse_tolerances(0.5, "atol") == {"": 0.5}
    assert syntax.parse_tolerances("1e-3 a:0", "atol") == {"": 1e-3, "a": 0.0}
    assert syntax.parse_tolerances({"": 1, "y": 2}, "rtol") == {"": 1.0, "y": 2.0}
    for bad in (["-1"], ["boxes:abc"], ["inf"], [True]):
        with pytest.raises(OptionValueError, match=r"non-negative number .*e\.g\. 1e-3 boxes:1e-2"):
            syntax.parse_tolerances(bad, "rtol")


def test_error_stats_and_quantiles() -> None:
    assert syntax.parse_error_stats(["max", "y:elemwise"]) == {"": "max", "y": "elemwise"}
    assert syntax.parse_error_stats("median") == {"": "median"}
    with pytest.raises(OptionValueError, match="elemwise, max, mean, median, quantile"):
        syntax.parse_error_stats(["y:worst"])
    assert syntax.parse_quantiles(["0.5", "y:1"]) == {"": 0.5, "y": 1.0}
    with pytest.raises(OptionValueError, match=r"\[0, 1\]"):
        syntax.parse_quantiles(["1.5"])


def test_precisions_are_validated_and_deduplicated() -> None:
    assert syntax.parse_precisions(["fp16", "fp32", "fp16"]) == ("fp16", "fp32")
    with pytest.raises(OptionValueError, match="fp32, tf32, fp16, bf16, int8, fp8"):
        syntax.parse_precisions(["fp64"])
    with pytest.raises(OptionValueError, match="no precision"):
        syntax.parse_precisions([])


def test_ints() -> None:
    assert syntax.parse_int("3", "seed", 0) == 3
    assert syntax.parse_int(3, "seed", 0) == 3
    for bad in ("x", "-1", 1.5, True):
        with pytest.raises(OptionValueError, match="integer >= 0"):
            syntax.parse_int(bad, "seed", 0)


def test_per_name_values_format_back_to_the_option_syntax() -> None:
    assert syntax.format_per_name({"": 0.001, "boxes": 0.01}) == ["0.001", "boxes:0.01"]
    assert syntax.format_per_name({"x": (0, 1)}) == ["x:[0,1]"]
    ranges = {"": (0, 1), "x": (-2.5, 3)}
    assert syntax.parse_ranges(syntax.format_per_name(ranges)) == ranges
