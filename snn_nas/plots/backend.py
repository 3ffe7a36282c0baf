"""matplotlib with a non-interactive backend, imported only when something is drawn."""

from __future__ import annotations


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt
