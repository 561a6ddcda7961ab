"""A fake TensorRT module for orchestration tests only: ``FakeTensorRTForOrchestration``.

It implements just enough of TensorRT 10's documented Python API (builder, parser,
builder config, timing cache, calibrator base classes, runtime) for ``trt_build`` and
``TrtRunner`` to run their build and cache logic here, where TensorRT cannot be installed.
It builds nothing: an "engine" is a bytes record of what the build was asked, a "timing
cache" a set of text lines, a "calibration cache" a line naming the calibrator. Nothing it
produces says anything about TensorRT's behaviour; tests use it to check what our code
hands TensorRT and what it does with what TensorRT hands back.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx

from pytest_polygraphy.runners.trt_module import TensorRT

TIMING_MAGIC = b"FAKE-TIMING-CACHE\n"


class FakeTimingCacheForOrchestration:
    def __init__(self, entries: set[str]) -> None:
        self.entries = set(entries)

    def combine(self, other: FakeTimingCacheForOrchestration, ignore_mismatch: bool) -> bool:
        self.entries |= other.entries
        return True

    def serialize(self) -> bytes:
        return TIMING_MAGIC + "\n".join(sorted(self.entries)).encode()


class FakeTensorForOrchestration:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, shape
        self.is_shape_tensor = False


class FakeNetworkForOrchestration:
    """The inputs and outputs of the ONNX model the fake parser read; no layers."""

    def __init__(self) -> None:
        self.inputs: list[FakeTensorForOrchestration] = []
        self.outputs: list[FakeTensorForOrchestration] = []
        self.name = ""

    num_layers = 0

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> FakeTensorForOrchestration:
        return self.inputs[index]

    def get_output(self, index: int) -> FakeTensorForOrchestration:
        return self.outputs[index]


def _tensors(values: Any) -> list[FakeTensorForOrchestration]:
    tensors = []
    for value in values:
        dims = value.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        tensors.append(FakeTensorForOrchestration(value.name, shape))
    return tensors


class FakeOnnxParserForOrchestration:
    def __init__(self, network: FakeNetworkForOrchestration, logger: Any) -> None:
        self.network = network
        self.num_errors = 0

    def _read(self, model: onnx.ModelProto) -> bool:
        initializers = {i.name for i in model.graph.initializer}
        self.network.inputs = _tensors(v for v in model.graph.input if v.name not in initializers)
        self.network.outputs = _tensors(model.graph.output)
        self.network.name = model.graph.name
        return True

    def parse(self, data: bytes, path: str | None = None) -> bool:
        return self._read(onnx.load_from_string(data))

    def parse_from_file(self, path: str) -> bool:
        return self._read(onnx.load(path, load_external_data=False))


class FakeProfileForOrchestration:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[Any, ...]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeBuilderConfigForOrchestration:
    """Records flags, profiles, the calibrator and the timing cache it is given."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.profiles: list[FakeProfileForOrchestration] = []
        self.calibration_profile: FakeProfileForOrchestration | None = None
        self.int8_calibrator: Any = None
        self.timing_cache: FakeTimingCacheForOrchestration | None = None

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.flags.discard(flag)

    def add_optimization_profile(self, profile: FakeProfileForOrchestration) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: FakeProfileForOrchestration) -> bool:
        self.calibration_profile = profile
        return True

    def create_timing_cache(self, data: bytes) -> FakeTimingCacheForOrchestration | None:
        if not data:
            return FakeTimingCacheForOrchestration(set())
        if not data.startswith(TIMING_MAGIC):
            return None  # TensorRT logs an error and gives no cache
        lines = data[len(TIMING_MAGIC) :].decode().splitlines()
        return FakeTimingCacheForOrchestration({line for line in lines if line})

    def set_timing_cache(self, cache: FakeTimingCacheForOrchestration, ignore_mismatch: bool):
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> FakeTimingCacheForOrchestration | None:
        return self.timing_cache


class FakeBuilderForOrchestration:
    #: Set by a test to make the next builds fail (``build_serialized_network`` -> None).
    fail = False
    #: Every config a build was given, in order.
    configs: list[FakeBuilderConfigForOrchestration] = []

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> FakeNetworkForOrchestration:
        return FakeNetworkForOrchestration()

    def create_builder_config(self) -> FakeBuilderConfigForOrchestration:
        return FakeBuilderConfigForOrchestration()

    def create_optimization_profile(self) -> FakeProfileForOrchestration:
        return FakeProfileForOrchestration()

    def build_serialized_network(
        self, network: FakeNetworkForOrchestration, config: FakeBuilderConfigForOrchestration
    ) -> bytes | None:
        """Calibrates as TensorRT's protocol says (read the cache; else ``get_batch`` until
        it returns None, then write the cache), and adds one timing entry per network."""
        type(self).configs.append(config)
        calibration = ""
        calibrator = config.int8_calibrator
        if calibrator is not None:
            names = [t.name for t in network.inputs]
            cached = calibrator.read_calibration_cache()
            if cached:
                calibration = cached.decode()
            else:
                sums = []
                while (pointers := calibrator.get_batch(names)) is not None:
                    sums.append(sum(FakeFeedUploaderForOrchestration.sums[p] for p in pointers))
                if not sums:
                    return None
                calibration = f"{calibrator.kind} scales from {len(sums)} batches {sums}"
                calibrator.write_calibration_cache(calibration.encode())
        if self.fail:
            return None
        if config.timing_cache is not None:
            config.timing_cache.entries.add(f"tactics of {network.name}")
        return f"FAKE-ENGINE {network.name} {sorted(config.flags)} {calibration}".encode()


class FakeRuntimeForOrchestration:
    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> Any:
        return SimpleNamespace(data=bytes(data)) if data.startswith(b"FAKE-ENGINE") else None


class FakeFeedUploaderForOrchestration:
    """Keeps uploaded arrays in host memory; a "pointer" is an index, and ``sums`` holds
    each upload's sum so the fake builder can tell which feeds it was given."""

    sums: dict[int, float] = {}
    uploads: list[str] = []
    freed = 0

    def upload(self, name: str, array: np.ndarray) -> int:
        pointer = len(type(self).sums) + 1
        type(self).sums[pointer] = float(np.asarray(array, dtype=np.float64).sum())
        type(self).uploads.append(name)
        return pointer

    def synchronize(self) -> None:
        pass

    def free(self) -> None:
        type(self).freed += 1


class _CalibratorBaseForOrchestration:
    def __init__(self) -> None:
        pass


def fake_tensorrt_for_orchestration(flavour: str = "tensorrt") -> TensorRT:
    """A fresh fake module (its builder's records cleared), as ``import_tensorrt`` returns."""
    FakeBuilderForOrchestration.fail = False
    FakeBuilderForOrchestration.configs = []
    FakeFeedUploaderForOrchestration.sums = {}
    FakeFeedUploaderForOrchestration.uploads = []
    FakeFeedUploaderForOrchestration.freed = 0

    class ILogger:
        def __init__(self) -> None:
            pass

    module = SimpleNamespace(
        ILogger=ILogger,
        Builder=FakeBuilderForOrchestration,
        OnnxParser=FakeOnnxParserForOrchestration,
        Runtime=FakeRuntimeForOrchestration,
        BuilderFlag=SimpleNamespace(
            **{name: name for name in ("TF32", "FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS")}
        ),
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=0),
    )
    if flavour == "tensorrt":
        module.IInt8EntropyCalibrator2 = type(
            "IInt8EntropyCalibrator2", (_CalibratorBaseForOrchestration,), {}
        )
        module.IInt8MinMaxCalibrator = type(
            "IInt8MinMaxCalibrator", (_CalibratorBaseForOrchestration,), {}
        )
    return TensorRT(module, flavour, "10.x (fake for orchestration)")


def install(monkeypatch: Any, trt: TensorRT) -> None:
    """Make ``TrtRunner`` use ``trt``, a fixed GPU identity and the fake uploader."""
    import pytest_polygraphy.runners.cuda as cuda
    import pytest_polygraphy.runners.trt as trt_runner_module

    monkeypatch.setattr(trt_runner_module, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(
        cuda, "gpu_identity", lambda device=0: {"name": "fake GPU", "compute_capability": "0.0"}
    )
    monkeypatch.setattr(cuda, "FeedUploader", FakeFeedUploaderForOrchestration)


def load_engine_for_orchestration(runner: Any) -> Any:
    """What ``TrtRunner.activate`` does up to deserialization (no CUDA needed)."""
    from pytest_polygraphy.runners import trt_build

    runner._logger = trt_build.make_logger(runner.trt, echo_level="INTERNAL_ERROR")
    return runner._load_engine()


def path_text(path: Path) -> str:
    return path.read_bytes().decode(errors="replace")
