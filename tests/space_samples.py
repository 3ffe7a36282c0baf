"""Test helper shared by the space tests: every sample of a (tiny) space, by brute force."""

from __future__ import annotations

from snn_nas.space import SearchSpace


def enumerate_samples(space: SearchSpace):
    """Every assignment of the active searchable labels, define-by-run (brute force)."""

    def rec(values: dict, i: int):
        dims = space.dimensions
        while i < len(dims) and not dims[i].is_active({**space.fixed, **values}):
            i += 1
        if i == len(dims):
            yield dict(values)
            return
        for choice in dims[i].choices:
            values[dims[i].label] = choice
            yield from rec(values, i + 1)
            del values[dims[i].label]

    yield from rec({}, 0)
