"""Golden output files: one ``.npz`` per test, with a small JSON sidecar.

Layout: ``<folder of the test file>/golden/<test file stem>/<test name>.npz``, e.g.
``tests/golden/test_resnet/test_logits[fp16].npz`` (model-file tests:
``models/golden/resnet/accuracy[fp16].npz``). With ``--polygraphy-golden-dir DIR`` the
files go to ``DIR/<test file path relative to rootdir, without suffix>/<test name>.npz``.

The ``.npz`` is a saved run (``data.save_run_results``: one runner, the backend that
produced it, with one entry per iteration), so ``GoldenRunner(path)`` and
``load_run_results(path)`` read it too; the sidecar ``.json`` records what produced it
(test, backend, precision, seed, versions).
Both are written atomically (temporary file, then ``os.replace``), and only under
``--polygraphy-update-golden``; otherwise the files are only read.
"""

from __future__ import annotations

import json
import platform
import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.errors import InputError
from pytest_polygraphy.files import write_bytes_atomically

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+\-\[\]()]+")
_MAX_NAME = 160


def file_name(test_name: str) -> str:
    """A portable file name for a test name (``test_x[fp16-x=1x3]`` stays readable)."""
    name = _UNSAFE.sub("_", test_name).strip(".") or "test"
    if len(name) > _MAX_NAME:
        import hashlib

        digest = hashlib.sha1(test_name.encode(), usedforsecurity=False).hexdigest()[:10]
        name = f"{name[: _MAX_NAME - 11]}-{digest}"
    return name


def golden_path(test_file: Path, test_name: str, golden_dir: Path | None, rootpath: Path) -> Path:
    """Where the golden file of test ``test_name`` in ``test_file`` lives (module doc)."""
    if golden_dir is None:
        folder = test_file.parent / "golden" / test_file.stem
    else:
        try:
            relative = test_file.resolve().relative_to(rootpath.resolve())
        except ValueError:
            relative = Path(test_file.name)
        folder = golden_dir / relative.with_suffix("")
    return folder / f"{file_name(test_name)}.npz"


def update_command(config: pytest.Config, nodeid: str) -> str:
    """The exact command that (re)creates the golden file of test ``nodeid``."""
    from pytest_polygraphy.plugin.options import get_options

    args = ["pytest", nodeid, *get_options(config).to_args(), "--polygraphy-update-golden"]
    command = shlex.join(args)
    if Path(config.invocation_params.dir).resolve() != config.rootpath.resolve():
        command = f"cd {shlex.quote(str(config.rootpath))} && {command}"
    return command


def versions() -> dict[str, str]:
    """Versions of what may have produced the outputs (backends already imported only)."""
    import pytest_polygraphy

    found = {
        "python": platform.python_version(),
        "pytest-polygraphy": pytest_polygraphy.__version__,
    }
    for module in ("numpy", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx"):
        if module in sys.modules:
            found[module] = str(getattr(sys.modules[module], "__version__", "unknown"))
    return found


@dataclass(frozen=True)
class GoldenFile:
    """One test's golden outputs: a list of iterations, each ``{output name: ndarray}``."""

    path: Path

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    def exists(self) -> bool:
        return self.path.is_file()

    def write(self, iterations: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> None:
        """Write the outputs and the sidecar (``info`` plus output names and versions)."""
        from pytest_polygraphy.data import RunResults, save_run_results

        if not iterations:
            raise InputError(f"golden file {self.path}: no outputs to write")
        names = list(iterations[0])
        for index, outputs in enumerate(iterations):
            if list(outputs) != names:
                raise InputError(
                    f"golden file {self.path}: iteration {index} has outputs {list(outputs)}, "
                    f"iteration 0 has {names}"
                )
        results = RunResults()
        for outputs in iterations:
            results.add(str(info.get("backend") or "golden"), outputs)
        save_run_results(self.path, results)
        sidecar = {
            **info,
            "outputs": names,
            "iterations": len(iterations),
            "versions": versions(),
        }
        text = json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n"
        write_bytes_atomically(self.sidecar, text.encode())

    def read(self) -> list[dict[str, Any]]:
        """The saved iterations. Raises InputError naming the file when it is missing or
        is not a golden file (truncated, not an npz, arrays missing)."""
        from pytest_polygraphy.data import load_run_results

        if not self.exists():
            raise InputError(f"golden file {self.path} does not exist")
        try:
            results = load_run_results(self.path)
        except InputError as err:
            raise InputError(f"golden file {self.path} is corrupt: {err}") from None
        runs = [(runner, iterations) for runner, iterations in results.items() if iterations]
        if len(runs) != 1:
            raise InputError(
                f"golden file {self.path} is corrupt: expected the outputs of one run, found "
                f"runners {list(results)} (it was not written by pytest-polygraphy's golden "
                "files)"
            )
        return [dict(outputs) for outputs in runs[0][1]]


def iterations_of(outputs: Any) -> Iterator[Mapping[str, Any]]:
    """One mapping ``{name: array}`` (a single iteration) or a sequence of them."""
    if isinstance(outputs, Mapping):
        yield outputs
        return
    if isinstance(outputs, Sequence) and all(isinstance(o, Mapping) for o in outputs):
        yield from outputs
        return
    raise InputError(
        "golden.check() takes the outputs as a dict {output name: array}, or a list of such "
        f"dicts (one per iteration); got {type(outputs).__name__}"
    )
