"""`PersonTable`: one row per annotated person, the common currency of every reader, split,
metric and dataset in gazecli.

Coordinate conventions (docs/design.md, "Data"): eye and gaze points are normalised to [0, 1] by the
image size (`*_xy_norm`); head and body boxes are pixels, corner form (`*_box_xyxy_px`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np


@dataclass
class PersonTable:
    dataset: str  # "gazefollow" | "videoatt"
    split: str  # "train" | "test"
    root: Path
    path: np.ndarray  # (N,) str, image path relative to the image folder of `root`
    eye_xy_norm: np.ndarray  # (N, 2) float64
    head_box_xyxy_px: np.ndarray  # (N, 4) float64
    body_box_xyxy_px: np.ndarray  # (N, 4) float64, NaN where no body box is known
    gaze_xy_norm: np.ndarray  # (N, A, 2) float64, NaN-padded; all NaN when out of frame
    inout: np.ndarray  # (N,) int8: 1 in frame, 0 out of frame
    source: np.ndarray  # (N,) str, "file:line" of the (first) row a person came from
    raw: np.ndarray | None = None  # (N,) str, the original annotation line (train files)
    image_size_wh: np.ndarray | None = None  # (N, 2) int64, when known (VideoAttentionTarget)
    track: np.ndarray | None = None  # (N,) int64, person track id (VideoAttentionTarget)
    annotation_file: Path | None = None
    n_dropped_invalid_inout: int = 0
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.path.shape[0])

    @property
    def n_annotators(self) -> np.ndarray:  # (N,)
        return np.isfinite(self.gaze_xy_norm[..., 0]).sum(axis=1)

    @property
    def mean_gaze_xy_norm(self) -> np.ndarray:  # (N, 2), NaN when out of frame
        """Mean of the annotators' points (the target of the Avg L2 metric)."""
        g = self.gaze_xy_norm
        n = self.n_annotators[:, None]
        total = np.where(np.isfinite(g), g, 0.0).sum(axis=1)
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    @property
    def has_body(self) -> np.ndarray:  # (N,) bool
        return np.isfinite(self.body_box_xyxy_px).all(axis=1)

    def keys(self) -> list[tuple[str, float, float]]:
        """Identity of a person: (image path, eye x, eye y), as in the official code."""
        return [(p, float(x), float(y)) for p, (x, y) in zip(self.path, self.eye_xy_norm)]

    def image_paths(self) -> np.ndarray:
        """Unique image paths in order of first appearance."""
        _, first = np.unique(self.path, return_index=True)
        return self.path[np.sort(first)]

    def subset(self, index) -> "PersonTable":
        """Rows selected by a boolean mask or an index array (a new table; arrays are copies)."""
        index = np.asarray(index)
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == len(self):
                changes[f.name] = value[index]
        return replace(self, **changes)
