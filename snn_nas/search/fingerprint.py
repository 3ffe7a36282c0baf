"""What a search samples from and trains at, fingerprinted so that ``--resume`` can refuse a change.

A resumed search continues the Optuna study of the interrupted one: its stored trials were
drawn from the space as it was, and its results were trained at the fidelity as it was. Editing
the space file in between makes the study's parameters unfit for the space (every new sample
turns invalid); editing the fidelity mixes results of two trainings in one table. So the search
folder keeps a fingerprint of both (``fingerprint.json``, written by ``snn_nas.search.layout``)::

    {"format": 1,
     "space":    {"sha256": "<hex>", "content": {"family": ..., "image_size": ...,
                                                 "dimensions": [{"label", "choices", "condition"}, ...]}},
     "fidelity": {"sha256": "<hex>", "content": {<TrainConfig fields but RESUME_FREE_FIELDS>}}}

``content`` is the resolved space (every dimension, fixed ones included, in define-by-run order;
not the file's text, so comments and formatting may change) and the trials' ``TrainConfig``.
``sha256`` is that of ``content`` as canonical JSON (sorted keys, no spaces). Pure functions
only: the file I/O is in ``layout``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

FORMAT = 1
RESUME_FREE_FIELDS = ("num_workers", "data_root")
"""TrainConfig fields that may differ on resume: they say where and how data is read, not what
is trained (another machine may mount the data elsewhere)."""


def _digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def space_content(space: Any) -> dict[str, Any]:
    """The part of a ``SearchSpace`` that decides what is sampled and how it decodes."""
    return {
        "family": space.family,
        "image_size": space.image_size,
        "dimensions": [
            {"label": d.label, "choices": list(d.choices), "condition": d.condition_text} for d in space.all_dimensions
        ],
    }


def fidelity_content(config: Any) -> dict[str, Any]:
    """The ``TrainConfig`` of the trials without the fields a resume may change."""
    return {k: v for k, v in config.to_dict().items() if k not in RESUME_FREE_FIELDS}


def fingerprint(space: Any, config: Any) -> dict[str, Any]:
    """The fingerprint of a search (the mapping stored as ``fingerprint.json``, JSON types only,
    so that it compares equal to what is read back)."""
    space_part, fidelity_part = _plain(space_content(space)), _plain(fidelity_content(config))
    return {
        "format": FORMAT,
        "space": {"sha256": _digest(space_part), "content": space_part},
        "fidelity": {"sha256": _digest(fidelity_part), "content": fidelity_part},
    }


def _plain(content: Any) -> Any:
    return json.loads(json.dumps(content, default=str))


def _text(value: Any) -> str:
    return json.dumps(value, default=str)


def _listed(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def summary(changes: list[str], limit: int = 5) -> str:
    """Changes joined for a one-line message (the first ``limit`` of them)."""
    more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + more


def space_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two ``space_content`` mappings, in words (empty: nothing)."""
    changes = []
    for key in ("family", "image_size"):
        if stored.get(key) != current.get(key):
            changes.append(f"{key} {_text(stored.get(key))} -> {_text(current.get(key))}")
    before = {d["label"]: d for d in stored.get("dimensions", [])}
    after = {d["label"]: d for d in current.get("dimensions", [])}
    added = [label for label in after if label not in before]
    removed = [label for label in before if label not in after]
    if added:
        changes.append(f"new label(s) {_listed(added)}")
    if removed:
        changes.append(f"label(s) {_listed(removed)} removed")
    for label, old in before.items():
        new = after.get(label)
        if new is None:
            continue
        if list(old["choices"]) != list(new["choices"]):
            changes.append(f"{label} choices {_text(old['choices'])} -> {_text(new['choices'])}")
        if old.get("condition") != new.get("condition"):
            changes.append(f"{label} active when {old.get('condition')!r} -> {new.get('condition')!r}")
    if not changes and [d["label"] for d in stored.get("dimensions", [])] != list(after):
        changes.append("the order of the labels")
    return changes


def fidelity_changes(stored: Mapping[str, Any], current: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """What differs between two ``fidelity_content`` mappings, in words. A field only one side
    has (a TrainConfig field added or dropped by another snn-nas version) counts as its
    ``defaults`` value there."""
    changes = []
    for name in [*stored, *(k for k in current if k not in stored)]:
        old, new = stored.get(name, defaults.get(name)), current.get(name, defaults.get(name))
        if old != new:
            changes.append(f"{name} {_text(old)} -> {_text(new)}")
    return changes
