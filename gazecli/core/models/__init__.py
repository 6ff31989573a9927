"""Models: VAT / VAT-GC students (vat.py), backbones, the diffusion denoiser (diffusion_unet.py).

`build_model(name, config)` is the one place a model name becomes a module; checkpoints store
{"name", "config"} so `load_checkpoint` can rebuild what was trained.
"""

from __future__ import annotations

STUDENT_MODELS = ("vat", "vat-gc")


def build_model(name: str, config: dict):
    """A model from its registry name and config dict (as stored in checkpoints)."""
    if name in STUDENT_MODELS:
        from gazecli.core.models.vat import VATConfig, VATModel

        cfg = dict(config)
        cfg["gradcam"] = name == "vat-gc"
        return VATModel(VATConfig(**cfg))
    raise ValueError(f"unknown model {name!r}")
