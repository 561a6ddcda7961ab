"""Default tolerances per precision, for precision-parametrized accuracy tests.

Polygraphy's defaults (rtol = atol = 1e-5) suit fp32 engines only: every fp16, bf16 or int8
run fails them. ``PRECISION_TOLERANCES`` is the one table of defaults; use it through
``default_tolerances``::

    CompareFunc.simple(**default_tolerances("fp16"))

The values are starting points for whole-model outputs compared with the elementwise rule
(an element fails only when it exceeds both tolerances), derived from each format's unit
roundoff ``u`` (half the gap between 1 and the next representable number):

=========  ======  ======  ==================================================================
precision  rtol    atol    why
=========  ======  ======  ==================================================================
fp32       1e-5    1e-5    u = 6e-8; reordered fp32 reductions across backends stay well
                           within 1e-5 (Polygraphy's defaults).
tf32       1e-3    1e-4    matmul/conv inputs rounded to 10 mantissa bits (u = 4.9e-4) but
                           accumulated and stored in fp32, so errors stay near u.
fp16       2e-3    2e-3    u = 4.9e-4 on every stored activation, and a network rounds
                           many times: real fp16 (ONNX Runtime's CUDA provider, H200) put
                           a 6-layer CNN's softmax 1.0e-3 abs / 1.5e-3 rel off fp32, so
                           about 4u; atol absorbs cancellation near zero.
bf16       1e-2    1e-2    only 8 mantissa bits: u = 3.9e-3, a single rounding is 0.4 %.
int8       5e-2    5e-2    quantization error scales with each tensor's range (step = range /
                           255), not with the element, so it needs a real atol as well.
fp8        1e-1    1e-1    e4m3 keeps 3 mantissa bits: u = 6.3e-2 per rounding.
=========  ======  ======  ==================================================================

Deep or ill-conditioned models may need more; tighten or loosen per output with a dict
(``{"": 1e-3, "logits": 5e-3}``) rather than changing the defaults for everything.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

from pytest_polygraphy.errors import InputError


class Tolerance(NamedTuple):
    """A relative and an absolute tolerance for ``CompareFunc.simple``."""

    rtol: float
    atol: float


PRECISION_TOLERANCES = MappingProxyType(
    {
        "fp32": Tolerance(rtol=1e-5, atol=1e-5),
        "tf32": Tolerance(rtol=1e-3, atol=1e-4),
        "fp16": Tolerance(rtol=2e-3, atol=2e-3),
        "bf16": Tolerance(rtol=1e-2, atol=1e-2),
        "int8": Tolerance(rtol=5e-2, atol=5e-2),
        "fp8": Tolerance(rtol=1e-1, atol=1e-1),
    }
)
"""Precision name -> default ``Tolerance``; see the module docstring for the reasoning."""


def default_tolerances(precision: str) -> dict[str, float]:
    """``{"rtol": ..., "atol": ...}`` for ``precision``, ready to splat into ``simple()``."""
    try:
        tolerance = PRECISION_TOLERANCES[precision]
    except KeyError:
        raise InputError(
            f"Unknown precision {precision!r}; expected one of {list(PRECISION_TOLERANCES)}"
        ) from None
    return tolerance._asdict()
