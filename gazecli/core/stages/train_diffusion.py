"""`gaze train-diffusion`: the conditional heatmap diffusion prior on the labelled split (docs/design.md, "Diffusion prior").

x0-prediction: a labelled person's target heatmap x0 is noised to t ~ U{1..T} (`HeatmapScheduler.
training_inputs`) and the denoiser, conditioned on the scene+head encoder, predicts x0; the loss is
the per-person MSE over the map, averaged over in-frame labelled persons, x 10000 (`--onlyin`).
All noise comes from the engine's per-step generator, so a resumed run is the same run.

Evaluation samples every person from pure noise with `--inference-steps` DDIM steps (eta from
the settings; `--compat`: the official sampler) and scores the min-max normalised x0 with the
standard metrics. Sampling noise is drawn per person from a generator seeded by (seed, person
index), so the numbers depend neither on the batch size nor on the number of processes, and
`gaze eval --checkpoint` reproduces them.

A trained prior is loaded with `diffusion.prior.load_prior` (mean-teacher, train-student's teachers).
"""

from __future__ import annotations

import numpy as np
import torch

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.diffusion.prior import sampling_forward
from gazecli.core.diffusion.scheduler import HeatmapScheduler
from gazecli.core.engine.device import resolve_device
from gazecli.core.engine.precision import resolve_precision
from gazecli.core.engine.sampling import EpochBatches
from gazecli.core.engine.trainer import Reporter, StepContext, TrainResult, TrainSpec, train
from gazecli.core.losses import heatmap_mse
from gazecli.core.settings import DiffusionSettings, TrainDiffusionSettings, to_toml
from gazecli.core.stages.common import (heatmap_evaluator, init_encoder, prior_model_config, resolve_split, run_meta,
    sample_config, select_mode, world_batch)


# ------------------------------------------------------------------------------------------ training
def x0_loss(net, scheduler: HeatmapScheduler, batch: dict, ctx: StepContext, settings: DiffusionSettings):
    """The official diffusion loss on labelled persons: t ~ U{1..T}, x_t from the target x0, the
    network predicts x0, per-person MSE averaged over the persons the loss is on, x loss_scale."""
    x0 = batch["heatmap"].float()  # (B,1,h,w), [0,1]
    t = scheduler.sample_training_timesteps(x0.shape[0], ctx.generator, x0.device)
    noise = torch.randn(x0.shape, generator=ctx.generator, device=ctx.generator.device).to(x0.device)
    x_t, t_in = scheduler.training_inputs(x0, t, noise)
    pred = net(x_t, t_in, batch["scene"], batch["head_channel"], batch["face"])
    mask = batch["labelled"].bool()
    if settings.heatmap_loss_on == "in-frame":
        mask = mask & (batch["inout"] == 1)
    loss = heatmap_mse(pred, x0, mask, settings.loss_scale)
    return loss, {"x0_loss": float(loss.detach())}


def train_diffusion(settings: TrainDiffusionSettings, reporter: Reporter | None = None) -> TrainResult:
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    train_table, split, note = resolve_split(settings, reporter)

    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.models import build_model

    seed_everything(settings.seed)  # before the model exists: its initial weights follow the seed
    config = prior_model_config(settings)
    model = build_model("diffusion", config)
    if settings.resume is None:
        report = init_encoder(model, settings)
        if report is not None and reporter:
            reporter.message(report.summary())
    scheduler = HeatmapScheduler.from_config(config, compat=settings.compat)

    dataset = GazeDataset(train_table, sample_config(settings, settings.augment), labelled=split.labelled,
                          seed=settings.seed)
    from gazecli.core.engine.distributed import env_info

    info = env_info()
    batches = EpochBatches(np.flatnonzero(split.labelled), world_batch(settings.batch_size, "--batch-size"),
                           seed=settings.seed, rank=info.rank, world_size=info.world_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)  # as the official code: no schedule, no weight decay
    forward = sampling_forward(lambda m: m, scheduler, settings.inference_steps, settings.eta, settings.seed,
                               settings.inference_samples)

    spec = TrainSpec(
        command="train-diffusion", settings=settings, settings_toml=to_toml(settings), model=model,
        model_meta={"name": "diffusion", "config": config}, optimizer=optimizer, dataset=dataset, batches=batches,
        loss_fn=lambda net, batch, ctx: x0_loss(net, scheduler, batch, ctx, settings), epochs=settings.epochs,
        evaluate_fn=heatmap_evaluator(settings, forward, train_table, split, device, precision),
        select_metric=settings.select_metric, select_mode=select_mode(settings.select_metric),
        select_on=settings.select_on, eval_every=settings.eval_every, checkpoint_every=settings.checkpoint_every,
        extra_meta=run_meta(settings, note),
    )
    return train(spec, device, precision, settings.seed, settings.project, settings.name, settings.resume,
                 settings.workers, reporter)
