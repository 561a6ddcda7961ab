"""pytest entry point (``pytest11: polygraphy``).

Kept light on purpose: it imports neither numpy, onnx, onnxruntime nor tensorrt, so
``pytest --co`` on an unrelated project stays fast. Every start imports only the option
table (``optionspecs``), the markers, the run hooks and the fixtures: pytest compiles each
plugin module it imports anew at every start when ``PYTHONDONTWRITEBYTECODE`` is set (it
rewrites their asserts and cannot cache the result), so parsers, collectors and
comparisons load on first use. ``pytest_addoption`` registers the options;
``pytest_configure`` parses them (only when the run sets any) and registers the hooks,
fixtures, reports and xdist support.
"""

from __future__ import annotations

import pytest

from pytest_polygraphy.plugin.optionspecs import gpus_setting, pytest_addoption

__all__ = ["pytest_addoption", "pytest_configure", "pytest_load_initial_conftests"]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Pin ``--polygraphy-gpus`` before conftest files load: one that starts CUDA on import
    would otherwise see every GPU."""
    if gpus_setting(early_config, early_config.known_args_namespace) is None:
        return  # nothing to pin: spare every pytest start the import
    from pytest_polygraphy.plugin.xdist import pin_gpu_before_conftests

    pin_gpu_before_conftests(early_config)


def pytest_configure(config: pytest.Config) -> None:
    from pytest_polygraphy.plugin.hooks import configure

    configure(config)
