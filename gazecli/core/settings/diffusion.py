"""Settings of the diffusion annotation prior: `gaze train-diffusion` and `gaze mean-teacher`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gazecli.core.settings.base import IntList, cli
from gazecli.core.settings.train import TrainSettings


class DiffusionSettings(TrainSettings):
    """Options of the conditional heatmap diffusion model (docs/design.md, "Diffusion prior"), shared by
    train-diffusion and mean-teacher. The denoiser's image size is --heatmap-size."""

    init: str = Field("random", description="initial weights of the scene+head encoder: random, imagenet, or a file "
                                            "(e.g. Chong et al.'s initial_weights_for_spatial_training.pt)")
    epochs: int | None = Field(None, ge=1, description="training epochs (default: the paper's for --ratio)")
    model_channels: int | None = Field(None, ge=1, description="UNet base channels (preset; paper 64)",
                                       json_schema_extra=cli(panel="Denoiser"))
    channel_mult: IntList | None = Field(None, description="UNet channel multiplier per level, comma-separated "
                                                           "(preset; paper 1,2,3,4)",
                                         json_schema_extra=cli(panel="Denoiser"))
    num_res_blocks: int | None = Field(None, ge=1, description="residual blocks per UNet level (preset; paper 2)",
                                       json_schema_extra=cli(panel="Denoiser"))
    attention_resolutions: IntList | None = Field(
        None, description="feature-map sides with self-attention, comma-separated (preset; paper 16,8)",
        json_schema_extra=cli(panel="Denoiser"))
    num_heads: int | None = Field(None, ge=1, description="attention heads (preset; paper 4)",
                                  json_schema_extra=cli(panel="Denoiser"))
    norm_groups: int | None = Field(None, ge=1, description="GroupNorm groups of the UNet (preset; paper 32)",
                                    json_schema_extra=cli(panel="Denoiser"))
    coords: bool | None = Field(None, description="head-relative coordinate channels on the encoder's scene input "
                                "(CoordConv; preset: on for GazeWorld, off for the paper's model)",
                                json_schema_extra=cli(panel="Denoiser"))
    gradient_checkpointing: bool = Field(False, description="recompute attention in the backward pass (saves memory; "
                                                            "the official code always does)",
                                         json_schema_extra=cli(panel="Denoiser"))
    diffusion_steps: int = Field(500, ge=2, description="T, noising steps of the linear schedule",
                                 json_schema_extra=cli(panel="Diffusion"))
    noise_scale: float = Field(2.0, gt=0, description="s of the input mapping x' = (2 x - 1) s",
                               json_schema_extra=cli(panel="Diffusion"))
    inference_steps: int = Field(10, ge=1, description="DDIM steps when sampling from pure noise for evaluation",
                                 json_schema_extra=cli(panel="Diffusion"))
    eta: float = Field(1.0, ge=0, description="DDIM eta (1: stochastic, as the official default; 0: deterministic)",
                       json_schema_extra=cli(panel="Diffusion"))
    inference_samples: int = Field(1, ge=1, description="samples averaged per person when evaluating (the official "
                                                        "--inference_times)", json_schema_extra=cli(panel="Diffusion"))
    compat: bool = Field(False, description="reproduce the official code's sampler (and, for mean-teacher, its "
                                            "teacher/student choices) instead of the corrected behaviour",
                         json_schema_extra=cli(panel="Diffusion"))
    heatmap_loss_on: Literal["in-frame", "all"] = Field(
        "in-frame", description="labelled persons in the x0 loss (in-frame: the official --onlyin)")
    loss_scale: float = Field(10000.0, gt=0, description="the x0 MSE is multiplied by this (official 10000)")

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":  # a 0.28 M-parameter UNet at 32x32 that trains on a CPU in minutes
            values.update(model_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attention_resolutions=[8],
                          num_heads=4, norm_groups=8, coords=True)
        else:  # the paper's denoiser
            values.update(model_channels=64, channel_mult=[1, 2, 3, 4], num_res_blocks=2,
                          attention_resolutions=[16, 8], num_heads=4, norm_groups=32, coords=False)
        return values

    @classmethod
    def paper_epochs(cls, ratio: float) -> int:
        return 150 if ratio < 0.2 else 100

    @model_validator(mode="after")
    def _check_diffusion(self):
        if self.epochs is None:
            self.epochs = self.paper_epochs(self.ratio)
        if self.inference_steps > self.diffusion_steps:
            raise ValueError(f"--inference-steps ({self.inference_steps}) exceeds --diffusion-steps "
                             f"({self.diffusion_steps})")
        from gazecli.core.models.configs import DenoiserConfig

        try:
            DenoiserConfig(image_size=self.heatmap_size, model_channels=self.model_channels,
                           channel_mult=tuple(self.channel_mult), num_res_blocks=self.num_res_blocks,
                           attention_resolutions=tuple(self.attention_resolutions), num_heads=self.num_heads,
                           norm_groups=self.norm_groups)
        except ValueError as e:
            raise ValueError(f"denoiser sizes: {e}") from None
        return self


class TrainDiffusionSettings(DiffusionSettings):
    """gaze train-diffusion"""

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":
            values.update(epochs=60, batch_size=32, lr=1e-3, eval_every=5, eval_batch_size=128)
        else:  # the official code: Adam 5e-5, batch 48, evaluation every 2 epochs
            values.update(batch_size=48, lr=5e-5, eval_every=2)
        return values


class MeanTeacherSettings(DiffusionSettings):
    """gaze mean-teacher"""

    labeled_batch_size: int | None = Field(None, ge=1, description="labelled persons in each batch (preset; paper 10 "
                                                                   "of 40)")
    from_checkpoint: Path | None = Field(
        None, description="start student and teacher from this train-diffusion (or mean-teacher) run folder or "
                          "weights file (the official code starts from scratch)", json_schema_extra=cli(short="--from"))
    consistency: float = Field(4000.0, ge=0, description="weight of the consistency loss after the ramp-up",
                               json_schema_extra=cli(panel="Mean Teacher"))
    consistency_type: Literal["kl", "mse"] = Field(
        "kl", description="kl: KL(teacher || student) of the pixel softmaxes; mse: of the raw maps",
        json_schema_extra=cli(panel="Mean Teacher"))
    consistency_rampup: int = Field(5, ge=0, description="epochs of the sigmoid ramp-up of the consistency weight",
                                    json_schema_extra=cli(panel="Mean Teacher"))
    ema_decay: float = Field(0.99, ge=0, le=1, description="largest EMA factor of the teacher",
                             json_schema_extra=cli(panel="Mean Teacher"))
    ema_every: int = Field(15, ge=1, description="the EMA warm-up counts one step per N optimiser steps: "
                                                 "alpha = min(1 - 1/(step // N + 1), decay)",
                           json_schema_extra=cli(panel="Mean Teacher"))
    teacher_steps: int = Field(10, ge=1, description="DDIM steps of the teacher's sample from pure noise",
                               json_schema_extra=cli(panel="Mean Teacher"))
    select_network: Literal["teacher", "student"] = Field(
        "teacher", description="network whose validation metric selects the best weights and that eval / "
                               "train-student use (the official code kept the student)",
        json_schema_extra=cli(panel="Mean Teacher"))

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":
            values.update(epochs=8, batch_size=40, labeled_batch_size=10, lr=1e-3, eval_every=2,
                          eval_batch_size=128)
        else:  # the official code: Adam 5e-5, 40 persons of which 10 labelled
            values.update(batch_size=40, labeled_batch_size=10, lr=5e-5, eval_every=2)
        return values

    @classmethod
    def paper_epochs(cls, ratio: float) -> int:
        return 40 if ratio <= 0.05 else 60 if ratio <= 0.1 else 80

    @model_validator(mode="after")
    def _check_mean_teacher(self):
        if self.ratio >= 1.0:
            raise ValueError("mean-teacher needs unlabelled persons: --ratio must be below 1")
        if not self.labeled_batch_size < self.batch_size:
            raise ValueError(f"--labeled-batch-size ({self.labeled_batch_size}) must be smaller than --batch-size "
                             f"({self.batch_size})")
        if self.teacher_steps > self.diffusion_steps:
            raise ValueError(f"--teacher-steps ({self.teacher_steps}) exceeds --diffusion-steps ({self.diffusion_steps})")
        return self
