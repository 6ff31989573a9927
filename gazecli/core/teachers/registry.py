"""Teacher name -> loader (`--teacher`); "none" is supervised training (no teacher)."""

from __future__ import annotations

from gazecli.core.errors import SettingsError
from gazecli.core.teachers.base import Teacher, TeacherConfig
from gazecli.core.teachers.diffusion import DiffusionTeacher
from gazecli.core.teachers.gradcam import GradcamTeacher
from gazecli.core.teachers.supervised import SupervisedTeacher

TEACHERS = {"none": None, "gradcam": GradcamTeacher, "diffusion": DiffusionTeacher, "noise": DiffusionTeacher,
            "vat": SupervisedTeacher, "vat-gc": SupervisedTeacher}
NEEDS_GRADCAM = {"gradcam", "diffusion", "vat-gc"}
NEEDS_CHECKPOINT = {"diffusion", "noise", "vat", "vat-gc"}


def load_teacher(config: TeacherConfig, device) -> Teacher:
    """The teacher of `--teacher`, checked against what it is asked to do."""
    factory = TEACHERS.get(config.kind)
    if factory is None:
        raise SettingsError(f"--teacher {config.kind}: unknown teacher")
    if config.kind in NEEDS_CHECKPOINT and config.checkpoint is None:
        raise SettingsError(f"--teacher {config.kind} needs --teacher-checkpoint")
    return factory.load(config, device)
