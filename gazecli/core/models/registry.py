"""Trained models of every kind behind one call: `load_trained(path)` -> the model, the sample
format it reads and its forward (batch -> {"heatmap", "inout"})."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from gazecli.core.errors import DataError
from gazecli.core.models.build import DIFFUSION_MODELS, STUDENT_MODELS, load_model


class Trained(NamedTuple):
    model: object
    meta: dict
    sample: object  # the SampleConfig the model was trained on (augment off)
    forward: Callable[[dict], dict]


def model_forward(model, meta: dict) -> Callable[[dict], dict]:
    """batch -> {"heatmap", "inout"} for a trained model of any kind (by its checkpoint's name)."""
    name = meta["model"]["name"]
    if name in STUDENT_MODELS:
        from gazecli.core.models.vat import student_forward

        return lambda batch: student_forward(model, batch)
    if name in DIFFUSION_MODELS:  # sampled from pure noise with the run's --inference-steps / --eta / --compat
        from gazecli.core.diffusion.prior import prior_forward

        return prior_forward(model, meta)
    raise DataError(f"{meta.get('path')}: no inference for models of kind {name!r}")


def load_trained(checkpoint: Path, device=None) -> Trained:
    """A trained model (eval mode) from a run folder or weights file, with what is needed to run it."""
    from gazecli.core.data.transforms import SampleConfig

    model, meta = load_model(checkpoint, device)
    sample = SampleConfig(**{**(meta.get("sample") or {}), "augment": False})  # checked by load_model
    return Trained(model, meta, sample, model_forward(model, meta))
