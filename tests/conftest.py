"""Shared test configuration.

``tests`` is a package (each folder has an ``__init__.py``) so that test modules of the
same name in different layers do not clash and model builders are importable as
``tests.models.builders``.
"""

from __future__ import annotations
