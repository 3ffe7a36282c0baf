"""Label placement without overlaps (``snn_nas.plots.labels``)."""

from __future__ import annotations

from snn_nas.plots.labels import label_offsets


def boxes(points, offsets, width=44.0, height=8.0):
    return [(x + dx, y + dy, width, height) for (x, y), (dx, dy) in zip(points, offsets, strict=True)]


def overlap(a, b) -> bool:
    return abs(a[0] - b[0]) < a[2] and abs(a[1] - b[1]) < a[3]


def test_labels_of_a_cluster_are_stacked_and_never_overlap():
    cluster = [(100.0, 100.0), (101.0, 100.5), (99.5, 101.0), (102.0, 99.0), (300.0, 100.0)]
    offsets = label_offsets(cluster)
    placed = boxes(cluster, offsets)
    assert not any(overlap(placed[i], placed[j]) for i in range(len(placed)) for j in range(i))
    assert offsets[4] == (4.0, 3.0)  # a point far from the cluster keeps the default place
    assert len({dy for _, dy in offsets[:4]}) == 4  # the four keys of the cluster on four lines


def test_labels_apart_keep_their_place():
    points = [(0.0, 0.0), (100.0, 0.0), (0.0, 50.0)]
    assert label_offsets(points) == [(4.0, 3.0)] * 3
    assert label_offsets([]) == []


def test_labels_that_would_cross_the_top_of_the_axes_go_down_instead():
    cluster = [(100.0, 195.0), (101.0, 194.0), (102.0, 196.0)]
    offsets = label_offsets(cluster, ceiling=200.0)
    placed = boxes(cluster, offsets)
    assert all(y + 8.0 <= 200.0 for _, y, _, _ in placed)  # inside the axes
    assert not any(overlap(placed[i], placed[j]) for i in range(3) for j in range(i))
