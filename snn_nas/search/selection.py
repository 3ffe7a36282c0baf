"""Which stage-1 architectures a two-stage search trains standalone, and its verdict on the seed
designs from the means over seeds (pure functions over result rows).

**Stage-2 candidates** (``stage2_candidates``). From the stage-1 rows (supernet estimates) that
would be front-eligible if they were standalone results (``snn_nas.report.eligibility``: ok,
finite, feasible, spiking on the SOP axis, above chance), one row per architecture (its best
estimate), the Pareto front of (``y`` max, ``x`` min) is taken and from it:

1. ``top``: the ``top`` most accurate members;
2. ``spread``: ``spread`` more members closest to evenly spaced targets on ``log x`` between the
   front's cheapest and costliest member (targets at ``(i + 1/2) / spread`` of that range);
3. ``near_baselines``: for every seed design of cost ``c_b`` (its standalone row), the
   ``near_baselines`` best-estimated architectures (of all eligible rows, not only the front) in
   the cost band ``[c_b / near_band, c_b]`` and as many in ``(c_b, c_b * near_band]``: the
   architectures that decide whether the search beats the hand design at its own cost. The
   supernet's estimates are compared only within the band, where its bias against large
   sub-networks (they train less of their weights per step) matters least. Where a side of the
   band is empty, the front members closest to ``c_b`` on that side stand in. These train with
   ``seeds`` seeds; all others with one.
4. ``warm_keys``: the warm-start designs that stage 1 evaluated (``warm_start``), whatever their
   estimate, with one seed: stage 2 starts from them as the default search does, and reuses the
   seed design's baseline result for them (``snn_nas.search.oneshot``) instead of training them
   again.

**Verdict on means** (``mean_verdict``). Proxy noise is a point or two of accuracy between
trainings of one architecture, so a comparison with a seed design is made on the means over
seeds, ``mean_y(a) = (1/n) sum_s y(a, s)``, and states the spread ``max_s y - min_s y``. An
architecture *dominates* the seed design when ``mean_y(a) >= mean_y(b)`` and ``mean_x(a) <=
mean_x(b)`` with one of them strict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """A stage-2 choice: the architecture ``key`` (with its stage-1 ``trial_id``), the training
    ``seeds`` and why it was chosen."""

    key: str
    trial_id: str
    seeds: tuple[int, ...]
    reasons: tuple[str, ...]


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _eligible(rows: Iterable[Mapping[str, Any]], x: str, y: str, num_classes: int | None) -> list[Mapping[str, Any]]:
    from snn_nas.report.eligibility import front_exclusion

    best: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row.get("baseline") or not row.get("key"):
            continue
        if front_exclusion({**row, "proxy": "standalone"}, x=x, y=y, num_classes=num_classes) is not None:
            continue
        key = str(row["key"])
        if key not in best or _number(row[y]) > _number(best[key][y]):
            best[key] = row
    return list(best.values())


def front_of(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> list[Mapping[str, Any]]:
    """The non-dominated rows of (``y`` max, ``x`` min), most accurate first."""
    from snn_nas.pareto import is_pareto_front

    if not rows:
        return []
    points = np.array([[-_number(r[y]), _number(r[x])] for r in rows])
    mask = is_pareto_front(points)
    front = [r for r, keep in zip(rows, mask, strict=True) if keep]
    return sorted(front, key=lambda r: (-_number(r[y]), _number(r[x]), str(r["key"])))


def stage2_candidates(
    rows: Sequence[Mapping[str, Any]],
    *,
    x: str = "sops",
    y: str = "val_acc",
    top: int = 4,
    spread: int = 4,
    near_baselines: int = 1,
    seeds: int = 2,
    base_seed: int = 0,
    baseline_costs: Mapping[str, float] | None = None,
    num_classes: int | None = None,
    near_band: float = 2.0,
    warm_keys: Sequence[str] = (),
) -> list[Candidate]:
    """The stage-2 candidates of the stage-1 ``rows`` (module docstring), in the order chosen."""
    eligible = _eligible(rows, x, y, num_classes)
    front = front_of(eligible, x, y)
    chosen: dict[str, list[str]] = {}
    near: set[str] = set()

    def take(row: Mapping[str, Any], reason: str) -> None:
        chosen.setdefault(str(row["key"]), []).append(reason)

    for row in front[:top]:
        take(row, "top")
    rest = [r for r in front if str(r["key"]) not in chosen]
    costs = [math.log(max(_number(r[x]), 1e-12)) for r in front]
    if spread and rest and costs:
        low, high = min(costs), max(costs)
        for i in range(spread):
            if not rest:
                break
            target = low + (i + 0.5) / spread * (high - low)
            row = min(rest, key=lambda r: abs(math.log(max(_number(r[x]), 1e-12)) - target))
            take(row, "spread")
            rest.remove(row)
    for name, cost in sorted((baseline_costs or {}).items()):
        if not math.isfinite(_number(cost)) or not near_baselines:
            continue
        others = [r for r in eligible if str(r["key"]) not in warm_keys]  # a seed design is not its own neighbour
        for row in _near(others, front, x, y, float(cost), near_band, near_baselines):
            take(row, f"near {name}")
            near.add(str(row["key"]))
    by_key = {str(r["key"]): r for r in eligible}
    for key in warm_keys:
        found = [r for r in rows if str(r.get("key")) == key and r.get("status") == "ok" and not r.get("baseline")]
        if found:
            by_key.setdefault(key, found[0])
            take(by_key[key], "warm start")
    return [
        Candidate(
            key=key,
            trial_id=str(by_key[key].get("trial_id", "")),
            seeds=tuple(base_seed + i for i in range(seeds if key in near else 1)),
            reasons=tuple(dict.fromkeys(reasons)),
        )
        for key, reasons in chosen.items()
    ]


def _near(
    eligible: Sequence[Mapping[str, Any]],
    front: Sequence[Mapping[str, Any]],
    x: str,
    y: str,
    cost: float,
    band: float,
    n: int,
) -> list[Mapping[str, Any]]:
    """The ``n`` best-estimated rows in ``[cost / band, cost]`` and the ``n`` in ``(cost, cost *
    band]``; the front members nearest ``cost`` for a side without any (module docstring, 3)."""
    keys = {str(r["key"]) for r in eligible}
    front = [r for r in front if str(r["key"]) in keys]
    best_first = sorted(eligible, key=lambda r: (-_number(r[y]), _number(r[x]), str(r["key"])))
    below = [r for r in best_first if cost / band <= _number(r[x]) <= cost][:n]
    above = [r for r in best_first if cost < _number(r[x]) <= cost * band][:n]
    if not below:
        below = sorted((r for r in front if _number(r[x]) <= cost), key=lambda r: -_number(r[x]))[:n]
    if not above:
        above = sorted((r for r in front if _number(r[x]) > cost), key=lambda r: _number(r[x]))[:n]
    return [*below, *above]


@dataclass(frozen=True)
class SeedMean:
    """An architecture over its training seeds: means of ``y`` and ``x``, spread of ``y``."""

    key: str
    n: int
    mean_y: float
    spread_y: float
    mean_x: float


def seed_means(rows: Iterable[Mapping[str, Any]], x: str = "sops", y: str = "val_acc") -> dict[str, SeedMean]:
    """``key -> SeedMean`` over the rows with finite ``x`` and ``y`` (one row per seed)."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        ys, xs = _number(row.get(y)), _number(row.get(x))
        if row.get("key") and math.isfinite(ys) and math.isfinite(xs):
            groups.setdefault(str(row["key"]), []).append((ys, xs))
    return {
        key: SeedMean(
            key=key,
            n=len(values),
            mean_y=sum(v[0] for v in values) / len(values),
            spread_y=max(v[0] for v in values) - min(v[0] for v in values),
            mean_x=sum(v[1] for v in values) / len(values),
        )
        for key, values in groups.items()
    }


def dominates_on_means(a: SeedMean, b: SeedMean) -> bool:
    """``a`` dominates ``b`` on seed means: at least as accurate and as cheap, one strictly."""
    return a.mean_y >= b.mean_y and a.mean_x <= b.mean_x and (a.mean_y > b.mean_y or a.mean_x < b.mean_x)


def mean_verdict(baseline: SeedMean, others: Iterable[SeedMean]) -> tuple[SeedMean | None, list[SeedMean]]:
    """``(best, dominating)``: the most accurate architecture that is not more costly than the
    seed design (None if none), and every architecture dominating it on seed means."""
    others = [o for o in others if o.key != baseline.key]
    cheaper = [o for o in others if o.mean_x <= baseline.mean_x]
    best = max(cheaper, key=lambda o: (o.mean_y, -o.mean_x), default=None)
    return best, sorted((o for o in others if dominates_on_means(o, baseline)), key=lambda o: -o.mean_y)


def mean_text(mean: SeedMean, x: str) -> str:
    """``93.45 % (spread 0.9 points) at 691k sops, 2 seed(s)`` (counts as every view writes them)."""
    from snn_nas.report.formatting import format_count

    spread = f" (spread {100 * mean.spread_y:.1f} points)" if mean.n > 1 else ""
    return f"{100 * mean.mean_y:.2f} %{spread} at {format_count(mean.mean_x)} {x}, {mean.n} seed(s)"


def mean_verdict_line(
    name: str, baseline: SeedMean, others: Iterable[SeedMean], x: str
) -> tuple[str, SeedMean | None, list[SeedMean]]:
    """``(line, best, dominating)``: ``mean_verdict`` of seed design ``name`` and the sentence
    that the search's summary and ``snn-nas pareto`` both print for it."""
    best, dominating = mean_verdict(baseline, others)
    if dominating:
        tail = (f"dominated by {len(dominating)} searched architecture(s), best {dominating[0].key}: "
                f"{mean_text(dominating[0], x)}")  # fmt: skip
    else:
        tail = "not dominated on seed means"
        if best:
            tail += f"; best at or below its cost {best.key}: {mean_text(best, x)}"
    return f"{name}: {mean_text(baseline, x)}; {tail}", best, dominating


def design_verdicts(
    designs: Mapping[str, Iterable[Mapping[str, Any]]], searched: Iterable[Mapping[str, Any]], x: str, y: str,
    *, min_seeds: int = 1,
) -> list[tuple[str, SeedMean, str, SeedMean | None, list[SeedMean]]]:  # fmt: skip
    """``(name, mean, line, best, dominating)`` per seed design of ``designs`` (``name -> its
    rows``) with at least ``min_seeds`` seeds, against the seed means of the ``searched`` rows."""
    others = seed_means(searched, x, y).values()
    out = []
    for name, rows in designs.items():
        mean = next(iter(seed_means(rows, x, y).values()), None)
        if mean is not None and mean.n >= min_seeds:
            out.append((name, mean, *mean_verdict_line(name, mean, others, x)))
    return out
