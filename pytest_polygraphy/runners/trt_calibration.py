"""TensorRT int8 calibration inside TensorRT (implicit quantization), as Polygraphy's
``--calibration-base-class`` / ``--calibration-cache``.

``make_calibrator`` subclasses TensorRT's ``IInt8EntropyCalibrator2`` or
``IInt8MinMaxCalibrator`` (TensorRT 10's documented Python API: ``get_batch_size``,
``get_batch(names) -> [device pointers] | None``, ``read_calibration_cache() -> bytes |
None``, ``write_calibration_cache(cache)``). It feeds TensorRT the test's own inputs, copied
to the GPU by an uploader (``cuda.FeedUploader``), and reads and writes its calibration
cache through ``CalibrationCache``: the user's named file first, then the artifact cache
entry that workers and later runs share.

TensorRT deprecated implicit quantization in 10.1 in favour of explicit (Q/DQ) models, so
it is used only when a calibrator is asked for; TensorRT-RTX has none and refuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_polygraphy.errors import BackendUnavailableError, InputError
from pytest_polygraphy.runners.trt_settings import CALIBRATORS

if TYPE_CHECKING:
    import numpy as np

    from pytest_polygraphy.cache import ArtifactCache
    from pytest_polygraphy.runners.trt_module import TensorRT

#: The artifact cache namespace of calibration caches.
NAMESPACE = "trt-calibration-cache"


class Uploader(Protocol):
    """Copies one input's array to device memory and returns its pointer."""

    def upload(self, name: str, array: np.ndarray) -> int: ...

    def synchronize(self) -> None: ...

    def free(self) -> None: ...


@dataclass(frozen=True)
class CalibrationCache:
    """Where a calibration cache is read from and written to.

    ``file``: the user's ``--polygraphy-calibration-cache`` file, read when it exists and
    written atomically under its lock after calibrating. ``artifact_cache`` and
    ``key_parts`` (``trt_settings.calibration_cache_key_parts``): the shared entry, read
    when there is no file to read and always written, so other workers and runs skip
    calibrating."""

    file: Path | None = None
    artifact_cache: ArtifactCache | None = None
    key_parts: Mapping[str, Any] | None = None

    def read(self) -> bytes | None:
        """The cache bytes, or None when there are none (TensorRT then calibrates)."""
        if self.file is not None:
            try:
                data = self.file.read_bytes()
            except FileNotFoundError:
                data = b""
            except OSError as err:
                raise InputError(
                    f"calibration cache file {self.file}: cannot read it: {err.strerror or err}"
                ) from None
            if data:
                return data
        if self.artifact_cache is not None and self.key_parts is not None:
            return self.artifact_cache.get(self.key_parts, namespace=NAMESPACE)
        return None

    def write(self, data: bytes) -> None:
        """Store the cache TensorRT just computed (never an empty one)."""
        if not data:
            return
        if self.artifact_cache is not None and self.key_parts is not None:
            self.artifact_cache.update(self.key_parts, lambda _current: data, namespace=NAMESPACE)
        if self.file is not None:
            from pytest_polygraphy.cache import update_user_file

            try:
                update_user_file(self.file, lambda _current: data)
            except OSError as err:
                raise InputError(
                    f"calibration cache file {self.file}: cannot write it: {err.strerror or err}"
                ) from None


def file_digest(path: str | os.PathLike[str] | None) -> str | None:
    """The sha256 of a named calibration cache file, or None when it is absent: the scales
    it holds decide the engine, so they are part of the engine cache key."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InputError(
            f"calibration cache file {path}: cannot read it: {err.strerror or err}"
        ) from None


def check_calibration_support(trt: TensorRT, kind: str) -> Any:
    """The TensorRT calibrator base class for ``kind``; BackendUnavailableError saying why
    when this TensorRT has none (TensorRT-RTX has no int8 calibration at all)."""
    if trt.is_rtx:
        raise BackendUnavailableError(
            f"{trt.describe()} has no int8 calibration (no IInt8Calibrator classes and no "
            "BuilderFlag.INT8: it builds strongly typed networks only), so calibrator "
            f"{kind!r} cannot run on it; without --polygraphy-trt-calibrator, int8 is tested "
            "from a Q/DQ model quantized by ONNX Runtime, or give it a Q/DQ model "
            "(models.quantize_int8) at precision fp32"
        )
    base = getattr(trt.module, CALIBRATORS[kind], None)
    if base is None:
        raise BackendUnavailableError(
            f"{trt.describe()} has no {CALIBRATORS[kind]} (calibrator {kind!r}); implicit "
            "quantization is deprecated since TensorRT 10.1: drop --polygraphy-trt-calibrator "
            "to test int8 from a Q/DQ model"
        )
    return base


def feed_shapes(feeds: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, ...]]:
    """The input shapes every calibration feed shares (TensorRT calibrates at one shape,
    the calibration profile's); InputError naming the first feed that differs."""
    if not feeds:
        raise InputError("int8 calibration needs at least one feed; the data loader gave none")
    first = {name: tuple(array.shape) for name, array in feeds[0].items()}
    for index, feed in enumerate(feeds[1:], start=1):
        shapes = {name: tuple(array.shape) for name, array in feed.items()}
        if shapes != first:
            raise InputError(
                f"calibration feed #{index} has input shapes {shapes}, feed #0 has {first}; "
                "TensorRT calibrates at one shape per input: give calibration data of one "
                "shape set"
            )
    return first


def make_calibrator(
    trt: TensorRT,
    kind: str,
    feeds: Sequence[Mapping[str, np.ndarray]],
    cache: CalibrationCache,
    uploader: Uploader,
) -> Any:
    """A ``kind`` calibrator (``entropy2`` or ``minmax``) feeding ``feeds``, one per batch.

    TensorRT calls it from inside the build, where a Python exception cannot travel: a
    failure is kept in ``.error`` and ends the data (``get_batch`` returns None), and the
    build raises it afterwards. ``.shapes`` are the feeds' input shapes (the calibration
    profile); ``.batches`` counts the batches given, ``.cache_hit`` says whether a stored
    cache was handed to TensorRT."""
    base = check_calibration_support(trt, kind)
    shapes = feed_shapes(feeds)
    feeds = list(feeds)

    class FeedCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.kind = kind
            self.shapes = shapes
            self.batches = 0
            self.cache_hit = False
            self.error: BaseException | None = None

        def get_batch_size(self) -> int:
            return 1  # explicit-batch networks: the batch is in the feed's shapes

        def get_batch(self, names: Sequence[str], *_: Any) -> list[int] | None:
            if self.error is not None or self.batches >= len(feeds):
                return None
            feed = feeds[self.batches]
            missing = [name for name in names if name not in feed]
            if missing:
                self.error = InputError(
                    f"calibration feed #{self.batches} has no inputs {missing}; TensorRT "
                    f"asks for {list(names)}, the feed holds {sorted(feed)}"
                )
                return None
            try:
                pointers = [int(uploader.upload(name, feed[name])) for name in names]
                uploader.synchronize()
            except Exception as err:
                self.error = err
                return None
            self.batches += 1
            return pointers

        def read_calibration_cache(self, *_: Any) -> bytes | None:
            try:
                data = cache.read()
            except Exception as err:
                self.error = err
                return None
            self.cache_hit = data is not None
            return data

        def write_calibration_cache(self, data: Any, *_: Any) -> None:
            try:
                cache.write(bytes(memoryview(data)))
            except Exception as err:
                self.error = err

    return FeedCalibrator()


@contextlib.contextmanager
def calibrating(
    trt: TensorRT,
    kind: str,
    feeds: Sequence[Mapping[str, np.ndarray]],
    cache: CalibrationCache,
    uploader: Uploader | None = None,
) -> Iterator[Any]:
    """``make_calibrator`` for the length of one build; its device buffers are freed
    afterwards. The uploader defaults to ``cuda.FeedUploader``."""
    if uploader is None:
        from pytest_polygraphy.runners.cuda import FeedUploader

        uploader = FeedUploader()
    try:
        yield make_calibrator(trt, kind, feeds, cache, uploader)
    finally:
        uploader.free()
