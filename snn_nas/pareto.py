"""Pure multi-objective maths over numpy arrays.

Every function works on *loss values*: an ``[n, m]`` array of ``n`` points and ``m`` objectives,
all to be minimised. ``to_minimization`` turns raw objectives (some maximised, such as accuracy)
into loss values by negating the maximised columns, which keeps raw units, so a hypervolume
computed on them is in the raw units (e.g. accuracy fraction x SOPs per image).

Dominance: ``a`` dominates ``b`` when ``a <= b`` in every objective and ``a < b`` in at least
one. Identical points do not dominate each other, so duplicates share a front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from snn_nas.errors import SnnNasError

DIRECTIONS = ("minimize", "maximize")


class ParetoError(SnnNasError, ValueError):
    """Bad input to the Pareto functions; the message names what is wrong."""


def _as_points(values: np.ndarray | Sequence[Sequence[float]], name: str = "loss_values") -> np.ndarray:
    points = np.asarray(values, dtype=float)
    if points.ndim == 1 and points.size == 0:
        points = points.reshape(0, 0)
    if points.ndim != 2:
        raise ParetoError(f"{name}: expected a 2-D array [points, objectives], got shape {points.shape}")
    if points.shape[0] and not np.isfinite(points).all():
        raise ParetoError(f"{name}: contains NaN or infinite values; drop those points first")
    return points


def to_minimization(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """Raw objectives ``[n, m]`` -> loss values ``[n, m]``: maximised columns are negated.

    ``directions`` has one entry per column, each ``"minimize"`` or ``"maximize"``.
    """
    points = np.asarray(values, dtype=float)
    if points.ndim != 2:
        raise ParetoError(f"values: expected a 2-D array [points, objectives], got shape {points.shape}")
    if len(directions) != points.shape[1]:
        raise ParetoError(f"directions: expected {points.shape[1]} (one per objective), got {len(directions)}")
    signs = np.empty(len(directions))
    for i, direction in enumerate(directions):
        if direction not in DIRECTIONS:
            raise ParetoError(f"directions[{i}]: {direction!r} is not allowed; choose one of {list(DIRECTIONS)}")
        signs[i] = -1.0 if direction == "maximize" else 1.0
    return points * signs


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether loss vector ``a`` (``[m]``) dominates ``b`` (``[m]``)."""
    av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(av <= bv) and np.any(av < bv))


def dominance_matrix(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n, n]`` boolean matrix ``D`` with ``D[i, j]`` true when point ``i`` dominates point ``j``."""
    points = _as_points(loss_values)
    le = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    lt = np.any(points[:, None, :] < points[None, :, :], axis=2)
    return le & lt


def is_pareto_front(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n]`` boolean mask of the non-dominated points of ``loss_values`` (``[n, m]``).

    Two objectives: one sweep in sorted order (``front_mask_2d``), O(n log n) time and O(n)
    memory; more: the ``[n, n]`` dominance matrix."""
    points = _as_points(loss_values)
    if points.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    if points.shape[1] == 2:
        return front_mask_2d(points, np.lexsort((points[:, 1], points[:, 0])))
    return ~dominance_matrix(points).any(axis=0)


def front_mask_2d(points: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``[n]`` mask of the non-dominated points of ``points`` (``[n, 2]``, finite), given ``order``,
    the permutation that sorts them by ``(f0, f1)`` (``np.lexsort((f1, f0))``).

    In that order every point ``q`` before ``p`` has ``q0 <= p0``, so ``q`` dominates ``p`` exactly
    when ``q1 <= p1`` and ``q != p``. With ``c`` the smallest ``f1`` before ``p`` (exclusive running
    minimum) and ``q*`` the first point reaching it (the smallest ``f0`` among those with
    ``f1 == c``)::

        p is dominated  <=>  c < p1   or   (c == p1  and  q*0 < p0)

    (``c == p1`` with ``q*0 == p0`` is a duplicate of ``p``: duplicates share a front). O(n) numpy
    after the sort.
    """
    n = points.shape[0]
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    f0, f1 = points[order, 0], points[order, 1]
    running = np.minimum.accumulate(f1)
    before = np.concatenate(([np.inf], running[:-1]))  # c: smallest f1 strictly before each point
    # f0 of the first point reaching each running minimum: positions where the minimum drops
    drops = np.flatnonzero(np.concatenate(([True], running[1:] < running[:-1])))
    first = np.repeat(f0[drops], np.diff(np.append(drops, n)))  # per position: f0 of the current argmin
    first_before = np.concatenate(([np.inf], first[:-1]))
    dominated = (before < f1) | ((before == f1) & (first_before < f0))
    mask[order] = ~dominated
    return mask


def non_domination_ranks_2d(points: np.ndarray) -> np.ndarray:
    """``[n]`` non-domination ranks of ``points`` (``[n, 2]``, finite) in O(n log n).

    Sweep in ``(f0, f1)`` order (every earlier ``q`` has ``q0 <= p0``, so ``q`` dominates ``p``
    exactly when ``q1 <= p1`` and ``q != p``), keeping for each front built so far its last point.
    The last points' ``f1`` do not decrease from front to front, so the front of ``p`` is found by
    bisection: the first front whose last point does not dominate ``p``::

        k = #{fronts with last f1 <= p1},  minus one if the last of those is a duplicate of p

    (duplicates share a front). ``p`` then becomes the last point of front ``k`` (a new front when
    ``k`` equals their number). The rank of a point is the length of the longest chain of points
    dominating it, which is what the sweep computes; equal to ``non_domination_ranks``.
    """
    import bisect

    order = np.lexsort((points[:, 1], points[:, 0]))
    last_f0: list[float] = []
    last_f1: list[float] = []
    swept = []
    for a, b in zip(points[order, 0].tolist(), points[order, 1].tolist(), strict=True):
        k = bisect.bisect_right(last_f1, b)
        if k and last_f1[k - 1] == b and last_f0[k - 1] == a:
            k -= 1
        if k == len(last_f1):
            last_f0.append(a)
            last_f1.append(b)
        else:
            last_f0[k], last_f1[k] = a, b
        swept.append(k)
    ranks = np.empty(points.shape[0], dtype=int)
    ranks[order] = swept
    return ranks


def points_ahead_of_last_2d(points: np.ndarray, quota: int) -> int:
    """How many points of ``points`` (``[n, 2]``, finite) are strictly ahead of the last one in the
    order of ``points_ahead`` (lower non-domination rank, or the same rank and a larger crowding
    distance within that front), without the ``[n, n]`` matrices of ``points_ahead``: a rung of
    10,000 trials costs milliseconds, not gigabytes.

    The points dominating the last one are counted first (each has a lower rank, so is ahead):
    when that is ``quota`` or more, it is returned at once, O(n). Else the ranks come from
    ``non_domination_ranks_2d`` (O(n log n)) and the crowding distance from the last point's front.
    """
    mine = points[-1]
    dominating = int(np.count_nonzero(np.all(points <= mine, axis=1) & np.any(points < mine, axis=1)))
    if dominating >= quota:
        return dominating
    ranks = non_domination_ranks_2d(points)
    members = np.flatnonzero(ranks == ranks[-1])
    crowding = crowding_distance(points[members])
    own = crowding[-1]  # the last point is the last member
    return int(np.count_nonzero(ranks < ranks[-1]) + np.count_nonzero(crowding > own))


def non_domination_ranks(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n]`` integer rank of each point: 0 for the Pareto front, 1 for the front of the rest, ...

    (Non-dominated sorting as in NSGA-II: peel off fronts until no point is left; with two
    objectives, the O(n log n) sweep of ``non_domination_ranks_2d``.)
    """
    points = _as_points(loss_values)
    n = points.shape[0]
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    if points.shape[1] == 2:
        return non_domination_ranks_2d(points)
    dom = dominance_matrix(points)
    remaining = np.ones(n, dtype=bool)
    rank = 0
    while remaining.any():
        # a remaining point is on this front when no remaining point dominates it
        dominated = dom[remaining][:, remaining].any(axis=0)
        idx = np.flatnonzero(remaining)[~dominated]
        ranks[idx] = rank
        remaining[idx] = False
        rank += 1
    return ranks


def _check_reference(points: np.ndarray, reference_point: Sequence[float]) -> np.ndarray:
    ref = np.asarray(reference_point, dtype=float)
    if ref.ndim != 1 or (points.shape[1] and ref.shape[0] != points.shape[1]):
        raise ParetoError(
            f"reference_point: expected {points.shape[1]} coordinates (one per objective), got shape {ref.shape}"
        )
    if not np.isfinite(ref).all():
        raise ParetoError("reference_point: contains NaN or infinite values")
    return ref


def hypervolume_2d(loss_values: np.ndarray | Sequence[Sequence[float]], reference_point: Sequence[float]) -> float:
    """Area dominated by ``loss_values`` (``[n, 2]``, minimised) and bounded by ``reference_point``.

    Points that do not strictly dominate the reference point in both objectives add nothing.
    Exact: a sweep over the points sorted by the first objective, O(n log n).
    """
    points = _as_points(loss_values)
    if points.shape[0] and points.shape[1] != 2:
        raise ParetoError(f"loss_values: hypervolume_2d needs 2 objectives, got {points.shape[1]}")
    if points.shape[0] == 0:
        return 0.0
    ref = _check_reference(points, reference_point)
    inside = np.all(points < ref, axis=1)
    points = points[inside]
    if points.shape[0] == 0:
        return 0.0
    order = np.lexsort((points[:, 1], points[:, 0]))  # by f0, ties by f1
    area = 0.0
    best_f1 = ref[1]
    for f0, f1 in points[order]:
        if f1 < best_f1:
            area += (ref[0] - f0) * (best_f1 - f1)
            best_f1 = f1
    return float(area)


def hypervolume(loss_values: np.ndarray | Sequence[Sequence[float]], reference_point: Sequence[float]) -> float:
    """Hypervolume of ``loss_values`` (``[n, m]``, minimised, any ``m >= 1``) w.r.t. ``reference_point``.

    Exact, by slicing along the last objective down to the 2-D sweep (HSO); fine for the few
    hundred points of a search front with m <= 4. Points not strictly better than the reference
    in every objective add nothing.
    """
    points = _as_points(loss_values)
    if points.shape[0] == 0:
        return 0.0
    ref = _check_reference(points, reference_point)
    points = points[np.all(points < ref, axis=1)]
    if points.shape[0] == 0:
        return 0.0
    return float(_hv(points, ref))


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    m = points.shape[1]
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        return hypervolume_2d(points, ref)
    points = points[is_pareto_front(points)]
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    volume = 0.0
    for i in range(points.shape[0]):
        upper = points[i + 1, -1] if i + 1 < points.shape[0] else ref[-1]
        depth = upper - points[i, -1]
        if depth > 0:
            volume += depth * _hv(points[: i + 1, :-1], ref[:-1])
    return volume


def crowding_distance(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n]`` NSGA-II crowding distance of each point of ``loss_values`` (``[n, m]``), within that one set.

    For objective ``j`` with values ``v_i = loss[i, j]``, ``lo = min_i v_i``, ``hi = max_i v_i``::

        d_j(i) = 0                                   if hi == lo   (a degenerate objective adds nothing)
               = inf                                 if v_i == lo or v_i == hi   (boundary points)
               = (next_j(i) - prev_j(i)) / (hi - lo) otherwise

    where ``prev_j(i)`` / ``next_j(i)`` are the nearest *distinct* values of objective ``j`` below and
    above ``v_i``, and ``d(i) = sum_j d_j(i)``. Points that share a value are treated alike (all of them
    are boundary points at the ends; interior ones skip each other), so the distance is a function of
    the set of points, not of the order they are listed in; with no ties this is NSGA-II's definition.
    A lone point has every objective degenerate, hence distance 0.
    """
    points = _as_points(loss_values)
    n = points.shape[0]
    distance = np.zeros(n)
    if n == 0:
        return distance
    for j in range(points.shape[1]):
        column = points[:, j]
        distinct = np.unique(column)  # sorted
        if distinct.size == 1:
            continue
        span = distinct[-1] - distinct[0]
        k = np.searchsorted(distinct, column)
        boundary = (k == 0) | (k == distinct.size - 1)
        interior = ~boundary
        distance[boundary] = np.inf
        ki = k[interior]
        distance[interior] += (distinct[ki + 1] - distinct[ki - 1]) / span
    return distance


def ranks_and_crowding(loss_values: np.ndarray | Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """``([n] non-domination ranks, [n] crowding distances)``, each point's crowding distance
    computed within its own front (``crowding_distance`` of the points of equal rank)."""
    points = _as_points(loss_values)
    n = points.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    ranks = non_domination_ranks(points)
    crowding = np.zeros(n)
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(points[members])
    return ranks, crowding


def nondominated_order(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n]`` permutation of the point indices of ``loss_values`` (``[n, m]``), best first.

    Sort key of point ``i``, compared lexicographically::

        (rank(i), -crowding(i), i)

    with ``rank`` the non-domination rank (``non_domination_ranks``) and ``crowding`` the crowding
    distance computed within ``i``'s own front (``crowding_distance`` of the points of equal rank). So
    ``order[0]`` is the best point and ``order[p]`` the point at position ``p``; this is an *order*,
    not a rank per point: use ``positions`` for the position of each point.
    """
    ranks, crowding = ranks_and_crowding(loss_values)
    return np.lexsort((np.arange(len(ranks)), -crowding, ranks))  # last key is the primary one


def positions(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n]`` 0-based position of each point in ``nondominated_order`` (its inverse permutation).

    ``positions(x)[i] == p`` exactly when ``nondominated_order(x)[p] == i``.
    """
    order = nondominated_order(loss_values)
    where = np.empty_like(order)
    where[order] = np.arange(order.size)
    return where


def points_ahead(loss_values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[n]`` how many points are strictly ahead of each point of ``loss_values`` (``[n, m]``) in
    ``nondominated_order``'s key without the index tie-break: point ``j`` is ahead of ``i`` when
    ``rank(j) < rank(i)``, or ``rank(j) == rank(i)`` and ``crowding(j) > crowding(i)``.

    A competition ranking ("1224"): points that tie on rank and crowding share the best position of
    their group, so the two ends of one front (both at infinite crowding) are both at position 0.
    """
    ranks, crowding = ranks_and_crowding(loss_values)
    ahead = (ranks[None, :] < ranks[:, None]) | (
        (ranks[None, :] == ranks[:, None]) & (crowding[None, :] > crowding[:, None])
    )
    return ahead.sum(axis=1)
