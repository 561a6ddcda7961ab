"""Can this machine give the run what it asks for? Checked once, at start: the backends
asked for on the command line, and the folders the run will write.

``pytest models/ --onnxrt --trt`` on a machine without TensorRT used to skip every
TensorRT test and exit 0: a CI job that tested nothing, reported green. A backend switch
given on the command line (or ``--polygraphy-reference`` naming a backend) is a demand,
so a backend that cannot run is a usage error at start, with the reason and the install
command. ``--polygraphy-skip-unavailable`` (ini ``polygraphy_skip_unavailable``) keeps the
old behaviour for mixed fleets: the tests of that backend skip with the reason, and the
report header says so. Backends selected by the ini ``polygraphy_backends`` only are
project defaults, not demands: they skip as before.

Cheap on purpose: a missing package is found with ``importlib.util.find_spec`` (no
import); a backend is imported only when it is selected and installed (ONNX Runtime to
list its providers when one other than the CPU is asked for, TensorRT to tell a real
install from a placeholder package). Nothing here runs for a run that selects no backend.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import pytest

from pytest_polygraphy.plugin.options import COMMAND_LINE, PolygraphyOptions
from pytest_polygraphy.plugin.optionspecs import report_file_asked
from pytest_polygraphy.plugin.syntax import BACKENDS

#: The ONNX Runtime package that offers each execution provider (by short name).
PROVIDER_PACKAGES = {
    "cuda": "pip install onnxruntime-gpu (in place of onnxruntime)",
    "tensorrt": "pip install onnxruntime-gpu (in place of onnxruntime), and TensorRT",
    "dml": "pip install onnxruntime-directml (in place of onnxruntime)",
    "openvino": "pip install onnxruntime-openvino (in place of onnxruntime)",
    "rocm": "an ONNX Runtime build with ROCm (see onnxruntime.ai)",
    "migraphx": "an ONNX Runtime build with MIGraphX (see onnxruntime.ai)",
    "coreml": "pip install onnxruntime on macOS (CoreML ships with it there)",
}
GPU_PROVIDERS = ("cuda", "tensorrt")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _onnxrt_reason(providers: Sequence[str]) -> str | None:
    if not _installed("onnxruntime"):
        from pytest_polygraphy.ort_module import INSTALL_HINT

        return INSTALL_HINT
    from pytest_polygraphy.runners.onnxrt import PROVIDER_NAMES, resolve_provider

    short = {full: name for name, full in PROVIDER_NAMES.items() if name != "trt"}
    wanted = [resolve_provider(p) for p in providers]
    if all(p == PROVIDER_NAMES["cpu"] for p in wanted):
        return None
    import onnxruntime

    available = onnxruntime.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        installs = sorted({PROVIDER_PACKAGES.get(short.get(p, ""), "") for p in missing} - {""})
        install = f"; install it: {', or '.join(installs)}" if installs else ""
        return (
            f"ONNX Runtime {onnxruntime.__version__} here offers {available}, not "
            f"{missing}{install}"
        )
    if any(short.get(p) in GPU_PROVIDERS for p in wanted):
        from pytest_polygraphy.runners.cuda import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason is not None:
            return f"the CUDA execution provider needs a CUDA GPU: {reason}"
    return None


def _trt_reason() -> str | None:
    from pytest_polygraphy.errors import BackendUnavailableError
    from pytest_polygraphy.runners.trt_module import INSTALL_HINT, import_tensorrt

    if not any(_installed(m) for m in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings")):
        return INSTALL_HINT
    try:
        import_tensorrt()
    except BackendUnavailableError as err:
        return str(err)
    if not _installed("cuda"):
        return "cuda-python is not installed: pip install 'pytest-polygraphy[trt]' (or cuda-python)"
    from pytest_polygraphy.runners.cuda import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    return None if reason is None else f"TensorRT needs a CUDA GPU: {reason}"


def unavailable_reason(backend: str, options: PolygraphyOptions) -> str | None:
    """Why ``backend`` cannot run here (with the install command), or None when it can."""
    if backend == "onnxrt":
        return _onnxrt_reason(options.providers)
    if backend == "onnxref":
        return None if _installed("onnx") else "onnx is not installed: pip install onnx"
    if backend == "trt":
        return _trt_reason()
    raise ValueError(f"unknown backend {backend!r}")


def demanded_backends(options: PolygraphyOptions) -> tuple[str, ...]:
    """The backends asked for on the command line: switches, and a backend named by
    ``--polygraphy-reference``."""
    demanded = list(options.backends) if options.backends_on_command_line else []
    reference = options.reference
    if options.source("reference") == COMMAND_LINE and reference in BACKENDS:
        demanded.append(str(reference))
    return tuple(b for b in BACKENDS if b in demanded)


def unavailable(options: PolygraphyOptions) -> dict[str, str]:
    """``{backend: reason}`` for every demanded backend that cannot run here."""
    reasons = {}
    for backend in demanded_backends(options):
        reason = unavailable_reason(backend, options)
        if reason is not None:
            reasons[backend] = reason
    return reasons


def check_backends(config: pytest.Config, options: PolygraphyOptions) -> str | None:
    """Raise UsageError for a demanded backend that cannot run here; with
    ``skip_unavailable``, return a header line saying which will skip (None if none).

    Not on xdist workers (their controller checked already) nor under ``--collect-only``
    (listing tests needs no backend)."""
    if hasattr(config, "workerinput") or config.getoption("collectonly", default=False):
        return None
    reasons = unavailable(options)
    if not reasons:
        return None
    lines = [f"--{backend}: {reason}" for backend, reason in reasons.items()]
    if options.skip_unavailable:
        return "polygraphy: these backends cannot run here; their tests skip " + (
            "(--polygraphy-skip-unavailable):\n  " + "\n  ".join(lines)
        )
    raise pytest.UsageError(
        "backends asked for on the command line cannot run here:\n  "
        + "\n  ".join(lines)
        + "\nInstall them, leave their switches out, or pass --polygraphy-skip-unavailable "
        "(ini polygraphy_skip_unavailable = true) to skip their tests instead."
    )


def check_output_paths(config: pytest.Config, options: PolygraphyOptions) -> None:
    """Raise UsageError, naming the path and the reason, for an output folder this run
    would write and cannot: the report and its artifacts, the golden folder under
    ``--polygraphy-update-golden``, TensorRT's engine cache. Checked once at start (not on
    xdist workers, nor under ``--collect-only``, which writes nothing), so that a long run
    does not end in a traceback instead of its summary."""
    if hasattr(config, "workerinput") or config.getoption("collectonly", default=False):
        return
    from pytest_polygraphy.files import folder_write_problem

    problems: list[str] = []
    if report_file_asked(config):
        from pytest_polygraphy.plugin.report import output_path_problems

        problems = output_path_problems(config)
    folders = []
    if options.update_golden and options.golden_dir is not None:
        folders.append(("--polygraphy-golden-dir", options.golden_dir))
    if "trt" in options.backends and options.cache_dir is not None:
        folders.append(("--polygraphy-cache-dir", options.cache_dir))
    for option, folder in folders:
        problem = folder_write_problem(folder)
        if problem is not None:
            problems.append(f"{option} {folder}: cannot write there: {problem}")
    problems += _results_folder_problems(options)
    if problems:
        raise pytest.UsageError(
            "\n".join(problems) + "\nPick a path this user can write, or create it first."
        )


def _results_folder_problems(options: PolygraphyOptions) -> list[str]:
    """The save-inputs / save-outputs folders that cannot be written (or hold files this
    plugin did not write); those that can are claimed now (see ``runresults``)."""
    asked = [
        ("--polygraphy-save-inputs", options.save_inputs),
        ("--polygraphy-save-outputs", options.save_outputs),
    ]
    if not any(folder for _, folder in asked):
        return []
    from pytest_polygraphy.plugin.runresults import folder_problem

    problems = []
    for option, folder in asked:
        problem = None if folder is None else folder_problem(folder)
        if problem is not None:
            problems.append(f"{option} {folder}: cannot write there: {problem}")
    return problems
