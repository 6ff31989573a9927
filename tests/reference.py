"""Literal per-person reference implementations of the published metrics (sklearn + skimage),
written the way the official evaluation code computes them, to check gazecli's vectorised ones."""

from __future__ import annotations

import numpy as np


def minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def gazefollow_person(heatmap: np.ndarray, height: int, width: int, points: np.ndarray) -> dict:
    """AUC at (height, width) vs the multi-hot map of all annotators; argmax L2s."""
    from skimage.transform import resize
    from sklearn.metrics import roc_auc_score

    pts = points[np.isfinite(points[:, 0])]
    up = resize(minmax(heatmap), (height, width), order=1)
    gt = np.zeros((height, width))
    for x, y in pts:
        gt[min(int(y * height), height - 1), min(int(x * width), width - 1)] = 1
    auc = roc_auc_score(gt.ravel(), up.ravel())
    h, w = heatmap.shape
    row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    p = np.array([col / w, row / h])
    return {"auc": auc, "avg_l2": float(np.linalg.norm(p - pts.mean(axis=0))),
            "min_l2": float(np.linalg.norm(p[None] - pts, axis=1).min())}


def gazefollow_heatmap_auc(heatmap: np.ndarray, points: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    h, w = heatmap.shape
    gt = np.zeros((h, w))
    for x, y in points[np.isfinite(points[:, 0])]:
        gt[min(int(y * h), h - 1), min(int(x * w), w - 1)] = 1
    return roc_auc_score(gt.ravel(), minmax(heatmap).ravel())


def draw_labelmap_window(x: float, y: float, size: int = 64, sigma: float = 3) -> np.ndarray:
    """Chong's draw_labelmap at (x*size, y*size), binarised (> 0)."""
    img = np.zeros((size, size))
    pt = [x * size, y * size]
    ul = [int(pt[0] - 3 * sigma), int(pt[1] - 3 * sigma)]
    br = [int(pt[0] + 3 * sigma + 1), int(pt[1] + 3 * sigma + 1)]
    if ul[0] >= size or ul[1] >= size or br[0] < 0 or br[1] < 0:
        return img > 0
    g_size = 6 * sigma + 1
    xs = np.arange(0, g_size, 1, float)
    ys = xs[:, np.newaxis]
    x0 = y0 = g_size // 2
    g = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma**2))
    g_x = max(0, -ul[0]), min(br[0], size) - ul[0]
    g_y = max(0, -ul[1]), min(br[1], size) - ul[1]
    img_x = max(0, ul[0]), min(br[0], size)
    img_y = max(0, ul[1]), min(br[1], size)
    img[img_y[0]:img_y[1], img_x[0]:img_x[1]] += g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
    return img > 0


def vat_frame(heatmap: np.ndarray, gaze_xy: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    gt = draw_labelmap_window(gaze_xy[0], gaze_xy[1], heatmap.shape[0])
    auc = roc_auc_score(gt.ravel().astype(float), minmax(heatmap).ravel())
    row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    l2 = float(np.linalg.norm(np.array([col / heatmap.shape[1], row / heatmap.shape[0]]) - gaze_xy))
    return {"auc": auc, "l2": l2}
