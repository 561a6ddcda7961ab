"""A test's inputs and outputs as files, as ``polygraphy run`` writes and reads them:
``--polygraphy-save-inputs DIR``, ``--polygraphy-save-outputs DIR`` (one file per test, npz
or Polygraphy JSON), ``--polygraphy-load-outputs FILE`` (a results file made elsewhere as
the reference, or the folder a previous run saved, each test reading its own file), and
the Top-K postprocessing of outputs before they are compared.

Files go into folders this plugin owns: a folder is claimed with a marker file when it is
new or empty, and a folder that holds other files and no marker is refused, so a user's
files are never written over. Every file is written atomically.

Imported when a test runs (numpy and the data package are imported inside functions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_polygraphy.errors import InputError
from pytest_polygraphy.per_name import entry_for, unknown_names, value_for

#: The file that marks a folder as written by this plugin (its files may be replaced).
OWNER_MARKER = ".pytest-polygraphy-results"


def folder_problem(folder: Path) -> str | None:
    """Why results cannot be written into ``folder``, or None after claiming it (creating
    it and its marker when it is new or empty)."""
    from pytest_polygraphy.files import folder_write_problem, write_bytes_atomically

    marker = folder / OWNER_MARKER
    if folder.is_dir() and not marker.exists():
        others = sorted(p.name for p in folder.iterdir())
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            return (
                f"it holds files this plugin did not write ({shown}); give a new or empty "
                "folder, so that no file of yours is written over"
            )
    problem = folder_write_problem(folder)
    if problem is not None:
        return problem
    if not marker.exists():
        text = b"Written by pytest-polygraphy: its files here may be replaced by later runs.\n"
        write_bytes_atomically(marker, text)
    return None


def claim_folder(folder: Path, option: str) -> None:
    """InputError naming ``option`` and ``folder`` when results cannot go there."""
    problem = folder_problem(folder)
    if problem is not None:
        raise InputError(f"{option} {folder}: cannot write there: {problem}")


def per_test_path(folder: Path, nodeid: str, kind: str, file_format: str) -> Path:
    """``DIR/models.net.onnx.accuracy[fp16].inputs.npz`` for test ``models/net.onnx::
    accuracy[fp16]``: unique per test and portable (see ``golden.file_name``)."""
    return folder / f"{per_test_stem(nodeid)}.{kind}.{file_format}"


def per_test_stem(nodeid: str) -> str:
    """``models.net.onnx.accuracy[fp16]`` for test ``models/net.onnx::accuracy[fp16]``."""
    from pytest_polygraphy.plugin.golden import file_name

    return file_name(nodeid.replace("::", ".").replace("/", "."))


@dataclass
class SavedRun:
    """The feeds and each runner's outputs of one test, kept to be written at its end."""

    feeds: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_outputs(self, runner: str, outputs: Mapping[str, Any]) -> None:
        self.outputs.setdefault(runner, []).append(dict(outputs))


def write_saved(
    saved: SavedRun,
    nodeid: str,
    *,
    inputs_dir: Path | None,
    outputs_dir: Path | None,
    file_format: str,
) -> list[Path]:
    """Write the test's inputs and outputs files; returns the paths written."""
    from pytest_polygraphy.data import save_inputs, save_run_results

    written = []
    if inputs_dir is not None:
        claim_folder(inputs_dir, "--polygraphy-save-inputs")
        path = per_test_path(inputs_dir, nodeid, "inputs", file_format)
        written.append(save_inputs(path, saved.feeds))
    if outputs_dir is not None:
        claim_folder(outputs_dir, "--polygraphy-save-outputs")
        path = per_test_path(outputs_dir, nodeid, "outputs", file_format)
        written.append(save_run_results(path, saved.outputs))
    return written


@dataclass(frozen=True)
class LoadedOutputs:
    """The reference outputs of ``--polygraphy-load-outputs``: one runner of a results file."""

    path: Path
    runner: str
    iterations: Sequence[Mapping[str, Any]]

    @property
    def name(self) -> str:
        """How comparisons name this reference: ``onnxrt from results.json``."""
        return f"{self.runner} from {self.path.name}"


def load_outputs(path: Path, nodeid: str) -> LoadedOutputs:
    """The first runner's outputs of the results file at ``path`` (Polygraphy compares
    with the first runner too). InputError naming the file when it holds no runner.

    A folder that ``--polygraphy-save-outputs`` wrote (it holds the plugin's marker file)
    gives each test its own file, ``per_test_path(path, nodeid, "outputs", ...)``, so that
    the outputs one run saved are compared test by test in the next; InputError naming
    the file looked for when the test has none there. Any other folder is read whole, its
    files' iterations in name order (Polygraphy's one file per iteration)."""
    from pytest_polygraphy.data import load_run_results

    if path.is_dir() and (path / OWNER_MARKER).exists():
        candidates = [per_test_path(path, nodeid, "outputs", fmt) for fmt in ("npz", "json")]
        found = [candidate for candidate in candidates if candidate.is_file()]
        if not found:
            raise InputError(
                f"{path}: the folder --polygraphy-save-outputs wrote holds no outputs of this "
                f"test ({candidates[0].name} or {candidates[1].name}); save them with the "
                "test's own parameters (precision, shapes), or give one results file"
            )
        if len(found) > 1:
            raise InputError(
                f"{path}: the folder holds this test's outputs twice ({found[0].name} and "
                f"{found[1].name}); remove one"
            )
        path = found[0]
    results = load_run_results(path)
    if not len(results):
        raise InputError(
            f"{path}: the results file holds no runner's outputs; save a run into it (polygraphy "
            "run --save-outputs, or --polygraphy-save-outputs)"
        )
    runner = next(iter(results))
    return LoadedOutputs(path, runner, results[runner])


def postprocess(
    outputs: Mapping[str, Any], top_k: Mapping[str, tuple[int, int | None]], where: str
) -> dict[str, Any]:
    """``outputs`` with each output that ``top_k`` covers (by name, pattern or the ``""``
    default) replaced by the indices of its K largest values along the axis, largest first
    (K clamped to the axis length, as in Polygraphy). InputError naming the output when an
    axis does not exist, or when an entry names no output."""
    import numpy as np

    unknown = unknown_names(top_k, list(outputs))
    if unknown:
        raise InputError(
            f"postprocess names {unknown}, which {where} does not output (its outputs: "
            f"{sorted(outputs)})"
        )
    result = dict(outputs)
    for name, value in outputs.items():
        spec = value_for(top_k, name)
        if spec is None or (entry_for(top_k, name) is None and "" not in top_k):
            continue
        k, axis = spec
        array = np.asarray(value)
        use_axis = -1 if axis is None else axis
        if array.ndim == 0 or not -array.ndim <= use_axis < array.ndim:
            raise InputError(
                f"postprocess top-{k} of output {name!r} ({where}): axis {use_axis} does not "
                f"exist in its shape {list(array.shape)}"
            )
        k = min(k, array.shape[use_axis])
        keys = array.astype(np.int64) if array.dtype.kind in "ub" else array  # -x must not wrap
        order = np.argsort(-keys, axis=use_axis, kind="stable")  # ties: the lower index first
        result[name] = np.take(order, np.arange(k), axis=use_axis)
    return result
