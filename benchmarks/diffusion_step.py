"""Diffusion denoiser speed at the paper size (UNet 22.08 M + pyramid 0.85 M, 64x64 heatmaps).

1. Train step (forward + backward + Adam step) of UNet + conditioning pyramid, batch 8, on one device:
   ours (SDPA attention, no gradient checkpointing) vs the official-like configuration (legacy
   attention with explicit matmuls, gradient checkpointing forced on every attention block). Same
   weights, same inputs; the two are interleaved step by step, and the median is reported.
2. DDIM sampling throughput of the denoiser alone with a fixed random condition (the encoder is left
   out): 10 steps from pure noise, and the 2-step SDEdit refinement from step 250.

    python benchmarks/diffusion_step.py                    # CPU or the first GPU
    python benchmarks/diffusion_step.py --steps 5 --device cuda --amp   # + bf16 autocast row for ours
    python benchmarks/diffusion_step.py --threads 1       # on a CPU that other jobs share

The encoder input (2048x7x7) is random; the condition features go through the (trained) pyramid.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from gazecli.core.diffusion import HeatmapScheduler, refine_with_diffusion
from gazecli.core.models.diffusion_unet import ConditionPyramid, DenoiserConfig, DenoiserUNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Variant:
    def __init__(self, name: str, config: DenoiserConfig, device, state=None, amp: bool = False):
        self.name, self.amp, self.device = name, amp, device
        self.unet = DenoiserUNet(config).to(device)
        self.pyramid = ConditionPyramid(config).to(device)
        if state is not None:
            self.unet.load_state_dict(state[0])
            self.pyramid.load_state_dict(state[1])
        self.optimiser = torch.optim.Adam([*self.unet.parameters(), *self.pyramid.parameters()], lr=5e-5)
        self.times: list[float] = []

    def train_step(self, features, x_t, t, x0) -> float:
        _sync(self.device)
        start = time.perf_counter()
        self.optimiser.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            pred = self.unet(x_t, t, self.pyramid(features))
        loss = ((pred.float() - x0) ** 2).mean() * 10000
        loss.backward()
        self.optimiser.step()
        _sync(self.device)
        return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per variant")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--sample-batch", type=int, default=8)
    parser.add_argument("--sample-repeats", type=int, default=1)
    parser.add_argument("--amp", action="store_true", help="also time ours under bf16 autocast (CUDA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default; 1 is faster on a CPU shared with other jobs)")
    args = parser.parse_args(argv)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch}")

    ours_cfg = DenoiserConfig()
    official_cfg = dataclasses.replace(ours_cfg, attention="legacy", checkpointing=True)
    ours = Variant("ours (sdpa, no checkpointing)", ours_cfg, device)
    state = (ours.unet.state_dict(), ours.pyramid.state_dict())
    variants = [Variant("official-like (legacy attention + checkpointing)", official_cfg, device, state), ours]
    if args.amp:
        variants.append(Variant("ours + bf16 autocast", ours_cfg, device, state, amp=True))
    n_unet = sum(p.numel() for p in ours.unet.parameters())
    n_pyr = sum(p.numel() for p in ours.pyramid.parameters())
    print(f"parameters: UNet {n_unet:,} ({n_unet / 1e6:.2f} M), pyramid {n_pyr:,} ({n_pyr / 1e6:.2f} M)")

    scheduler = HeatmapScheduler()
    g = torch.Generator().manual_seed(args.seed)
    B = args.batch
    features = torch.randn(B, 2048, 7, 7, generator=g).to(device)
    x0 = torch.rand(B, 1, 64, 64, generator=g).to(device)
    t = scheduler.sample_training_timesteps(B, generator=g)
    x_t, t_in = scheduler.training_inputs(x0.cpu(), t, torch.randn(B, 1, 64, 64, generator=g))
    x_t, t_in = x_t.to(device), t_in.to(device)

    # interleaved: official, ours, official, ours, ... (fair under a drifting load)
    for i in range(args.warmup + args.steps):
        for v in variants:
            dt = v.train_step(features, x_t, t_in, x0)
            if i >= args.warmup:
                v.times.append(dt)
    print("\ntrain step (forward + backward + Adam), median over", args.steps, "steps:")
    medians = {}
    for v in variants:
        medians[v.name] = statistics.median(v.times)
        print(f"  {v.name:52s} {medians[v.name] * 1000:9.1f} ms/step  ({B / medians[v.name]:.2f} samples/s)"
              f"   all: {', '.join(f'{x * 1000:.0f}' for x in v.times)}")
    official_time = medians[variants[0].name]
    print(f"  speed-up ours vs official-like: {official_time / medians[ours.name]:.2f}x (target >= 1.5x)")
    if args.amp:
        print(f"  speed-up ours+bf16 vs official-like: {official_time / medians[variants[-1].name]:.2f}x")

    # sampling throughput of the denoiser alone, fixed random condition
    print(f"\nDDIM sampling, batch {args.sample_batch}, eta 1, denoiser only (condition computed once):")
    for v in variants[:2]:
        v.unet.eval()
        v.pyramid.eval()
        with torch.inference_mode():
            cond = v.pyramid(torch.randn(args.sample_batch, 2048, 7, 7, generator=g).to(device))
            prior = torch.rand(args.sample_batch, 1, 64, 64, generator=g).to(device)
            fn = lambda x, tt: v.unet(x, tt, cond)  # noqa: E731
            for label, run in (("10 steps from noise", lambda: scheduler.sample(fn, prior.shape, 10, generator=g,
                                                                               device=device)),
                               ("SDEdit 250 -> 2 steps", lambda: refine_with_diffusion(fn, prior, 250, 2, generator=g))):
                run()  # warm-up
                times = []
                for _ in range(args.sample_repeats):
                    _sync(device)
                    start = time.perf_counter()
                    run()
                    _sync(device)
                    times.append(time.perf_counter() - start)
                dt = statistics.median(times)
                print(f"  {v.name:52s} {label:22s} {args.sample_batch / dt:8.2f} samples/s ({dt * 1000:.0f} ms/batch)")


if __name__ == "__main__":
    main()
