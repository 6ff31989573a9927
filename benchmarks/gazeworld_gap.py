"""Is GazeWorld learnable but not trivial? A small model trained on 10 % vs 100 % of 2,000
training images, same steps and seed, scored on the test split with the GazeFollow protocol.

    python benchmarks/gazeworld_gap.py                # writes GazeWorld to /tmp, ~5 CPU minutes
    python benchmarks/gazeworld_gap.py --steps 200    # quicker, noisier

The model (~0.4 M parameters) is a throwaway in the spirit of gazeworld-notes.md §B: a scene
CNN on RGB + head channel, a face CNN, fusion at 1/8 resolution with coordinates relative to
the head, a 32x32 heatmap trained with
a spatial-softmax cross-entropy against the Gaussian target.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.data.splits import make_split
from gazecli.core.data.transforms import SampleConfig
from gazecli.core.metrics import GazeFollowMeter


def block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyGaze(nn.Module):
    def __init__(self):
        super().__init__()
        self.scene = nn.Sequential(block(4, 16, 2), block(16, 32, 2), block(32, 48, 2))  # 128 -> 16
        self.face = nn.Sequential(block(3, 16, 2), block(16, 32, 2), block(32, 64, 2), nn.AdaptiveAvgPool2d(1))
        self.fuse = nn.Sequential(block(48 + 64 + 3, 64), block(64, 64))
        self.head = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), block(64, 32), nn.Conv2d(32, 1, 1))

    def forward(self, scene, head_channel, face, head_box):
        s = self.scene(torch.cat([scene, head_channel], 1))  # (B, 48, 16, 16)
        f = self.face(face).expand(-1, -1, *s.shape[-2:])
        h = F.interpolate(head_channel, size=s.shape[-2:], mode="area")
        # where each cell is relative to the head centre: what a gaze direction needs
        n = s.shape[-1]
        grid = (torch.arange(n, dtype=s.dtype) + 0.5) / n
        cx = ((head_box[:, 0] + head_box[:, 2]) / 2)[:, None, None]
        cy = ((head_box[:, 1] + head_box[:, 3]) / 2)[:, None, None]
        rel = torch.stack([(grid[None, None, :] - cx).expand(-1, n, n), (grid[None, :, None] - cy).expand(-1, n, n)], 1)
        return self.head(self.fuse(torch.cat([s, f, h, rel], 1)))[:, 0]  # (B, 32, 32) logits


def train_and_score(root: Path, labelled: np.ndarray, steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    cfg = SampleConfig(input_size=128, face_size=32, heatmap_size=32, sigma=1.5, augment=True)
    train = read_gazefollow(root, "train")
    keep = np.flatnonzero(labelled & (train.inout == 1))
    ds = GazeDataset(train.subset(keep), cfg, seed=seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    model = TinyGaze()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    step, epoch, t0 = 0, 0, time.time()
    while step < steps:
        ds.set_epoch(epoch)
        for b in loader:
            logits = model(b["scene"], b["head_channel"], b["face"], b["head_box_xyxy_norm"]).flatten(1)
            target = b["heatmap"].flatten(1)
            target = target / target.sum(1, keepdim=True)
            loss = -(target * F.log_softmax(logits, 1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= steps:
                break
        epoch += 1
    model.eval()
    test = read_gazefollow(root, "test")
    tds = GazeDataset(test, SampleConfig(input_size=128, face_size=32, heatmap_size=32, sigma=1.5))
    meter = GazeFollowMeter("native")
    with torch.no_grad():
        for b in torch.utils.data.DataLoader(tds, batch_size=64):
            hm = model(b["scene"], b["head_channel"], b["face"], b["head_box_xyxy_norm"])
            meter.update(hm, b["image_size_hw"], b["gaze_points_norm"].double())
    out = meter.compute()
    return {"persons": int(len(keep)), "steps": steps, "epochs": epoch, "seconds": time.time() - t0,
            "auc": out["auc"], "avg_l2": out["avg_l2"], "min_l2": out["min_l2"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/gazeworld_gap"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--difficulty", default="normal")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if not (args.root / "gazeworld.json").is_file():
        synthesize_gazeworld(args.root, 2000, 500, seed=args.seed, difficulty=args.difficulty, force=True)
    train = read_gazefollow(args.root, "train")
    split = make_split(train, 0.1, seed=args.seed, val_fraction=0.0)
    rows = {"10 % labels": train_and_score(args.root, split.labelled, args.steps, args.seed),
            "100 % labels": train_and_score(args.root, np.ones(len(train), bool), args.steps, args.seed)}
    print(f"GazeWorld ({args.difficulty}), {args.steps} steps of batch 32, seed {args.seed}, test persons scored "
          f"with the GazeFollow protocol (native AUC)")
    print(f"{'':14s} {'persons':>8s} {'epochs':>7s} {'AUC':>7s} {'Avg L2':>7s} {'Min L2':>7s} {'time':>7s}")
    for name, r in rows.items():
        print(f"{name:14s} {r['persons']:8d} {r['epochs']:7d} {r['auc']:7.3f} {r['avg_l2']:7.3f} {r['min_l2']:7.3f} "
              f"{r['seconds']:6.0f}s")


if __name__ == "__main__":
    main()
