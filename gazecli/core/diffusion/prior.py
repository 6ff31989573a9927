"""The diffusion annotation prior as one object: a trained network and its noise process
(docs/design.md, "Diffusion prior").

`DiffusionPrior(network, scheduler)` is the only place that joins the two: it computes the
condition of a batch, samples heatmaps from pure noise, refines given heatmaps (SDEdit), averages
several samples and min-max normalises the result. Teachers, evaluation, the Mean-Teacher loss and
the demo figure all go through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from gazecli.core.data.heatmaps import OFFICIAL_MINMAX_EPS, minmax
from gazecli.core.diffusion.scheduler import HeatmapScheduler
from gazecli.core.errors import DataError

class DiffusionPrior:
    """(network: a GazeDiffusionModel, scheduler: a HeatmapScheduler)."""

    def __init__(self, network, scheduler: HeatmapScheduler):
        self.network, self.scheduler = network, scheduler

    @property
    def size(self) -> int:
        """The side of the heatmaps the denoiser works on."""
        return self.network.unet.config.image_size

    def condition(self, batch: dict, view: str = ""):
        """The scene+head encoding of a batch (`view="_2"`: the second view of a TwoViewDataset)."""
        return self.network.condition(batch["scene" + view], batch["head_channel" + view], batch["face" + view])

    def denoiser(self, condition) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return lambda x, t: self.network.denoise(x, t, condition)

    def sample(self, condition, batch_size: int, n_steps: int, eta: float, device,
               generator: Optional[torch.Generator] = None,
               noise_fn: Optional[Callable[[], torch.Tensor]] = None) -> torch.Tensor:
        """x0 (B,1,H,W) sampled from pure noise in `n_steps` DDIM steps (not normalised)."""
        return self.scheduler.sample(self.denoiser(condition), (batch_size, 1, self.size, self.size), n_steps,
                                     eta=eta, generator=generator, device=device, dtype=torch.float32,
                                     noise_fn=noise_fn)

    def refine(self, condition, heatmaps: torch.Tensor, start_step: int, n_steps: int, eta: float,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """SDEdit: `heatmaps` (B,1,h,w) in [0,1], resized to the prior's size, noised to
        `start_step` and denoised in `n_steps` DDIM steps (not normalised)."""
        prior = heatmaps.float()
        if prior.shape[-1] != self.size:
            prior = torch.nn.functional.interpolate(prior, size=(self.size, self.size), mode="bilinear",
                                                    align_corners=False)
        return self.scheduler.sample(self.denoiser(condition), prior.shape, n_steps, eta=eta, generator=generator,
                                     start=prior, start_step=start_step)

    @staticmethod
    def average(draw: Callable[[int], torch.Tensor], samples: int) -> torch.Tensor:
        """The min-max normalised mean of `samples` draws (`draw(k)` -> (B,1,H,W)): the official
        --inference_times."""
        total = None
        for k in range(samples):
            x0 = draw(k).float()
            total = x0 if total is None else total + x0
        return minmax(total / samples, OFFICIAL_MINMAX_EPS)


# ------------------------------------------------------------------------------------------ evaluation
def person_noise(indices: torch.Tensor, seed: int, shape: tuple, device, dtype=torch.float32,
                 stream: int = 0) -> Callable[[], torch.Tensor]:
    """draw() -> (B, *shape) standard normal noise, row i from its own CPU generator seeded by
    (seed, stream, indices[i]): a person's samples do not depend on who shares its batch."""
    seeds = [int(np.random.SeedSequence([int(seed), int(stream), int(i)]).generate_state(1)[0]) for i in indices.tolist()]
    gens = [torch.Generator().manual_seed(s) for s in seeds]

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device=device, dtype=dtype)

    return draw


@torch.no_grad()
def sample_heatmaps(prior: DiffusionPrior, batch: dict, n_steps: int, eta: float, seed: int,
                    n_samples: int = 1) -> torch.Tensor:
    """Each person's heatmap sampled from pure noise, the mean of `n_samples` samples, min-max
    normalised as the official evaluation does: (B,1,H,W). The noise of a person depends only on
    (seed, sample, person index), never on the batch."""
    condition = prior.condition(batch)
    device = batch["scene"].device

    def draw(k: int) -> torch.Tensor:
        noise = person_noise(batch["index"], seed, (1, prior.size, prior.size), device, stream=k)
        return prior.sample(condition, batch["scene"].shape[0], n_steps, eta, device, noise_fn=noise)

    return prior.average(draw, n_samples)


def sampling_forward(network_of: Callable, scheduler: HeatmapScheduler, n_steps: int, eta: float, seed: int,
                     n_samples: int = 1):
    """forward(model, batch) -> {"heatmap", "inout": None} for the engine's evaluator and for
    `gaze eval`; `network_of(model)` picks the GazeDiffusionModel (the model itself, or one network
    of a Mean-Teacher pair)."""
    def forward(model, batch: dict) -> dict:
        prior = DiffusionPrior(network_of(model), scheduler)
        return {"heatmap": sample_heatmaps(prior, batch, n_steps, eta, seed, n_samples), "inout": None}

    return forward


# ------------------------------------------------------------------------------------------ loading
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


def run_scheduler(meta: dict) -> HeatmapScheduler:
    """The noise process of a checkpoint, in the sampler mode of its run (--compat)."""
    return HeatmapScheduler.from_config(meta["model"]["config"],
                                        compat=bool((meta.get("settings") or {}).get("compat", False)))


def prior_forward(model, meta: dict) -> Callable[[dict], dict]:
    """batch -> {"heatmap", "inout"} for `gaze eval --checkpoint`: sampling from pure noise with the
    run's --inference-steps, --eta, --compat and --seed."""
    s = meta.get("settings") or {}
    network = prior_network(model, meta)
    forward = sampling_forward(lambda m: m, run_scheduler(meta), int(s.get("inference_steps", 10)),
                               float(s.get("eta", 1.0)), int(s.get("seed", 0)), int(s.get("inference_samples", 1)))
    return lambda batch: forward(network, batch)


def load_prior(checkpoint: Path, device=None, network: str | None = None) -> tuple[DiffusionPrior, dict]:
    """(DiffusionPrior with its network in eval mode and the scheduler in the run's sampler mode,
    checkpoint meta) from a train-diffusion or mean-teacher run folder or weights file."""
    from gazecli.core.models.build import load_model

    model, meta = load_model(checkpoint, device)
    net = prior_network(model, meta, network)
    net.eval()
    return DiffusionPrior(net, run_scheduler(meta)), meta
