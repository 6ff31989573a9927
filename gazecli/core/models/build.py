"""The one place a model name becomes a module: `build_model(name, config)`, and `load_model`,
which rebuilds a trained model from its checkpoint (checkpoints store {"name", "config"})."""

from __future__ import annotations

from pathlib import Path

from gazecli.core.constants import STUDENT_MODELS
from gazecli.core.errors import DataError

DIFFUSION_MODELS = ("diffusion", "diffusion-mean-teacher")  # the annotation prior; the second holds two networks


def build_model(name: str, config: dict):
    """A model from its registry name and config dict (as stored in checkpoints)."""
    if name in STUDENT_MODELS:
        from gazecli.core.models.vat import VATConfig, VATModel

        cfg = dict(config)
        cfg["gradcam"] = name == "vat-gc"
        return VATModel(VATConfig(**cfg))
    if name in DIFFUSION_MODELS:
        # config: {"encoder": VATConfig fields, "denoiser": DenoiserConfig fields, "scheduler": HeatmapScheduler
        # fields}; the scheduler owns no weights (HeatmapScheduler.from_config rebuilds it)
        from gazecli.core.models.diffusion_unet import DenoiserConfig, GazeDiffusionModel
        from gazecli.core.models.vat import VATConditionEncoder, VATConfig

        def network():
            encoder = VATConditionEncoder(VATConfig(**{**config["encoder"], "gradcam": False}))
            return GazeDiffusionModel.build(encoder, DenoiserConfig(**config["denoiser"]))

        if name == "diffusion":
            return network()
        from gazecli.core.models.ema import EMAPair

        return EMAPair(network(), network(), teacher_train_mode=bool(config.get("teacher_train_mode", False)))
    raise ValueError(f"unknown model {name!r}")


def load_model(checkpoint: Path, device=None):
    """(model in eval mode, checkpoint metadata) from a run folder or a .safetensors file."""
    from gazecli.core.engine.checkpoint import load_checkpoint, load_weights_into, resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    state, meta, _ = load_checkpoint(path)
    spec = meta.get("model") or {}
    try:
        model = build_model(spec["name"], spec["config"])
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise DataError(f"{path}: a checkpoint of an unknown model ({spec.get('name')!r}: {e})") from None
    load_weights_into(model, state, path.name)
    try:  # the sample settings every caller rebuilds the preprocessing from
        from gazecli.core.data.transforms import SampleConfig

        SampleConfig(**{**(meta.get("sample") or {}), "augment": False})
    except (TypeError, ValueError) as e:
        raise DataError(f"{path.name}: the checkpoint's sample settings are unusable ({e})") from None
    if device is not None:
        model.to(device)
    model.eval()
    meta["path"] = str(path)
    return model, meta
