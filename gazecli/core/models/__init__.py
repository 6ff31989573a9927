"""Models: VAT / VAT-GC students (vat.py), backbones, the diffusion denoiser (diffusion_unet.py),
the Mean-Teacher EMA pair (ema.py); build.py turns a name into a module, registry.py loads a trained
model with its sample format and forward."""

from gazecli.core.models.build import DIFFUSION_MODELS, STUDENT_MODELS, build_model

__all__ = ["DIFFUSION_MODELS", "STUDENT_MODELS", "build_model"]
