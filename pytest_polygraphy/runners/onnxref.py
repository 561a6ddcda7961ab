"""Runner on onnx's own ``ReferenceEvaluator``: a plain-numpy implementation of the ONNX
operators, independent of ONNX Runtime, so two real backends can be compared on any
machine. It is slow and meant for small models and reference outputs.

One operator is corrected: onnx's ``BatchNormalization`` for opsets 9 to 13 takes the mere
presence of the ``momentum`` attribute (which exporters such as paddle2onnx always write)
as training mode and mixes the batch's statistics into the running ones, where the ONNX
specification, ONNX Runtime and TensorRT normalize with the running statistics unless the
node asks for its training outputs. (Found by ``--polygraphy-reduce`` on PaddleOCR's
direction classifier: 0.09 off at its first BatchNormalization, 0.039 at the output.)
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

        proto = load_model(self.model)
        try:
            self._evaluator = ReferenceEvaluator(proto, new_ops=[batch_normalization()])
        except Exception as err:  # the evaluator raises many types for unsupported ops
            raise ModelError(
                f"onnx's reference evaluator cannot load {model_display_name(self.model)}: "
                f"{type(err).__name__}: {err}"
            ) from err
        self._output_names = [o.name for o in proto.graph.output]

    def _deactivate(self) -> None:
        self._evaluator = None

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


def batch_normalization() -> type:
    """``BatchNormalization`` for the reference evaluator that follows the specification
    (see the module docstring): inference mode unless ``training_mode=1`` (opset 14+) or,
    for opsets 9 to 13, unless the node asks for more than its first output."""
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops.op_batch_normalization import (
        _batchnorm_test_mode,
        _batchnorm_training_mode,
    )

    class BatchNormalization(OpRun):
        op_domain = ""

        def _run(  # type: ignore[override]
            self,
            x: Any,
            scale: Any,
            bias: Any,
            mean: Any,
            var: Any,
            epsilon: Any = None,
            momentum: Any = None,
            training_mode: Any = None,
            is_test: Any = None,
            spatial: Any = None,
        ) -> tuple[Any, ...]:
            version = self.run_params["opsets"].get("", 0)
            outputs = [name for name in self.onnx_node.output if name]
            if version >= 14:
                training = training_mode == 1
            elif version >= 9:
                training = len(outputs) > 1
            else:
                training = not is_test
            epsilon = 1e-5 if epsilon is None else epsilon
            if not training:
                return (_batchnorm_test_mode(x, scale, bias, mean, var, epsilon=epsilon),)
            momentum = 0.9 if momentum is None else momentum
            y, saved_mean, saved_var, running_mean, running_var = _batchnorm_training_mode(
                x, scale, bias, mean, var, momentum, epsilon
            )
            if version >= 14:
                return (y, running_mean, running_var)[: len(outputs)]
            return (y, running_mean, running_var, saved_mean, saved_var)[: len(outputs)]

    return BatchNormalization
