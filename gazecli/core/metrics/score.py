"""Scoring a prediction file's heatmaps against a dataset split (`gaze eval`, every evaluator)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from gazecli.core.data.images import image_sizes_wh
from gazecli.core.data.table import PersonTable
from gazecli.core.metrics.meters import GazeFollowMeter, VATMeter
from gazecli.core.predictions import Predictions

Progress = Callable[[int, int], None]


def score_predictions(table: PersonTable, predictions: Predictions, auc_resolution: str = "native",
                      device: str = "auto", batch_size: int = 256, progress: Progress | None = None) -> dict:
    """Metrics of predictions already aligned with `table` (row i predicts person i).

    GazeFollow: AUC / Avg L2 / Min L2 over in-frame persons (all test persons are in frame).
    VideoAttentionTarget: AUC / L2 over in-frame frames, AP of `inout` over all frames.
    """
    import torch

    from gazecli.core.engine.device import resolve_device

    check_scores_finite(table, predictions)
    dev = resolve_device(device)
    if dev.type == "mps":  # the metrics run in float64, which MPS lacks
        dev = torch.device("cpu")
    n = len(table)
    heatmaps = torch.from_numpy(np.ascontiguousarray(predictions.heatmap))
    if table.dataset == "videoatt":
        meter = VATMeter()
        gaze = torch.from_numpy(table.gaze_xy_norm[:, 0])
        inout = torch.from_numpy(table.inout.astype(np.float64))
        score = None if predictions.inout is None else torch.from_numpy(predictions.inout)
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            meter.update(heatmaps[sl].to(dev), gaze[sl], inout[sl], None if score is None else score[sl])
            if progress:
                progress(min(i + batch_size, n), n)
        result = meter.compute()
    else:
        inside = np.flatnonzero(table.inout == 1)
        sizes = image_sizes_wh(table.root, table.path[inside])[:, ::-1].copy()  # (H, W)
        meter = GazeFollowMeter(auc_resolution)
        gaze = torch.from_numpy(table.gaze_xy_norm[inside])
        sizes_t = torch.from_numpy(sizes)
        hm = heatmaps[torch.from_numpy(inside)]
        for i in range(0, len(inside), batch_size):
            sl = slice(i, i + batch_size)
            meter.update(hm[sl].to(dev), sizes_t[sl], gaze[sl])
            if progress:
                progress(min(i + batch_size, len(inside)), len(inside))
        result = meter.compute()
        result["n_out_of_frame_skipped"] = int(n - len(inside))
    result["dataset"] = table.dataset
    result["split"] = table.split
    result["device"] = str(dev)
    return result


def check_scores_finite(table: PersonTable, predictions: Predictions, where: str = "predictions") -> None:
    """Metrics refuse NaN / infinite heatmaps and in-frame scores, naming the first such person
    (a NaN score would sort arbitrarily: an all-NaN inout once scored AP 1.0)."""
    from gazecli.core.validate import require_finite

    names = [f"{p}, eye ({x:.4f}, {y:.4f})" for p, (x, y) in zip(table.path, table.eye_xy_norm)]
    require_finite(predictions.heatmap, "the heatmap", names, where)
    if predictions.inout is not None:
        require_finite(predictions.inout, "the in-frame score (inout)", names, where)
