"""Gaussian gaze heatmaps (the training targets; method-spec §1.4)."""

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
