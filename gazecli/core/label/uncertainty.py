"""How unsure a gaze model is about an image: the `--order uncertain` score (docs/labelling.md).

The score of a person is the disagreement between two views: the gaze point predicted on the
image, and the point predicted on its mirror image (head box mirrored too) mirrored back,
as a distance in normalised image coordinates (0: the views agree; the diagonal is 1.41).
A model that has learnt where this person looks gives the same answer for both views; where it
guesses, the two guesses part. An image's score is the mean over its persons; images without
a known head get no score and come after the scored ones.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# (rgb (H, W, 3) uint8, head boxes xyxy px (N, 4)) -> gaze points (N, 2) normalised to [0, 1]
PointPredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def mirror_boxes_xyxy_px(boxes_xyxy_px: np.ndarray, width: int) -> np.ndarray:
    boxes = np.asarray(boxes_xyxy_px, dtype=np.float64).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def flip_disagreement(predict_points: PointPredictor, rgb: np.ndarray, boxes_xyxy_px) -> np.ndarray:
    """(N,) distance between the point predicted on the image and the mirrored-back point predicted
    on the mirror image, in normalised units."""
    boxes = np.asarray(boxes_xyxy_px, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0)
    width = rgb.shape[1]
    plain = np.asarray(predict_points(rgb, boxes), dtype=np.float64)
    mirrored = np.asarray(predict_points(np.ascontiguousarray(rgb[:, ::-1]), mirror_boxes_xyxy_px(boxes, width)),
                          dtype=np.float64)
    back = np.stack([1.0 - mirrored[:, 0], mirrored[:, 1]], axis=1)
    return np.linalg.norm(plain - back, axis=1)


def uncertain_order(keys: list[str], scores: dict[str, float | None]) -> list[str]:
    """Keys by decreasing score (ties and unscored images keep their original order, unscored last)."""
    position = {k: i for i, k in enumerate(keys)}
    scored = sorted((k for k in keys if scores.get(k) is not None), key=lambda k: (-scores[k], position[k]))
    return scored + [k for k in keys if scores.get(k) is None]
