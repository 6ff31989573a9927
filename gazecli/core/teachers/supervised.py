"""`--teacher vat` / `vat-gc`: a supervised student's heatmap, min-max normalised (VAT-GC also
reads the Grad-CAM)."""

from __future__ import annotations

import torch

from gazecli.core.data.heatmaps import OFFICIAL_MINMAX_EPS, minmax
from gazecli.core.errors import SettingsError
from gazecli.core.models.build import load_model
from gazecli.core.models.vat import student_forward
from gazecli.core.teachers.base import TeacherConfig, check_views, freeze, usable_rows


class SupervisedTeacher:
    def __init__(self, model, kind: str):
        self.model, self.kind = model, kind
        self.needs_gradcam = kind == "vat-gc"

    @torch.no_grad()
    def __call__(self, batch, generator):
        out = student_forward(self.model, batch)["heatmap"].float()
        return minmax(out, OFFICIAL_MINMAX_EPS), usable_rows(batch, self.needs_gradcam, out)

    @classmethod
    def load(cls, config: TeacherConfig, device) -> "SupervisedTeacher":
        kind = config.kind
        model, meta = load_model(config.checkpoint, device)
        name = (meta.get("model") or {}).get("name")
        if name != kind:
            raise SettingsError(f"--teacher-checkpoint {config.checkpoint}: a {name!r} checkpoint, but --teacher {kind} "
                                f"needs a {kind} student (gaze train-student --model {kind})")
        check_views(meta, config.sample, config.checkpoint)
        freeze(model)
        return cls(model, kind)
