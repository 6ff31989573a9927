"""Gaze-following metrics, exactly as the published protocols define them (docs/design.md, "Metrics"),
vectorised in torch (same code on CPU and CUDA).

GazeFollow (Chong et al.; GCDR): per test person,
- AUC at the original image size: the 64x64 prediction, min-max normalised, is upsampled to
  (H, W) the way `skimage.transform.resize(order=1)` does it (half-pixel grid, 'reflect' edges,
  Gaussian anti-aliasing when an axis shrinks, output clipped to the input range) and scored
  with the rank (Mann-Whitney) AUC, ties averaged, against the multi-hot map of all annotator
  points, pixel = (min(int(y*H), H-1), min(int(x*W), W-1));
- the point is the heatmap argmax (first maximum, row-major) at (col / w, row / h), no
  half-pixel offset; Avg L2 = distance to the annotators' mean, Min L2 = to the nearest one.
`auc_resolution="heatmap"` gives the Sharingan-style AUC on the heatmap grid instead.

VideoAttentionTarget (Chong et al.): on in-frame frames, the AUC on the 64x64 grid against the
binarised sigma-3 Gaussian window at the gaze point (a 19x19 square clipped to the map), L2 from
the argmax to the point; AP of the in/out score over all frames.

The native-resolution AUC never materialises the full upsampled map unless it must: the
upsampled value of a pixel is a convex combination of the 4 heatmap cells around it, so a
whole block of output pixels is known to lie below (or above) a positive's value from those 4
cells alone; only blocks whose range straddles a positive's value are evaluated pixel by pixel,
with the same floating-point operations, in the same order, as scipy's `zoom` (bit-identical
values), so the result equals the literal sklearn + skimage computation.
"""

from __future__ import annotations

import math

import torch

GAZEFOLLOW = "gazefollow"
VIDEOATT = "videoatt"
AUC_RESOLUTIONS = ("native", "heatmap")


def protocol_description(dataset: str, auc_resolution: str = "native") -> dict:
    """What was computed, stored with every result."""
    if dataset == VIDEOATT:
        return {
            "dataset": VIDEOATT,
            "auc": "64x64 grid vs binarised sigma-3 Gaussian window (19x19 square), in-frame frames",
            "l2": "argmax (col/64, row/64) to the gaze point, normalised coordinates, in-frame frames",
            "ap": "average precision of the in/out score over all frames",
        }
    auc = (
        "original image size: bilinear upsampling as skimage.transform.resize(order=1), "
        "multi-hot map of all annotator points"
        if auc_resolution == "native"
        else "heatmap grid (Sharingan-style): annotator points rasterised on the heatmap grid"
    )
    return {
        "dataset": GAZEFOLLOW,
        "auc_resolution": auc_resolution,
        "auc": auc,
        "point": "heatmap argmax at (col/w, row/h), no half-pixel offset",
        "avg_l2": "distance to the mean of the annotator points, normalised coordinates",
        "min_l2": "distance to the nearest annotator point, normalised coordinates",
    }


# --------------------------------------------------------------------------------------------
# shared pieces


def argmax_points(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, h, w) -> (B, 2) normalised (col / w, row / h) of the first maximum (row-major)."""
    b, h, w = heatmaps.shape
    idx = torch.argmax(heatmaps.reshape(b, -1), dim=1)
    row = torch.div(idx, w, rounding_mode="floor")
    col = idx - row * w
    return torch.stack([col.double() / w, row.double() / h], dim=1)


def rank_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batched ROC AUC by ranks, ties averaged (equals sklearn's roc_auc_score).

    scores (B, M) float, labels (B, M) bool. NaN where a row has no positive or no negative.
    """
    scores = scores.double()
    sorted_scores = scores.sort(dim=1).values
    less = torch.searchsorted(sorted_scores, scores, right=False)
    less_equal = torch.searchsorted(sorted_scores, scores, right=True)
    ranks = (less + less_equal + 1).double() / 2  # average 1-based rank
    labels = labels.bool()
    n_pos = labels.sum(dim=1).double()
    n_neg = labels.shape[1] - n_pos
    rank_sum = (ranks * labels).sum(dim=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_precision(labels: torch.Tensor, scores: torch.Tensor) -> float:
    """Average precision of a binary score (equals sklearn's average_precision_score)."""
    labels = labels.double().flatten()
    scores = scores.double().flatten()
    if not bool(torch.isfinite(scores).all()):  # NaN != NaN would make every NaN its own operating point
        raise ValueError("average_precision: scores must be finite (NaN or infinite found)")
    n_pos = labels.sum()
    if n_pos == 0:
        return math.nan
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order]
    # one operating point per distinct score value (ties are taken together)
    last_of_group = torch.ones_like(s, dtype=torch.bool)
    last_of_group[:-1] = s[1:] != s[:-1]
    tp = torch.cumsum(y, 0)[last_of_group]
    predicted = (torch.nonzero(last_of_group).flatten() + 1).double()
    precision = tp / predicted
    recall = tp / n_pos
    recall_prev = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - recall_prev) * precision).sum())


def l2_distances(points: torch.Tensor, gaze_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points (B, 2), gaze_points (B, A, 2) NaN-padded -> (avg_l2, min_l2), each (B,)."""
    valid = torch.isfinite(gaze_points[..., 0])
    g = torch.where(valid[..., None], gaze_points, torch.zeros_like(gaze_points))
    n = valid.sum(dim=1, keepdim=True).clamp(min=1)
    mean = g.sum(dim=1) / n
    avg_l2 = torch.linalg.vector_norm(points - mean, dim=1)
    d = torch.linalg.vector_norm(points[:, None, :] - g, dim=2)
    min_l2 = torch.where(valid, d, torch.full_like(d, math.inf)).min(dim=1).values
    none = ~valid.any(dim=1)
    avg_l2[none] = math.nan
    min_l2[none] = math.nan
    return avg_l2, min_l2
