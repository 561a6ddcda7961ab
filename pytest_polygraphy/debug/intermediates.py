"""Reference values of a model's tensors, for every input sample, computed once per session.

The reference backend runs the full model once per sample and returns the values of the
tensors a cut may need (``GraphIndex.needed_values``): a backend that can return any
tensor by name does so on the model as it is (onnx's reference evaluator: the test's own
runner), others run it with those tensors marked as outputs. The values stay in memory up to
``memory_limit`` bytes; past it, each further sample's values go to ``.npy`` files in the
session's folder and are read back memory-mapped, so memory stays bounded whatever the
model and the number of samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Runs the session's model on each feed and yields that feed's values of the named
#: tensors (inputs, intermediates or outputs), ``{name: array}``.
ReferenceValues = Callable[
    [Sequence[str], Iterable[Mapping[str, np.ndarray]]], Iterable[Mapping[str, Any]]
]

DEFAULT_MEMORY_LIMIT = 1 << 30


class Intermediates:
    """Values by sample and tensor name; see the module docstring."""

    def __init__(self, folder: Path, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self.folder = folder
        self.memory_limit = memory_limit
        self.in_memory = 0
        self.spilled = 0
        self._samples: list[dict[str, np.ndarray | Path]] = []

    @classmethod
    def compute(
        cls,
        run: ReferenceValues,
        names: Sequence[str],
        feeds: Iterable[Mapping[str, Any]],
        folder: Path,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> Intermediates:
        """Run the model on every feed and keep the feeds and the values of ``names``."""
        store = cls(folder, memory_limit)
        feeds = list(feeds)  # the feeds are kept as the values of the graph inputs anyway
        for feed, outputs in zip(feeds, run(names, feeds), strict=True):
            store.add({**{k: np.asarray(v) for k, v in feed.items()}, **outputs})
        return store

    def add(self, values: Mapping[str, Any]) -> None:
        """Keep one sample's values (in memory, or on disk past the memory limit)."""
        sample: dict[str, np.ndarray | Path] = {}
        index = len(self._samples)
        for name, value in values.items():
            array = np.asarray(value)
            if self.in_memory + array.nbytes <= self.memory_limit or array.dtype == object:
                sample[name] = array
                self.in_memory += array.nbytes
                continue
            digest = hashlib.sha1(name.encode()).hexdigest()[:16]
            path = self.folder / f"sample{index}" / f"{digest}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, array, allow_pickle=False)
            sample[name] = path
            self.spilled += array.nbytes
        self._samples.append(sample)

    def __len__(self) -> int:
        return len(self._samples)

    def names(self) -> set[str]:
        return set(self._samples[0]) if self._samples else set()

    def get(self, sample: int, name: str) -> np.ndarray:
        value = self._samples[sample][name]
        if isinstance(value, Path):
            return np.load(value, mmap_mode="r", allow_pickle=False)
        return value

    def sample(self, index: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The values of ``names`` in sample ``index`` (spilled ones read into memory)."""
        return {name: np.array(self.get(index, name)) for name in names}

    def shapes(self, names: Sequence[str]) -> dict[str, list[tuple[int, ...]]]:
        """Each tensor's shape in every sample (to tell dynamic dims from fixed ones)."""
        return {name: [tuple(self.get(i, name).shape) for i in range(len(self))] for name in names}
