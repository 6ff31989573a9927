"""Per-person sample construction (docs/design.md, "Data"): head-box expansion and jitter, a random
crop that keeps the head and the gaze point, horizontal flip, colour jitter, the head-position
channel, the face crop, and per-person maps (e.g. Grad-CAM) cropped and flipped exactly like
the image. numpy + OpenCV only; `dataset.py` wraps this in a torch Dataset.

Coordinates are continuous: pixel i spans [i, i+1); an image of width W flips x -> W - x.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gazecli.core.data.resample import resample_bilinear

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class SampleConfig:
    """What a model consumes. GazeFollow/VAT models use the defaults; GazeWorld smaller ones."""

    input_size: int = 224  # scene (and head channel) side
    face_size: int = 224  # face crop side
    heatmap_size: int = 64
    sigma: float = 3.0  # target Gaussian, heatmap pixels
    head_expand: float = 0.1  # always: each side grows by this fraction (sequentially, as the spec)
    augment: bool = False
    jitter_prob: float = 0.5
    jitter_max: float = 0.1  # extra expansion k ~ U(0, jitter_max)
    crop_prob: float = 0.5
    crop_unlabelled: bool = False  # crop unlabelled persons too (around the head only: no label leak)
    flip_prob: float = 0.5
    colour_prob: float = 0.5
    compat: bool = False  # targets drawn with Chong's draw_labelmap quirks
    gradcam_compat: bool = False  # the official Grad-CAM handling: integer-grid crop of labelled persons, and zero
    # maps for persons out of frame by the ground-truth in/out flag, unlabelled ones too (a label leak; docs/compat.md)


@dataclass
class Augment:
    """The random draws of one sample, so that two views can share some of them."""

    jitter: float = 0.0  # extra head-box expansion (0: none)
    crop: tuple[float, float, float, float] | None = None  # (x0, y0, w, h) in pixels of the original
    flip: bool = False
    colour: tuple[float, float, float] | None = None  # brightness, contrast, saturation factors


def expand_box(box: np.ndarray, k: float) -> np.ndarray:
    """The official sequential expansion: x_min, then y_min, then x_max, y_max (the latter two
    using the already-moved minimum)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1 -= k * abs(x2 - x1)
    y1 -= k * abs(y2 - y1)
    x2 += k * abs(x2 - x1)
    y2 += k * abs(y2 - y1)
    return np.array([x1, y1, x2, y2], dtype=np.float64)


def draw_augment(rng: np.random.Generator, config: SampleConfig, width: int, height: int, head: np.ndarray,
                 gaze_px: np.ndarray | None, labelled: bool) -> Augment:
    """Draw the augmentation of one sample. `head` is the expanded head box (pixels); `gaze_px`
    is the labelled in-frame gaze point (pixels) or None; the crop keeps both."""
    aug = Augment()
    if not config.augment:
        return aug
    if rng.random() < config.jitter_prob:
        aug.jitter = float(rng.uniform(0, config.jitter_max))
    if rng.random() < config.crop_prob and (labelled or config.crop_unlabelled):
        keep = [head[0], head[2]], [head[1], head[3]]
        if gaze_px is not None:
            keep = [head[0], head[2], gaze_px[0]], [head[1], head[3], gaze_px[1]]
        lo_x, hi_x = max(0.0, min(keep[0])), min(float(width), max(keep[0]))
        lo_y, hi_y = max(0.0, min(keep[1])), min(float(height), max(keep[1]))
        x0 = float(rng.uniform(0, lo_x))
        y0 = float(rng.uniform(0, lo_y))
        w = float(rng.uniform(hi_x - x0, width - x0))
        h = float(rng.uniform(hi_y - y0, height - y0))
        if w >= 2 and h >= 2:
            aug.crop = (x0, y0, w, h)
    aug.flip = bool(rng.random() < config.flip_prob)
    if rng.random() < config.colour_prob:
        aug.colour = (float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.0, 1.5)))
    return aug


def colour_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """torchvision's adjust_brightness, adjust_contrast, adjust_saturation, in that order (uint8 RGB)."""
    x = image.astype(np.float32) / 255.0
    x = np.clip(x * brightness, 0, 1)
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = np.clip((x - gray.mean()) * contrast + gray.mean(), 0, 1)
    gray = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = np.clip((x - gray) * saturation + gray, 0, 1)
    return (x * 255.0 + 0.5).astype(np.uint8)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Square resize; area averaging when shrinking (as PIL's antialiased bilinear), bilinear when growing."""
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if (size < h or size < w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def crop_with_padding(image: np.ndarray, box) -> np.ndarray:
    """PIL-style crop at int-truncated coordinates; outside the image is zero."""
    x1, y1, x2, y2 = (int(v) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    h, w = image.shape[:2]
    out = np.zeros((y2 - y1, x2 - x1, image.shape[2]), dtype=image.dtype)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return out


def head_channel(box_xyxy_norm: np.ndarray, size: int) -> np.ndarray:
    """(size, size) binary mask: corners * size truncated to int, clipped to [0, size-1], ones on
    rows y1..y2-1 and columns x1..x2-1 (end exclusive), as the official code."""
    x1, y1, x2, y2 = (int(np.clip(int(v * size), 0, size - 1)) for v in box_xyxy_norm)
    mask = np.zeros((size, size), dtype=np.float32)
    mask[y1:y2, x1:x2] = 1.0
    return mask


def to_chw_normalised(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W), ImageNet-normalised."""
    x = image.astype(np.float32) / 255.0
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()


def transform_map(raw: np.ndarray, region_norm: tuple[float, float, float, float], flip: bool,
                  size: int, eps: float = 1e-6) -> tuple[np.ndarray, bool]:
    """A per-person map given over the whole original image (any grid, e.g. 30x30 Grad-CAM):
    the crop region (x0, y0, x1, y1, normalised) resampled bilinearly to (size, size) (the whole
    map: exactly F.interpolate(align_corners=False), see `resample.py`), flipped
    like the image, then min-max normalised. Returns (map, valid); a map whose range is below
    eps relative to its magnitude (constant, all zero) or non-finite is invalid and all zeros."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or not np.isfinite(raw).all():
        return np.zeros((size, size), dtype=np.float32), False
    out = resample_bilinear(raw, region_norm, size)  # exact bilinear (docs/compat.md)
    if flip:
        out = out[:, ::-1]
    lo, hi = float(out.min()), float(out.max())
    span = hi - lo
    if not span > eps * max(abs(hi), abs(lo)):  # relative: raw Grad-CAMs can be ~1e-9 and still valid
        return np.zeros((size, size), dtype=np.float32), False
    return ((out - lo) / (span * (1 + eps))).astype(np.float32), True
