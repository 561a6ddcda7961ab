"""Finding the TensorRT Python module: the one place that knows about TensorRT flavours.

TensorRT ships as ``tensorrt`` (the data-center/embedded product) and as TensorRT-RTX
(``tensorrt_rtx``, or ``tensorrt_rtx_bindings`` when only the bindings and libs wheels
are installed). Both expose the same builder/runtime API for what this package uses;
TensorRT-RTX builds strongly typed networks only (no fp16/int8/bf16/fp8 builder flags).

``PYTEST_POLYGRAPHY_TENSORRT`` (``tensorrt`` or ``tensorrt_rtx``) forces one flavour.
Nothing here is imported until a TensorRT runner is created.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any

from pytest_polygraphy.errors import BackendUnavailableError

#: Environment variable that forces a TensorRT flavour.
FLAVOUR_ENV = "PYTEST_POLYGRAPHY_TENSORRT"

#: Module names tried for each flavour, in order.
_FLAVOUR_MODULES: dict[str, tuple[str, ...]] = {
    "tensorrt": ("tensorrt",),
    "tensorrt_rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings"),
}

INSTALL_HINT = (
    "TensorRT is not installed: pip install 'pytest-polygraphy[trt]' (tensorrt and "
    "cuda-python), or install TensorRT-RTX (tensorrt_rtx)"
)


@dataclass(frozen=True)
class TensorRT:
    """The imported TensorRT module, its flavour and version."""

    module: Any
    flavour: str  # "tensorrt" or "tensorrt_rtx"
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.flavour == "tensorrt_rtx"

    def describe(self) -> str:
        return f"{'TensorRT-RTX' if self.is_rtx else 'TensorRT'} {self.version}"


@functools.lru_cache(maxsize=1)
def import_tensorrt() -> TensorRT:
    """Import TensorRT (``tensorrt``, else TensorRT-RTX); ``BackendUnavailableError`` with
    install instructions when neither imports. The result is cached."""
    forced = os.environ.get(FLAVOUR_ENV, "").strip()
    if forced and forced not in _FLAVOUR_MODULES:
        raise BackendUnavailableError(
            f"{FLAVOUR_ENV}={forced!r} is not a TensorRT flavour; use one of "
            f"{sorted(_FLAVOUR_MODULES)}"
        )
    flavours = [forced] if forced else list(_FLAVOUR_MODULES)
    failures: list[str] = []
    for flavour in flavours:
        for module_name in _FLAVOUR_MODULES[flavour]:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as err:
                if err.name != module_name and err.name is not None:
                    failures.append(f"{module_name}: {err}")
                continue
            except Exception as err:  # a stub package or missing shared library
                failures.append(f"{module_name}: {type(err).__name__}: {err}")
                continue
            if not hasattr(module, "Builder"):  # e.g. a placeholder package
                failures.append(f"{module_name}: has no Builder (not a usable TensorRT)")
                continue
            version = str(getattr(module, "__version__", "unknown"))
            return TensorRT(module, flavour, version)
    details = ("\nImport attempts failed with:\n  " + "\n  ".join(failures)) if failures else ""
    raise BackendUnavailableError(INSTALL_HINT + details)


def tensorrt_available() -> bool:
    """True when a TensorRT flavour imports (not that a GPU is present)."""
    try:
        import_tensorrt()
    except BackendUnavailableError:
        return False
    return True


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot be used here (for ``pytest.mark.skipif`` reasons), or None."""
    try:
        import_tensorrt()
    except BackendUnavailableError as err:
        return str(err)
    return None
