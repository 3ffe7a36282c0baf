"""Crowding distance and the non-dominated order (snn_nas.pareto), against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from snn_nas.pareto import ParetoError, crowding_distance, nondominated_order, positions

INF = np.inf


# ----------------------------------------------------------------------------- crowding distance
def test_crowding_distance_hand_computed():
    # one front of four points. objective 0: 0, 1, 4, 6 (span 6); objective 1: 6, 3, 1, 0 (span 6)
    # point 1: (4 - 0)/6 + (6 - 1)/6 = 9/6; point 2: (6 - 1)/6 + (3 - 0)/6 = 8/6; the ends: inf
    points = [[0, 6], [1, 3], [4, 1], [6, 0]]
    np.testing.assert_allclose(crowding_distance(points), [INF, 1.5, 4 / 3, INF])


def test_crowding_distance_degenerate_objective_adds_nothing():
    # objective 0 is constant: 0 for all; objective 1: 0, 2, 5 (span 5): ends inf, middle (5 - 0)/5
    np.testing.assert_allclose(crowding_distance([[1, 0], [1, 2], [1, 5]]), [INF, 1.0, INF])
    np.testing.assert_array_equal(crowding_distance([[3, 3], [3, 3]]), [0.0, 0.0])


def test_crowding_distance_ties_are_treated_alike():
    # the two (2, 2) points skip each other: (4 - 0)/4 per objective; both ends inf
    np.testing.assert_allclose(crowding_distance([[0, 4], [2, 2], [2, 2], [4, 0]]), [INF, 2.0, 2.0, INF])
    # every point holding the minimum (or maximum) of an objective is a boundary point
    np.testing.assert_allclose(crowding_distance([[0, 2], [0, 2], [1, 1], [2, 0]]), [INF, INF, 2.0, INF])


def test_crowding_distance_small_sets():
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0]]), [0.0])  # lone point: degenerate
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0], [2.0, 1.0]]), [INF, INF])


def test_crowding_distance_does_not_depend_on_the_listing_order():
    rng = np.random.default_rng(0)
    for _ in range(50):
        points = rng.integers(0, 4, size=(7, 3)).astype(float)  # many ties
        perm = rng.permutation(7)
        np.testing.assert_array_equal(crowding_distance(points[perm]), crowding_distance(points)[perm])


def test_crowding_distance_rejects_nan():
    with pytest.raises(ParetoError, match="NaN"):
        crowding_distance([[0.0, np.nan]])


# ----------------------------------------------------------------------------- order and positions
def test_nondominated_order_rank_then_crowding_then_index():
    # 0: (5,5) rank 2; 1: (3,4) rank 1; 2: (1,5), 3: (2,3), 4: (4,1) the front.
    # front crowding: objective 0 values 1, 2, 4 (span 3), objective 1 values 5, 3, 1 (span 4):
    # point 3 gets (4 - 1)/3 + (5 - 1)/4 = 2; points 2 and 4 are ends (inf, tie broken by index)
    points = [[5, 5], [3, 4], [1, 5], [2, 3], [4, 1]]
    np.testing.assert_array_equal(nondominated_order(points), [2, 4, 3, 1, 0])
    np.testing.assert_array_equal(positions(points), [4, 3, 0, 2, 1])


def test_nondominated_order_within_a_front_by_crowding_descending():
    # crowding [inf, 1.5, 4/3, inf] (hand-computed above)
    np.testing.assert_array_equal(nondominated_order([[0, 6], [1, 3], [4, 1], [6, 0]]), [0, 3, 1, 2])


def test_nondominated_order_ties_by_index_and_empty():
    np.testing.assert_array_equal(nondominated_order([[1, 1], [1, 1], [1, 1]]), [0, 1, 2])
    assert nondominated_order(np.zeros((0, 2))).shape == (0,)
    assert positions(np.zeros((0, 2))).shape == (0,)


def test_order_is_not_position():
    # the last point dominates all others: its position is 0, while order[-1] is the worst point
    points = [[2, 2], [3, 3], [2.5, 2.5], [4, 4], [1, 1]]
    order = nondominated_order(points)
    np.testing.assert_array_equal(order, [4, 0, 2, 1, 3])
    assert positions(points)[-1] == 0
    assert order[-1] == 3


def test_positions_invert_the_order():
    rng = np.random.default_rng(1)
    for _ in range(20):
        points = rng.normal(size=(9, 2))
        order, where = nondominated_order(points), positions(points)
        np.testing.assert_array_equal(order[where], np.arange(9))
        np.testing.assert_array_equal(where[order], np.arange(9))
