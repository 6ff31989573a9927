"""Baseline predictions that need no model: a reference row for every results table."""

from __future__ import annotations

import numpy as np

from gazecli.core.data import read_persons
from gazecli.core.data.heatmaps import gaussian_heatmaps
from gazecli.core.predictions import Predictions, save_predictions
from gazecli.core.settings import BaselineSettings


def baseline_heatmap(kind: str, root, size: int = 64, sigma: float = 3.0) -> np.ndarray:
    """(size, size) float32: `center` = a broad Gaussian (sigma = size / 4) at the image centre;
    `prior` = the mean ground-truth heatmap of the in-frame training persons."""
    if kind == "center":
        return gaussian_heatmaps(np.array([[0.5, 0.5]]), size, size, sigma=size / 4)[0]
    if kind == "prior":
        train = read_persons(root, "train")
        points = train.mean_gaze_xy_norm[train.inout == 1]
        prior = np.zeros((size, size), dtype=np.float64)
        for i in range(0, len(points), 4096):
            prior += gaussian_heatmaps(points[i:i + 4096], size, size, sigma).sum(axis=0)
        return (prior / max(prior.max(), 1e-12)).astype(np.float32)
    raise ValueError(kind)


def make_baseline(settings: BaselineSettings) -> dict:
    table = read_persons(settings.root, settings.split)
    heatmap = baseline_heatmap(settings.kind, settings.root, settings.heatmap_size, settings.sigma)
    preds = Predictions(path=table.path.astype(str), eye=table.eye_xy_norm,
                        heatmap=np.broadcast_to(heatmap, (len(table), *heatmap.shape)))
    save_predictions(settings.out, preds)
    return {"out": str(settings.out), "persons": len(table), "kind": settings.kind, "split": settings.split}
