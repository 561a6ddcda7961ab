"""The runner protocol shared by every backend, and a base class that implements its
bookkeeping (activation state, feed validation, timing) once.

A runner turns one feed ``{input name: ndarray}`` into outputs ``{output name: ndarray}``.
Expensive setup (an ONNX Runtime session, a TensorRT engine and its CUDA buffers) happens
in ``activate()``, not in the constructor, so runners are cheap to create (e.g. as pytest
parameters) and hold resources only while in a ``with runner:`` block.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pytest_polygraphy.errors import (
    InferenceError,
    ModelError,
    PolygraphyError,
    note_preparing_runner,
)

if TYPE_CHECKING:
    from types import TracebackType

    import numpy as np

    from pytest_polygraphy.metadata import TensorMetadata


class RunnerNotActiveError(PolygraphyError, RuntimeError):
    """``infer()`` was called on a runner outside ``with runner:`` / ``activate()``."""


@runtime_checkable
class Runner(Protocol):
    """What the rest of the package needs from a backend."""

    name: str

    def activate(self) -> None: ...

    def deactivate(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...

    @property
    def is_active(self) -> bool: ...

    @property
    def input_metadata(self) -> TensorMetadata: ...

    @property
    def output_metadata(self) -> TensorMetadata: ...

    def infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]: ...

    def last_inference_time(self) -> float | None: ...


class BaseRunner:
    """Implements the protocol around three hooks a backend provides:

    * ``_activate()`` / ``_deactivate()``: acquire and release backend resources;
    * ``_infer(feed)``: run one inference on an already validated feed.

    ``infer()`` checks the runner is active, validates the feed against
    ``input_metadata`` (names, ranks, dims, safe dtype casts; a clear ``InputError``
    otherwise), then times only the backend call: ``last_inference_time()`` is the
    backend's time, not the validation's.

    ``activate()`` on an active runner and ``deactivate()`` on an inactive one do nothing,
    so a runner activated by a fixture can still be used in a ``with`` block safely...
    except that leaving that block deactivates it, as with Polygraphy.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._active = False
        self._inference_time: float | None = None

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<{type(self).__name__} {self.name!r} ({state})>"

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Acquire the backend (session, engine, buffers). Errors surface here, noted as
        raised preparing the runner (``errors.raised_preparing_runner``)."""
        if self._active:
            return
        try:
            self._activate()
        except Exception as err:
            note_preparing_runner(err)
            raise
        self._active = True

    def deactivate(self) -> None:
        """Release everything ``activate()`` acquired."""
        if not self._active:
            return
        try:
            self._deactivate()
        finally:
            self._active = False

    def __enter__(self) -> BaseRunner:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    # -- metadata ----------------------------------------------------------------------
    @property
    def input_metadata(self) -> TensorMetadata:
        raise NotImplementedError

    @property
    def output_metadata(self) -> TensorMetadata:
        raise NotImplementedError

    # -- inference ---------------------------------------------------------------------
    def infer(
        self,
        feed: Mapping[str, Any],
        *,
        check_feed: bool = True,
        output_names: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one inference and return ``{output name: ndarray}`` in the model's order.

        ``check_feed=False`` skips validation for callers that already validated the feed
        (saves a few microseconds in tight loops); a wrong feed then fails in the backend.
        ``output_names`` returns those outputs only (in that order); backends that can
        keep the others from being returned do (ONNX Runtime), which bounds the memory of
        a run over a model with every tensor marked.
        """
        if not self._active:
            raise RunnerNotActiveError(
                f"runner {self.name!r} is not active: use `with runner:` or call "
                "runner.activate() before runner.infer()"
            )
        if check_feed:
            from pytest_polygraphy.data import validate_feed

            feed = validate_feed(feed, self.input_metadata, source=f"runner {self.name!r}")
        start = time.perf_counter()
        try:
            if output_names is None:
                outputs = self._infer(feed)
            else:
                outputs = self._infer_subset(feed, list(output_names))
        except PolygraphyError:
            raise
        except Exception as err:  # backends raise their own types (pybind, numpy, ...)
            raise self._inference_error(err, feed) from err
        self._inference_time = time.perf_counter() - start
        return outputs

    def _inference_error(self, error: Exception, feed: Mapping[str, Any]) -> InferenceError:
        """The backend's ``error`` as an ``InferenceError`` naming this runner, the model,
        the feed's shapes and the failing node where ``_failing_node`` finds it."""
        model = getattr(self, "model", None)
        where = "its model" if model is None else model_display_name(model)
        shapes = {name: describe_array(value) for name, value in feed.items()}
        node = self._failing_node(error)
        fed = ", ".join(f"{name}: {text}" for name, text in shapes.items()) or "no inputs"
        text = str(error).strip() or "(no message)"
        lines = [f"runner {self.name!r} failed to run {where} on {fed}"]
        if node is not None:
            lines.append(f"failing node: {node}")
        lines.append(f"{type(error).__name__}: {_first_lines(text)}")
        cause, seen = error.__cause__ or error.__context__, 1
        while cause is not None and seen < 4:  # the evaluator wraps numpy's own message
            lines.append(f"  caused by {type(cause).__name__}: {_first_lines(str(cause), 3)}")
            cause, seen = cause.__cause__ or cause.__context__, seen + 1
        return InferenceError(
            "\n".join(lines), runner=self.name, model=where, feed_shapes=shapes, node=node
        )

    def _failing_node(self, error: Exception) -> str | None:
        """The node the backend failed in, when its error says so (backends override)."""
        return None

    def last_inference_time(self) -> float | None:
        """Seconds the backend spent in the last ``infer()``; None before the first one."""
        return self._inference_time

    # -- hooks -------------------------------------------------------------------------
    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _infer_subset(
        self, feed: Mapping[str, np.ndarray], names: list[str]
    ) -> dict[str, np.ndarray]:
        """``_infer`` restricted to ``names``; backends that can ask for a subset override it."""
        outputs = self._infer(feed)
        return {name: outputs[name] for name in names}

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


def describe_array(value: Any) -> str:
    """``float32 [2, 5]``: the dtype and shape of a fed value, for error messages."""
    dtype = getattr(value, "dtype", None)
    shape = getattr(value, "shape", None)
    if dtype is None or shape is None:
        return type(value).__name__
    return f"{dtype} {list(shape)}"


def _first_lines(text: str, limit: int = 12) -> str:
    """At most ``limit`` lines of a backend's message (some quote whole stacks)."""
    lines = text.splitlines()
    if len(lines) <= limit:
        return text
    return "\n".join([*lines[:limit], f"... ({len(lines) - limit} more lines)"])


def model_display_name(model: object) -> str:
    """A short description of a model argument for error messages: the path, or the
    graph name of an in-memory ``onnx.ModelProto``."""
    import os

    if isinstance(model, str | os.PathLike):
        return os.fspath(model)
    graph = getattr(model, "graph", None)
    name = getattr(graph, "name", "") or "unnamed graph"
    return f"<in-memory ONNX model {name!r}>"


class OnnxModelRunner(BaseRunner):
    """A runner of one ONNX model (a path or ``onnx.ModelProto``) whose input and output
    metadata are read from the model once, on first use, without activating the runner."""

    def __init__(self, name: str, model: Any) -> None:
        super().__init__(name)
        self.model = model
        self._input_metadata: TensorMetadata | None = None
        self._output_metadata: TensorMetadata | None = None

    @property
    def input_metadata(self) -> TensorMetadata:
        if self._input_metadata is None:
            from pytest_polygraphy.models import input_metadata

            self._input_metadata = input_metadata(self.model)
        return self._input_metadata

    @property
    def output_metadata(self) -> TensorMetadata:
        if self._output_metadata is None:
            from pytest_polygraphy.models import output_metadata

            self._output_metadata = output_metadata(self.model)
        return self._output_metadata

    def activate(self) -> None:
        """Refuses a model without outputs before the backend is asked: it would produce
        nothing, so nothing could be compared (ModelError naming the model). Outputs
        without type information count: ``mark_outputs`` writes them behind custom-domain
        nodes, whose types ONNX Runtime and TensorRT find themselves."""
        if not self.is_active and not self._declared_outputs():
            raise ModelError(
                f"model {model_display_name(self.model)} has no outputs (runner "
                f"{self.name!r}): running it produces nothing to compare; mark the tensors to "
                "check as graph outputs (models.mark_outputs, or --polygraphy-mark-all)"
            )
        super().activate()

    def _declared_outputs(self) -> int:
        if self._output_metadata is not None:
            return len(self._output_metadata)
        from pytest_polygraphy.models import output_names

        return len(output_names(self.model))
