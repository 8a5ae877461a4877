"""Anchor shapes by k-means over the training boxes (YOLO9000, section 2, "Dimension Clusters").

Faster R-CNN picks its anchor shapes by hand. YOLOv2 instead runs k-means over the
(width, height) of every training box and uses the k centroids as its anchors ("priors").
With Euclidean distance, large boxes produce larger errors than small ones, so the paper
measures the distance between a box and a centroid as ``1 - IoU`` of the two shapes placed
on the same centre: only the shapes count, not where the boxes are.

Units: every function here works in whatever unit it is given (fractions of the image,
pixels or grid cells), as long as both arguments share it; IoU has no unit. YOLOv2's
``[region]`` anchors are in **grid cells** of the output grid (13 x 13 at 416 x 416,
Darknet's ``get_region_box``), so boxes given as fractions of the image are multiplied
by the grid size first::

    wh_cells = to_grid_cells(wh_fractions, 13)   # e.g. 0.25 of the image -> 3.25 cells
    anchors = kmeans_anchors(wh_cells, k=5)

Clustering fractions and multiplying the centroids by the grid size gives the same anchors
(IoU does not change when both boxes are scaled alike).

Following AlexeyAB's ``calc_anchors`` (``detector.c``, ``matrix.c`` ``do_kmeans``): the
initial centroids are k distinct training boxes chosen at random, each centroid moves to
the arithmetic mean of its members, iterations stop when no box changes cluster, and the
anchors are returned sorted by area, smallest first. One difference: a cluster left empty
is restarted on the box that is worst served by its centroid (largest distance) instead of
keeping its stale centre, so k anchors always mean k useful shapes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

DISTANCES = ("iou", "euclidean")


def _as_wh(wh: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(wh, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"expected {name} as an (N, 2) array of widths and heights, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"expected at least one (width, height) in {name}, got none")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"expected positive finite widths and heights in {name}, got min {array.min()}")
    return array


def to_grid_cells(wh_fractions: ArrayLike, grid_size: int | tuple[int, int]) -> np.ndarray:
    """(N, 2) widths and heights as fractions of the image -> grid cells of a ``grid_size`` grid
    (an int, or (columns, rows)): width x columns, height x rows. YOLOv2 anchors are in these units."""
    columns, rows = (grid_size, grid_size) if np.isscalar(grid_size) else grid_size
    return _as_wh(wh_fractions, "wh_fractions") * np.array([columns, rows], dtype=np.float64)


def box_shape_iou(wh_a: ArrayLike, wh_b: ArrayLike) -> np.ndarray:
    """(K, M) IoU of every shape in ``wh_a`` (K, 2) with every shape in ``wh_b`` (M, 2), each pair
    placed on a common centre (Darknet's bias_match in ``region_layer.c``, and the k-means
    distance of YOLO9000 section 2): intersection = min(w) * min(h)."""
    a, b = _as_wh(wh_a, "wh_a"), _as_wh(wh_b, "wh_b")
    inter = np.minimum(a[:, None, 0], b[None, :, 0]) * np.minimum(a[:, None, 1], b[None, :, 1])  # (K, M)
    union = (a[:, 0] * a[:, 1])[:, None] + (b[:, 0] * b[:, 1])[None, :] - inter
    return inter / union


def _distances(wh: np.ndarray, centroids: np.ndarray, distance: str) -> np.ndarray:
    """(N, k) distance of every box to every centroid."""
    if distance == "iou":
        return 1.0 - box_shape_iou(wh, centroids)
    return ((wh[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)  # squared Euclidean: same nearest centroid


def kmeans_anchors(
    wh: ArrayLike, k: int, *, seed: int = 0, iterations: int = 300, distance: str = "iou"
) -> np.ndarray:
    """k-means over box shapes ``wh`` (N, 2); returns (k, 2) centroids, sorted by area (smallest first).

    ``distance="iou"`` is YOLO9000's ``1 - IoU(box, centroid)``; ``"euclidean"`` is plain k-means
    on (w, h), the paper's "Cluster SSE" row of Table 1. Initialisation: k distinct boxes drawn
    by ``np.random.default_rng(seed)``; update: the mean of each cluster's members; a cluster left
    empty restarts on the worst-served box. Stops when no box changes cluster or after
    ``iterations`` updates. The unit of the result is the unit of ``wh``.
    """
    boxes = _as_wh(wh, "wh")
    if distance not in DISTANCES:
        raise ValueError(f"expected distance in {DISTANCES}, got {distance!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(boxes):
        raise ValueError(f"expected an integer k between 1 and the number of boxes ({len(boxes)}), got {k!r}")
    rng = np.random.default_rng(seed)
    centroids = boxes[rng.choice(len(boxes), size=k, replace=False)].copy()
    assignment = np.full(len(boxes), -1)
    for _ in range(iterations):
        dist = _distances(boxes, centroids, distance)  # (N, k)
        nearest = dist.argmin(axis=1)
        if np.array_equal(nearest, assignment):
            break
        assignment = nearest
        for cluster in np.setdiff1d(np.arange(k), assignment):  # empty: take the worst-served box
            served = dist[np.arange(len(boxes)), assignment]
            served[np.bincount(assignment, minlength=k)[assignment] < 2] = -1.0  # never empty another cluster
            worst = int(served.argmax())
            assignment[worst] = cluster
            dist[worst] = 0.0  # so a second empty cluster takes another box
        for cluster in range(k):
            centroids[cluster] = boxes[assignment == cluster].mean(axis=0)
    return centroids[np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")]


def mean_best_iou(anchors: ArrayLike, wh: ArrayLike) -> float:
    """Average over the boxes ``wh`` (N, 2) of the IoU with their best-matching anchor (K, 2),
    both shapes centred: YOLO9000's "Avg IOU" (Table 1, Figure 2). Same unit for both."""
    return float(box_shape_iou(wh, anchors).max(axis=1).mean())
