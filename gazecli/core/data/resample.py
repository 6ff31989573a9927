"""Exact bilinear resampling of per-person maps (a Grad-CAM grid, a cached pseudo-label) onto the
heatmap grid, and the official code's integer Grad-CAM crop (docs/compat.md).

`bilinear_taps` gives, for one axis, the sampling of PyTorch's
`F.interpolate(mode="bilinear", align_corners=False)`: output pixel j samples the input at
    src = start * n_in + (j + 0.5) * scale - 0.5,   scale = span * n_in / n_out,
clamped below at 0 (PyTorch's rule), between the two nearest cells, with the last cell repeated
past the edge. For the whole map (start 0, span 1) this is F.interpolate; for a crop region it
is the same sampling rule on a continuous window (as two small matrix products).
"""

from __future__ import annotations

import cv2
import numpy as np


def bilinear_taps(n_in: int, n_out: int, start: float = 0.0, span: float = 1.0):
    """For one axis: the two input cells (lo, hi) and the weight of `hi` for each output pixel;
    `start`, `span` normalised to the input."""
    scale = span * n_in / n_out
    src = np.maximum(start * n_in + (np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(src.astype(np.int64), n_in - 1)  # src >= 0: truncation is floor
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, np.minimum(src - lo, 1.0)


def bilinear_weights(n_in: int, n_out: int, start: float = 0.0, span: float = 1.0) -> np.ndarray:
    """(n_out, n_in) float32 matrix of `bilinear_taps` (rows sum to 1)."""
    lo, hi, frac = bilinear_taps(n_in, n_out, start, span)
    weights = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    weights[rows, lo] = 1.0 - frac
    weights[rows, hi] += frac  # the same cell as `lo` at the edge
    return weights


def resample_bilinear(raw: np.ndarray, region_norm: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                      size: int = 64) -> np.ndarray:
    """(gh, gw) map -> (size, size) float32: the window (x0, y0, x1, y1), normalised to the map,
    sampled bilinearly (half-pixel centres, edges repeated)."""
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    gh, gw = raw.shape
    x0, y0, x1, y1 = (float(v) for v in region_norm)
    if (x0, y0, x1, y1) == (0.0, 0.0, 1.0, 1.0):
        # on float input OpenCV's resize computes float weights with this very rule (unlike warpAffine's
        # 1/32-px fixed point): equal to F.interpolate within float32 rounding, and the fastest
        return cv2.resize(raw, (size, size), interpolation=cv2.INTER_LINEAR)
    wy, wx = bilinear_weights(gh, size, y0, y1 - y0), bilinear_weights(gw, size, x0, x1 - x0)
    return wy @ raw @ wx.T


def official_grid_crop(raw: np.ndarray, crop_px: tuple[float, float, float, float], width: float,
                       height: float) -> np.ndarray | None:
    """The official Grad-CAM crop of a labelled, in-frame person (docs/compat.md): the crop
    (x0, y0, w, h) in image pixels scaled onto the grid and truncated to whole cells, the end
    capped at the grid; cells before the grid are zero. None when the cropped grid is empty (the
    official code then cancels the whole crop)."""
    gh, gw = raw.shape
    x0, y0, w, h = crop_px
    xs, ys = gw * x0 / width, gh * y0 / height
    xe, ye = min(int(xs + w / width * gw), gw), min(int(ys + h / height * gh), gh)
    xs, ys = int(xs), int(ys)  # truncation toward zero, as Python's int()
    cw, ch = xe - xs, ye - ys
    if cw <= 0 or ch <= 0:
        return None
    out = np.zeros((ch, cw), dtype=np.float32)
    fx, fy = max(0, xs), max(0, ys)
    tx, ty = max(0, -xs), max(0, -ys)
    block = raw[fy:ye, fx:xe]
    out[ty:ty + block.shape[0], tx:tx + block.shape[1]] = block
    return out
