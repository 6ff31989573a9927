"""`gaze mean-teacher`: the diffusion prior trained with Mean Teacher on labelled and unlabelled persons
(docs/design.md, "Mean Teacher").

Each batch holds `batch_size - labeled_batch_size` unlabelled persons followed by
`labeled_batch_size` labelled ones (`TwoStreamBatches`; an epoch is one pass over the unlabelled
persons). Every person is rendered twice (`TwoViewDataset`): the views share the crop and the flip
and have independent head-box jitter and colour.

- Teacher (an EMA of the student, `EMAPair`): view 2, a `--teacher-steps` DDIM sample from
  pure noise, without gradients.
- Student, one pass over view 1: labelled persons get their noised ground truth at t ~ U{1..T}
  (as in train-diffusion); unlabelled persons get pure noise at t = T.
- Loss: the supervised x0 loss on labelled in-frame persons (x 10000) + w(epoch) * consistency,
  where consistency is KL(softmax(teacher x0) || softmax(student x0)) over the pixels, per person,
  averaged over the persons it is on, and w(e) = 4000 exp(-5 (1 - clip(e, 0, R)/R)^2) (R = 5).
- After every optimiser step the teacher moves towards the student (`ema_alpha`).

Default (corrected) versus `--compat` (the official code):

| | default | --compat |
|---|---|---|
| teacher mode | eval() (BN running statistics, averaged with the parameters) | train() (batch statistics; its running statistics drift; parameters only are averaged) |
| unlabelled student input | x_T ~ N(0, I) mapped to [0,1] like every training input, (clamp(x_T, -s, s)/s + 1)/2: the sampler's first-step input | raw N(0, 1), not clamped or mapped |
| sampler (teacher and evaluation) | correct DDIM | official DDIM |
| consistency on | labelled in-frame + every unlabelled person (no label of an unlabelled person is read) | in-frame persons by the ground-truth in/out flag, unlabelled ones included (the dataset exposes their labels) |
| initial teacher | a copy of the student | its own random initialisation (identical to the student after the first step: alpha = 0) |

Both networks are saved in every checkpoint and both are evaluated (metrics `teacher_*` and
`student_*`); `--select-network` (teacher by default; the official code kept the student) picks
the one whose validation metric selects the best weights and that `gaze eval` and train-student use.
"""

from __future__ import annotations

import numpy as np
import torch

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.transforms import Augment
from gazecli.core.diffusion.prior import DiffusionPrior, load_prior, sampling_forward
from gazecli.core.diffusion.scheduler import HeatmapScheduler
from gazecli.core.engine.device import resolve_device
from gazecli.core.engine.distributed import unwrap
from gazecli.core.engine.precision import resolve_precision
from gazecli.core.engine.sampling import TwoStreamBatches
from gazecli.core.engine.trainer import Callback, Reporter, StepContext, TrainResult, TrainSpec, train
from gazecli.core.errors import SettingsError
from gazecli.core.losses import consistency_loss, consistency_weight, heatmap_mse
from gazecli.core.models.ema import EMAPair, ema_alpha
from gazecli.core.settings import MeanTeacherSettings, to_toml
from gazecli.core.stages.common import (heatmap_evaluator, init_encoder, prior_model_config, resolve_split, run_meta,
    sample_config, select_mode, world_batch)

VIEW_2 = ("scene", "face", "head_channel")  # returned again as scene_2, face_2, head_channel_2


class TwoViewDataset(GazeDataset):
    """Each person twice (docs/design.md, "Mean Teacher"; the official `GazeFollow_weakly_doubleaug`): view 1 is the usual
    sample; view 2 (`scene_2`, `face_2`, `head_channel_2`) shares its crop and flip and draws its own
    head-box jitter and colour. Labels are those of view 1 (the crop and flip are shared, so they
    hold for both)."""

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        image = self.load(index)
        first = self.draw(index, image, rng)
        other = self.draw(index, image, rng)  # its jitter and colour
        second = Augment(jitter=other.jitter, crop=first.crop, flip=first.flip, colour=other.colour)
        sample = self.render(index, image, first, self.reveal(index))
        view = self.render(index, image, second, self.reveal(index))
        sample.update({f"{k}_2": view[k] for k in VIEW_2})
        return sample


def mean_teacher_loss(scheduler: HeatmapScheduler, settings: MeanTeacherSettings):
    """loss_fn(net, batch, ctx) for the engine; `net` is the EMAPair (maybe DDP-wrapped).

    By default nothing of an unlabelled person's labels is read: its heatmap and in/out flag are
    replaced before use (the dataset hides them anyway). Random draws, all from ctx.generator, in
    this order: the teacher's sample, t, the labelled noise, the unlabelled student input."""
    T = scheduler.num_train_timesteps

    def loss_fn(net, batch: dict, ctx: StepContext):
        pair: EMAPair = unwrap(net)
        gen = ctx.generator
        labelled = batch["labelled"].bool()  # (B,)
        rows = labelled[:, None, None, None]
        if settings.compat:  # the official masks read the ground-truth in/out of every person
            heatmap, inout = batch["heatmap"].float(), batch["inout"]
        else:
            heatmap = batch["heatmap"].float()
            heatmap = torch.where(rows, heatmap, torch.zeros_like(heatmap))
            inout = torch.where(labelled, batch["inout"], torch.full_like(batch["inout"], -1.0))
        shape = tuple(heatmap.shape)  # (B, 1, h, w)

        with torch.no_grad():  # the teacher: view 2, DDIM from pure noise
            teacher = DiffusionPrior(pair.teacher, scheduler)
            teacher_x0 = teacher.sample(teacher.condition(batch, view="_2"), shape[0], settings.teacher_steps,
                                        settings.eta, heatmap.device, generator=gen)

        t = scheduler.sample_training_timesteps(shape[0], gen, heatmap.device)
        noise = torch.randn(shape, generator=gen, device=gen.device).to(heatmap.device)
        x_t, t_in = scheduler.training_inputs(heatmap, t, noise)  # labelled rows
        pure = torch.randn(shape, generator=gen, device=gen.device).to(heatmap.device)
        unlabelled_input = pure if settings.compat else scheduler.model_input(pure, T)[0]
        x_t = torch.where(rows, x_t, unlabelled_input)
        t_in = torch.where(labelled, t_in, torch.full_like(t_in, float(T)))
        student_x0 = net(x_t, t_in, batch["scene"], batch["head_channel"], batch["face"])

        supervised_on = labelled & (inout == 1) if settings.heatmap_loss_on == "in-frame" else labelled
        supervised = heatmap_mse(student_x0, heatmap, supervised_on, settings.loss_scale)
        consistent_on = (inout == 1) if settings.compat else (labelled & (inout == 1)) | ~labelled
        weight = consistency_weight(ctx.epoch, settings.consistency, settings.consistency_rampup)
        consistency = consistency_loss(student_x0, teacher_x0, consistent_on, settings.consistency_type)
        loss = supervised + weight * consistency
        return loss, {"x0_loss": float(supervised.detach()), "consistency": float(consistency.detach()),
                      "consistency_weight": weight}

    return loss_fn


class EMAUpdate(Callback):
    """The teacher moves towards the student after every optimiser step (`ema_alpha`)."""

    def __init__(self, pair: EMAPair, decay: float, every: int, buffers: bool):
        self.pair, self.decay, self.every, self.buffers = pair, decay, every, buffers

    def on_step_end(self, step: int, logs: dict) -> None:  # the engine's step is 1-based; the EMA rule counts from 0
        self.pair.update_teacher(ema_alpha(step - 1, self.decay, self.every), buffers=self.buffers)


def build_pair(settings: MeanTeacherSettings, reporter: Reporter | None):
    """(EMAPair, model config): from --from, else student from --init and the teacher a copy
    (--compat: its own initialisation, as the official code)."""
    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.models import build_model

    seed_everything(settings.seed)
    config = prior_model_config(settings)
    if settings.from_checkpoint is not None and settings.resume is None:
        prior, meta = load_prior(settings.from_checkpoint)
        network = prior.network
        saved = {k: meta["model"]["config"][k] for k in ("encoder", "denoiser", "scheduler")}
        if _comparable(saved) != _comparable(config):
            diff = sorted(f"{part}.{k}" for part in config for k in config[part]
                          if _comparable(saved)[part].get(k) != _comparable(config)[part].get(k))
            raise SettingsError(f"--from {settings.from_checkpoint}: trained with other sizes ({', '.join(diff)}); "
                                f"give the same size options (see its settings.toml)")
        config = saved
    config = {**config, "teacher_train_mode": settings.compat}
    pair = build_model("diffusion-mean-teacher", config)
    if settings.resume is not None:
        return pair, config
    if settings.from_checkpoint is not None:
        state = network.state_dict()
        pair.student.load_state_dict(state)
        pair.teacher.load_state_dict(state)
        if reporter:
            reporter.message(f"student and teacher start from {meta['path']}")
        return pair, config
    report = init_encoder(pair.student, settings)
    if report is not None and reporter:
        reporter.message(report.summary())
    if settings.compat:
        init_encoder(pair.teacher, settings)
    else:
        pair.teacher.load_state_dict(pair.student.state_dict())
    return pair, config


def _comparable(config: dict) -> dict:
    """Model config without what does not change the weights' shapes or meaning."""
    out = {k: dict(v) for k, v in config.items() if k in ("encoder", "denoiser", "scheduler")}
    out["denoiser"].pop("checkpointing", None)
    out["denoiser"]["channel_mult"] = list(out["denoiser"]["channel_mult"])
    out["denoiser"]["attention_resolutions"] = list(out["denoiser"]["attention_resolutions"])
    return out


def mean_teacher(settings: MeanTeacherSettings, reporter: Reporter | None = None) -> TrainResult:
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    train_table, split, note = resolve_split(settings, reporter)
    if not split.unlabelled.any():
        raise SettingsError("the label split has no unlabelled persons: mean-teacher needs some (lower --ratio)")
    pair, config = build_pair(settings, reporter)
    scheduler = HeatmapScheduler.from_config(config, compat=settings.compat)

    dataset = TwoViewDataset(train_table, sample_config(settings, settings.augment), labelled=split.labelled,
                             seed=settings.seed, expose_unlabelled_labels=settings.compat)
    from gazecli.core.engine.distributed import env_info

    info = env_info()
    batches = TwoStreamBatches(np.flatnonzero(split.unlabelled), np.flatnonzero(split.labelled),
                               world_batch(settings.batch_size, "--batch-size"),
                               world_batch(settings.labeled_batch_size, "--labeled-batch-size"),
                               seed=settings.seed, rank=info.rank, world_size=info.world_size)
    if len(batches) == 0:
        raise SettingsError(f"fewer unlabelled persons ({int(split.unlabelled.sum())}) than one batch needs "
                            f"({settings.batch_size - settings.labeled_batch_size})")
    optimizer = torch.optim.Adam(pair.student.parameters(), lr=settings.lr)

    evaluate_network = {
        name: heatmap_evaluator(settings, sampling_forward(lambda m, name=name: m.network(name), scheduler,
                                                   settings.inference_steps, settings.eta, settings.seed,
                                                   settings.inference_samples),
                        train_table, split, device, precision)
        for name in ("teacher", "student")}

    def evaluate(model, split_name: str) -> dict:
        metrics: dict = {}
        for name, fn in evaluate_network.items():
            metrics.update({f"{name}_{k}": v for k, v in fn(model, split_name).items()})
        chosen = settings.select_network
        metrics.update({k: metrics[f"{chosen}_{k}"] for k in ("auc", "avg_l2", "min_l2", "n")})
        return metrics

    spec = TrainSpec(
        command="mean-teacher", settings=settings, settings_toml=to_toml(settings), model=pair,
        model_meta={"name": "diffusion-mean-teacher", "config": config}, optimizer=optimizer, dataset=dataset,
        batches=batches, loss_fn=mean_teacher_loss(scheduler, settings), epochs=settings.epochs,
        evaluate_fn=evaluate, select_metric=settings.select_metric,
        select_mode=select_mode(settings.select_metric), select_on=settings.select_on,
        eval_every=settings.eval_every, checkpoint_every=settings.checkpoint_every,
        callbacks=[EMAUpdate(pair, settings.ema_decay, settings.ema_every, buffers=not settings.compat)],
        extra_meta={**run_meta(settings, note), "network": settings.select_network},
    )
    return train(spec, device, precision, settings.seed, settings.project, settings.name, settings.resume,
                 settings.workers, reporter)
