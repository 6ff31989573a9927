"""Baseline predictions that need no model: a reference row for every results table."""

from __future__ import annotations

import numpy as np

from gazecli.core.data import read_persons
from gazecli.core.data.heatmaps import baseline_heatmap
from gazecli.core.predictions import Predictions, save_predictions
from gazecli.core.settings import BaselineSettings


def make_baseline(settings: BaselineSettings) -> dict:
    table = read_persons(settings.root, settings.split)
    heatmap = baseline_heatmap(settings.kind, settings.root, settings.heatmap_size, settings.sigma)
    preds = Predictions(path=table.path.astype(str), eye=table.eye_xy_norm,
                        heatmap=np.broadcast_to(heatmap, (len(table), *heatmap.shape)))
    save_predictions(settings.out, preds)
    return {"out": str(settings.out), "persons": len(table), "kind": settings.kind, "split": settings.split}
