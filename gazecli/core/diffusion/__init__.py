"""The diffusion annotation prior (docs/design.md, "Diffusion prior"): scheduler.py (the noise
process: schedule, DDIM, SDEdit) and prior.py (a trained network with its scheduler: condition,
sample, refine, average, min-max; loading a trained prior)."""

from gazecli.core.diffusion.scheduler import HeatmapScheduler, StepOutput, refine_with_diffusion

__all__ = ["HeatmapScheduler", "StepOutput", "refine_with_diffusion"]
