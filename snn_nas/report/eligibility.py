"""Which result rows may stand on a reported front: one rule for every view (pure).

``front_exclusion(row, ...)`` is the rule the terminal's live front, ``snn-nas search``'s summary,
``snn-nas pareto`` (table, files, page), ``snn-nas retrain``'s choice and the user's Optuna study
(optuna-dashboard's best trials) all apply. A row is *eligible* when none of these holds, checked
in this order (the first that holds is the reason given):

* ``status``: its status is not ``ok`` (stopped early, ruled out, failed, diverged, silent);
* ``supernet``: its ``proxy`` column is ``"supernet"``: the accuracy is a weight-sharing estimate
  of a one-shot search's first stage, not a standalone training (a missing or null ``proxy``
  column reads as ``"standalone"``);
* ``metrics``: its accuracy ``y`` or its cost ``x`` is not a finite number;
* ``non-spiking``: the cost axis is ``sops`` and the row is non-spiking (``is_non_spiking``): it
  does all its work as MACs, so its 0 SOPs are not comparable with a spiking network's;
* ``infeasible``: a search trial (not a baseline) whose ``feasible`` is False: it breaks a
  constraint of the experiment;
* ``chance``: its accuracy is at chance level, ``y <= 1 / C + CHANCE_MARGIN`` for ``C`` classes
  (the row's ``num_classes``, else the ``num_classes`` given). A constant predictor reaches about
  ``1 / C`` (the largest class share of a stratified split) at 0 SOPs, so such a point is
  dominated by doing nothing; on a front it would be the cheapest member.

The reference accuracy of a hypervolume is chance level too (``chance_accuracy``): volume below
it is volume a constant predictor has for free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

CHANCE_MARGIN = 0.02
"""Accuracy above ``1 / C`` (a fraction: 2 points) still counted as chance level: a constant
predictor reaches the largest class share of the validation part, which in a stratified split of
a slightly unbalanced dataset (MNIST's largest class holds 11.2 %) sits up to a point or two above
``1 / C``."""

EXCLUSIONS = {
    "status": "not finished with status ok",
    "supernet": "accuracy estimated on the supernet (weight sharing), not a standalone training",
    "metrics": "no finite accuracy or cost",
    "non-spiking": "non-spiking: 0 SOPs, all MACs; not comparable on the SOP axis (compare with --x energy_uj)",
    "infeasible": "breaks a constraint of the experiment",
    "chance": "at chance level (a constant predictor does as well at 0 SOPs)",
}
"""Reason key -> the words every view prints."""


def chance_accuracy(num_classes: Any) -> float | None:
    """``1 / num_classes``; None when ``num_classes`` is not an integer >= 2."""
    try:
        n = int(num_classes)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(num_classes, bool) or n != num_classes or n < 2:
        return None
    return 1.0 / n


def chance_threshold(num_classes: Any, margin: float = CHANCE_MARGIN) -> float | None:
    """The accuracy at or below which a row is at chance level: ``1 / C + margin`` (None: unknown C)."""
    chance = chance_accuracy(num_classes)
    return None if chance is None else chance + margin


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        import pandas as pd

        if value is pd.NA:
            return ""
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return str(value)


def _is_false(value: Any) -> bool:
    """Whether a cell holds False (``numpy.bool_`` included); None / NA / NaN are unknown, not False."""
    if value is None or isinstance(value, float) or _text(value) == "":
        return False
    try:
        return not bool(value)
    except (TypeError, ValueError):
        return False


KNOWN_CLASSES = {"mnist5k": 10, "digits": 10, "cifar10": 10, "cifar100": 100, "synthetic": 10}
"""Classes of the built-in datasets, for tables written before rows recorded ``num_classes``."""


def dataset_classes(dataset: Any) -> int | None:
    """Classes of a dataset spec such as ``cifar100`` or ``synthetic:train=64,classes=4`` (None:
    unknown without reading the files, e.g. an image folder)."""
    text = _text(dataset)
    name, _, options = text.partition(":")
    for option in options.split(","):
        key, _, value = option.partition("=")
        if key.strip() == "classes" and value.strip().isdigit():
            return int(value)
    return KNOWN_CLASSES.get(name.strip().lower())


def front_exclusion(
    row: Mapping[str, Any],
    *,
    x: str = "sops",
    y: str = "val_acc",
    num_classes: int | None = None,
    margin: float = CHANCE_MARGIN,
    non_spiking: bool | None = None,
) -> str | None:
    """Why ``row`` may not stand on a front of (``y`` max, ``x`` min): a key of ``EXCLUSIONS``,
    or None when it is eligible (rule and order in the module docstring).

    ``row``: a result-table row (``status``, ``y``, ``x``; optional ``proxy``, ``feasible``,
    ``baseline``, ``num_classes``, ``genotype``, ``time_steps``, ``sops``, ``macs``).
    ``num_classes``: used when the row has none. ``non_spiking``: precomputed ``is_non_spiking``
    of the row (computed here when None).
    """
    if _text(row.get("status")) != "ok":
        return "status"
    if _text(row.get("proxy")) == "supernet":
        return "supernet"
    accuracy, cost = _number(row.get(y)), _number(row.get(x))
    if not (math.isfinite(accuracy) and math.isfinite(cost)):
        return "metrics"
    if x == "sops":
        if non_spiking is None:
            from snn_nas.report.nonspiking import is_non_spiking

            genotype = _text(row.get("genotype")) or None
            non_spiking = is_non_spiking(
                genotype, time_steps=row.get("time_steps"), sops=row.get("sops"), macs=row.get("macs")
            )
        if non_spiking:
            return "non-spiking"
    if not _text(row.get("baseline")) and _is_false(row.get("feasible")):
        return "infeasible"
    own = row.get("num_classes")
    threshold = chance_threshold(own if chance_accuracy(own) is not None else num_classes, margin)
    if threshold is not None and accuracy <= threshold:
        return "chance"
    return None


def chance_text(num_classes: int | None, margin: float = CHANCE_MARGIN) -> str:
    """``'val_acc <= 1/10 + 2 points = 12.00 %'``: the chance rule in words (``'unknown'`` without C)."""
    threshold = chance_threshold(num_classes, margin)
    if threshold is None:
        return "chance level unknown (number of classes not recorded)"
    return f"accuracy <= 1/{int(num_classes)} + {100 * margin:g} points = {100 * threshold:.2f} %"
