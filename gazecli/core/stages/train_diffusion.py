"""`gaze train-diffusion`: the conditional heatmap diffusion prior on the labelled split (method-spec §3).

x0-prediction: a labelled person's target heatmap x0 is noised to t ~ U{1..T} (`HeatmapScheduler.
training_inputs`) and the denoiser, conditioned on the scene+head encoder, predicts x0; the loss is
the per-person MSE over the map, averaged over in-frame labelled persons, x 10000 (`--onlyin`).
All noise comes from the engine's per-step generator, so a resumed run is the same run.

Evaluation samples every person from pure noise with `--inference-steps` DDIM steps (eta from
the settings; `--compat`: the official sampler) and scores the min-max normalised x0 with the
standard metrics. Sampling noise is drawn per person from a generator seeded by (seed, person
index), so the numbers depend neither on the batch size nor on the number of processes, and
`gaze eval --checkpoint` reproduces them.

Also here, for the commands that use a trained prior (mean-teacher, train-student):
`load_diffusion_prior(checkpoint)` -> (network, scheduler, meta), `sample_heatmaps`,
`build_scheduler`.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.splits import resolve_label_split
from gazecli.core.diffusion import HeatmapScheduler
from gazecli.core.engine.device import resolve_device
from gazecli.core.engine.precision import resolve_precision
from gazecli.core.engine.sampling import EpochBatches
from gazecli.core.engine.trainer import Reporter, StepContext, TrainResult, TrainSpec, train
from gazecli.core.errors import DataError, SettingsError
from gazecli.core.settings import DiffusionSettings, TrainDiffusionSettings, to_toml
from gazecli.core.stages.teachers import minmax
from gazecli.core.stages.train_student import evaluator, heatmap_mse, sample_config



# ------------------------------------------------------------------------------------------ model
def model_config(settings: DiffusionSettings) -> dict:
    """{"encoder": VATConfig fields, "denoiser": DenoiserConfig fields, "scheduler": HeatmapScheduler
    fields}: what `build_model("diffusion", ...)` and `build_scheduler` rebuild from a checkpoint."""
    encoder = {"backbone": settings.backbone, "input_size": settings.input_size, "face_size": settings.face_size,
               "heatmap_size": settings.heatmap_size, "inout": False, "coords": bool(settings.coords)}
    if settings.encoder == "gw-student":  # the GazeWorld student's trunk (docs/gazeworld.md)
        from gazecli.core.models.gazeworld_student import encoder_config

        encoder = encoder_config(settings)
    denoiser = {"image_size": settings.heatmap_size, "model_channels": settings.model_channels,
                "channel_mult": list(settings.channel_mult), "num_res_blocks": settings.num_res_blocks,
                "attention_resolutions": list(settings.attention_resolutions), "num_heads": settings.num_heads,
                "norm_groups": settings.norm_groups, "checkpointing": settings.gradient_checkpointing}
    scheduler = {"num_train_timesteps": settings.diffusion_steps, "beta_start": 1e-4, "beta_end": 0.02,
                 "scale": settings.noise_scale, "clamp": True}
    return {"encoder": encoder, "denoiser": denoiser, "scheduler": scheduler}


def build_scheduler(config: dict, compat: bool = False) -> HeatmapScheduler:
    """The noise process of a model config (its "scheduler" part, or the whole config)."""
    config = config.get("scheduler", config)
    known = {f.name for f in fields(HeatmapScheduler)}
    return HeatmapScheduler(**{k: v for k, v in config.items() if k in known and k != "compat"}, compat=compat)


def init_encoder(network, settings: DiffusionSettings):
    """`--init` for the scene+head encoder (names follow Chong et al., so their file loads by name)."""
    from gazecli.core.models.init import initialise

    return initialise(network.encoder, settings.init, settings.backbone)


# ------------------------------------------------------------------------------------------ sampling
def person_noise(indices: torch.Tensor, seed: int, shape: tuple, device, dtype=torch.float32,
                 stream: int = 0) -> Callable[[], torch.Tensor]:
    """draw() -> (B, *shape) standard normal noise, row i from its own CPU generator seeded by
    (seed, stream, indices[i]): a person's samples do not depend on who shares its batch."""
    seeds = [int(np.random.SeedSequence([int(seed), int(stream), int(i)]).generate_state(1)[0]) for i in indices.tolist()]
    gens = [torch.Generator().manual_seed(s) for s in seeds]

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device=device, dtype=dtype)

    return draw


def sample_from_noise(denoise_fn, scheduler: HeatmapScheduler, noise: Callable[[], torch.Tensor], n_steps: int,
                      eta: float) -> torch.Tensor:
    """`scheduler.sample` from pure noise, with the noise supplied by `noise()` (same order: x_T,
    then one z per step when eta > 0). Returns the x0 of the last step, (B,1,H,W), [0,1] space."""
    timesteps = scheduler.set_timesteps(n_steps).tolist()
    x = noise()
    pred_x0 = x
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else 0
        x_in, t_in = scheduler.model_input(x, t)
        x0_hat = denoise_fn(x_in, t_in).to(x.dtype)
        x, pred_x0 = scheduler.step(x0_hat, t, t_prev, x, eta=eta, noise=noise() if eta > 0 else None)
    return pred_x0


@torch.no_grad()
def sample_heatmaps(network, scheduler: HeatmapScheduler, batch: dict, n_steps: int, eta: float,
                    seed: int, n_samples: int = 1) -> torch.Tensor:
    """Each person's heatmap sampled from pure noise by `network` (a GazeDiffusionModel), the mean
    of `n_samples` samples (the official --inference_times): (B,1,H,W), min-max normalised as the
    official evaluation does."""
    condition = network.condition(batch["scene"], batch["head_channel"], batch["face"])
    size = network.unet.config.image_size
    total = 0.0
    for k in range(n_samples):
        noise = person_noise(batch["index"], seed, (1, size, size), batch["scene"].device, stream=k)
        total = total + sample_from_noise(lambda x, t: network.denoise(x, t, condition), scheduler, noise, n_steps,
                                          eta).float()
    return minmax(total / n_samples)


def sampling_forward(network_of: Callable, scheduler: HeatmapScheduler, n_steps: int, eta: float, seed: int,
                     n_samples: int = 1):
    """forward(model, batch) -> {"heatmap", "inout": None} for the engine's evaluator and for
    `gaze eval`; `network_of(model)` picks the GazeDiffusionModel (the model itself, or a mean
    teacher's student / teacher)."""
    def forward(model, batch: dict) -> dict:
        heatmap = sample_heatmaps(network_of(model), scheduler, batch, n_steps, eta, seed, n_samples)
        return {"heatmap": heatmap, "inout": None}

    return forward


def prior_network(model, meta: dict, network: str | None = None):
    """The GazeDiffusionModel of a loaded diffusion checkpoint (a mean-teacher checkpoint holds
    two: `network` or the run's --select-network)."""
    name = (meta.get("model") or {}).get("name")
    if name == "diffusion":
        return model
    if name == "diffusion-mean-teacher":
        return model.network(network or (meta.get("settings") or {}).get("select_network", "teacher"))
    raise DataError(f"{meta.get('path', 'checkpoint')}: a {name!r} checkpoint, not a diffusion prior "
                    f"(gaze train-diffusion or gaze mean-teacher)")


def prior_forward(model, meta: dict) -> Callable[[dict], dict]:
    """batch -> {"heatmap", "inout"} for `gaze eval --checkpoint`: sampling from pure noise with the
    run's --inference-steps, --eta, --compat and --seed."""
    s = meta.get("settings") or {}
    scheduler = build_scheduler(meta["model"]["config"], compat=bool(s.get("compat", False)))
    network = prior_network(model, meta)
    forward = sampling_forward(lambda m: m, scheduler, int(s.get("inference_steps", 10)), float(s.get("eta", 1.0)),
                               int(s.get("seed", 0)), int(s.get("inference_samples", 1)))
    return lambda batch: forward(network, batch)


def load_diffusion_prior(checkpoint: Path, device=None, network: str | None = None):
    """(GazeDiffusionModel in eval mode, HeatmapScheduler in the run's sampler mode, checkpoint meta)
    from a train-diffusion or mean-teacher run folder or weights file."""
    from gazecli.core.stages.evaluate import load_trained_model

    model, meta = load_trained_model(checkpoint, device)
    net = prior_network(model, meta, network)
    net.eval()
    s = meta.get("settings") or {}
    return net, build_scheduler(meta["model"]["config"], compat=bool(s.get("compat", False))), meta


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


def resolve_split(settings: DiffusionSettings, reporter: Reporter | None):
    train_table = read_gazefollow(settings.data, "train")
    split, note = resolve_label_split(settings.data, train_table, settings.ratio, settings.split_dir,
                                      settings.split_seed, settings.val_fraction)
    if reporter:
        reporter.message(f"labels: {note}: {int(split.labelled.sum())} labelled, {int(split.val.sum())} "
                         f"validation, {int(split.unlabelled.sum())} unlabelled persons")
    return train_table, split, note


def run_meta(settings: DiffusionSettings, note: str) -> dict:
    """What a checkpoint records besides the model: the sample format and the label split."""
    return {"sample": asdict(sample_config(settings, False)), "data": str(Path(settings.data)),
            "split": {"ratio": settings.ratio, "seed": settings.split_seed, "val_fraction": settings.val_fraction,
                      "dir": str(settings.split_dir) if settings.split_dir else None, "source": note}}


def world_batch(size: int, what: str) -> int:
    from gazecli.core.engine.distributed import env_info

    world = env_info().world_size
    if size % world:
        raise SettingsError(f"{what} {size} must be divisible by the {world} processes")
    return size // world


def train_diffusion(settings: TrainDiffusionSettings, reporter: Reporter | None = None) -> TrainResult:
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    train_table, split, note = resolve_split(settings, reporter)

    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.models import build_model

    seed_everything(settings.seed)  # before the model exists: its initial weights follow the seed
    config = model_config(settings)
    model = build_model("diffusion", config)
    if settings.resume is None:
        report = init_encoder(model, settings)
        if report is not None and reporter:
            reporter.message(report.summary())
    scheduler = build_scheduler(config, compat=settings.compat)

    dataset = GazeDataset(train_table, sample_config(settings, settings.augment), labelled=split.labelled,
                          seed=settings.seed)
    from gazecli.core.engine.distributed import env_info

    info = env_info()
    batches = EpochBatches(np.flatnonzero(split.labelled), world_batch(settings.batch_size, "--batch-size"),
                           seed=settings.seed, rank=info.rank, world_size=info.world_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)  # spec §8: no schedule, no weight decay
    forward = sampling_forward(lambda m: m, scheduler, settings.inference_steps, settings.eta, settings.seed,
                               settings.inference_samples)

    spec = TrainSpec(
        command="train-diffusion", settings=settings, settings_toml=to_toml(settings), model=model,
        model_meta={"name": "diffusion", "config": config}, optimizer=optimizer, dataset=dataset, batches=batches,
        loss_fn=lambda net, batch, ctx: x0_loss(net, scheduler, batch, ctx, settings), epochs=settings.epochs,
        evaluate_fn=evaluator(settings, forward, train_table, split, device, precision),
        select_metric=settings.select_metric, select_mode="max" if settings.select_metric == "auc" else "min",
        select_on=settings.select_on, eval_every=settings.eval_every, checkpoint_every=settings.checkpoint_every,
        extra_meta=run_meta(settings, note),
    )
    return train(spec, device, precision, settings.seed, settings.project, settings.name, settings.resume,
                 settings.workers, reporter)
