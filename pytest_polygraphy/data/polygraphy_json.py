"""Polygraphy's JSON encoding of arrays, feed lists and run results.

What Polygraphy writes (``polygraphy.json``), and what this module reads and writes:

* an array is ``{"array": <base64 of the .npy bytes>, "polygraphy_class": "ndarray"}``;
* inputs (``--save-inputs``) are a JSON list of feed dicts ``{name: array}``; a file that
  holds one feed dict instead of a list is one iteration;
* run results (``--save-outputs``) are
  ``{"lst": [[runner name, [iteration result, ...]], ...], "polygraphy_class": "RunResults"}``
  where an iteration result is ``{"outputs": {name: {"values": <array>, "polygraphy_class":
  "LazyArray"}}, "runtime": seconds or null, "runner_name": ..., "polygraphy_class":
  "IterationResult"}``.

Older Polygraphy versions marked types with a key ``"__polygraphy_encoded_<type>"`` of value
``"polygraphy_serialized_json_type"``, stored ``.npy`` bytes as latin-1 text, and named the
lazy array ``LazyNumpyArray``; those are read too. Arrays are loaded without pickle.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_polygraphy.data import dtypes
from pytest_polygraphy.errors import InputError

TYPE_MARKER = "polygraphy_class"
_LEGACY_PREFIX = "__polygraphy_encoded_"
_LEGACY_VALUE = "polygraphy_serialized_json_type"


class DecodedIteration(dict):
    """A decoded ``IterationResult``: its outputs, plus ``runtime`` and ``runner_name``."""

    runtime: float | None = None
    runner_name: str | None = None


class DecodedRunResults(list):
    """A decoded ``RunResults``: a list of ``(runner name, [DecodedIteration, ...])``."""


def loads(text: str | bytes, where: str) -> Any:
    """Decode Polygraphy JSON; ``where`` (the file) names the source in every error."""
    try:
        return json.loads(text, object_pairs_hook=lambda pairs: _decode_object(pairs, where))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: not valid JSON: {err}") from err


def dumps(obj: object) -> str:
    """Encode plain JSON structures built by :func:`encode_array` and friends."""
    return json.dumps(obj, indent=4)


def encode_array(array: np.ndarray, where: str) -> dict[str, str]:
    """The Polygraphy JSON object of one array; ``where`` names it in errors."""
    array = np.asarray(array)
    if dtypes.is_extension(array.dtype) or dtypes.kind(array.dtype) == "other":
        raise InputError(
            f"{where}: Polygraphy's JSON format cannot hold {dtypes.name(array.dtype)} arrays; "
            f"save to a .npz file instead"
        )
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return {"array": base64.b64encode(buffer.getvalue()).decode(), TYPE_MARKER: "ndarray"}


def encode_feed(feed: Mapping[str, np.ndarray], where: str) -> dict[str, dict[str, str]]:
    """A feed dict as Polygraphy stores it."""
    return {name: encode_array(array, f"{where}: {name!r}") for name, array in feed.items()}


def encode_run_results(
    runners: Sequence[tuple[str, Sequence[tuple[Mapping[str, np.ndarray], float | None]]]],
    where: str,
) -> dict[str, object]:
    """Polygraphy's ``RunResults`` object from ``[(runner, [(outputs, runtime), ...]), ...]``."""
    lst = []
    for runner, iterations in runners:
        encoded = []
        for index, (outputs, runtime) in enumerate(iterations):
            values = {
                name: {
                    "values": encode_array(array, f"{where}: {runner} iteration {index} {name!r}"),
                    TYPE_MARKER: "LazyArray",
                }
                for name, array in outputs.items()
            }
            encoded.append(
                {
                    "outputs": values,
                    "runtime": runtime,
                    "runner_name": runner,
                    TYPE_MARKER: "IterationResult",
                }
            )
        lst.append([runner, encoded])
    return {"lst": lst, TYPE_MARKER: "RunResults"}


def _decode_object(pairs: list[tuple[str, Any]], where: str) -> Any:
    obj = dict(pairs)
    type_name = obj.pop(TYPE_MARKER, None)
    for key in list(obj):
        if key.startswith(_LEGACY_PREFIX) and obj[key] == _LEGACY_VALUE:
            type_name = key[len(_LEGACY_PREFIX) :]
            del obj[key]
    if type_name is None:
        return obj
    try:
        if type_name == "ndarray":
            return _decode_array(obj["array"], where)
        if type_name in ("LazyArray", "LazyNumpyArray"):
            return _expect_array(obj["values"], where)
        if type_name == "IterationResult":
            return _decode_iteration(obj, where)
        if type_name == "RunResults":
            return _decode_run_results(obj["lst"], where)
    except KeyError as err:
        raise InputError(f"{where}: a {type_name} object lacks its {err.args[0]!r} field") from err
    if type_name == "Tensor":
        raise InputError(f"{where}: holds torch tensors, which pytest-polygraphy does not read")
    raise InputError(f"{where}: holds a Polygraphy {type_name!r} object, not inputs or outputs")


def _decode_array(data: object, where: str) -> np.ndarray:
    if not isinstance(data, str):
        raise InputError(f"{where}: an ndarray's 'array' field is not a string")
    try:
        raw = base64.b64decode(data.encode(), validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = data.encode("latin-1")
        except UnicodeEncodeError as err:
            raise InputError(f"{where}: an array is neither base64 nor latin-1 .npy") from err
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{where}: an array's .npy data is corrupt: {err}") from err
    if isinstance(loaded, np.lib.npyio.NpzFile):  # very old files wrapped arrays in .npz
        with loaded:
            if not loaded.files:
                raise InputError(f"{where}: an array payload is an empty .npz archive")
            return loaded[loaded.files[0]]
    return loaded


def _expect_array(value: object, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise InputError(f"{where}: expected an array, got {type(value).__name__}")
    return value


def _decode_iteration(obj: dict[str, Any], where: str) -> DecodedIteration:
    outputs = obj["outputs"]
    if not isinstance(outputs, dict):
        raise InputError(f"{where}: an IterationResult's outputs are not a dict")
    iteration = DecodedIteration(
        (name, _expect_array(value, f"{where}: output {name!r}")) for name, value in outputs.items()
    )
    runtime = obj.get("runtime")
    if runtime is not None and not isinstance(runtime, int | float):
        raise InputError(f"{where}: an IterationResult's runtime is not a number: {runtime!r}")
    iteration.runtime = None if runtime is None else float(runtime)
    iteration.runner_name = obj.get("runner_name")
    return iteration


def _decode_run_results(lst: object, where: str) -> DecodedRunResults:
    if not isinstance(lst, list):
        raise InputError(f"{where}: a RunResults' 'lst' is not a list")
    decoded = DecodedRunResults()
    for entry in lst:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], list)
            or not all(isinstance(it, DecodedIteration) for it in entry[1])
        ):
            raise InputError(
                f"{where}: a RunResults entry is not [runner name, [IterationResult, ...]]"
            )
        decoded.append((entry[0], entry[1]))
    return decoded
