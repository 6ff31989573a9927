"""The CUDA paths, checked on one GPU at the paper's sizes (run by benchmarks/gpu_check.sh).

Sections (each reports its figures or its error, and the next one still runs):
1. amp-student    VAT student (ResNet-50 pathways, 224 px, batch 48) train steps under bf16 and fp16
                  autocast (fp16 with a GradScaler): ms/step, finite losses.
2. amp-diffusion  the diffusion prior (VAT encoder + pyramid + UNet, 79.23 M, batch 48), the same.
3. ddp            a 1-process DistributedDataParallel step on NCCL: gradients equal the plain step's.
4. predict        the student's latency per person at batch 1 and per person at batch 64 (eval, autocast).
5. gradcam        Grad-CAM throughput (answer + key noun + CAM) of a BLIP-base-sized random-init model
                  (ViT-B/16 at 384 px, BERT-base text), persons/s.
6. diffusion-step official-like denoiser (legacy attention + gradient checkpointing) beside ours
                  (SDPA, no checkpointing), train step at batch 48: the ratio (goal >= 1.5x).

    bash benchmarks/gpu_check.sh                  # on a GPU machine, <= 8 minutes
    python benchmarks/gpu_check.py --cpu-smoke    # tiny sizes on the CPU: checks the script itself

Writes the figures as JSON too (--json PATH; default gpu_check.json in $OUT or the current folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


class Sizes:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.batch = 2 if smoke else 48
        self.vat = ({"backbone": "tiny", "input_size": 64, "face_size": 32, "heatmap_size": 32, "inout": True,
                     "coords": False} if smoke else
                    {"backbone": "resnet50", "input_size": 224, "face_size": 224, "heatmap_size": 64, "inout": True,
                     "coords": False})
        self.denoiser = ({"image_size": 32, "model_channels": 32, "channel_mult": [1, 2, 2, 2], "num_res_blocks": 1,
                          "attention_resolutions": [8, 4], "num_heads": 4, "norm_groups": 32} if smoke else {})
        self.steps = 2 if smoke else 5

    def vat_batch(self, device, n=None):
        import torch

        c = self.vat
        n = n or self.batch
        s, f, h = c["input_size"], c["face_size"], c["heatmap_size"]
        head = torch.zeros(n, 1, s, s)
        head[:, :, s // 4: s // 2, s // 4: s // 2] = 1
        return {"scene": torch.randn(n, 3, s, s, device=device), "head_channel": head.to(device),
                "face": torch.randn(n, 3, f, f, device=device), "heatmap": torch.rand(n, 1, h, h, device=device)}


def _amp_update(opt, scaler, loss, losses: list) -> None:
    """One optimiser update through the grad scaler; the loss value is kept for the finiteness check."""
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    losses.append(float(loss.detach()))


def _finite(values) -> bool:
    return all(v == v and abs(v) != float("inf") for v in values)


def amp_student(sizes: Sizes, device) -> dict:
    import torch

    from gazecli.core.engine.precision import autocast, grad_scaler
    from gazecli.core.models import build_model

    out = {}
    batch = sizes.vat_batch(device)
    for precision in ("bf16", "fp16"):
        model = build_model("vat", sizes.vat).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=2.5e-4)
        scaler = grad_scaler(device, precision)
        losses = []

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast(device, precision):
                pred = model(batch["scene"], batch["head_channel"], batch["face"])["heatmap"]
            _amp_update(opt, scaler, ((pred.float() - batch["heatmap"]) ** 2).mean() * 10000, losses)

        times = _timed(step, device, sizes.steps)
        out[precision] = {"ms_per_step": 1e3 * statistics.median(times), "batch": sizes.batch,
                          "losses_finite": _finite(losses)}
    return out


def _diffusion_model(sizes: Sizes, **denoiser):
    from gazecli.core.models import build_model
    from gazecli.core.models.import_weights import paper_config

    config = paper_config("diffusion")
    config["encoder"] = {**sizes.vat, "inout": False}
    config["denoiser"] = {**config["denoiser"], **sizes.denoiser, **denoiser}
    return build_model("diffusion", config), config


def amp_diffusion(sizes: Sizes, device) -> dict:
    import torch

    from gazecli.core.diffusion import HeatmapScheduler
    from gazecli.core.engine.precision import autocast, grad_scaler

    out = {}
    batch = sizes.vat_batch(device)
    size = batch["heatmap"].shape[-1]
    scheduler = HeatmapScheduler()
    for precision in ("bf16", "fp16"):
        model, config = _diffusion_model(sizes)
        model = model.to(device).train()
        if size != config["denoiser"].get("image_size", 64):
            batch["heatmap"] = torch.rand(sizes.batch, 1, config["denoiser"]["image_size"],
                                          config["denoiser"]["image_size"], device=device)
        opt = torch.optim.Adam(model.parameters(), lr=5e-5)
        scaler = grad_scaler(device, precision)
        g = torch.Generator().manual_seed(0)
        losses = []

        def step():
            x0 = batch["heatmap"]
            t = scheduler.sample_training_timesteps(x0.shape[0], g)
            x_t, t_in = scheduler.training_inputs(x0.cpu(), t, torch.randn(x0.shape, generator=g))
            opt.zero_grad(set_to_none=True)
            with autocast(device, precision):
                pred = model(x_t.to(device), t_in.to(device), batch["scene"], batch["head_channel"], batch["face"])
            _amp_update(opt, scaler, ((pred.float() - x0) ** 2).mean() * 10000, losses)

        times = _timed(step, device, sizes.steps)
        out[precision] = {"ms_per_step": 1e3 * statistics.median(times), "batch": sizes.batch,
                          "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                          "losses_finite": _finite(losses)}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_step(sizes: Sizes, device) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from gazecli.core.models import build_model

    backend = "nccl" if device.type == "cuda" else "gloo"
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        config = {**sizes.vat, "inout": False}  # the heatmap loss alone: every parameter gets a gradient
        plain = build_model("vat", config).to(device).train()
        wrapped_model = build_model("vat", config).to(device).train()
        wrapped_model.load_state_dict(plain.state_dict())
        wrapped = DistributedDataParallel(wrapped_model, device_ids=[device.index or 0] if device.type == "cuda" else None)
        batch = sizes.vat_batch(device, n=min(sizes.batch, 8))
        for m in (plain, wrapped):
            pred = m(batch["scene"], batch["head_channel"], batch["face"])["heatmap"]
            ((pred - batch["heatmap"]) ** 2).mean().backward()
        diff = max(float((a.grad - b.grad).abs().max()) for a, b in zip(plain.parameters(), wrapped_model.parameters())
                   if a.grad is not None)
        times = _timed(lambda: wrapped(batch["scene"], batch["head_channel"], batch["face"])["heatmap"].sum().backward(),
                       device, sizes.steps)
        return {"backend": backend, "max_grad_difference": diff, "ms_per_step": 1e3 * statistics.median(times)}
    finally:
        dist.destroy_process_group()


def predict_latency(sizes: Sizes, device) -> dict:
    import torch

    from gazecli.core.engine.precision import autocast
    from gazecli.core.models import build_model

    model = build_model("vat", sizes.vat).to(device).eval()
    precision = "bf16" if device.type == "cuda" else "fp32"
    out = {"precision": precision}
    for n in (1, 64 if not sizes.smoke else 4):
        batch = sizes.vat_batch(device, n=n)

        def forward():
            with torch.inference_mode(), autocast(device, precision):
                model(batch["scene"], batch["head_channel"], batch["face"])

        times = _timed(forward, device, 20 if not sizes.smoke else 2, warmup=3 if not sizes.smoke else 1)
        out[f"batch_{n}_ms_per_person"] = 1e3 * statistics.median(times) / n
    return out


def _blip_folder(folder: Path, smoke: bool) -> Path:
    """A random-init BlipForQuestionAnswering (BLIP-base sizes unless smoke) and an offline word-piece tokenizer."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    words = ("what is the person in green bounding box looking at ? a ball cup book phone table window").split()
    vocab_words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    target = 64 if smoke else 30524
    vocab_words += [f"w{i}" for i in range(target - len(vocab_words))]
    vocab = {w: i for i, w in enumerate(vocab_words)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab_words) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    if smoke:
        text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=64,
                      patch_size=16)
        image = 64
    else:  # BLIP-base: ViT-B/16 at 384 px, BERT-base text encoder and decoder
        text, vision, image = {}, dict(image_size=384, patch_size=16), 384
    config = BlipConfig(text_config=dict(vocab_size=len(vocab) + 1, bos_token_id=len(vocab), pad_token_id=0,
                                         sep_token_id=vocab["[SEP]"], **text),
                        vision_config=dict(initializer_range=0.02, **vision))
    BlipForQuestionAnswering(config).eval().save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": image, "width": image}),
                  tokenizer=tokenizer).save_pretrained(folder)
    return folder


def gradcam_throughput(sizes: Sizes, device) -> dict:
    import numpy as np

    from gazecli.core.gradcam.backends import load_backend
    from gazecli.core.stages.gradcam import annotate_batch

    with tempfile.TemporaryDirectory() as tmp:
        folder = _blip_folder(Path(tmp) / "blip", sizes.smoke)
        backend = load_backend(str(folder), "blip", str(device), "auto")
        n = 2 if sizes.smoke else 32
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (backend.image_size, backend.image_size, 3), dtype=np.uint8) for _ in range(n)]
        questions = ["What is the person in the green bounding box looking at?"] * n
        layers = backend.resolve_layers([-2])  # the second-to-last, as the paper
        times = _timed(lambda: annotate_batch(backend, images, questions, layers, 1, 10, "rule"), device,
                       2 if sizes.smoke else 3)
        params = sum(p.numel() for p in backend.model.parameters())
        return {"persons_per_s": n / statistics.median(times), "batch": n, "parameters_m": round(params / 1e6, 1),
                "grid": list(backend.grid), "precision": str(backend.dtype)}


def diffusion_step_ratio(sizes: Sizes, device) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from diffusion_step import Variant  # noqa: E402 - the benchmark next to this file

    from gazecli.core.diffusion import HeatmapScheduler
    from gazecli.core.models.configs import DenoiserConfig

    ours_cfg = DenoiserConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in sizes.denoiser.items()})
    official_cfg = dataclasses.replace(ours_cfg, attention="legacy", checkpointing=True)
    ours = Variant("ours", ours_cfg, device)
    official = Variant("official-like", official_cfg, device, (ours.unet.state_dict(), ours.pyramid.state_dict()))
    g = torch.Generator().manual_seed(0)
    B, size = sizes.batch, ours_cfg.image_size
    scheduler = HeatmapScheduler()
    features = torch.randn(B, ours_cfg.cond_channels, 7, 7, generator=g).to(device)
    x0 = torch.rand(B, 1, size, size, generator=g).to(device)
    x_t, t_in = scheduler.training_inputs(x0.cpu(), scheduler.sample_training_timesteps(B, generator=g),
                                         torch.randn(B, 1, size, size, generator=g))
    x_t, t_in = x_t.to(device), t_in.to(device)
    for i in range(1 + sizes.steps):
        for v in (official, ours):
            dt = v.train_step(features, x_t, t_in, x0)
            if i:
                v.times.append(dt)
    t_off, t_ours = statistics.median(official.times), statistics.median(ours.times)
    return {"official_like_ms": 1e3 * t_off, "ours_ms": 1e3 * t_ours, "ratio": t_off / t_ours, "goal": 1.5,
            "batch": B, "meets_goal": t_off / t_ours >= 1.5}


SECTIONS = {"amp-student": amp_student, "amp-diffusion": amp_diffusion, "ddp": ddp_step, "predict": predict_latency,
            "gradcam": gradcam_throughput, "diffusion-step": diffusion_step_ratio}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (checks the script, not a GPU)")
    parser.add_argument("--only", default="", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip the sections left after this many seconds")
    parser.add_argument("--json", default=None, help="where to write the figures (default: $OUT or . /gpu_check.json)")
    args = parser.parse_args(argv)

    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing to check (use --cpu-smoke for a tiny CPU dry run)")
        return 0
    device = torch.device("cpu") if args.cpu_smoke else torch.device("cuda", 0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    sizes = Sizes(args.cpu_smoke)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke sizes)"
    print(f"gpu_check on {name}; torch {torch.__version__}; batch {sizes.batch}")
    chosen = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    results, t0, failed = {"device": name, "torch": torch.__version__, "smoke": args.cpu_smoke}, time.perf_counter(), 0
    for section in chosen:
        if section not in SECTIONS:
            print(f"unknown section {section!r} (of {', '.join(SECTIONS)})")
            return 2
        if time.perf_counter() - t0 > args.budget_s:
            results[section] = {"skipped": f"time budget of {args.budget_s:.0f} s spent"}
            print(f"[skip] {section}: time budget spent")
            continue
        start = time.perf_counter()
        try:
            results[section] = SECTIONS[section](sizes, device)
            status = "ok"
        except Exception as e:  # noqa: BLE001 - report and go on: the point is to see every path
            results[section] = {"error": f"{e.__class__.__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
            status, failed = "FAIL", failed + 1
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        shown = {k: v for k, v in results[section].items() if k != "traceback"}
        print(f"[{status}] {section} ({time.perf_counter() - start:.1f} s): {json.dumps(shown, default=str)}")
    target = Path(args.json) if args.json else Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    target.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"total {time.perf_counter() - t0:.1f} s; {failed} section(s) failed; figures in {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
