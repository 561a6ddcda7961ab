"""Operators the ``onnxref`` runner hands onnx's ``ReferenceEvaluator`` in place of its own.

- ``BatchNormalization`` is corrected: onnx's kernel for opsets 9 to 13 takes the mere
  presence of the ``momentum`` attribute (which exporters such as paddle2onnx always write)
  as training mode and mixes the batch's statistics into the running ones, where the ONNX
  specification, ONNX Runtime and TensorRT normalize with the running statistics unless
  the node asks for its training outputs. (Found by ``--polygraphy-reduce`` on PaddleOCR's
  direction classifier: 0.09 off at its first BatchNormalization, 0.039 at the output.)
- ``Constant`` returns the outputs of its first run at every later one, as onnx's kernel
  does (the same array object), without going through the operator machinery again.
- ``Conv``, ``MaxPool`` and, in float16, ``Add``/``Sub``/``Mul``/``Div`` and that
  ``BatchNormalization``'s inference compute exactly what onnx's kernels compute, faster:
  the same arrays, byte for byte and in the same memory layout
  (``tests/runners/test_onnxref_ops.py`` checks it against onnx's own kernels and numpy),
  because every floating-point operation is the same one on the same operands in the
  same order; only the order of the loops around them changes. onnx's
  ``Conv`` builds its im2col matrix by fancy indexing with index arrays as large as the
  matrix and multiplies float16 matrices in numpy's one-element-at-a-time loop, and its
  strided ``MaxPool`` loops in Python over every output element; together they were
  two thirds of a reference run of a mobile CNN, and a reduce session runs the reference
  evaluator dozens of times. numpy's float16 arithmetic converts each operand to float32,
  computes in float32 and rounds the result, one element at a time and with no vector
  instructions (and its float16 to float32 conversion is no faster); the float16 kernels
  here do the same float32 operations on whole arrays, widening float16 through a table.

The evaluator's own kernels stay in charge wherever these would not be the same
computation (``MaxPool``'s indices output, windows with no element inside the input).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any


@functools.cache
def reference_ops() -> tuple[type, ...]:
    """The operator classes to pass as ``ReferenceEvaluator(..., new_ops=...)``."""
    return (batch_normalization(), conv(), max_pool(), constant(), *float16_arithmetic())


def batch_normalization() -> type:
    """``BatchNormalization`` that follows the specification (see the module docstring):
    inference mode unless ``training_mode=1`` (opset 14+) or, for opsets 9 to 13, unless
    the node asks for more than its first output."""
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
                if x.dtype == "float16":
                    return (_batchnorm_inference(x, scale, bias, mean, var, epsilon),)
                return (_batchnorm_test_mode(x, scale, bias, mean, var, epsilon=epsilon),)
            momentum = 0.9 if momentum is None else momentum
            y, saved_mean, saved_var, running_mean, running_var = _batchnorm_training_mode(
                x, scale, bias, mean, var, momentum, epsilon
            )
            if version >= 14:
                return (y, running_mean, running_var)[: len(outputs)]
            return (y, running_mean, running_var, saved_mean, saved_var)[: len(outputs)]

    return BatchNormalization


def constant() -> type:
    """``Constant`` that hands out the outputs of its first run at every later one: onnx's
    kernel returns the same array object each time, but through the operator machinery
    (its attributes gathered into keyword arguments, its outputs checked) at every run,
    and exporters write hundreds of Constant nodes (308 of PaddleOCR's direction
    classifier's 571 nodes). A Constant whose value is an attribute of the function it is
    in (``ref_attr_name``) runs onnx's kernel every time: one evaluator serves every call
    of a function, with each call's attributes. (onnx hands a model's functions
    evaluators of its own operators; this one meets them where a function is evaluated
    with these operators directly.)"""
    from onnx.reference.ops.op_constant import Constant_12

    class Constant(Constant_12):
        op_domain = ""

        def run(self, *args: Any, **kwargs: Any) -> Any:
            if self.has_linked_attribute:
                return super().run(*args, **kwargs)
            outputs = self.__dict__.get("_outputs")
            if outputs is None:
                outputs = self._outputs = super().run(*args, **kwargs)
            return outputs

    return Constant


def _batchnorm_inference(x: Any, scale: Any, bias: Any, mean: Any, var: Any, epsilon: Any) -> Any:
    """onnx's ``_batchnorm_test_mode`` for a float16 ``x``: ``scale * (x - mean) /
    sqrt(var + epsilon) + bias``, each full-size step through ``_binary``. The per-channel
    ``sqrt(var + epsilon)`` is numpy's own, so ``epsilon``'s type sets its dtype as in
    onnx's kernel (the evaluator passes the attribute, or its schema default, as a float32
    scalar, which makes it and every later step float32)."""
    import numpy as np

    per_channel = (-1, *([1] * (x.ndim - 2)))
    scale, bias, mean, var = (a.reshape(per_channel) for a in (scale, bias, mean, var))
    centered = _binary(np.subtract, x, mean)
    scaled = _binary(np.multiply, scale, centered)
    result = _binary(np.divide, scaled, np.sqrt(var + epsilon))
    return _binary(np.add, result, bias).astype(x.dtype)


@functools.cache
def _half_table() -> Any:
    """Every float16 value as float32, by bit pattern: ``table[h.view(uint16)]`` is
    ``h.astype(float32)``, about twice as fast."""
    import numpy as np

    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


def _widen(a: Any) -> Any:
    """``a`` as float32: exact, as numpy's own conversion (float16 through the table)."""
    import numpy as np

    a = np.asarray(a)
    if a.dtype == np.float16:
        return _half_table().take(a.view(np.uint16))
    return a


def _binary(ufunc: Any, a: Any, b: Any) -> Any:
    """``ufunc(a, b)`` for arrays: numpy's result, values and memory layout, faster where
    float16 is involved.

    Where numpy computes in float16 (both operands float16), its loop converts each pair
    to float32, applies the float32 operation and rounds to float16 (``npy_half`` loops;
    a native float16 instruction, where numpy has one, rounds the exact result the same
    way, since float32 holds more than twice float16's precision). Where float16 meets
    float32, numpy converts the float16 operand exactly and computes in float32. Both are
    done here on whole arrays, into an output that numpy's own iterator allocates as the
    ufunc would: the layout matters downstream, where reductions sum in memory order.
    Every other combination is numpy's own."""
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    half, single = np.dtype(np.float16), np.dtype(np.float32)
    dtype = np.result_type(a, b)
    if (
        half not in (a.dtype, b.dtype)
        or not {a.dtype, b.dtype} <= {half, single}
        or (a.ndim == 0 and b.ndim == 0)
    ):
        return ufunc(a, b)
    out = np.nditer(
        [a, b, None],
        op_flags=[["readonly"], ["readonly"], ["writeonly", "allocate"]],
        op_dtypes=[None, None, dtype],
        order="K",
    ).operands[2]
    if dtype == half:
        np.copyto(out, ufunc(_widen(a), _widen(b)), casting="same_kind")
    else:
        ufunc(_widen(a), _widen(b), out=out)
    return out


def float16_arithmetic() -> tuple[type, ...]:
    """``Add``, ``Sub``, ``Mul`` and ``Div`` whose float16 case goes through ``_binary``
    (the result numpy's float16 loop gives, bytes included); other dtypes are onnx's."""
    import numpy as np
    from onnx.reference.ops.op_add import Add
    from onnx.reference.ops.op_div import Div
    from onnx.reference.ops.op_mul import Mul
    from onnx.reference.ops.op_sub import Sub

    def kernel(base: type, ufunc: Any) -> type:
        def _run(self: Any, a: Any, b: Any) -> tuple[Any, ...]:
            if a.dtype == np.float16 and b.dtype == np.float16:
                return self._check_and_fix_outputs((_binary(ufunc, a, b),))
            return base._run(self, a, b)  # type: ignore[attr-defined, no-any-return]

        namespace = {"__module__": __name__, "op_domain": "", "_run": _run}
        return type(base.__name__, (base,), namespace)

    return (
        kernel(Add, np.add),
        kernel(Sub, np.subtract),
        kernel(Mul, np.multiply),
        kernel(Div, np.divide),
    )


def conv() -> type:
    """``Conv`` as onnx's kernel computes it (a dilated kernel spread out with zeros, an
    im2col matrix, one matmul per group, then the bias), with the im2col matrix copied
    from a strided window view instead of gathered through index arrays, and float16
    matmuls summed over all outputs at once (``_sums``)."""
    from onnx.reference.op_run import OpRun

    class Conv(OpRun):
        op_domain = ""

        def _run(  # type: ignore[override]
            self,
            X: Any,
            W: Any,
            B: Any = None,
            auto_pad: Any = None,
            dilations: Any = None,
            group: Any = None,
            kernel_shape: Any = None,
            pads: Any = None,
            strides: Any = None,
        ) -> tuple[Any, ...]:
            if X.ndim < 3:
                raise ValueError(f"Conv needs an input of rank 3 or more, got shape {X.shape}")
            return (_conv(X, W, B, auto_pad, dilations, group, kernel_shape, pads, strides),)

    return Conv


def _conv(
    x: Any,
    w: Any,
    b: Any,
    auto_pad: Any,
    dilations: Any,
    group: Any,
    kernel_shape: Any,
    pads: Any,
    strides: Any,
) -> Any:
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    spatial = x.ndim - 2
    dilations = list(dilations) if dilations is not None else [1] * spatial
    strides = list(strides) if strides is not None else [1] * spatial
    pads = list(pads) if pads is not None else [0] * (2 * spatial)
    kernel = list(kernel_shape) if kernel_shape is not None else list(w.shape[2:])
    group = 1 if group is None else int(group)
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group != 0:
        raise ValueError(
            f"Conv: input shape {x.shape} and weight shape {w.shape} do not fit group={group}"
        )
    if any(d != 1 for d in dilations):
        spread = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
        wide = np.zeros((*w.shape[:2], *spread), dtype=w.dtype)
        wide[(slice(None), slice(None), *(slice(None, None, d) for d in dilations))] = w
        w = wide
        kernel = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    if auto_pad == "VALID":
        pads = [0] * (2 * spatial)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        head, tail = [], []
        for axis in range(spatial):
            size = x.shape[2 + axis]
            target = (size + strides[axis] - 1) // strides[axis]
            needed = max(0, (target - 1) * strides[axis] + kernel[axis] - size)
            first = (needed + 1) // 2 if auto_pad == "SAME_LOWER" else needed // 2
            head.append(first)
            tail.append(needed - first)
        pads = head + tail
    sizes = [x.shape[2 + i] + pads[i] + pads[i + spatial] for i in range(spatial)]
    if any(size < k for size, k in zip(sizes, kernel, strict=True)):
        raise ValueError(f"Conv: kernel {kernel} is larger than the padded input {sizes}")
    out_shape = [(size - k) // s + 1 for size, k, s in zip(sizes, kernel, strides, strict=True)]
    batch, channels = x.shape[:2]
    kernel_size = int(np.prod(kernel))
    rows = w.shape[0] // group
    positions = batch * int(np.prod(out_shape))  # the im2col matrix's columns
    # float16 sums in float32 (``_sums``): the input converted once, not each window copy
    in_float32 = _sums_win(x.dtype, w.dtype, w.shape[0] * positions)
    source = _widen(x) if in_float32 else x
    padded = _zero_padded(source, pads)
    windows = sliding_window_view(padded, kernel, axis=tuple(range(2, 2 + spatial)))
    windows = windows[(slice(None), slice(None), *(slice(None, None, s) for s in strides))]
    # rows: channel-major then kernel offset; columns: sample-major then output position
    order = (1, *range(2 + spatial, 2 + 2 * spatial), 0, *range(2, 2 + spatial))
    # contiguous, as onnx's is: numpy picks its matmul path (BLAS or not) by strides
    columns = np.ascontiguousarray(windows.transpose(order).reshape(channels * kernel_size, -1))
    per_group = w.shape[1] * kernel_size
    columns = columns.reshape(group, per_group, positions)
    weights = w.reshape(group, rows, per_group)
    if in_float32:
        product = _sums(_widen(weights), columns).astype(np.float16)
    else:
        product = weights @ columns
    product = product.reshape(group, rows, batch, *out_shape)
    product = product.transpose(2, 0, 1, *range(3, product.ndim))
    product = product.reshape(batch, w.shape[0], *out_shape)
    if b is not None:
        product = _binary(np.add, product, b if b.size == 1 else b.reshape(1, -1, *([1] * spatial)))
    return product.astype(x.dtype, copy=False)


def _zero_padded(x: Any, pads: list[int]) -> Any:
    """``x`` with ``pads`` (ONNX order: every spatial axis's start, then every end) zeros
    around its spatial axes, as ``np.pad`` makes it; ``x`` itself when there are none."""
    import numpy as np

    if not any(pads):
        return x
    if min(pads) < 0:
        raise ValueError(f"Conv: pads must not be negative, got {pads}")
    spatial = x.ndim - 2
    starts, ends = pads[:spatial], pads[spatial:]
    shape = (*x.shape[:2], *(n + a + b for n, a, b in zip(x.shape[2:], starts, ends, strict=True)))
    padded = np.zeros(shape, dtype=x.dtype)
    inner = (slice(a, a + n) for n, a in zip(x.shape[2:], starts, strict=True))
    padded[(slice(None), slice(None), *inner)] = x
    return padded


def _sums_win(left: Any, right: Any, outputs: int) -> bool:
    """Whether a float16 matmul with this many outputs is faster through ``_sums``
    (numpy's own loop is, on small outputs)."""
    import numpy as np

    return left == np.float16 and right == np.float16 and outputs >= 1024


def _sums(left: Any, right: Any) -> Any:
    """The float32 sums that numpy's float16 ``left @ right`` rounds to float16, for stacks
    of float16 matrices given as float32 (converting is exact).

    numpy has no BLAS for float16: for each output its loop adds the products of a row and
    a column into a float32 ``sum = 0`` in order, then rounds once to float16
    (``HALF_matmul_inner_noblas``). Here every output takes one step of its sum at a
    time, all outputs at once: the same float32 operations on the same operands in the
    same order (each product of two float16 values is exact in float32), a few times
    faster."""
    import numpy as np

    shape = (max(left.shape[0], right.shape[0]), left.shape[1], right.shape[2])
    total = np.zeros(shape, dtype=np.float32)
    step = np.empty(shape, dtype=np.float32)
    for k in range(left.shape[2]):
        np.multiply(left[:, :, k : k + 1], right[:, k : k + 1, :], out=step)
        total += step
    return total


def max_pool() -> type:
    """``MaxPool`` whose strided or dilated path (onnx loops in Python over every output
    element) scans the window offsets in onnx's order over all outputs at once: an element
    replaces the running maximum only when it is the window's first element inside the
    input or strictly greater (so NaN and signed zeros come out as onnx's loop leaves
    them)."""
    from onnx.reference.ops.op_max_pool import MaxPool as OnnxMaxPool

    class MaxPool(OnnxMaxPool):
        op_domain = ""

        def _pooled(self, x: Any, *args: Any) -> Any:
            # the arguments onnx 1.23 passes; any others: onnx's own kernel
            if len(self.output) != 1 or len(args) != 8:
                return None
            _, _, dilations, kernel_shape, new_pads, _, strides, out_shape = args
            return _max_pool(x, dilations, kernel_shape, new_pads, strides, out_shape)

        def _max_pool_1d(self, x: Any, *args: Any) -> Any:
            pooled = self._pooled(x, *args)
            return super()._max_pool_1d(x, *args) if pooled is None else (pooled,)

        def _max_pool_2d(self, x: Any, *args: Any) -> Any:
            pooled = self._pooled(x, *args)
            return super()._max_pool_2d(x, *args) if pooled is None else (pooled,)

        def _max_pool_3d(self, x: Any, *args: Any) -> Any:
            pooled = self._pooled(x, *args)
            return super()._max_pool_3d(x, *args) if pooled is None else (pooled,)

    return MaxPool


def _max_pool(
    x: Any, dilations: Any, kernel: Any, pads: Any, strides: Any, out_shape: Any
) -> Any | None:
    """The pooled array, or None when some window holds no element of the input (onnx's
    kernels then differ by rank; they are left to handle it)."""
    import numpy as np

    spatial = len(kernel)
    starts = [np.arange(out_shape[i]) * strides[i] - int(pads[i][0]) for i in range(spatial)]
    pooled = np.zeros((*x.shape[:2], *out_shape), dtype=x.dtype)
    seen = np.zeros(tuple(out_shape), dtype=bool)
    for offsets in itertools.product(*(range(k) for k in kernel)):
        positions = [starts[i] + offsets[i] * dilations[i] for i in range(spatial)]
        inside = [(p >= 0) & (p < x.shape[2 + i]) for i, p in enumerate(positions)]
        clipped = [np.clip(p, 0, x.shape[2 + i] - 1) for i, p in enumerate(positions)]
        valid = np.ones(tuple(out_shape), dtype=bool)
        for axis, mask in enumerate(inside):
            valid = valid & mask.reshape([-1 if i == axis else 1 for i in range(spatial)])
        values = x[(slice(None), slice(None), *np.ix_(*clipped))]
        take = valid & (~seen | (values > pooled))
        pooled = np.where(take, values, pooled)
        seen |= valid
    return pooled if seen.all() else None
