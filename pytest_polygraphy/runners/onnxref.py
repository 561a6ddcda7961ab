"""Runner on onnx's own ``ReferenceEvaluator``: a plain-numpy implementation of the ONNX
operators, independent of ONNX Runtime, so two real backends can be compared on any
machine. It is slow and meant for small models and reference outputs.

The evaluator gets three operators of its own (``onnxref_ops``): a ``BatchNormalization``
that follows the specification where onnx's does not, and ``Conv`` and ``MaxPool`` that
compute onnx's results byte for byte, faster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.runners.base import OnnxModelRunner, model_display_name

if TYPE_CHECKING:
    import numpy as np
    import onnx


class OnnxrefRunner(OnnxModelRunner):
    """Runs a model (path or ``onnx.ModelProto``) with ``onnx.reference.ReferenceEvaluator``.

    Outputs are returned as numpy arrays in the model's output order; numpy scalars
    that the evaluator sometimes produces are turned into 0-d arrays.
    """

    def __init__(
        self, model: str | os.PathLike[str] | onnx.ModelProto, name: str | None = None
    ) -> None:
        super().__init__(name or "onnxref", model)
        self._evaluator: Any = None
        self._output_names: list[str] = []

    def _activate(self) -> None:
        from onnx.reference import ReferenceEvaluator

        from pytest_polygraphy.models import load_model
        from pytest_polygraphy.runners.onnxref_ops import reference_ops

        proto = load_model(self.model)
        try:
            self._evaluator = ReferenceEvaluator(proto, new_ops=list(reference_ops()))
        except Exception as err:  # the evaluator raises many types for unsupported ops
            raise ModelError(
                f"onnx's reference evaluator cannot load {model_display_name(self.model)}: "
                f"{type(err).__name__}: {err}"
            ) from err
        self._output_names = [o.name for o in proto.graph.output]

    def _deactivate(self) -> None:
        evaluator, self._evaluator = self._evaluator, None
        _dismantle(evaluator)

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        values = self._evaluator.run(None, dict(feed))
        return {
            name: np.asarray(value) for name, value in zip(self._output_names, values, strict=True)
        }

    def _infer_subset(
        self, feed: Mapping[str, np.ndarray], names: list[str]
    ) -> dict[str, np.ndarray]:
        import numpy as np

        values = self._evaluator.run(names, dict(feed))
        return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}

    def _failing_node(self, error: Exception) -> str | None:
        """The evaluator's operator objects carry their node: the innermost one on the
        traceback is where the run failed."""
        found = None
        tb = error.__traceback__
        while tb is not None:
            node = getattr(tb.tb_frame.f_locals.get("self"), "onnx_node", None)
            if node is not None:
                found = node
            tb = tb.tb_next
        if found is None:
            return None
        return f"{found.name!r} ({found.op_type})" if found.name else f"a {found.op_type} node"


def _dismantle(evaluator: Any) -> None:
    """Empties an evaluator and the evaluators its operators hold (subgraphs, functions).

    An evaluator and its operators reference each other (every operator's log callback
    closes over the evaluator), so a dropped one is a cycle of some two thousand objects
    per few hundred nodes that only the garbage collector frees: a debug session drops
    dozens of them, and the collections that free them cost more than a small model's
    run. Emptied, they are freed as soon as they are dropped."""
    from onnx.reference import ReferenceEvaluator

    if evaluator is None:
        return
    for op in getattr(evaluator, "rt_nodes_", ()):
        for value in list(vars(op).values()):
            if isinstance(value, ReferenceEvaluator):
                _dismantle(value)
    vars(evaluator).clear()
