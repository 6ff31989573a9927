"""Per-person metrics of the two protocols and the meters that accumulate them over batches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from gazecli.core.data.heatmaps import minmax
from gazecli.core.metrics.basic import (AUC_RESOLUTIONS, GAZEFOLLOW, VIDEOATT, argmax_points, average_precision,
    l2_distances, protocol_description, rank_auc)
from gazecli.core.metrics.native_auc import multi_hot_pixels, native_auc



def heatmap_grid_auc(heatmaps: torch.Tensor, gaze_points: torch.Tensor) -> torch.Tensor:
    """Sharingan-style AUC on the heatmap grid against the annotator points rasterised on it."""
    B, h, w = heatmaps.shape
    sizes = torch.tensor([h, w], device=heatmaps.device).expand(B, 2)
    pos = multi_hot_pixels(gaze_points.to(heatmaps.device).double(), sizes)
    labels = torch.zeros(B, h * w + 1, dtype=torch.bool, device=heatmaps.device)
    labels.scatter_(1, torch.where(pos >= 0, pos, torch.full_like(pos, h * w)), True)
    return rank_auc(minmax(heatmaps.double()).flatten(1), labels[:, : h * w])


def gazefollow_metrics(heatmaps: torch.Tensor, sizes_hw: torch.Tensor, gaze_points: torch.Tensor,
                       auc_resolution: str = "native") -> dict[str, torch.Tensor]:
    """Per-person GazeFollow metrics: {'auc', 'avg_l2', 'min_l2'}, each (B,) float64."""
    if auc_resolution not in AUC_RESOLUTIONS:
        raise ValueError(f"auc_resolution must be one of {AUC_RESOLUTIONS}")
    gaze_points = gaze_points.to(heatmaps.device).double()
    if auc_resolution == "native":
        auc = native_auc(heatmaps, sizes_hw, gaze_points)
    else:
        auc = heatmap_grid_auc(heatmaps, gaze_points)
    avg_l2, min_l2 = l2_distances(argmax_points(heatmaps), gaze_points)
    return {"auc": auc, "avg_l2": avg_l2, "min_l2": min_l2}


# --------------------------------------------------------------------------------------------
# VideoAttentionTarget


def vat_auc_labels(gaze_xy_norm: torch.Tensor, h: int, w: int, sigma: float = 3.0) -> torch.Tensor:
    """(B, 2) points -> (B, h*w) bool: the >0 region of Chong's `draw_labelmap` Gaussian at
    (x*w, y*h): a (6 sigma + 1)-pixel square starting at int(centre - 3 sigma), clipped."""
    cx = gaze_xy_norm[:, 0].double() * w
    cy = gaze_xy_norm[:, 1].double() * h
    x0 = torch.trunc(cx - 3 * sigma).long()  # Python int() truncates toward zero
    y0 = torch.trunc(cy - 3 * sigma).long()
    x1 = torch.trunc(cx + 3 * sigma + 1).long()
    y1 = torch.trunc(cy + 3 * sigma + 1).long()
    cols = torch.arange(w, device=gaze_xy_norm.device)[None, :]
    rows = torch.arange(h, device=gaze_xy_norm.device)[None, :]
    in_x = (cols >= x0[:, None]) & (cols < x1[:, None])
    in_y = (rows >= y0[:, None]) & (rows < y1[:, None])
    outside = (x0 >= w) | (y0 >= h) | (x1 < 0) | (y1 < 0)
    labels = in_y[:, :, None] & in_x[:, None, :] & ~outside[:, None, None]
    return labels.flatten(1)


def vat_metrics(heatmaps: torch.Tensor, gaze_xy_norm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per in-frame frame: {'auc', 'l2'} (B,). Heatmaps are compared on their own grid."""
    B, h, w = heatmaps.shape
    labels = vat_auc_labels(gaze_xy_norm.to(heatmaps.device), h, w)
    auc = rank_auc(minmax(heatmaps.double()).flatten(1), labels)
    l2 = torch.linalg.vector_norm(argmax_points(heatmaps) - gaze_xy_norm.to(heatmaps.device).double(), dim=1)
    return {"auc": auc, "l2": l2}


# --------------------------------------------------------------------------------------------
# accumulators (torchmetrics style: update per batch, compute once)


@dataclass
class GazeFollowMeter:
    auc_resolution: str = "native"
    values: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {"auc": [], "avg_l2": [], "min_l2": []})

    def update(self, heatmaps, sizes_hw, gaze_points) -> dict[str, torch.Tensor]:
        out = gazefollow_metrics(heatmaps, sizes_hw, gaze_points, self.auc_resolution)
        for k, v in out.items():
            self.values[k].append(v.detach().cpu())
        return out

    def per_person(self) -> dict[str, np.ndarray]:
        return {k: (torch.cat(v).numpy() if v else np.zeros(0)) for k, v in self.values.items()}

    def compute(self) -> dict:
        per = self.per_person()
        result = {k: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan for k, v in per.items()}
        result["n"] = int(len(per["auc"]))
        result["protocol"] = protocol_description(GAZEFOLLOW, self.auc_resolution)
        return result


@dataclass
class VATMeter:
    values: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {"auc": [], "l2": []})
    inout_true: list[torch.Tensor] = field(default_factory=list)
    inout_score: list[torch.Tensor] = field(default_factory=list)

    def update(self, heatmaps, gaze_xy_norm, inout, inout_score=None) -> None:
        inside = inout.bool().to(heatmaps.device)
        if bool(inside.any()):
            out = vat_metrics(heatmaps[inside], gaze_xy_norm.to(heatmaps.device)[inside])
            for k, v in out.items():
                self.values[k].append(v.detach().cpu())
        if inout_score is not None:
            self.inout_true.append(inout.detach().cpu().double())
            self.inout_score.append(inout_score.detach().cpu().double())

    def compute(self) -> dict:
        result = {k: float(torch.cat(v).mean()) if v else math.nan for k, v in self.values.items()}
        result["ap"] = (
            average_precision(torch.cat(self.inout_true), torch.cat(self.inout_score))
            if self.inout_score else None
        )
        result["n"] = int(sum(len(v) for v in self.values["auc"]))
        result["n_frames"] = int(sum(len(v) for v in self.inout_true)) if self.inout_true else result["n"]
        result["protocol"] = protocol_description(VIDEOATT)
        return result
