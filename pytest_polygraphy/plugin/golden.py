"""Golden output files: one ``.npz`` per test, with a small JSON sidecar.

Layout: ``<folder of the test file>/golden/<test file stem>/<test name>.npz``, e.g.
``tests/golden/test_resnet/test_logits[fp16].npz`` (model-file tests:
``models/golden/resnet/accuracy[fp16].npz``). With ``--polygraphy-golden-dir DIR`` the
files go to ``DIR/<test file path relative to rootdir, without suffix>/<test name>.npz``.
A test name with characters that are not portable in file names (``test_x[a b]``) gets
them replaced and a short hash of the name appended (``test_x[a_b]-1a2b3c4d``), so two
tests never share a file; a file written under the older name, which did not append
the hash, is still read when its sidecar names the test.

The ``.npz`` is a saved run (``data.save_run_results``: one runner, the backend that
produced it, with one entry per iteration), so ``GoldenRunner(path)`` and
``load_run_results(path)`` read it too; the sidecar ``.json`` records what produced it
(test, backend, precision, seed, versions) and the sha256 of the ``.npz``.
Both are written atomically (temporary file, then ``os.replace``), the ``.npz`` first,
and only under ``--polygraphy-update-golden``; otherwise the files are only read. A
reader checks the ``.npz`` against the hash in its sidecar, so a pair left inconsistent
(an update killed between the two writes, one file restored from elsewhere) is an error
that says how to recreate it, never new outputs described by an old sidecar.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
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


def _digest(test_name: str, length: int) -> str:
    return hashlib.sha1(test_name.encode(), usedforsecurity=False).hexdigest()[:length]


def legacy_file_name(test_name: str) -> str:
    """The file name older versions gave a test: unique only for portable names."""
    name = _UNSAFE.sub("_", test_name).strip(".") or "test"
    if len(name) > _MAX_NAME:
        name = f"{name[: _MAX_NAME - 11]}-{_digest(test_name, 10)}"
    return name


def file_name(test_name: str) -> str:
    """A portable file name for a test name, unique per name: a portable name
    (``test_x[fp16-x=1x3]``) is kept as is; any other gets its unportable characters
    replaced and 8 hex digits of its hash appended, so ``net a`` and ``net_a`` differ."""
    name = _UNSAFE.sub("_", test_name).strip(".") or "test"
    if name == test_name and len(name) <= _MAX_NAME:
        return name
    return f"{name[: _MAX_NAME - 9]}-{_digest(test_name, 8)}"


def golden_folder(test_file: Path, golden_dir: Path | None, rootpath: Path) -> Path:
    """The folder of the golden files of the tests in ``test_file`` (module doc)."""
    if golden_dir is None:
        folder = test_file.parent / "golden" / test_file.stem
    else:
        try:
            relative = test_file.resolve().relative_to(rootpath.resolve())
        except ValueError:
            relative = Path(test_file.name)
        folder = golden_dir / relative.with_suffix("")
    return folder


def golden_path(test_file: Path, test_name: str, golden_dir: Path | None, rootpath: Path) -> Path:
    """Where the golden file of test ``test_name`` in ``test_file`` lives (module doc)."""
    return golden_folder(test_file, golden_dir, rootpath) / f"{file_name(test_name)}.npz"


def golden_file(
    test_file: Path, test_name: str, nodeid: str, golden_dir: Path | None, rootpath: Path
) -> GoldenFile:
    """The golden file of one test, knowing its older name (module doc) and its test."""
    folder = golden_folder(test_file, golden_dir, rootpath)
    path = folder / f"{file_name(test_name)}.npz"
    legacy = folder / f"{legacy_file_name(test_name)}.npz"
    return GoldenFile(path, test=nodeid, legacy=None if legacy == path else legacy)


def same_test(a: str, b: str) -> bool:
    """Whether two node ids name the same test; only the part after the file is compared,
    since the rootdir (and so the file part) may differ between runs."""
    return a == b or a.split("::", 1)[-1] == b.split("::", 1)[-1]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def update_command(config: pytest.Config, nodeid: str) -> str:
    """The exact command that (re)creates the golden file of test ``nodeid``."""
    from pytest_polygraphy.plugin.nextstep import rerun_command

    return rerun_command(config, nodeid, ["--polygraphy-update-golden"])


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
    """One test's golden outputs: a list of iterations, each ``{output name: ndarray}``.

    ``test`` (a node id) is the test the file belongs to: a file whose sidecar names
    another test is refused. ``legacy`` is the path older versions used for this test,
    read while ``path`` does not exist and the legacy sidecar names ``test``."""

    path: Path
    test: str | None = None
    legacy: Path | None = None

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    def exists(self) -> bool:
        return self.path.is_file() or self._legacy_in_use() is not None

    def _legacy_in_use(self) -> Path | None:
        """The legacy file, when ``path`` is absent and the legacy file is this test's."""
        if self.legacy is None or self.test is None or self.path.is_file():
            return None
        if not self.legacy.is_file():
            return None
        try:
            owner = _read_sidecar(self.legacy).get("test")
        except InputError:  # whose it is cannot be known: not this test's to read
            return None
        return self.legacy if isinstance(owner, str) and same_test(owner, self.test) else None

    def write(self, iterations: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> None:
        """Write the outputs, then the sidecar (``info`` plus output names, versions and
        the outputs file's sha256). Refuses to write nothing (no iteration, or an
        iteration without outputs): such a file would let a test pass comparing nothing;
        and refuses to replace a file whose sidecar names another test."""
        from pytest_polygraphy.data import RunResults, save_run_results

        if not iterations:
            raise InputError(
                f"nothing was compared: golden file {self.path} would hold 0 iterations; "
                "give at least one iteration of outputs"
            )
        names = list(iterations[0])
        for index, outputs in enumerate(iterations):
            if not outputs:
                raise InputError(
                    f"nothing was compared: iteration {index} of the outputs for golden file "
                    f"{self.path} holds no outputs ({{}}); give at least one output"
                )
            if list(outputs) != names:
                raise InputError(
                    f"golden file {self.path}: iteration {index} has outputs {list(outputs)}, "
                    f"iteration 0 has {names}"
                )
        results = RunResults()
        for outputs in iterations:
            results.add(str(info.get("backend") or "golden"), outputs)
        self._check_owner(self.path)
        save_run_results(self.path, results)
        sidecar = {
            **info,
            "outputs": names,
            "iterations": len(iterations),
            "versions": versions(),
            "npz_sha256": sha256_of(self.path),
        }
        text = json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n"
        write_bytes_atomically(self.sidecar, text.encode())

    def _check_owner(self, path: Path) -> None:
        """InputError when the sidecar of ``path`` names a test other than ``test``."""
        if self.test is None or not path.with_suffix(".json").is_file():
            return
        owner = _read_sidecar(path).get("test")
        if isinstance(owner, str) and not same_test(owner, self.test):
            raise InputError(
                f"golden file {path} belongs to test {owner!r} (its sidecar says so), and "
                f"test {self.test!r} maps to the same file, so one would overwrite the "
                "other's outputs. Give the tests distinct names; or, if that test no longer "
                "exists or has its own file now (older versions gave test names differing "
                f"only in unportable characters one file), delete {path} and its .json "
                "sidecar and update this test"
            )

    def read(self) -> list[dict[str, Any]]:
        """The saved iterations. Raises InputError naming the file when it is missing,
        is not a golden file (truncated, damaged, not an npz, arrays missing), disagrees
        with its sidecar's hash, or belongs to another test."""
        from pytest_polygraphy.data import load_run_results

        path = self._legacy_in_use() or self.path
        if not path.is_file():
            raise InputError(f"golden file {self.path} does not exist")
        self._check_owner(path)
        expected = _read_sidecar(path).get("npz_sha256")
        if expected is not None and expected != sha256_of(path):
            raise InputError(
                f"golden file {path} is corrupt or does not match its sidecar "
                f"{path.with_suffix('.json')}: its sha256 is not the one recorded when the "
                "pair was written (the file was damaged or edited, one of the two was "
                "replaced, or an update was interrupted between the two writes)"
            )
        try:
            results = load_run_results(path)
        except InputError as err:
            raise InputError(f"golden file {path} is corrupt: {err}") from None
        runs = [(runner, iterations) for runner, iterations in results.items() if iterations]
        if len(runs) != 1:
            raise InputError(
                f"golden file {path} is corrupt: expected the outputs of one run, found "
                f"runners {list(results)} (it was not written by pytest-polygraphy's golden "
                "files)"
            )
        return [dict(outputs) for outputs in runs[0][1]]


def _read_sidecar(npz_path: Path) -> dict[str, Any]:
    """The sidecar of a golden file; ``{}`` when there is none (files from before
    sidecars carried a hash read as before). A sidecar that is not a JSON object is an
    InputError: it cannot vouch for its file."""
    sidecar = npz_path.with_suffix(".json")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise InputError(f"golden sidecar {sidecar} cannot be read: {err}") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise InputError(f"golden sidecar {sidecar} is corrupt: {err}") from None
    if not isinstance(data, dict):
        raise InputError(f"golden sidecar {sidecar} is corrupt: not a JSON object")
    return data


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
