"""Static int8 quantization (QDQ) through ``onnxruntime.quantization``."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import onnx

from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.models import io
from pytest_polygraphy.models.metadata import input_metadata
from pytest_polygraphy.models.nodes import check_node_names, with_stable_names
from pytest_polygraphy.models.subgraph import node_subgraphs

if TYPE_CHECKING:
    import numpy as np


# onnxruntime.quantization names what it adds after the tensor it quantizes
# ("<tensor>_scale", "<tensor>_QuantizeLinear_Output", ...) without checking that the name is
# free: an existing tensor of that name is silently taken as the scale.
_ORT_ADDED_SUFFIX = re.compile(
    r"(_quantized|_convert|_clone)*"
    r"(_scale|_zero_point|_quantized|_(De)?[Qq]uantizeLinear(_Input|_Output)?)(_convert)?"
)


def _rename_clashing_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` where initializers whose names onnxruntime.quantization would
    also give to a tensor it adds are renamed. A clash with a tensor that is not an
    initializer cannot be renamed away behind the user's back: ``ModelError``."""
    graph = model.graph
    names = {value.name for value in [*graph.input, *graph.output]}
    names |= {init.name for init in graph.initializer}
    names |= {name for node in graph.node for name in [*node.input, *node.output] if name}
    clashes = {}
    for name in names:
        for cut in (i for i, char in enumerate(name) if char == "_" and i):
            if name[:cut] in names and _ORT_ADDED_SUFFIX.fullmatch(name[cut:]):
                clashes[name] = name[:cut]
                break
    if not clashes:
        return model
    interface = {value.name for value in [*graph.input, *graph.output]}
    initializers = {init.name for init in graph.initializer}
    fixed = [name for name in clashes if name not in initializers or name in interface]
    if fixed:
        raise ModelError(
            f"tensors {sorted(fixed)} are named like what onnxruntime.quantization adds for "
            f"tensors {sorted({clashes[n] for n in fixed})} (suffixes _scale, _zero_point, "
            "_quantized, ...), which would make it use them as quantization parameters; "
            "rename them in the model"
        )
    renamed = {}
    for name in sorted(clashes):
        suffix = 0
        while f"{name}__w{suffix}" in names:
            suffix += 1
        renamed[name] = f"{name}__w{suffix}"
        names.add(renamed[name])
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        init.name = renamed.get(init.name, init.name)
    _rename_inputs(copy.graph, renamed)
    return copy


def _rename_inputs(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    """Rename what the nodes of ``graph`` and of its subgraphs read."""
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = renamed.get(name, name)
        for subgraph in node_subgraphs(node):
            _rename_inputs(subgraph, renamed)


def _checked_feeds(
    feeds: Iterable[Mapping[str, np.ndarray]], names: list[str]
) -> Iterator[dict[str, np.ndarray]]:
    count = 0
    for count, feed in enumerate(feeds, start=1):
        missing = [name for name in names if name not in feed]
        unknown = [name for name in feed if name not in names]
        if missing or unknown:
            raise InputError(
                f"calibration feed #{count - 1} does not match the model inputs {names}: "
                f"missing {missing}, unknown {unknown}"
            )
        yield dict(feed)
    if count == 0:
        raise InputError("quantize_int8 needs at least one calibration feed; none was given")


def quantize_int8(
    model: onnx.ModelProto | str | os.PathLike[str],
    feeds: Iterable[Mapping[str, np.ndarray]],
    exclude: Sequence[str] = (),
    *,
    keep_fp16: Sequence[str] = (),
    per_channel: bool = False,
    symmetric: bool = False,
    quantize_bias: bool = True,
    calibration_method: str = "minmax",
) -> onnx.ModelProto:
    """A new model with QuantizeLinear/DequantizeLinear pairs (QDQ format, int8 weights and
    activations), calibrated with min/max ranges observed on ``feeds`` (for example a
    ``DataLoader`` bound to the model's inputs).

    Nodes named in ``exclude`` stay in float32; nodes named in ``keep_fp16`` are not
    quantized either and run in float16 (``convert_to_fp16`` of those nodes alone, with
    Casts at their borders), the higher precision a mostly-int8 model can afford. A node
    named in both is a ``ModelError``. ``symmetric=True`` gives zero-point-0 scales
    for weights and activations and ``quantize_bias=False`` keeps biases in float: what
    TensorRT's explicit quantization needs (its parser refuses int32 bias dequantization).
    ``calibration_method`` picks how activation ranges come from the feeds: ``minmax``
    (observed extremes) or ``entropy`` (the range minimizing the KL divergence of the
    quantized histogram, as TensorRT's entropy calibrator); ONNX Runtime's
    ``CalibrationMethod.MinMax`` / ``Entropy``. ``quantize_static`` would run Entropy with
    as many histogram bins as quantized bins (128), which leaves one candidate range, the
    full one: MinMax's. So entropy ranges are computed here with TensorRT's 2048 bins and
    handed to ``quantize_static`` as its calibration cache (onnxruntime >= 1.31).

    Initializers whose names clash with those onnxruntime.quantization gives to the
    tensors it adds (``<tensor>_scale`` ...) are renamed first, as it would otherwise take
    them for quantization parameters. The work goes through temporary files
    (``onnxruntime.quantization`` reads and writes paths); the model passed in, or the file
    it came from, is not touched. Feeds whose input names do not match the model raise
    ``InputError``, unknown node names ``ModelError``.
    """
    from pytest_polygraphy.ort_module import import_onnxruntime

    import_onnxruntime()  # BackendUnavailableError saying what to install
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}
    if calibration_method not in methods:
        raise InputError(
            f"unknown calibration_method {calibration_method!r}; expected one of {list(methods)}"
        )
    source = io.load_model(model)
    both = sorted(set(exclude) & set(keep_fp16))
    if both:
        raise ModelError(
            f"nodes {both} are named both to stay in float32 (exclude / keep_fp32) and to run "
            "in float16 (keep_fp16); name each node in one of them"
        )
    for what, names in (("exclude", exclude), ("keep_fp16", keep_fp16)):
        if names:
            check_node_names(source, names, what)
            source = with_stable_names(source)
    batches = _checked_feeds(feeds, list(input_metadata(source)))
    source = _rename_clashing_initializers(source)

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    with tempfile.TemporaryDirectory(prefix="pytest_polygraphy_int8_") as tmp:
        float_path = os.path.join(tmp, "model.onnx")
        quant_path = os.path.join(tmp, "model.int8.onnx")
        io.save_model(source, float_path)
        large = source.ByteSize() > io.PROTOBUF_LIMIT
        ranges: dict[str, Any] = {}
        try:
            if calibration_method == "entropy":
                ranges["calibration_cache_path"] = _entropy_ranges(
                    float_path, _Reader(), os.path.join(tmp, "ranges.json"), large
                )
            quantize_static(
                float_path,
                quant_path,
                _Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                nodes_to_exclude=[*exclude, *keep_fp16],
                calibrate_method=methods[calibration_method],
                use_external_data_format=large,
                **ranges,
                extra_options={
                    "ActivationSymmetric": symmetric,
                    "WeightSymmetric": symmetric,
                    "QuantizeBias": quantize_bias,
                },
            )
        except (InputError, ModelError, BackendUnavailableError):
            raise
        except Exception as err:
            raise ModelError(f"onnxruntime.quantization failed on the model: {err}") from err
        quantized = io.load_model(quant_path)
    if keep_fp16:
        from pytest_polygraphy.models.fp16 import convert_to_fp16

        quantized = convert_to_fp16(quantized, only=keep_fp16)
    return quantized


#: Histogram bins of entropy calibration: TensorRT's (ONNX Runtime's default is 128).
ENTROPY_BINS = 2048


def _entropy_ranges(model_path: str, reader: Any, cache_path: str, large: bool) -> str:
    """Entropy-calibrated activation ranges of ``model_path`` over ``reader``'s feeds,
    with ``ENTROPY_BINS`` histogram bins and 128 quantized bins, saved where
    ``quantize_static``'s ``calibration_cache_path`` reads them. BackendUnavailableError
    when this onnxruntime cannot take them."""
    import inspect

    from onnxruntime.quantization import CalibrationMethod, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise BackendUnavailableError(
            f"onnxruntime {onnxruntime.__version__} cannot quantize with entropy ranges of "
            "more than 128 bins (with 128 they are MinMax's): entropy calibration needs "
            "onnxruntime >= 1.31"
        )
    folder = os.path.dirname(cache_path)
    calibrator = create_calibrator(
        model_path,
        augmented_model_path=os.path.join(folder, "augmented.onnx"),
        calibrate_method=CalibrationMethod.Entropy,
        use_external_data_format=large,
        extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": 128},
    )
    calibrator.collect_data(reader)
    collector = getattr(calibrator, "collector", None)
    if collector is not None and hasattr(collector, "get_entropy_threshold"):
        from pytest_polygraphy.models.entropy import entropy_threshold

        collector.get_entropy_threshold = entropy_threshold  # same thresholds, ~6x faster
    save_tensors_data(calibrator.compute_data(), cache_path)
    return cache_path
