"""The package version, in a module of its own: any module reads it from here without importing
the package's lazy public surface (``snn_nas/__init__.py``, which re-exports it as
``snn_nas.__version__``). Keep it equal to ``version`` in ``pyproject.toml``."""

from __future__ import annotations

__version__ = "0.1.0"
