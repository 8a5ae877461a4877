"""k-means anchors: the 1 - IoU distance of YOLO9000 section 2, checked on hand-made shapes."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_lessons.data.anchors import box_shape_iou, kmeans_anchors, mean_best_iou, to_grid_cells


def test_box_shape_iou_of_centred_shapes_matches_hand_computed_values():
    iou = box_shape_iou([[2, 2], [1, 4]], [[2, 2], [4, 1], [1, 1]])
    expected = [
        [1.0, 2 / 6, 1 / 4],  # same shape; 2x2 vs 4x1: inter 2x1 = 2, union 4 + 4 - 2; 1x1 inside 2x2
        [2 / 6, 1 / 7, 1 / 4],  # 1x4 vs 2x2: inter 1x2; 1x4 vs 4x1: inter 1, union 4 + 4 - 1; 1x1 in 1x4
    ]
    np.testing.assert_allclose(iou, expected)
    assert iou.shape == (2, 3)


def test_box_shape_iou_has_no_unit_scaling_both_changes_nothing():
    a, b = np.array([[0.1, 0.3], [0.5, 0.2]]), np.array([[0.2, 0.2]])
    np.testing.assert_allclose(box_shape_iou(a, b), box_shape_iou(a * 13, b * 13))


def test_to_grid_cells_multiplies_fractions_by_the_grid_size():
    # a box a quarter of the image wide and half as tall on YOLOv2's 13x13 grid: 3.25 x 6.5 cells
    np.testing.assert_allclose(to_grid_cells([[0.25, 0.5]], 13), [[3.25, 6.5]])
    np.testing.assert_allclose(to_grid_cells([[0.25, 0.5]], (4, 2)), [[1.0, 1.0]])  # (columns, rows)


def _three_blobs() -> np.ndarray:
    """60 shapes in three tight groups around 1x1, 4x2 and 2x6."""
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 1.0], [4.0, 2.0], [2.0, 6.0]])
    return np.concatenate([c * rng.uniform(0.95, 1.05, (20, 2)) for c in centres])


@pytest.mark.parametrize("distance", ["iou", "euclidean"])
def test_kmeans_finds_three_obvious_clusters_sorted_by_area(distance):
    anchors = kmeans_anchors(_three_blobs(), 3, distance=distance)
    # areas 1, 8, 12: smallest first; each centroid within 5% of its group's centre
    np.testing.assert_allclose(anchors, [[1.0, 1.0], [4.0, 2.0], [2.0, 6.0]], rtol=0.05)


def test_kmeans_centroids_are_the_means_of_their_members():
    wh = np.array([[1.0, 1.0], [1.2, 0.8], [10.0, 10.0], [12.0, 8.0]])
    anchors = kmeans_anchors(wh, 2)
    np.testing.assert_allclose(anchors, [[1.1, 0.9], [11.0, 9.0]])  # plain averages of each pair


def test_kmeans_is_reproducible_for_a_seed_and_results_are_sorted_by_area():
    wh = np.random.default_rng(1).uniform(0.05, 0.9, (300, 2))
    first = kmeans_anchors(wh, 5, seed=3)
    assert np.array_equal(first, kmeans_anchors(wh, 5, seed=3))
    areas = first[:, 0] * first[:, 1]
    assert np.all(np.diff(areas) > 0)
    assert first.shape == (5, 2)


def test_kmeans_with_k_equal_to_the_number_of_boxes_returns_the_boxes():
    wh = np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(kmeans_anchors(wh, 3), [[1.0, 1.0], [3.0, 1.0], [2.0, 2.0]])  # areas 1, 3, 4


def test_kmeans_restarts_an_empty_cluster_so_duplicate_boxes_still_give_k_anchors():
    # Five identical boxes and one other: two starting centroids on identical boxes tie, the
    # second one empties and restarts on the worst-served box.
    wh = np.array([[1.0, 1.0]] * 5 + [[5.0, 5.0], [5.0, 1.0]])
    anchors = kmeans_anchors(wh, 3, seed=0)
    np.testing.assert_allclose(anchors, [[1.0, 1.0], [5.0, 1.0], [5.0, 5.0]])


def test_mean_best_iou_on_a_tiny_case():
    # boxes 2x2 and 1x4 against the single anchor 2x2: IoUs 1 and 2/6, mean 2/3
    assert mean_best_iou([[2, 2]], [[2, 2], [1, 4]]) == pytest.approx(2 / 3)
    # adding the anchor 1x4 matches both exactly
    assert mean_best_iou([[2, 2], [1, 4]], [[2, 2], [1, 4]]) == pytest.approx(1.0)


def test_iou_kmeans_beats_euclidean_kmeans_on_boxes_of_mixed_scales():
    # Sides spread log-uniformly over 100x: Euclidean k-means spends its centroids on the big
    # boxes (their errors are largest) and serves the many small ones badly (YOLO9000 section 2).
    rng = np.random.default_rng(0)
    side = np.exp(rng.uniform(np.log(0.005), np.log(0.5), 2000))
    wh = np.stack([side * np.exp(rng.uniform(-0.5, 0.5, 2000)), side], axis=1)
    iou = mean_best_iou(kmeans_anchors(wh, 5, distance="iou"), wh)
    euclidean = mean_best_iou(kmeans_anchors(wh, 5, distance="euclidean"), wh)
    assert iou > euclidean + 0.05  # 0.60 vs 0.51 with this seed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kmeans_anchors(np.ones((4, 3)), 2), r"\(N, 2\) array .* got shape \(4, 3\)"),
        (lambda: kmeans_anchors([[1.0, 0.0], [1.0, 1.0]], 1), "positive finite widths and heights"),
        (lambda: kmeans_anchors(np.ones((4, 2)), 5), "between 1 and the number of boxes \\(4\\), got 5"),
        (lambda: kmeans_anchors(np.ones((4, 2)), 2, distance="l1"), "distance in .* got 'l1'"),
        (lambda: box_shape_iou(np.ones(2), np.ones((1, 2))), "wh_a as an \\(N, 2\\) array"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_what_came(call, message):
    with pytest.raises(ValueError, match=message):
        call()
