"""User-facing errors. The command line prints their message (no traceback) and exits with 2."""

from __future__ import annotations


class SnnNasError(Exception):
    """Base class of every error caused by bad input (a file, a name, a setting)."""


def worker_message(message: str) -> str:
    """The error itself of one raised in a DataLoader worker process: torch re-raises it in the
    main process with the worker's whole traceback as its message; the last line is the error."""
    if "\nOriginal Traceback" not in message:
        return message
    last = message.strip().splitlines()[-1]
    head, _, rest = last.partition(": ")
    return rest if rest and head.replace(".", "").replace("_", "").isalnum() else last
