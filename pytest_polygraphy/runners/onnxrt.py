"""ONNX Runtime runner: any execution provider, with precision variants of the model.

Providers are named by short name (``cpu``, ``cuda``, ``tensorrt``, ``dml``, ``rocm``,
``openvino``, ``coreml``, ``migraphx``) or by ONNX Runtime's full name
(``CUDAExecutionProvider``). A provider that cannot run is a ``BackendUnavailableError``,
never a silent CPU fallback: ``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` as
available on machines without a GPU (or without CUDA libraries) and quietly builds a CPU
session instead, so after creating the session the runner checks that every requested
provider is really active, and quotes ONNX Runtime's own log text when it is not.

Precision (``precision=``):

* ``fp32``: the model as is. On the CUDA provider this also sets ``use_tf32=0``, because
  ONNX Runtime's CUDA provider uses TF32 for float32 matmuls and convolutions by default,
  and "fp32" should mean fp32.
* ``tf32``: the model as is with the CUDA provider's ``use_tf32=1`` (CUDA only).
* ``fp16``: the model converted by ``models.convert_to_fp16`` (inputs and outputs stay
  float32; ``fp16_block_list`` keeps named nodes in fp32).
* ``int8``: the model statically quantized (QDQ) by ``models.quantize_int8``, calibrated
  with ``calibration_data`` (feeds, or a ``DataLoader``) or, by default, with
  ``DataLoader()`` bound to the model's inputs; ``int8_exclude`` keeps named nodes in float,
  ``keep_fp16`` runs named nodes unquantized in float16. The CPU provider has no float16
  kernel for most ops and casts around them, so there such nodes compute in float32: the
  runner warns, naming them (``cpu_fp32_fallbacks``).
  A model that already holds Q/DQ nodes (an int8 variant made once and shared, as the
  plugin's runner cache does) runs as is.
* ``bf16`` and ``fp8`` are not offered by ONNX Runtime: ``BackendUnavailableError``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.ort_module import import_onnxruntime
from pytest_polygraphy.runners.base import OnnxModelRunner, model_display_name

if TYPE_CHECKING:
    import numpy as np
    import onnx


#: Short provider names and the ONNX Runtime execution providers they stand for.
PROVIDER_NAMES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "dml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
_SHORT_NAMES = {full: short for short, full in PROVIDER_NAMES.items() if short != "trt"}

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILING_NODE = re.compile(r"running (\S+) node\. Name:'([^']*)'")


def resolve_provider(name: str) -> str:
    """The full ONNX Runtime name of a provider given by short or full name."""
    if name.lower() in PROVIDER_NAMES:
        return PROVIDER_NAMES[name.lower()]
    for full in PROVIDER_NAMES.values():
        if name.lower() == full.lower():
            return full
    if name.endswith("ExecutionProvider"):
        return name
    known = ", ".join(sorted(PROVIDER_NAMES))
    raise InputError(
        f"unknown ONNX Runtime execution provider {name!r}: use a short name ({known}) or a "
        "full name such as 'CUDAExecutionProvider'"
    )


def _short(full: str) -> str:
    return _SHORT_NAMES.get(full, full.removesuffix("ExecutionProvider").lower())


def default_runner_name(providers: Sequence[str], precision: str) -> str:
    """Stable, readable names used as test ids and result keys: ``onnxrt`` for CPU fp32,
    else e.g. ``onnxrt[cuda]``, ``onnxrt[fp16]``, ``onnxrt[cuda,tf32]``."""
    tags = []
    shorts = [_short(resolve_provider(p)) for p in providers]
    if shorts != ["cpu"]:
        tags.append("+".join(shorts))
    if precision != "fp32":
        tags.append(precision)
    return "onnxrt" + (f"[{','.join(tags)}]" if tags else "")


@contextlib.contextmanager
def _capture_native_output() -> Iterator[list[str]]:
    """Redirect file descriptors 1 and 2 (where ONNX Runtime's C++ logger writes) into a
    temporary file; the captured text lands in the yielded list after the block."""
    captured: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no real descriptors (embedded interpreters): capture nothing
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            yield captured
            return
        try:
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.append(_ANSI.sub("", sink.read().decode(errors="replace")).strip())


def _provider_hint(missing: Sequence[str]) -> str:
    """What to install for providers this ONNX Runtime does not offer."""
    if {PROVIDER_NAMES["cuda"], PROVIDER_NAMES["tensorrt"]} & set(missing):
        # the two wheels install one module: installing the second over the first breaks it
        return (
            "CUDA needs onnxruntime-gpu in place of the CPU-only onnxruntime: pip uninstall "
            'onnxruntime, then pip install "pytest-polygraphy[gpu]" (or onnxruntime-gpu)'
        )
    return "install the onnxruntime package built with those providers"


class OnnxrtRunner(OnnxModelRunner):
    """Runs a model with ONNX Runtime; see the module docstring for providers and precision.

    Args:
        model: path to an ``.onnx`` file (external data next to it is found) or an
            ``onnx.ModelProto``. The user's file is never modified.
        providers: execution providers in priority order (short or full names).
        provider_options: options per provider, keyed by short or full name, e.g.
            ``{"cuda": {"device_id": 1}}``.
        precision: one of ``fp32``, ``tf32``, ``fp16``, ``int8`` (``bf16``/``fp8``: error).
        name: runner name; defaults to a stable name such as ``onnxrt[cuda,fp16]``.
        session_options: an ``onnxruntime.SessionOptions``, or a dict of its attributes
            (``{"intra_op_num_threads": 1, "graph_optimization_level": ...}``) and of
            session config entries, the keys with a dot
            (``{"session.intra_op.allow_spinning": "0"}``).
        calibration_data: int8 calibration feeds (an iterable of feeds or a ``DataLoader``).
        fp16_block_list: node names kept in fp32 by the fp16 conversion.
        int8_exclude: node names left unquantized by the int8 quantization.
        keep_fp16: node names that the int8 variant runs unquantized in float16 (at fp16
            and above they already run in float16 or better: nothing to do).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | onnx.ModelProto,
        providers: Sequence[str] = ("cpu",),
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        precision: str = "fp32",
        name: str | None = None,
        *,
        session_options: Any = None,
        calibration_data: Iterable[Mapping[str, Any]] | Any = None,
        fp16_block_list: Sequence[str] = (),
        int8_exclude: Sequence[str] = (),
        keep_fp16: Sequence[str] = (),
    ) -> None:
        if isinstance(providers, str):
            providers = [providers]
        if not providers:
            raise InputError("OnnxrtRunner needs at least one execution provider")
        if precision not in PRECISIONS:
            raise InputError(
                f"unknown precision {precision!r} for OnnxrtRunner; expected one of {PRECISIONS}"
            )
        self.providers = [resolve_provider(p) for p in providers]
        self.precision = precision
        self.session_options = session_options
        self.calibration_data = calibration_data
        self.fp16_block_list = tuple(fp16_block_list)
        self.int8_exclude = tuple(int8_exclude)
        self.keep_fp16 = tuple(keep_fp16) if precision == "int8" else ()
        self.provider_options = self._resolve_provider_options(provider_options or {})
        super().__init__(name or default_runner_name(self.providers, precision), model)
        self._session: Any = None
        self._output_names: list[str] = []
        self._prepared_model: str | bytes | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    # -- configuration -----------------------------------------------------------------
    def _resolve_provider_options(
        self, given: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        options: dict[str, dict[str, Any]] = {p: {} for p in self.providers}
        for key, opts in given.items():
            full = resolve_provider(key)
            if full not in options:
                raise InputError(
                    f"provider_options name {key!r}, which is not among the requested "
                    f"providers {[_short(p) for p in self.providers]}"
                )
            options[full].update(opts)

        cuda = PROVIDER_NAMES["cuda"]
        if self.precision in ("bf16", "fp8"):
            raise BackendUnavailableError(
                f"ONNX Runtime has no {self.precision} mode; {self.precision} is available on "
                "TensorRT (TrtRunner) only"
            )
        if self.precision == "tf32":
            if cuda not in options:
                raise BackendUnavailableError(
                    "precision 'tf32' needs the CUDA execution provider (providers=['cuda']); "
                    f"requested providers: {[_short(p) for p in self.providers]}"
                )
            self._set_tf32(options[cuda], "1")
        elif cuda in options and self.precision == "fp32":
            self._set_tf32(options[cuda], "0")
        return options

    def _set_tf32(self, cuda_options: dict[str, Any], value: str) -> None:
        given = cuda_options.get("use_tf32")
        if given is not None and str(int(given)) != value:
            wanted = "tf32" if str(int(given)) == "1" else "fp32"
            raise InputError(
                f"precision {self.precision!r} contradicts the CUDA provider option "
                f"use_tf32={given}; ask for precision={wanted!r} instead"
            )
        cuda_options["use_tf32"] = value

    # -- model preparation -------------------------------------------------------------
    def _prepare_model(self) -> str | bytes:
        """A path or serialized bytes for ONNX Runtime, with the precision transform
        applied. Done once per runner (re-activation reuses it)."""
        if self._prepared_model is not None:
            return self._prepared_model
        from pytest_polygraphy import models

        if self.precision in ("fp32", "tf32"):
            if isinstance(self.model, str | os.PathLike):
                prepared: str | bytes = os.fspath(self.model)
                if not Path(prepared).is_file():
                    raise ModelError(f"model file {prepared!r} does not exist")
            else:
                prepared = self._serialize(self.model)
        else:
            proto = models.load_model(self.model)
            if self.precision == "fp16":
                proto = models.convert_to_fp16(proto, block_list=self.fp16_block_list)
            elif not _has_qdq(proto):  # int8; a model already holding Q/DQ nodes runs as is
                proto = models.quantize_int8(
                    proto,
                    self._calibration_feeds(),
                    exclude=self.int8_exclude,
                    keep_fp16=self.keep_fp16,
                )
            prepared = self._serialize(proto)
        self._prepared_model = prepared
        return prepared

    def _calibration_feeds(self) -> Iterable[Mapping[str, Any]]:
        data = self.calibration_data
        if data is None:
            from pytest_polygraphy.data import DataLoader

            data = DataLoader()
        if hasattr(data, "bind"):
            return data.bind(self.input_metadata)
        return data

    def _serialize(self, proto: onnx.ModelProto) -> str | bytes:
        """Bytes for ONNX Runtime, or a temporary file for models past protobuf's 2 GiB."""
        try:
            return proto.SerializeToString()
        except ValueError:
            from pytest_polygraphy.models import save_model

            self._tmpdir = tempfile.TemporaryDirectory(prefix="pytest-polygraphy-ort-")
            path = os.path.join(self._tmpdir.name, "model.onnx")
            save_model(proto, path)
            return path

    def _make_session_options(self) -> Any:
        ort = import_onnxruntime()

        given = self.session_options
        if isinstance(given, ort.SessionOptions):
            return given
        options = ort.SessionOptions()
        for attr, value in (given or {}).items():
            if "." in attr:  # a session config entry: ONNX Runtime checks the key and value
                try:
                    options.add_session_config_entry(attr, str(value))
                except Exception as err:  # ORT raises its own pybind types
                    raise InputError(f"session config entry {attr}={value!r}: {err}") from None
                continue
            if not hasattr(options, attr):
                raise InputError(f"onnxruntime.SessionOptions has no attribute {attr!r}")
            setattr(options, attr, value)
        return options

    # -- lifecycle ---------------------------------------------------------------------
    def _activate(self) -> None:
        ort = import_onnxruntime()

        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            raise BackendUnavailableError(
                f"ONNX Runtime {ort.__version__} here offers {available}, not {missing} "
                f"(runner {self.name!r}); {_provider_hint(missing)}"
            )
        prepared = self._prepare_model()
        session_options = self._make_session_options()
        needs_check = any(p != PROVIDER_NAMES["cpu"] for p in self.providers)
        capture = _capture_native_output() if needs_check else contextlib.nullcontext([])
        with capture as log:
            try:
                session = ort.InferenceSession(
                    prepared,
                    sess_options=session_options,
                    providers=self.providers,
                    provider_options=[self.provider_options[p] for p in self.providers],
                    enable_fallback=0,
                )
                error: Exception | None = None
            except Exception as err:  # ORT raises its own pybind types
                error = err
        ort_log = "\n".join(log).strip()
        if error is not None:
            raise self._session_error(error, ort_log) from error
        active = session.get_providers()
        inactive = [p for p in self.providers if p not in active]
        if inactive:
            details = f"\nONNX Runtime said:\n{ort_log}" if ort_log else ""
            raise BackendUnavailableError(
                f"ONNX Runtime could not start {[_short(p) for p in inactive]} for runner "
                f"{self.name!r} (the session came up with {active} only; refusing to fall "
                f"back silently){details}"
            )
        if ort_log:
            sys.stderr.write(ort_log + "\n")
        if self.keep_fp16 and self.providers == [PROVIDER_NAMES["cpu"]]:
            fallbacks = cpu_fp32_fallbacks(prepared, self.keep_fp16)
            if fallbacks:
                shown = ", ".join(repr(name) for name in fallbacks[:10])
                if len(fallbacks) > 10:
                    shown += f" and {len(fallbacks) - 10} more"
                warnings.warn(
                    f"runner {self.name!r}: ONNX Runtime's CPU provider has no float16 kernel "
                    f"for {len(fallbacks)} of the {len(self.keep_fp16)} keep_fp16 nodes "
                    f"({shown}) and runs them in float32 (it casts around them); for float16 "
                    "numerics use the CUDA provider or TensorRT",
                    stacklevel=2,
                )
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]

    def _session_error(self, error: Exception, ort_log: str) -> Exception:
        text = str(error)
        if ort_log:
            text += f"\nONNX Runtime said:\n{ort_log}"
        where = model_display_name(self.model)
        if any(p in text for p in ("ExecutionProvider", "CUDA", "cuda", "TensorRT", "provider")):
            return BackendUnavailableError(
                f"ONNX Runtime could not create a session with {self.providers} for {where}: {text}"
            )
        return ModelError(f"ONNX Runtime cannot load {where} (runner {self.name!r}): {text}")

    def _deactivate(self) -> None:
        self._session = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
            self._prepared_model = None

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` while active (for advanced use)."""
        return self._session

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, values, strict=True))

    def _infer_subset(
        self, feed: Mapping[str, np.ndarray], names: list[str]
    ) -> dict[str, np.ndarray]:
        return dict(zip(names, self._session.run(names, feed), strict=True))

    def _failing_node(self, error: Exception) -> str | None:
        """ONNX Runtime names the node in its message: ``... while running MatMul node.
        Name:'matmul' ...``."""
        match = _FAILING_NODE.search(str(error))
        if match is None:
            return None
        op_type, name = match.groups()
        return f"{name!r} ({op_type})" if name else f"a {op_type} node"


def cpu_fp32_fallbacks(model: str | bytes, names: Sequence[str]) -> list[str]:
    """Of the nodes ``names`` that compute in float16 in ``model`` (a path or serialized
    bytes), those that ONNX Runtime's CPU provider runs in float32. It has float16 kernels
    for few ops and wraps the others in Casts it inserts even with every optimization off;
    the session's own model, saved, shows which nodes no longer see a float16 tensor."""
    import onnx

    from pytest_polygraphy.models.shapes import elem_type_of, inferred_value_infos

    def float16_nodes(proto: onnx.ModelProto) -> set[str]:
        known = inferred_value_infos(proto)
        known_types = {name: elem_type_of(value) for name, value in known.items()}
        known_types |= {init.name: init.data_type for init in proto.graph.initializer}
        return {
            node.name
            for node in proto.graph.node
            if node.name in wanted
            and onnx.TensorProto.FLOAT16
            in {known_types.get(n) for n in [*node.input, *node.output] if n}
        }

    wanted = set(names)
    given = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    asked = float16_nodes(given)
    if not asked:
        return []
    ort = import_onnxruntime()
    with tempfile.TemporaryDirectory(prefix="pytest-polygraphy-ort-") as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.optimized_model_filepath = os.path.join(folder, "session.onnx")
        ort.InferenceSession(model, sess_options=options, providers=[PROVIDER_NAMES["cpu"]])
        ran = float16_nodes(onnx.load(options.optimized_model_filepath))
    return sorted(asked - ran)


def _has_qdq(model: onnx.ModelProto) -> bool:
    """True when a model already holds QuantizeLinear/DequantizeLinear nodes (it is an
    int8 variant already: quantizing it again would be wrong)."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
