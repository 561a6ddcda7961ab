"""The words option values are made of (precisions, backends, comparison functions, error
statistics, engine file suffixes) and the error a bad value raises.

Apart from ``syntax`` so that the option table can name them in its help texts without
importing the parsers: pytest imports the option table at every start, and under
``PYTHONDONTWRITEBYTECODE`` it compiles every plugin module it imports anew each time.
"""

from __future__ import annotations

#: A shape set: the concrete shape of each named input (``""`` for every other input).
ShapeSet = dict[str, tuple[int, ...]]

#: File suffixes of serialized TensorRT engines, collected and tested like model files.
ENGINE_SUFFIXES = (".engine", ".plan")

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
#: The precision a reference runs at.
FULL_PRECISION = "fp32"
#: The precisions where ``keep_fp16`` changes what runs (elsewhere every node already runs
#: in fp16 or better).
BELOW_FP16 = ("bf16", "int8", "fp8")
#: Backends in the order the default reference is picked from (the first selected one).
BACKENDS = ("onnxref", "onnxrt", "trt")
REFERENCES = (*BACKENDS, "golden")
COMPARE_FUNCS = ("simple", "indices", "distance_metrics", "quality_metrics")
CHECK_ERROR_STATS = ("elemwise", "max", "mean", "median", "quantile")
#: TensorRT's int8 calibrators (``--polygraphy-trt-calibrator``): IInt8EntropyCalibrator2
#: and IInt8MinMaxCalibrator.
TRT_CALIBRATORS = ("entropy2", "minmax")


class OptionValueError(ValueError):
    """A value does not follow the accepted syntax; the message says what is accepted."""
