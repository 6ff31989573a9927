"""`--teacher diffusion` (the method) and `--teacher noise` (its ablation).

diffusion: the Grad-CAM noised to `--denoise-steps` and denoised by the diffusion prior in
`--ddim-steps` DDIM steps (SDEdit), the prior's condition computed from the same augmented view;
noise: the prior sampled from pure noise in `--ddim-steps` steps, no Grad-CAM (what the prior
knows without the VQA). Both average `--teacher-samples` samples and min-max normalise them.
"""

from __future__ import annotations

import torch

from gazecli.core.diffusion.prior import DiffusionPrior, load_prior
from gazecli.core.errors import DataError, SettingsError
from gazecli.core.teachers.base import TeacherConfig, check_views, freeze, usable_rows


class DiffusionTeacher:
    """SDEdit refinement of the Grad-CAM (or, with from_noise, sampling from pure noise)."""

    def __init__(self, prior: DiffusionPrior, denoise_steps: int, ddim_steps: int, eta: float = 1.0,
                 samples: int = 1, from_noise: bool = False):
        self.prior = prior
        self.denoise_steps, self.ddim_steps, self.eta, self.samples = denoise_steps, ddim_steps, eta, samples
        self.from_noise = from_noise
        self.kind = "noise" if from_noise else "diffusion"
        self.needs_gradcam = not from_noise

    @torch.no_grad()
    def __call__(self, batch, generator):
        prior = self.prior
        condition = prior.condition(batch)
        device = batch["scene"].device

        def draw(_k: int) -> torch.Tensor:
            if self.from_noise:
                return prior.sample(condition, batch["scene"].shape[0], self.ddim_steps, self.eta, device,
                                    generator=generator)
            return prior.refine(condition, batch["gradcam"], self.denoise_steps, self.ddim_steps, self.eta, generator)

        heatmaps = prior.average(draw, self.samples)
        return heatmaps, usable_rows(batch, self.needs_gradcam, heatmaps)

    @classmethod
    def load(cls, config: TeacherConfig, device) -> "DiffusionTeacher":
        kind = config.kind
        try:
            prior, meta = load_prior(config.checkpoint, device, config.network)
        except DataError as e:
            raise SettingsError(f"--teacher-checkpoint: {e} (--teacher {kind} needs a train-diffusion or "
                                f"mean-teacher run)") from None
        check_views(meta, config.sample, config.checkpoint)
        if config.compat is not None:
            prior.scheduler = prior.scheduler.replace(compat=config.compat)
        if config.denoise_steps > prior.scheduler.num_train_timesteps:
            raise SettingsError(f"--denoise-steps {config.denoise_steps}: the prior has only "
                                f"{prior.scheduler.num_train_timesteps} noise levels")
        freeze(prior.network)
        return cls(prior, config.denoise_steps, config.ddim_steps, config.eta, config.samples,
                   from_noise=kind == "noise")
