"""Optimiser and learning-rate schedule of a training command, from its settings.

`--optimizer adam|adamw` (`--weight-decay` for AdamW), `--schedule step` (x --gamma at the
--milestones epochs, the paper's, stepped by the engine once per epoch) or `--schedule cosine`
(per optimiser step from --lr down to 0 over the run). The cosine rate is a function of the
global step alone and is set by a trainer callback after every step, so a resumed run continues
on the same curve without any scheduler state.
"""

from __future__ import annotations

import math

import torch

from gazecli.core.engine.trainer import Callback


def cosine_rate(base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate for the optimiser step after `step` steps (0-based count done so far)."""
    if total_steps <= 0:
        return base_lr
    t = min(max(step, 0), total_steps) / total_steps
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * t))


class CosineRate(Callback):
    """Sets the cosine rate of the next step after every optimiser step."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int):
        self.optimizer, self.base_lr, self.total_steps = optimizer, base_lr, total_steps

    def on_step_end(self, step: int, logs: dict) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_rate(self.base_lr, step, self.total_steps)


def make_optimizer(settings, model: torch.nn.Module, total_steps: int):
    """(optimizer, per-epoch scheduler or None, trainer callbacks) of `settings` (fields optimizer,
    weight_decay, schedule, lr, milestones, gamma)."""
    kind = getattr(settings, "optimizer", None) or "adam"
    decay = float(getattr(settings, "weight_decay", None) or 0.0)
    if kind == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=decay)
    if (getattr(settings, "schedule", None) or "step") == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=settings.milestones, gamma=settings.gamma)
        return optimizer, scheduler, []
    return optimizer, None, [CosineRate(optimizer, float(settings.lr), total_steps)]
