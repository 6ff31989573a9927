"""`gaze train-student`: the VAT / VAT-GC student on the shared engine.

Supervised mode (`--teacher none`) trains on the labelled part of the split only: the paper's
"VAT" baselines (method-spec §8, first row); `--ratio 1.0` uses every label.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.splits import LabelSplit, resolve_label_split
from gazecli.core.data.transforms import SampleConfig
from gazecli.core.engine.device import resolve_device
from gazecli.core.engine.inference import predict_dataset
from gazecli.core.engine.precision import resolve_precision
from gazecli.core.engine.sampling import EpochBatches
from gazecli.core.engine.trainer import Reporter, StepContext, TrainResult, TrainSpec, train
from gazecli.core.errors import SettingsError
from gazecli.core.settings import TrainSettings, TrainStudentSettings, to_toml
from gazecli.core.stages.evaluate import score_predictions


def sample_config(settings: TrainSettings, augment: bool) -> SampleConfig:
    return SampleConfig(input_size=settings.input_size, face_size=settings.face_size,
                        heatmap_size=settings.heatmap_size, sigma=settings.sigma, augment=augment)


def model_config(settings: TrainStudentSettings) -> dict:
    return {"backbone": settings.backbone, "input_size": settings.input_size, "face_size": settings.face_size,
            "heatmap_size": settings.heatmap_size, "inout": settings.inout_weight > 0}


def student_forward(model, batch: dict) -> dict:
    """The student's outputs for a batch: {"heatmap": (B,1,h,w), "inout": (B,) logits or None}."""
    return model(batch["scene"], batch["head_channel"], batch["face"], batch.get("gradcam"))


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-person mean squared error over the map, averaged over the selected persons, x scale.
    Selection is by indexing, so a NaN outside the selection never reaches the loss."""
    per_person = ((pred.float() - target.float()) ** 2).flatten(1).mean(dim=1)  # (B,)
    chosen = per_person[mask]
    if chosen.numel() == 0:
        return pred.sum() * 0.0
    return chosen.mean() * scale


def evaluator(settings: TrainSettings, forward, train_table, split: LabelSplit, device, precision: str):
    """split name -> metrics, for the engine: 'val' (held-out labelled images) or 'test'."""
    cfg = sample_config(settings, augment=False)
    cache: dict = {}

    def evaluate(model, name: str) -> dict:
        if name not in cache:
            if name == "val":
                table = train_table.subset(split.val)
                if len(table) == 0:
                    raise SettingsError("the validation split is empty: raise --val-fraction or use --select-on test")
            else:
                table = read_gazefollow(settings.data, "test")
            cache[name] = GazeDataset(table, cfg, seed=settings.seed)
        dataset = cache[name]
        was_training = model.training
        model.eval()
        preds = predict_dataset(lambda b: forward(model, b), dataset, settings.eval_batch_size, device, precision,
                                settings.workers)
        model.train(was_training)
        result = score_predictions(dataset.table, preds, "native", str(device), 256)
        return {k: v for k, v in result.items() if k in ("auc", "avg_l2", "min_l2", "n")}

    return evaluate


def train_student(settings: TrainStudentSettings, reporter: Reporter | None = None) -> TrainResult:
    if settings.model == "vat-gc":
        raise SettingsError("--model vat-gc needs Grad-CAM maps (gaze gradcam), which this command does not read yet")
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    train_table = read_gazefollow(settings.data, "train")
    split, split_note = resolve_label_split(settings.data, train_table, settings.ratio, settings.split_dir,
                                            settings.split_seed, settings.val_fraction)
    if reporter:
        reporter.message(f"labels: {split_note}: {int(split.labelled.sum())} labelled, {int(split.val.sum())} "
                         f"validation, {int(split.unlabelled.sum())} unlabelled persons")

    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.models import build_model
    from gazecli.core.models.init import initialise

    seed_everything(settings.seed)  # before the model exists: its initial weights follow the seed
    config = model_config(settings)
    model = build_model(settings.model, config)
    report = initialise(model, settings.init, settings.backbone) if settings.resume is None else None
    if report is not None and reporter:
        reporter.message(report.summary())

    dataset = GazeDataset(train_table, sample_config(settings, settings.augment), labelled=split.labelled,
                          seed=settings.seed)
    from gazecli.core.engine.distributed import env_info

    info = env_info()
    if settings.batch_size % info.world_size:
        raise SettingsError(f"--batch-size {settings.batch_size} must be divisible by the {info.world_size} processes")
    batches = EpochBatches(np.flatnonzero(split.labelled), settings.batch_size // info.world_size, seed=settings.seed,
                           rank=info.rank, world_size=info.world_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=settings.milestones, gamma=settings.gamma)

    def loss_fn(net, batch, ctx: StepContext):
        out = student_forward(net, batch)
        inside = batch["inout"] == 1
        mask = inside if settings.heatmap_loss_on == "in-frame" else batch["labelled"]
        loss = heatmap_mse(out["heatmap"], batch["heatmap"], mask, settings.loss_scale)
        logs = {"heatmap_loss": float(loss.detach())}
        if settings.inout_weight > 0:
            known = batch["inout"] >= 0
            inout_loss = F.binary_cross_entropy_with_logits(out["inout"][known].float(), batch["inout"][known].float()) \
                if known.any() else out["inout"].sum() * 0.0
            loss = loss + settings.inout_weight * inout_loss
            logs["inout_loss"] = float(inout_loss.detach())
        return loss, logs

    spec = TrainSpec(
        command="train-student", settings=settings, settings_toml=to_toml(settings), model=model,
        model_meta={"name": settings.model, "config": config}, optimizer=optimizer, scheduler=scheduler,
        dataset=dataset, batches=batches, loss_fn=loss_fn, epochs=settings.epochs,
        evaluate_fn=evaluator(settings, student_forward, train_table, split, device, precision),
        select_metric=settings.select_metric, select_mode="max" if settings.select_metric == "auc" else "min",
        select_on=settings.select_on, eval_every=settings.eval_every, checkpoint_every=settings.checkpoint_every,
        extra_meta={"sample": asdict(sample_config(settings, False)), "data": str(Path(settings.data)),
                    "split": {"ratio": settings.ratio, "seed": settings.split_seed, "val_fraction": settings.val_fraction,
                              "dir": str(settings.split_dir) if settings.split_dir else None, "source": split_note}},
    )
    return train(spec, device, precision, settings.seed, settings.project, settings.name, settings.resume,
                 settings.workers, reporter)
