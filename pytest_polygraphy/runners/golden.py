"""A runner that replays outputs saved earlier (golden outputs), so a live backend can be
compared against a known-good run without re-running the backend that produced it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import InputError
from pytest_polygraphy.runners.base import BaseRunner

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from pytest_polygraphy.metadata import TensorMetadata


class GoldenRunner(BaseRunner):
    """Replays the outputs of one runner from a saved run (``data.save_run_results``:
    Polygraphy ``RunResults`` JSON or ``.npz``).

    The k-th ``infer()`` after activation returns the saved outputs of iteration k, so a
    data loader with the same seed and iteration count lines up with the saved run.
    Asking for more iterations than were saved is an ``InputError``.

    Args:
        path: the saved run results file.
        runner: which saved runner to replay; may be omitted when the file holds one.
        model: optional model whose input metadata validates the feeds; without it the
            feed is not looked at (the outputs do not depend on it).
        name: runner name; defaults to ``golden``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        runner: str | None = None,
        *,
        model: str | os.PathLike[str] | onnx.ModelProto | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name or "golden")
        self.path = os.fspath(path)
        self.runner = runner
        self.model = model
        self._iterations: list[dict[str, np.ndarray]] | None = None
        self._next = 0

    def _load(self) -> list[dict[str, np.ndarray]]:
        if self._iterations is None:
            from pytest_polygraphy.data import load_run_results

            results = load_run_results(self.path)
            names = list(results.keys())
            if self.runner is None:
                if len(names) != 1:
                    raise InputError(
                        f"golden file {self.path!r} holds results of {len(names)} runners "
                        f"{names}; choose one with GoldenRunner(path, runner=...)"
                    )
                chosen = names[0]
            elif self.runner not in results:
                raise InputError(
                    f"golden file {self.path!r} has no results for runner {self.runner!r}; "
                    f"it holds {names}"
                )
            else:
                chosen = self.runner
            self._iterations = [dict(outputs) for outputs in results[chosen]]
            if not self._iterations:
                raise InputError(f"golden file {self.path!r} holds no iterations for {chosen!r}")
        return self._iterations

    @property
    def num_iterations(self) -> int:
        return len(self._load())

    def outputs(self, iteration: int) -> dict[str, np.ndarray]:
        """The saved outputs of one iteration (0-based), without running anything."""
        iterations = self._load()
        if not 0 <= iteration < len(iterations):
            raise InputError(
                f"golden file {self.path!r} holds {len(iterations)} iteration(s); "
                f"iteration {iteration} was asked for"
            )
        return dict(iterations[iteration])

    @property
    def input_metadata(self) -> TensorMetadata:
        from pytest_polygraphy.metadata import TensorMetadata

        if self.model is None:
            return TensorMetadata()
        from pytest_polygraphy.models import input_metadata

        return input_metadata(self.model)

    @property
    def output_metadata(self) -> TensorMetadata:
        from pytest_polygraphy.metadata import TensorMetadata

        first = self._load()[0]
        metadata = TensorMetadata()
        for name, array in first.items():
            metadata.add(name, array.dtype, array.shape)
        return metadata

    def infer(self, feed: Mapping[str, Any], *, check_feed: bool = True) -> dict[str, np.ndarray]:
        return super().infer(feed, check_feed=check_feed and self.model is not None)

    def _activate(self) -> None:
        self._load()
        self._next = 0

    def _deactivate(self) -> None:
        self._next = 0

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.outputs(self._next)
        self._next += 1
        return outputs
