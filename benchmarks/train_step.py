"""VAT train-step throughput: images/s of forward + backward + Adam at batch 8, for the paper's
ResNet-50 model (224 px) and the tiny GazeWorld model (128 px), on this machine's CPU and, when
present, on CUDA with AMP (bf16) and channels-last.

    python benchmarks/train_step.py                 # all available devices
    python benchmarks/train_step.py --steps 5 --device cpu
"""

from __future__ import annotations

import argparse
import time

import torch

from gazecli.core.engine.precision import autocast
from gazecli.core.models import build_model

CONFIGS = {
    "resnet50@224": {"backbone": "resnet50", "input_size": 224, "face_size": 224, "heatmap_size": 64, "inout": False},
    "tiny@128": {"backbone": "tiny", "input_size": 128, "face_size": 32, "heatmap_size": 32, "inout": False},
}


def bench(config: dict, device: torch.device, precision: str, batch: int, steps: int) -> float:
    model = build_model("vat", config).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    s, f = config["input_size"], config["face_size"]
    scene = torch.randn(batch, 3, s, s, device=device)
    head = torch.zeros(batch, 1, s, s, device=device)
    head[:, :, s // 4: s // 2, s // 4: s // 2] = 1
    face = torch.randn(batch, 3, f, f, device=device)
    target = torch.rand(batch, 1, config["heatmap_size"], config["heatmap_size"], device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step():
        with autocast(device, precision):
            out = model(scene, head, face)["heatmap"]
            loss = ((out.float() - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="all", help="all, cpu or cuda")
    args = ap.parse_args()
    runs = []
    if args.device in ("all", "cpu"):
        runs += [("cpu", "fp32")]
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        runs += [("cuda", "fp32"), ("cuda", "bf16")]
    print(f"batch {args.batch}, {args.steps} timed steps; torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    for name, config in CONFIGS.items():
        for dev, precision in runs:
            ips = bench(config, torch.device(dev), precision, args.batch, args.steps)
            print(f"{name:14s} {dev:5s} {precision:5s} {ips:9.1f} images/s")


if __name__ == "__main__":
    main()
