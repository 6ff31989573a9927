"""Pseudo-label teachers for the semi-supervised student (method-spec §5; issue 7).

A teacher turns a batch (the *augmented* view the student sees) into a target heatmap for
each unlabelled person, plus whether that target is usable:

- `gradcam`:   the person's Grad-CAM itself (resized, cropped and flipped with the image,
               min-max normalised): the paper's "Grad-CAM only" ablation;
- `diffusion`: the method: the Grad-CAM noised to `--denoise-steps` and denoised by the
               diffusion prior in `--ddim-steps` DDIM steps (SDEdit), the prior's condition
               computed from the same augmented view, min-max normalised;
- `noise`:     the diffusion prior sampled from pure noise in `--ddim-steps` steps, no Grad-CAM
               (the paper's ablation: what the prior knows without the VQA);
- `vat`, `vat-gc`: a supervised student's heatmap (VAT-GC also reads the Grad-CAM).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gazecli.core.errors import SettingsError

TEACHERS = ("none", "gradcam", "diffusion", "noise", "vat", "vat-gc")
NEEDS_GRADCAM = {"gradcam", "diffusion", "vat-gc"}
MINMAX_EPS = 1e-11  # the official code's epsilon


def minmax(maps: torch.Tensor, eps: float = MINMAX_EPS) -> torch.Tensor:
    """Per-sample min-max normalisation of (B, ...) maps to [0, 1], as the official code does."""
    flat = maps.flatten(1)
    shape = (-1,) + (1,) * (maps.dim() - 1)
    lo, hi = flat.min(1).values.view(shape), flat.max(1).values.view(shape)
    return (maps - lo) / (hi - lo + eps)


class Teacher:
    """(batch, generator) -> (targets (B, 1, h, w) in [0, 1], usable (B,) bool)."""

    kind = "none"
    needs_gradcam = False

    def __call__(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class GradcamTeacher(Teacher):
    kind = "gradcam"
    needs_gradcam = True

    def __call__(self, batch, generator):
        return batch["gradcam"].float(), batch["gradcam_valid"].bool()


class DiffusionTeacher(Teacher):
    """SDEdit refinement of the Grad-CAM (or, with from_noise, sampling from pure noise)."""

    def __init__(self, network, scheduler, denoise_steps: int, ddim_steps: int, eta: float = 1.0,
                 samples: int = 1, from_noise: bool = False):
        self.network, self.scheduler = network, scheduler
        self.denoise_steps, self.ddim_steps, self.eta, self.samples = denoise_steps, ddim_steps, eta, samples
        self.from_noise = from_noise
        self.kind = "noise" if from_noise else "diffusion"
        self.needs_gradcam = not from_noise

    @torch.no_grad()
    def __call__(self, batch, generator):
        from gazecli.core.diffusion import refine_with_diffusion

        condition = self.network.condition(batch["scene"], batch["head_channel"], batch["face"])

        def denoise(x, t):
            return self.network.denoise(x, t, condition)

        size = self.network.unet.config.image_size
        total = None
        for _ in range(self.samples):  # the official --inference_times: average several samples
            if self.from_noise:
                x0 = self.scheduler.sample(denoise, (batch["scene"].shape[0], 1, size, size), self.ddim_steps,
                                           eta=self.eta, generator=generator, device=batch["scene"].device)
            else:
                prior = batch["gradcam"].float()
                if prior.shape[-1] != size:
                    prior = torch.nn.functional.interpolate(prior, size=(size, size), mode="bilinear", align_corners=False)
                x0 = refine_with_diffusion(denoise, prior, self.denoise_steps, self.ddim_steps, eta=self.eta,
                                           generator=generator, compat=self.scheduler.compat, scheduler=self.scheduler)
            total = x0.float() if total is None else total + x0.float()
        usable = torch.ones(len(total), dtype=torch.bool, device=total.device)
        if self.needs_gradcam:
            usable = batch["gradcam_valid"].bool()
        return minmax(total / self.samples), usable


class StudentTeacher(Teacher):
    """A supervised VAT / VAT-GC student's heatmap, min-max normalised."""

    def __init__(self, model, kind: str):
        self.model, self.kind = model, kind
        self.needs_gradcam = kind == "vat-gc"

    @torch.no_grad()
    def __call__(self, batch, generator):
        from gazecli.core.stages.train_student import student_forward

        out = student_forward(self.model, batch)["heatmap"].float()
        usable = batch["gradcam_valid"].bool() if self.needs_gradcam else torch.ones(len(out), dtype=torch.bool,
                                                                                        device=out.device)
        return minmax(out), usable


def load_teacher(kind: str, checkpoint: Path | None, device, sample: dict, denoise_steps: int, ddim_steps: int,
                 eta: float, samples: int, compat: bool | None, network: str | None = None) -> Teacher:
    """The teacher of `--teacher`, checked against what it is asked to do."""
    if kind == "gradcam":
        return GradcamTeacher()
    if checkpoint is None:
        raise SettingsError(f"--teacher {kind} needs --teacher-checkpoint")
    if kind in ("diffusion", "noise"):
        from gazecli.core.errors import DataError
        from gazecli.core.stages.train_diffusion import load_diffusion_prior

        try:
            net, scheduler, meta = load_diffusion_prior(checkpoint, device, network)
        except DataError as e:
            raise SettingsError(f"--teacher-checkpoint: {e} (--teacher {kind} needs a train-diffusion or "
                                f"mean-teacher run)") from None
        _check_views(meta, sample, checkpoint)
        if compat is not None:
            scheduler = scheduler.replace(compat=compat)
        if denoise_steps > scheduler.num_train_timesteps:
            raise SettingsError(f"--denoise-steps {denoise_steps}: the prior has only {scheduler.num_train_timesteps} "
                                f"noise levels")
        for p in net.parameters():
            p.requires_grad_(False)
        return DiffusionTeacher(net, scheduler, denoise_steps, ddim_steps, eta, samples, from_noise=kind == "noise")
    if kind in ("vat", "vat-gc"):
        from gazecli.core.stages.evaluate import load_trained_model

        model, meta = load_trained_model(checkpoint, device)
        name = (meta.get("model") or {}).get("name")
        if name != kind:
            raise SettingsError(f"--teacher-checkpoint {checkpoint}: a {name!r} checkpoint, but --teacher {kind} "
                                f"needs a {kind} student (gaze train-student --model {kind})")
        _check_views(meta, sample, checkpoint)
        for p in model.parameters():
            p.requires_grad_(False)
        return StudentTeacher(model, kind)
    raise SettingsError(f"--teacher {kind}: unknown teacher")


def _check_views(meta: dict, sample: dict, checkpoint) -> None:
    """The teacher reads the student's augmented view, so both must see the same input sizes."""
    theirs = meta.get("sample") or {}
    for key in ("input_size", "face_size", "heatmap_size"):
        if key in theirs and theirs[key] != sample[key]:
            raise SettingsError(f"--teacher-checkpoint {checkpoint}: the teacher was trained with {key.replace('_', '-')} "
                                f"{theirs[key]}, the student uses {sample[key]}; train both with the same sizes")
