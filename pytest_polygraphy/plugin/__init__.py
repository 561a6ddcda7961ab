"""pytest entry point (``pytest11: polygraphy``).

Kept light on purpose: it imports neither numpy, onnx, onnxruntime nor tensorrt, so
``pytest --co`` on an unrelated project stays fast. The heavy work lives in the sibling
modules, imported only when a test needs them.
"""

from __future__ import annotations
