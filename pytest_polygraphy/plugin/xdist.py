"""pytest-xdist integration: one GPU per worker.

The controller discovers the GPUs once (``gpus.discover_gpus``: ``--polygraphy-gpus``, an outer
``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``; never CUDA itself) and, as each worker is
configured, hands it one GPU in two ways:

- it sets ``CUDA_VISIBLE_DEVICES`` in the freshly spawned worker process through the execnet
  gateway, *before* the worker starts pytest, so even a conftest that creates a CUDA context
  at import time sees only its GPU;
- it puts the GPU into ``workerinput["polygraphy_gpu"]``, and the worker's ``pytest_configure``
  sets the variable again from there (a no-op when the first step ran) and reports it.

Without xdist nothing changes unless ``--polygraphy-gpus`` is given: then the variable is set
to its first GPU by ``pin_gpu_before_conftests`` (which the entry point calls from
``pytest_load_initial_conftests``, before the rootdir's conftest files are imported), and
again in ``pytest_configure`` (before test modules are imported). Only code that initialises
CUDA earlier still, in a plugin loaded with ``-p`` or at interpreter start, defeats it; CUDA
reads the variable when the driver initialises (a first CUDA tensor, an inference session),
not when a library is merely imported.

Light at import: neither xdist nor anything heavy is imported here. The entry point imports
this module only where it has work to do (``needs_gpu_hooks``): an xdist worker or
controller, or ``--polygraphy-gpus`` given.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pytest_polygraphy.plugin.gpus import (
    CUDA_VISIBLE_DEVICES,
    GpuDiscovery,
    assign_gpu,
    discover_gpus,
    parse_gpu_list,
    should_assign,
)
from pytest_polygraphy.plugin.options import gpus_setting as _gpus_setting

WORKERINPUT_GPU = "polygraphy_gpu"


def _first_gpu(value: str) -> str:
    try:
        return parse_gpu_list(value)[0]
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def pin_gpu_before_conftests(early_config: pytest.Config) -> None:
    """Without xdist, apply ``--polygraphy-gpus`` before the initial conftest files load.

    Meant for the entry point's ``pytest_load_initial_conftests``, so that a conftest that
    initialises CUDA at import time still sees only the chosen GPU. xdist workers (pinned by
    their controller before they start) and the controller itself are left alone.
    """
    namespace = early_config.known_args_namespace
    if (
        "PYTEST_XDIST_WORKER" in os.environ
        or getattr(namespace, "numprocesses", None)
        or getattr(namespace, "dist", "no") != "no"
    ):
        return
    value = _gpus_setting(early_config, namespace)
    if value is not None:
        os.environ[CUDA_VISIBLE_DEVICES] = _first_gpu(value)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_xdist_controller(config: pytest.Config) -> bool:
    """True when this process hands tests to xdist workers instead of running them."""
    return (
        not _is_worker(config)
        and config.getoption("dist", default="no") != "no"
        and not config.getoption("collectonly", default=False)
        and config.pluginmanager.has_plugin("xdist")
    )


class XdistPlugin:
    """Hooks that pin each xdist worker to a GPU; registered by the plugin in pytest_configure."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._discovery: GpuDiscovery | None = None
        self._assigned: dict[str, str] = {}  # live worker id -> its GPU

    def discovery(self) -> GpuDiscovery:
        """The controller's GPU list, discovered once (nvidia-smi runs at most once)."""
        if self._discovery is None:
            try:
                self._discovery = discover_gpus(_gpus_setting(self.config), os.environ)
            except ValueError as error:
                raise pytest.UsageError(str(error)) from None
        return self._discovery

    def pytest_configure(self, config: pytest.Config) -> None:
        if _is_worker(config):
            gpu = config.workerinput.get(WORKERINPUT_GPU)  # type: ignore[attr-defined]
            if gpu is not None:
                os.environ[CUDA_VISIBLE_DEVICES] = gpu
        elif _is_xdist_controller(config):
            if _gpus_setting(config) is not None:
                self.discovery()  # a bad --polygraphy-gpus is a usage error now, not later
        else:
            value = _gpus_setting(config)
            if value is not None:
                os.environ[CUDA_VISIBLE_DEVICES] = _first_gpu(value)

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if _is_xdist_controller(config):
            discovery = self.discovery()
            if should_assign(discovery):
                return f"polygraphy GPUs: {discovery.describe()}, one per xdist worker"
        elif not _is_worker(config) and _gpus_setting(config) is not None:
            return f"polygraphy GPU: {os.environ.get(CUDA_VISIBLE_DEVICES)} (--polygraphy-gpus)"
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Controller side, once per worker, after its process exists and before it starts."""
        discovery = self.discovery()
        if not should_assign(discovery):
            return
        worker_id = str(node.workerinput["workerid"])
        gpu = assign_gpu(discovery.gpus, self._assigned.values())
        self._assigned[worker_id] = gpu
        node.workerinput[WORKERINPUT_GPU] = gpu
        node.gateway.remote_exec(
            f"import os\nos.environ[{CUDA_VISIBLE_DEVICES!r}] = {gpu!r}\n"
        ).waitclose()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """Free a finished or crashed worker's GPU for the worker that may replace it."""
        workerinput = getattr(node, "workerinput", None) or {}
        self._assigned.pop(str(workerinput.get("workerid")), None)
