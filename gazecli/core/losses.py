"""Losses on heatmaps (docs/design.md, "Losses"): per-person errors against a target map, the
masked mean over the persons a loss is on, and the Mean-Teacher consistency and its ramp-up."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def heatmap_errors(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-person loss (B,) and whether it is defined (B,): mse = mean squared error over the map;
    kl = cross-entropy of the spatial softmax of `pred` against `target` normalised to sum 1
    (undefined for an all-zero target)."""
    pred, target = pred.float().flatten(1), target.float().flatten(1)
    if kind == "mse":
        return ((pred - target) ** 2).mean(1), torch.ones(len(pred), dtype=torch.bool, device=pred.device)
    mass = target.sum(1)
    p = target / mass.clamp(min=1e-12)[:, None]
    return -(p * torch.log_softmax(pred, 1)).sum(1), mass > 0


def masked_mean(per_person: torch.Tensor, mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The mean of `per_person` (B,) over the persons in `mask`, selected by indexing (a NaN outside
    the selection never reaches the loss); a zero that keeps the graph when nobody is selected."""
    chosen = per_person[mask]
    return chosen.mean() if chosen.numel() else like.sum() * 0.0


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-person mean squared error over the map, averaged over the selected persons, x scale."""
    per_person = ((pred.float() - target.float()) ** 2).flatten(1).mean(dim=1)  # (B,)
    return masked_mean(per_person, mask, pred) * scale


def consistency_weight(epoch: float, weight: float = 4000.0, rampup: int = 5) -> float:
    """The sigmoid ramp-up of Laine & Aila: weight * exp(-5 (1 - clip(epoch, 0, R)/R)^2),
    evaluated per epoch (0-based); w(0) = weight * e^-5 (26.95 for 4000), w(>= R) = weight."""
    if rampup <= 0:
        return float(weight)
    phase = 1.0 - min(max(float(epoch), 0.0), float(rampup)) / rampup
    return float(weight) * math.exp(-5.0 * phase * phase)


def consistency_loss(student_x0: torch.Tensor, teacher_x0: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Per person: KL(p_T || p_S) of the softmaxes over the pixels (kl), or the mean squared
    difference of the raw maps (mse); averaged over the persons in `mask` (by indexing)."""
    s, t = student_x0.float().flatten(1), teacher_x0.float().flatten(1)  # (B, H*W)
    if kind == "kl":
        log_p_t = F.log_softmax(t, dim=1)
        per_person = (log_p_t.exp() * (log_p_t - F.log_softmax(s, dim=1))).sum(1)
    elif kind == "mse":
        per_person = ((s - t) ** 2).mean(1)
    else:
        raise ValueError(f"unknown consistency type {kind!r}")
    return masked_mean(per_person, mask, student_x0)
