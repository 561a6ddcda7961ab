"""Exception types a user can meet.

Every error a user can cause (bad path, corrupt model, wrong input name, shape or
dtype, missing backend) is one of these, with a message that names the file, the
tensor, what was expected and what was given.
"""

from __future__ import annotations

import contextlib


class PolygraphyError(Exception):
    """Base class of every error raised on purpose by pytest-polygraphy."""


class InputError(PolygraphyError, ValueError):
    """A feed, a data file or an argument does not fit what the model or API expects."""


class ModelError(PolygraphyError, ValueError):
    """A model file is missing, unreadable, corrupt, or cannot be transformed as asked."""


class BackendUnavailableError(PolygraphyError, RuntimeError):
    """A backend (TensorRT, an ONNX Runtime execution provider, CUDA) was asked for but
    cannot run here. The plugin turns this into a skip that carries the message."""


class OutputMismatchError(PolygraphyError, KeyError):
    """The two sides of a comparison do not hold the same output names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InferenceError(PolygraphyError, RuntimeError):
    """A backend failed while running a feed that fits the model's declared inputs (a
    shape that fits the declared dims but not the weights, values an operator cannot
    take, a backend bug). The message names the runner, the model, the feed's shapes and,
    where the backend says so, the node; the backend's own exception is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        runner: str,
        model: str,
        feed_shapes: dict[str, str],
        node: str | None = None,
    ) -> None:
        super().__init__(message)
        self.runner = runner
        self.model = model
        self.feed_shapes = feed_shapes
        self.node = node


_PREPARING_RUNNER = "_pytest_polygraphy_preparing_runner"


def note_preparing_runner(error: BaseException) -> None:
    """Mark ``error`` as raised while a runner was made ready for its model (a precision
    conversion, an ONNX Runtime session, a TensorRT build): it comes from the model
    itself, before any input was fed."""
    with contextlib.suppress(AttributeError):  # an exception type without a __dict__
        setattr(error, _PREPARING_RUNNER, True)


def raised_preparing_runner(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it was raised from or while handling, was noted
    by ``note_preparing_runner``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if getattr(error, _PREPARING_RUNNER, False):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
