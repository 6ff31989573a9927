"""The Mean-Teacher EMA pair (Tarvainen & Valpola, 2017) for the diffusion prior
(docs/design.md, "Mean Teacher").

`EMAPair(student, teacher)` holds both networks in one module, so that every checkpoint
(weights/best and weights/last) carries both and a resume restores the teacher exactly. Its
forward is the student's (what the optimiser trains; under DDP only the student's parameters
take part, the teacher's never require gradients).

The teacher is an exponential moving average of the student, updated after every optimiser step:
teacher = alpha * teacher + (1 - alpha) * student with `ema_alpha`. The official code
keeps the teacher in train() mode (BatchNorm on batch statistics, running statistics mutated)
and averages parameters only. The default here evaluates the teacher in eval() mode, so its
BatchNorm running statistics must mean something: they are averaged with the same alpha as
the parameters (integer buffers are copied). `teacher_train_mode=True` with
`update_teacher(alpha, buffers=False)` is the official behaviour (`--compat`).
"""

from __future__ import annotations

import torch
from torch import nn


def ema_alpha(step: int, decay: float = 0.99, every: int = 15) -> float:
    """The EMA factor after optimiser step `step` (0-based: the first step is 0):
    alpha = min(1 - 1/(g + 1), decay) with g = step // every. So alpha = 0 for the first `every`
    steps (teacher := student), 0.5 for the next `every`, ..., and `decay` from g = 1/(1-decay) - 1
    on (step 1485 for 0.99 and 15)."""
    g = int(step) // int(every)
    return min(1.0 - 1.0 / (g + 1), float(decay))


class EMAPair(nn.Module):
    """A student and its exponential-moving-average teacher in one module."""

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher_train_mode: bool = False):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.teacher_train_mode = bool(teacher_train_mode)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.train(self.training)

    def forward(self, *args, **kwargs):
        return self.student(*args, **kwargs)

    def train(self, mode: bool = True) -> "EMAPair":
        """The student follows `mode`; the teacher only in teacher_train_mode (else always eval)."""
        super().train(mode)
        self.teacher.train(bool(mode) and self.teacher_train_mode)
        return self

    def network(self, name: str) -> nn.Module:
        if name not in ("student", "teacher"):
            raise ValueError(f"network must be 'student' or 'teacher', got {name!r}")
        return getattr(self, name)

    @torch.no_grad()
    def update_teacher(self, alpha: float, buffers: bool = True) -> None:
        """teacher = alpha * teacher + (1 - alpha) * student, for the parameters and (with
        `buffers`) the floating-point buffers; integer buffers are copied."""
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
        if buffers:
            for t, s in zip(self.teacher.buffers(), self.student.buffers()):
                if t.dtype.is_floating_point:
                    t.mul_(alpha).add_(s, alpha=1.0 - alpha)
                else:
                    t.copy_(s)
