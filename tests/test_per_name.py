"""The one rule for options given once or per tensor name."""

from __future__ import annotations

from pytest_polygraphy.per_name import unknown_names, value_for


def test_a_plain_value_applies_to_every_name() -> None:
    assert value_for(1e-3, "boxes") == 1e-3
    assert value_for(None, "boxes", 5) is None  # None is a value, not "unset"


def test_own_entry_then_default_key_then_default() -> None:
    option = {"": 1e-3, "boxes": 1e-2}
    assert value_for(option, "boxes") == 1e-2
    assert value_for(option, "scores") == 1e-3
    assert value_for({"boxes": 1e-2}, "scores") is None
    assert value_for({"boxes": 1e-2}, "scores", 1e-5) == 1e-5


def test_unknown_names_ignore_the_default_key() -> None:
    assert unknown_names({"": 1, "boxes": 2, "bxoes": 3}, ["boxes", "scores"]) == ["bxoes"]
    assert unknown_names(1e-3, ["boxes"]) == []


def test_patterns_match_after_the_own_entry_and_before_the_default() -> None:
    option = {"": 1.0, "out_*": 2.0, "out_[ab]": 3.0, "out_b": 4.0}
    assert value_for(option, "out_b") == 4.0  # its own entry
    assert value_for(option, "out_a") == 2.0  # the first pattern in order that matches
    assert value_for(option, "boxes") == 1.0
    assert unknown_names({"out_*": 1, "in_?": 2, "[xy]": 3}, ["out_1", "y"]) == ["in_?"]
