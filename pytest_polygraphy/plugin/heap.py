"""The long-lived heap: once the tests are collected, import what their runs will need and
take everything alive out of the cyclic garbage collector's sight (``gc.freeze``).

A model test's process holds numpy, onnx, onnx's reference evaluator with its two hundred
operator modules and the backend's package: some 60,000 objects that live until the
process ends. Python's collector scans every one of them at each full collection: the ones
it runs by itself while tests allocate, pytest's at the end of the session (which looks
for unraisable exceptions) and the interpreter's at exit. On a reduce session of PaddleOCR's
direction classifier those scans were about 0.1 s of the command's 1 s, and no scan could
free anything among them.

So, once per process, after collection and before the first test runs: a collection of
the two young generations frees the garbage made since the last full collection; the
modules the collected tests' backends import are imported now instead of in the first
test, with the automatic collector paused; and ``gc.freeze`` moves everything alive
(modules, classes, the collected items) to the collector's permanent generation. A
second collection after the imports would cost another 20 ms to free what importing
numpy, onnx and the evaluator leaves behind, 14 objects, so those are frozen with the
rest. Objects the tests create afterwards are tracked and collected exactly as before; a
frozen object is still freed by reference counting when its last reference goes, only a
reference cycle among frozen objects would stay until exit. The collection is of the
young generations only: garbage among the older objects, which a full collection would
rescan all 30,000 of to find, would be frozen with them. There was none on the real
models tried: on PaddleOCR's direction classifier both collections free the same 16
objects, the young one in 0.4 ms, the full one in 17 to 25 ms.

Nothing is done for ``--collect-only`` or a session without a test that uses the plugin
(a model file, or a test that uses the ``model`` or ``polygraphy_settings`` fixture, which
every fixture that runs a model depends on). A module that fails to import is left for
the test that needs it to report (and named in a warning, unless it is merely missing).
"""

from __future__ import annotations

import gc
import importlib
import warnings
from collections.abc import Iterable

import pytest

from pytest_polygraphy.plugin.vocabulary import BACKENDS

#: What every model test imports, whatever its backends.
COMMON_MODULES = (
    "numpy",
    "onnx",
    "pytest_polygraphy.compare",
    "pytest_polygraphy.models",
    "pytest_polygraphy.data",
    "pytest_polygraphy.runners.run",
    "pytest_polygraphy.plugin.accuracy",
)
#: What a backend's runner imports when it is built.
BACKEND_MODULES = {
    "onnxref": ("onnx.reference", "onnx.reference.ops", "pytest_polygraphy.runners.onnxref_ops"),
    "onnxrt": ("onnxruntime", "pytest_polygraphy.runners.onnxrt"),
    "trt": ("tensorrt", "pytest_polygraphy.runners.trt"),
}
#: Fixtures that every plugin fixture running a model depends on.
PLUGIN_FIXTURES = ("model", "polygraphy_settings")
COLLECT_MODULE = "pytest_polygraphy.plugin.collect"

_frozen = False


def freeze_long_lived(session: pytest.Session) -> None:
    """Collect the young generations, import the collected tests' modules, and freeze
    (see the module docstring). Once per process."""
    global _frozen
    if _frozen or session.config.option.collectonly:
        return
    backends = _backends(session.items, session.config)
    if backends is None:
        return
    _frozen = True
    enabled = gc.isenabled()
    gc.collect(1)
    gc.disable()
    try:
        for backend in backends:
            _import_quietly(BACKEND_MODULES[backend])
        _import_quietly(COMMON_MODULES)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def _backends(items: Iterable[pytest.Item], config: pytest.Config) -> list[str] | None:
    """The backends the plugin's tests among ``items`` run, or None when there is no such
    test."""
    named: set[str] = set()
    ours = False
    for item in items:
        names = getattr(item, "fixturenames", ())
        if type(item).__module__ == COLLECT_MODULE or any(n in names for n in PLUGIN_FIXTURES):
            ours = True
            named.update(b for b in BACKENDS if f"{b}_runner" in names)
    if not ours:
        return None
    from pytest_polygraphy.plugin.options import get_options

    named.update(get_options(config).backends)
    return [backend for backend in BACKENDS if backend in named]


def _import_quietly(modules: Iterable[str]) -> None:
    """Import ``modules``, leaving a failure to the test that needs the module: a missing
    module fails there the same way, with the install hint. Any other failure is also
    given as a warning now, since importing a broken extension module again may fail with
    a different message ("cannot load module more than once") that hides the cause."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        except Exception as err:
            warnings.warn(
                pytest.PytestWarning(
                    f"polygraphy: importing {module} before the tests failed, "
                    f"{type(err).__name__}: {err}"
                ),
                stacklevel=1,
            )
