"""Pseudo-label teachers for the semi-supervised student: one file per teacher behind the small
protocol of base.py, a registry, and the pseudo-label cache (cache.py)."""

from gazecli.core.teachers.base import Teacher, TeacherConfig
from gazecli.core.teachers.registry import NEEDS_GRADCAM, TEACHERS, load_teacher

__all__ = ["NEEDS_GRADCAM", "TEACHERS", "Teacher", "TeacherConfig", "load_teacher"]
