"""Importing ONNX Runtime: the one place that says what to install when it is missing.

ONNX Runtime ships as ``onnxruntime`` (CPU) and ``onnxruntime-gpu`` (CPU and CUDA); both
install the same ``onnxruntime`` module, and two of them over one module break each other.
So pytest-polygraphy requires neither: an environment keeps the flavour it has, and a fresh
install picks one with the ``cpu`` or ``gpu`` extra. Nothing here imports ONNX Runtime
until a runner or a transform needs it.
"""

from __future__ import annotations

from typing import Any

from pytest_polygraphy.errors import BackendUnavailableError

#: What to install when ONNX Runtime is missing: the plugin requires neither flavour, so
#: that an environment keeps the one it has.
INSTALL_HINT = (
    'ONNX Runtime is not installed: pip install "pytest-polygraphy[cpu]" (or onnxruntime) '
    'for the CPU provider, or pip install "pytest-polygraphy[gpu]" (or onnxruntime-gpu) '
    "for CUDA; install only one of the two"
)


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or ``BackendUnavailableError`` saying what to install
    (either flavour provides the same module)."""
    try:
        import onnxruntime
    except ModuleNotFoundError as err:
        if err.name not in ("onnxruntime", None):
            raise  # one of ONNX Runtime's own dependencies is missing: its message says which
        raise BackendUnavailableError(INSTALL_HINT) from err
    return onnxruntime
