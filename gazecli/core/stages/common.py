"""What several training stages share: the sample format and label split of a run, what a
checkpoint records besides the weights, the diffusion prior's model config, and the evaluator the
engine calls on the validation or test split."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.splits import LabelSplit, resolve_label_split
from gazecli.core.data.transforms import SampleConfig
from gazecli.core.diffusion.scheduler import HeatmapScheduler
from gazecli.core.engine.inference import predict_dataset
from gazecli.core.errors import SettingsError
from gazecli.core.metrics import score_predictions
from gazecli.core.settings import DiffusionSettings, TrainSettings


def sample_config(settings: TrainSettings, augment: bool) -> SampleConfig:
    return SampleConfig(input_size=settings.input_size, face_size=settings.face_size,
                        heatmap_size=settings.heatmap_size, sigma=settings.sigma, augment=augment)


def resolve_split(settings: TrainSettings, reporter=None):
    """(train table, LabelSplit, where the split came from) of --ratio / --split-dir / --split-seed."""
    train_table = read_gazefollow(settings.data, "train")
    split, note = resolve_label_split(settings.data, train_table, settings.ratio, settings.split_dir,
                                      settings.split_seed, settings.val_fraction)
    if reporter:
        reporter.message(split_summary(split, note))
    return train_table, split, note


def split_summary(split: LabelSplit, note: str) -> str:
    return (f"labels: {note}: {int(split.labelled.sum())} labelled, {int(split.val.sum())} validation, "
            f"{int(split.unlabelled.sum())} unlabelled persons")


def run_meta(settings: TrainSettings, note: str) -> dict:
    """What a checkpoint records besides the model: the sample format and the label split."""
    return {"sample": asdict(sample_config(settings, False)), "data": str(Path(settings.data)),
            "split": {"ratio": settings.ratio, "seed": settings.split_seed, "val_fraction": settings.val_fraction,
                      "dir": str(settings.split_dir) if settings.split_dir else None, "source": note}}


def world_batch(size: int, what: str) -> int:
    """A global batch size split over the processes (it must divide)."""
    from gazecli.core.engine.distributed import env_info

    world = env_info().world_size
    if size % world:
        raise SettingsError(f"{what} {size} must be divisible by the {world} processes")
    return size // world


def select_mode(metric: str) -> str:
    return "max" if metric == "auc" else "min"


# ------------------------------------------------------------------------------------------ the prior
def prior_model_config(settings: DiffusionSettings) -> dict:
    """{"encoder": VATConfig fields, "denoiser": DenoiserConfig fields, "scheduler": HeatmapScheduler
    fields}: what `build_model("diffusion", ...)` and `HeatmapScheduler.from_config` rebuild from a
    checkpoint."""
    encoder = {"backbone": settings.backbone, "input_size": settings.input_size, "face_size": settings.face_size,
               "heatmap_size": settings.heatmap_size, "inout": False, "coords": bool(settings.coords)}
    denoiser = {"image_size": settings.heatmap_size, "model_channels": settings.model_channels,
                "channel_mult": list(settings.channel_mult), "num_res_blocks": settings.num_res_blocks,
                "attention_resolutions": list(settings.attention_resolutions), "num_heads": settings.num_heads,
                "norm_groups": settings.norm_groups, "checkpointing": settings.gradient_checkpointing}
    scheduler = HeatmapScheduler(num_train_timesteps=settings.diffusion_steps, scale=settings.noise_scale).to_config()
    return {"encoder": encoder, "denoiser": denoiser, "scheduler": scheduler}


def init_encoder(network, settings: DiffusionSettings):
    """`--init` for the prior's scene+head encoder (names follow Chong et al., so their file loads by name)."""
    from gazecli.core.models.init import initialise

    return initialise(network.encoder, settings.init, settings.backbone)


# ------------------------------------------------------------------------------------------ evaluation
def heatmap_evaluator(settings: TrainSettings, forward, train_table, split: LabelSplit, device, precision: str,
                      maps_for=None):
    """split name -> metrics, for the engine: 'val' (held-out labelled images) or 'test'.
    maps_for(table) -> the per-person maps the model reads (VAT-GC: the Grad-CAM), or None."""
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
            maps = maps_for(table) if maps_for is not None else None
            cache[name] = GazeDataset(table, cfg, seed=settings.seed, maps=maps)
        dataset = cache[name]
        was_training = model.training
        model.eval()
        preds = predict_dataset(lambda b: forward(model, b), dataset, settings.eval_batch_size, device, precision,
                                settings.workers)
        model.train(was_training)
        result = score_predictions(dataset.table, preds, "native", str(device), 256)
        return {k: v for k, v in result.items() if k in ("auc", "avg_l2", "min_l2", "n")}

    return evaluate
