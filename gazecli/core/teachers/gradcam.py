"""`--teacher gradcam`: the person's Grad-CAM itself (resized, cropped and flipped with the image,
min-max normalised by the dataset): the paper's "Grad-CAM only" ablation."""

from __future__ import annotations

from gazecli.core.teachers.base import TeacherConfig


class GradcamTeacher:
    kind = "gradcam"
    needs_gradcam = True

    def __call__(self, batch, generator):
        return batch["gradcam"].float(), batch["gradcam_valid"].bool()

    @classmethod
    def load(cls, config: TeacherConfig, device) -> "GradcamTeacher":
        return cls()
