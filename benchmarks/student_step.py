"""Semi-supervised student step: online diffusion refinement vs cached pseudo-labels (issue 7).

One `gaze train-student --teacher diffusion` optimiser step at the paper's sizes: the VAT student
(ResNet-50, 224 px, 64x64 heatmap) on a two-stream batch, and for the unlabelled part of the batch
either
- online: the diffusion teacher (VAT-style ResNet-50 encoder + the ~79 M-parameter UNet) computes
  the condition from the same view, noises the Grad-CAM to --denoise-steps and refines it in
  --ddim-steps DDIM steps (`DiffusionTeacher`, what the official code does every batch), or
- cached: the refined pseudo-label was drawn from `--pseudo-cache` by the data loader
  (`CachedTeacher`; the cache's one-off cost is reported separately as teacher ms per person).

Both run the real `student_loss` of train_student with the paper's MSE x 10000. Random weights
and random inputs: the cost does not depend on them.

    python benchmarks/student_step.py                         # CPU, batch 8 (2 labelled)
    python benchmarks/student_step.py --device cuda --batch 80 --labelled 20 --precision bf16
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from gazecli.core.diffusion import HeatmapScheduler
from gazecli.core.engine.precision import autocast
from gazecli.core.engine.trainer import StepContext
from gazecli.core.models import build_model
from gazecli.core.teachers.cache import CachedTeacher
from gazecli.core.diffusion.prior import DiffusionPrior
from gazecli.core.teachers.diffusion import DiffusionTeacher
from gazecli.core.stages.train_student import student_loss

STUDENT = {"backbone": "resnet50", "input_size": 224, "face_size": 224, "heatmap_size": 64, "inout": False}
PRIOR = {"encoder": dict(STUDENT),
         "denoiser": {"image_size": 64, "model_channels": 64, "channel_mult": [1, 2, 3, 4], "num_res_blocks": 2,
                      "attention_resolutions": [16, 8], "num_heads": 4, "norm_groups": 32, "checkpointing": False},
         "scheduler": {"num_train_timesteps": 500, "beta_start": 1e-4, "beta_end": 0.02, "scale": 2.0, "clamp": True}}


def make_batch(n: int, labelled: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    s, f, h = STUDENT["input_size"], STUDENT["face_size"], STUDENT["heatmap_size"]
    head = torch.zeros(n, 1, s, s)
    head[:, :, s // 4: s // 2, s // 4: s // 2] = 1
    batch = {"scene": torch.randn(n, 3, s, s, generator=g), "head_channel": head,
             "face": torch.randn(n, 3, f, f, generator=g), "heatmap": torch.rand(n, 1, h, h, generator=g),
             "labelled": torch.arange(n) < labelled, "inout": torch.ones(n, dtype=torch.long),
             "gradcam": torch.rand(n, 1, h, h, generator=g), "gradcam_valid": torch.ones(n, dtype=torch.bool),
             "pseudo": torch.rand(n, 1, h, h, generator=g), "pseudo_valid": torch.ones(n, dtype=torch.bool)}
    return {k: v.to(device) for k, v in batch.items()}


def time_steps(loss_fn, model, opt, batch, device, precision, steps: int) -> float:
    """Seconds per optimiser step (after 2 warm-up steps)."""
    def step(i):
        ctx = StepContext(step=i + 1, epoch=1, device=device, generator=torch.Generator(device=device).manual_seed(i))
        with autocast(device, precision):
            loss, _ = loss_fn(model, batch, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(2):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i + 2)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batch", type=int, default=8, help="persons per step (paper 80)")
    ap.add_argument("--labelled", type=int, default=2, help="labelled persons per step (paper 20)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--denoise-steps", type=int, default=200)
    ap.add_argument("--ddim-steps", type=int, default=2)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    student = build_model("vat", STUDENT).to(device)
    opt = torch.optim.Adam(student.parameters(), lr=2.5e-4)
    prior = build_model("diffusion", PRIOR).to(device).eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    scheduler = HeatmapScheduler(**PRIOR["scheduler"])
    online = DiffusionTeacher(DiffusionPrior(prior, scheduler), args.denoise_steps, args.ddim_steps)
    settings = SimpleNamespace(loss="mse", heatmap_loss_on="in-frame", pseudo_weight=1.0, loss_scale=10000.0,
                               inout_weight=0.0, inout_threshold=0.5)
    batch = make_batch(args.batch, args.labelled, device)
    n_student = sum(p.numel() for p in student.parameters()) / 1e6
    n_prior = sum(p.numel() for p in prior.parameters()) / 1e6
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{args.precision}, batch {args.batch} ({args.labelled} labelled), student {n_student:.2f} M, "
          f"teacher {n_prior:.2f} M, --denoise-steps {args.denoise_steps} --ddim-steps {args.ddim_steps}")
    t_cached = time_steps(student_loss(settings, CachedTeacher(), "all"), student, opt, batch, device,
                          args.precision, args.steps)
    t_online = time_steps(student_loss(settings, online, "all"), student, opt, batch, device, args.precision,
                          args.steps)
    unl = args.batch - args.labelled
    sub = {k: v[args.labelled:] for k, v in batch.items()}
    with torch.no_grad(), autocast(device, args.precision):
        online(sub, torch.Generator(device=device).manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(args.steps):
            online(sub, torch.Generator(device=device).manual_seed(i))
        if device.type == "cuda":
            torch.cuda.synchronize()
    per_person = (time.perf_counter() - t0) / args.steps / unl
    print(f"online  {t_online * 1000:9.1f} ms/step  {args.batch / t_online:7.1f} persons/s")
    print(f"cached  {t_cached * 1000:9.1f} ms/step  {args.batch / t_cached:7.1f} persons/s")
    print(f"speed-up cached/online: {t_online / t_cached:.2f}x; building the cache costs "
          f"{per_person * 1000:.1f} ms per unlabelled person and sample, once")


if __name__ == "__main__":
    main()
