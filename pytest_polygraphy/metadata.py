"""Tensor metadata: the names, dtypes and (possibly dynamic) shapes of a model's inputs
and outputs, shared by data loaders, model transforms and runners."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: A dimension: a fixed size, a symbolic name (``"batch"``) or ``None`` for unknown.
Dim = int | str | None

#: ``dim_param`` values that exporters write for "unknown here", not as a name: empty,
#: ``?`` (paddle2onnx) and ``unk__N`` (tf2onnx).
_UNNAMED_DIM = re.compile(r"\??|unk__\d+")


def shared_dim_name(dim: Dim) -> str | None:
    """The name a dynamic dim shares with every other dim of that name (``"batch"``), or
    None for a fixed dim and for an unknown that stands alone.

    Every ``None``, negative size, empty name, ``?`` and ``unk__N`` is its own independent
    unknown: two ``?`` dims may differ (ONNX Runtime runs ``[-1,3,?,?]`` at any height and
    width). Only a genuine name binds two dims to one size."""
    if isinstance(dim, str) and not _UNNAMED_DIM.fullmatch(dim):
        return dim
    return None


@dataclass(frozen=True)
class TensorMeta:
    """One tensor's name, numpy dtype and shape (dims may be dynamic).

    ``shape`` is ``None`` when even the rank is unknown. ``shape_range`` optionally holds
    ``(min, opt, max)`` concrete shapes (as from a TensorRT optimization profile) that a
    data loader may use to resolve dynamic dims.
    """

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...] | None
    shape_range: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def is_dynamic(self) -> bool:
        """True when the rank or any dim is not a fixed non-negative int."""
        return self.shape is None or any(not isinstance(d, int) or d < 0 for d in self.shape)

    def shape_str(self) -> str:
        """The shape as text, e.g. ``[batch,3,224,224]``."""
        if self.shape is None:
            return "[?]"
        return "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass
class TensorMetadata(Mapping[str, TensorMeta]):
    """An ordered mapping ``{name: TensorMeta}``; order is the model's input/output order."""

    tensors: dict[str, TensorMeta] = field(default_factory=dict)

    @classmethod
    def of(cls, metas: list[TensorMeta] | tuple[TensorMeta, ...]) -> TensorMetadata:
        return cls({m.name: m for m in metas})

    def add(
        self, name: str, dtype: object, shape: tuple[Dim, ...] | list[Dim] | None
    ) -> TensorMetadata:
        """Add a tensor (dtype anything numpy accepts); returns self to allow chaining."""
        import numpy as np

        self.tensors[name] = TensorMeta(
            name, np.dtype(dtype), None if shape is None else tuple(shape)
        )
        return self

    def __getitem__(self, name: str) -> TensorMeta:
        return self.tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __str__(self) -> str:
        items = (
            f"{m.name} [dtype={m.dtype}, shape={m.shape_str()}]" for m in self.tensors.values()
        )
        return "{" + ", ".join(items) + "}"
