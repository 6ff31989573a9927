"""Gaussian gaze heatmaps (the training targets; docs/design.md, "Heatmaps")."""

from __future__ import annotations

import numpy as np


def gaussian_heatmaps(points_xy_norm: np.ndarray, height: int = 64, width: int = 64, sigma: float = 3.0,
                      compat: bool = False) -> np.ndarray:
    """(N, 2) normalised points -> (N, height, width) float32 heatmaps, peak 1.

    Default: an untruncated Gaussian exp(-d^2 / (2 sigma^2)) centred on the pixel
    (min(int(x*w), w-1), min(int(y*h), h-1)), the pixel the metrics' argmax decoding maps back
    to the point. A NaN point (out of frame) gives an all-zero map.

    compat=True: Chong's `draw_labelmap` as the official code uses it: a (6 sigma + 1)-pixel
    window placed at int(centre - 3 sigma) (truncation toward zero), pasted where it overlaps
    the map, then divided by its maximum (a border Gaussian's visible tail is rescaled to 1).
    """
    points = np.asarray(points_xy_norm, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((len(points), height, width), dtype=np.float32)
    valid = np.isfinite(points).all(axis=1)
    if compat:
        for i in np.flatnonzero(valid):
            out[i] = _draw_labelmap(points[i, 0] * width, points[i, 1] * height, height, width, sigma)
        return out
    cx = np.minimum(np.floor(points[valid, 0] * width), width - 1)
    cy = np.minimum(np.floor(points[valid, 1] * height), height - 1)
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - cx[:, None]) ** 2) / (2 * sigma**2))  # (n, w)
    gy = np.exp(-((ys[None, :] - cy[:, None]) ** 2) / (2 * sigma**2))  # (n, h)
    out[valid] = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
    return out


def _draw_labelmap(px: float, py: float, height: int, width: int, sigma: float) -> np.ndarray:
    img = np.zeros((height, width), dtype=np.float64)
    ul = [int(px - 3 * sigma), int(py - 3 * sigma)]
    br = [int(px + 3 * sigma + 1), int(py + 3 * sigma + 1)]
    if ul[0] >= width or ul[1] >= height or br[0] < 0 or br[1] < 0:
        return img.astype(np.float32)
    size = int(6 * sigma + 1)
    x = np.arange(0, size, 1, dtype=np.float64)
    y = x[:, None]
    x0 = y0 = size // 2
    g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    g_x = max(0, -ul[0]), min(br[0], width) - ul[0]
    g_y = max(0, -ul[1]), min(br[1], height) - ul[1]
    img_x = max(0, ul[0]), min(br[0], width)
    img_y = max(0, ul[1]), min(br[1], height)
    img[img_y[0]:img_y[1], img_x[0]:img_x[1]] += g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
    peak = img.max()
    return (img / peak if peak > 0 else img).astype(np.float32)


def baseline_heatmap(kind: str, root, size: int = 64, sigma: float = 3.0) -> np.ndarray:
    """(size, size) float32: `center` = a broad Gaussian (sigma = size / 4) at the image centre;
    `prior` = the mean ground-truth heatmap of the in-frame training persons."""
    if kind == "center":
        return gaussian_heatmaps(np.array([[0.5, 0.5]]), size, size, sigma=size / 4)[0]
    if kind == "prior":
        from gazecli.core.data import read_persons

        train = read_persons(root, "train")
        points = train.mean_gaze_xy_norm[train.inout == 1]
        prior = np.zeros((size, size), dtype=np.float64)
        for i in range(0, len(points), 4096):
            prior += gaussian_heatmaps(points[i:i + 4096], size, size, sigma).sum(axis=0)
        return (prior / max(prior.max(), 1e-12)).astype(np.float32)
    raise ValueError(kind)


OFFICIAL_MINMAX_EPS = 1e-11  # the official code's epsilon for pseudo-labels and sampled heatmaps


def minmax(maps, eps: float = 0.0):
    """Min-max normalisation of each map over its last two dimensions: (x - min) / (max - min + eps),
    and a constant map becomes zeros (the one rule of the package; docs/design.md, "Heatmaps").

    A torch tensor (..., h, w) is normalised per map; a numpy array is one map, normalised with
    its min and max as Python floats. `eps` is 0 for scoring and prediction, and
    OFFICIAL_MINMAX_EPS where the official code adds it (teachers, sampled heatmaps)."""
    if isinstance(maps, np.ndarray):
        lo, hi = float(maps.min()), float(maps.max())
        return (maps - lo) / ((hi - lo) + eps) if hi > lo else np.zeros_like(maps)
    import torch

    flat = maps.flatten(-2)
    lo = flat.min(dim=-1, keepdim=True).values
    hi = flat.max(dim=-1, keepdim=True).values
    span = hi - lo
    out = (flat - lo) / torch.where(span > 0, span + eps, torch.ones_like(span))
    return out.view_as(maps)
