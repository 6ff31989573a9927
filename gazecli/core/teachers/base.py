"""What every pseudo-label teacher is (docs/design.md, "Teachers").

A teacher turns a batch (the *augmented* view the student sees) into a target heatmap for each
unlabelled person, plus whether that target is usable. `TeacherConfig` is what `--teacher*`
settings ask for; `teachers.registry.load_teacher(config, device)` builds the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import torch

from gazecli.core.errors import SettingsError


class Teacher(Protocol):
    """(batch, generator) -> (targets (B, 1, h, w) in [0, 1], usable (B,) bool)."""

    kind: str
    needs_gradcam: bool

    def __call__(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class TeacherConfig:
    """kind: a registry name; checkpoint: the trained prior or student it needs; sample: the
    student's SampleConfig fields (the teacher must see the same sizes); denoise_steps /
    ddim_steps / eta / samples: the diffusion teachers' sampler; compat: override the prior's
    sampler mode (None: the run's); network: which network of a Mean-Teacher checkpoint."""

    kind: str
    checkpoint: Optional[Path] = None
    sample: dict = field(default_factory=dict)
    denoise_steps: int = 250
    ddim_steps: int = 2
    eta: float = 1.0
    samples: int = 1
    compat: Optional[bool] = None
    network: Optional[str] = None


def usable_rows(batch: dict, needs_gradcam: bool, like: torch.Tensor) -> torch.Tensor:
    """(B,) bool: a teacher that reads the Grad-CAM has a target only where the Grad-CAM is valid."""
    if needs_gradcam:
        return batch["gradcam_valid"].bool()
    return torch.ones(len(like), dtype=torch.bool, device=like.device)


def check_views(meta: dict, sample: dict, checkpoint) -> None:
    """The teacher reads the student's augmented view, so both must see the same input sizes."""
    theirs = meta.get("sample") or {}
    for key in ("input_size", "face_size", "heatmap_size"):
        if key in theirs and theirs[key] != sample[key]:
            raise SettingsError(f"--teacher-checkpoint {checkpoint}: the teacher was trained with {key.replace('_', '-')} "
                                f"{theirs[key]}, the student uses {sample[key]}; train both with the same sizes")


def freeze(module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
