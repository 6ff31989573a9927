"""Optimiser and learning-rate schedule of a training command, from its settings.

`--optimizer adam|adamw` (`--weight-decay` for AdamW), `--schedule step` (x --gamma at the
--milestones epochs, the paper's, stepped by the engine once per epoch) or `--schedule cosine`
(per optimiser step from --lr down to 0 over the run). The cosine rate is a function of the
global step alone and is set by the engine's `after_step` hook, so a resumed run continues on
the same curve without any scheduler state.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def cosine_rate(base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate for the optimiser step after `step` steps (0-based count done so far)."""
    if total_steps <= 0:
        return base_lr
    t = min(max(step, 0), total_steps) / total_steps
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * t))


def make_optimizer(settings, model: torch.nn.Module, total_steps: int):
    """(optimizer, per-epoch scheduler or None, after_step hook or None) of `settings`
    (fields optimizer, weight_decay, schedule, lr, milestones, gamma)."""
    kind = getattr(settings, "optimizer", None) or "adam"
    decay = float(getattr(settings, "weight_decay", None) or 0.0)
    if kind == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=decay)
    if (getattr(settings, "schedule", None) or "step") == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=settings.milestones, gamma=settings.gamma)
        return optimizer, scheduler, None
    return optimizer, None, cosine_hook(optimizer, float(settings.lr), total_steps)


def cosine_hook(optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int) -> Callable[[int], None]:
    """An `after_step` hook that sets the cosine rate of the next step."""

    def after_step(step: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = cosine_rate(base_lr, step, total_steps)

    return after_step
