"""Run results: each runner's outputs, iteration by iteration, and their files.

Files, chosen by suffix:

* ``.json``: Polygraphy's ``RunResults`` format (``polygraphy run --save-outputs`` /
  ``--load-outputs``), written so that ``RunResults.load`` reads it and read from what
  ``RunResults.save`` writes.
* ``.npz``: a compact archive, keys ``<runner index>/<iteration>/<output name>`` plus a
  manifest (see ``npz``) holding the runner names in order and each iteration's runtime.
  Runner indices stand in for names because Polygraphy's runner names hold ``/``.
* A folder (loading only): its files in name order, each a run of some iterations,
  concatenated per runner, as Polygraphy's per-iteration output folders.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from pytest_polygraphy.data import dtypes, npz, polygraphy_json
from pytest_polygraphy.data.files import (
    PathLike,
    folder_files,
    format_of,
    read_bytes,
    write_atomically,
)
from pytest_polygraphy.errors import InputError


class IterationResult(dict[str, np.ndarray]):
    """One iteration's outputs ``{output name: array}`` in the runner's output order, and
    the inference time in seconds when it was measured (``runtime``, else None)."""

    def __init__(
        self, outputs: Mapping[str, np.ndarray] | None = None, runtime: float | None = None
    ) -> None:
        super().__init__(outputs or {})
        self.runtime = runtime

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {a.dtype}{list(a.shape)}" for name, a in self.items())
        return f"IterationResult({{{shapes}}}, runtime={self.runtime})"


class RunResults(Mapping[str, list[IterationResult]]):
    """Ordered ``{runner name: [IterationResult per iteration]}``, as Polygraphy's
    ``RunResults``; build it with :meth:`add`, one iteration of one runner per call."""

    def __init__(self) -> None:
        self._runners: dict[str, list[IterationResult]] = {}

    def add(
        self, runner_name: str, outputs: Mapping[str, np.ndarray], *, runtime: float | None = None
    ) -> IterationResult:
        """Append ``outputs`` as the runner's next iteration (a new runner goes last)."""
        if not isinstance(runner_name, str):
            raise TypeError(f"runner_name must be a str, got {runner_name!r}")
        result = IterationResult(outputs, runtime)
        self._runners.setdefault(runner_name, []).append(result)
        return result

    def iteration(self, index: int) -> dict[str, IterationResult]:
        """``{runner name: outputs}`` of iteration ``index``, for runners that reached it."""
        return {name: its[index] for name, its in self._runners.items() if index < len(its)}

    @property
    def num_iterations(self) -> int:
        """The largest number of iterations any runner has."""
        return max((len(its) for its in self._runners.values()), default=0)

    def __getitem__(self, runner_name: str) -> list[IterationResult]:
        return self._runners[runner_name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._runners)

    def __len__(self) -> int:
        return len(self._runners)

    def __eq__(self, other: object) -> bool:
        """Same runners in the same order with equal iterations: the same output names in
        the same order, equal dtypes, shapes and values (NaN equal to NaN), equal runtimes."""
        if not isinstance(other, RunResults) or list(self) != list(other):
            return False
        return all(_iterations_equal(self[name], other[name]) for name in self._runners)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        runners = ", ".join(f"{name!r}: {len(its)} iteration(s)" for name, its in self.items())
        return f"RunResults({{{runners}}})"


def save_run_results(
    path: PathLike, results: Mapping[str, Sequence[Mapping[str, np.ndarray]]]
) -> Path:
    """Write ``results`` (a RunResults, or any ``{runner: [outputs per iteration]}``) to
    ``path`` atomically, as Polygraphy JSON or ``.npz`` by suffix; returns the path."""
    kind = format_of(path, allow_dir=False)
    runners = [
        (
            _runner_name(runner, path),
            [
                (_outputs(outs, path, runner, k), getattr(outs, "runtime", None))
                for k, outs in enumerate(iterations)
            ],
        )
        for runner, iterations in results.items()
    ]
    if kind == "json":
        text = polygraphy_json.dumps(polygraphy_json.encode_run_results(runners, str(path)))
        return write_atomically(path, lambda file: file.write(text.encode()))
    arrays = {
        f"{r}/{k}/{name}": array
        for r, (_, iterations) in enumerate(runners)
        for k, (outputs, _) in enumerate(iterations)
        for name, array in outputs.items()
    }
    manifest = {
        "format": "run_results",
        "runners": [
            {"name": runner, "runtimes": [runtime for _, runtime in iterations]}
            for runner, iterations in runners
        ],
    }
    return npz.write(path, arrays, manifest)


def load_run_results(path: PathLike) -> RunResults:
    """The run results stored at ``path`` (Polygraphy JSON, ``.npz``, or a folder of them)."""
    kind = format_of(path, allow_dir=True)
    if kind == "dir":
        combined = RunResults()
        for file in folder_files(path):
            for runner, iterations in load_run_results(file).items():
                for outputs in iterations:
                    combined.add(runner, outputs, runtime=outputs.runtime)
        return combined
    if kind == "json":
        return _load_json(Path(path))
    return _load_npz(Path(path))


def _load_json(path: Path) -> RunResults:
    decoded = polygraphy_json.loads(read_bytes(path), str(path))
    if not isinstance(decoded, polygraphy_json.DecodedRunResults):
        raise InputError(
            f"{path}: does not hold Polygraphy RunResults"
            + ("; input feeds are loaded with load_inputs" if isinstance(decoded, list) else "")
        )
    results = RunResults()
    for runner, iterations in decoded:
        if runner in results:
            raise _repeated(path, runner)
        for outputs in iterations:
            results.add(runner, outputs, runtime=outputs.runtime)
        if not iterations:
            results._runners[runner] = []
    return results


def _load_npz(path: Path) -> RunResults:
    arrays, manifest = npz.read(path)
    if manifest is None or manifest.get("format") != "run_results":
        found = "plain arrays" if manifest is None else f"{manifest.get('format')!r} data"
        raise InputError(
            f"{path}: holds {found}, not run results (it was not written by pytest-polygraphy's "
            "save_run_results)"
        )
    try:
        runners = [(str(r["name"]), list(r["runtimes"])) for r in manifest["runners"]]
    except (KeyError, TypeError) as err:
        raise InputError(f"{path}: corrupt run results manifest: {err}") from err
    per_runner = [[IterationResult(runtime=t) for t in runtimes] for _, runtimes in runners]
    for key, array in arrays.items():
        r, k, name = [*key.split("/", 2), "", ""][:3]
        if (
            not (r.isdigit() and k.isdigit() and name)
            or int(r) >= len(runners)
            or int(k) >= len(per_runner[int(r)])
        ):
            raise InputError(f"{path}: unexpected entry {key!r} in a run results file")
        per_runner[int(r)][int(k)][name] = array
    results = RunResults()
    for (runner, _), iterations in zip(runners, per_runner, strict=True):
        if runner in results:
            raise _repeated(path, runner)
        results._runners[runner] = iterations
    return results


def _repeated(path: PathLike, runner: str) -> InputError:
    """The error for a runner name a file holds twice (Polygraphy allows it; see the
    README's differences from Polygraphy)."""
    return InputError(
        f"{path}: runner {runner!r} appears twice; runs are addressed by runner name here, "
        "so a repeated name would be ambiguous. Rename one of the runs, or save them to "
        "separate files"
    )


def _runner_name(runner: object, path: PathLike) -> str:
    if not isinstance(runner, str):
        raise InputError(f"{path}: runner names must be str, got {runner!r}")
    return runner


def _outputs(outputs: object, path: PathLike, runner: str, index: int) -> dict[str, np.ndarray]:
    if not isinstance(outputs, Mapping) or not all(isinstance(n, str) for n in outputs):
        raise InputError(
            f"{path}: runner {runner!r} iteration {index}: expected {{output name: array}}, "
            f"got {type(outputs).__name__}"
        )
    return {name: np.asarray(array) for name, array in outputs.items()}


def _iterations_equal(left: list[IterationResult], right: list[IterationResult]) -> bool:
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        if list(a) != list(b) or a.runtime != b.runtime:
            return False
        for name in a:
            x, y = a[name], b[name]
            if x.dtype != y.dtype or x.shape != y.shape:
                return False
            if not np.array_equal(x, y, equal_nan=dtypes.kind(x.dtype) == "float"):
                return False
    return True
