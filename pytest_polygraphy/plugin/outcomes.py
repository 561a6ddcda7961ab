"""How the plugin fails a test: with its message only.

``pytest.fail(msg, pytrace=False)`` drops the traceback, but called while another
exception is handled it still prints that one ("During handling of the above exception,
another exception occurred"); ``fail`` suppresses the context too.
"""

from __future__ import annotations

from typing import NoReturn

import pytest


def fail(message: str) -> NoReturn:
    """Fail the current test (or collection) showing ``message`` and nothing else."""
    raise pytest.fail.Exception(message, pytrace=False) from None
