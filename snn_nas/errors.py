"""User-facing errors. The command line prints their message (no traceback) and exits with 2."""

from __future__ import annotations


class SnnNasError(Exception):
    """Base class of every error caused by bad input (a file, a name, a setting)."""
