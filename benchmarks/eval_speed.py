"""GazeFollow metric speed: gazecli's vectorised metrics vs the literal per-person recipe
(min-max, skimage.transform.resize(order=1), sklearn roc_auc_score on the multi-hot map, argmax
distances), on synthetic predictions shaped like a model's output.

    python benchmarks/eval_speed.py                 # 4,782 persons (GazeFollow test size)
    python benchmarks/eval_speed.py --persons 500   # quicker
    python benchmarks/eval_speed.py --device cuda   # ours on the GPU (literal stays on CPU)

Prints both timings, the speed ratio and the largest absolute difference of every metric.
Needs the dev extras (scikit-learn, scikit-image).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch


def make_case(n: int, seed: int, white_noise: bool = False):
    """Image sizes 300-1000 px, ~10 annotators around a target, model-like heatmaps."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(300, 1001, size=(n, 2))  # (H, W)
    target = rng.uniform(0.05, 0.95, size=(n, 2))
    n_ann = rng.integers(6, 11, size=n)
    points = np.full((n, 10, 2), np.nan)
    for i in range(n):
        points[i, : n_ann[i]] = np.clip(target[i] + rng.normal(0, 0.04, size=(n_ann[i], 2)), 0, 1)
    yy, xx = np.mgrid[0:64, 0:64]
    heatmaps = np.empty((n, 64, 64), dtype=np.float32)
    for i in range(n):
        # a main blob near the target (a model is usually close, sometimes wrong), a distractor, noise
        centre = target[i] * 64 + rng.normal(0, 6, size=2)
        other = rng.uniform(0, 64, size=2)
        sigma = rng.uniform(2.5, 5)
        hm = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
        hm += rng.uniform(0.1, 0.6) * np.exp(-((xx - other[0]) ** 2 + (yy - other[1]) ** 2) / (2 * 16))
        if white_noise:  # worst case for the metric: iid noise crosses every threshold often
            hm += rng.uniform(0, 0.05) * rng.random((64, 64))
        else:  # a decoder's output: low-frequency background plus a little pixel noise
            coarse = rng.random((9, 9))
            hm += rng.uniform(0, 0.1) * cv2.resize(coarse, (64, 64), interpolation=cv2.INTER_CUBIC)
            hm += rng.uniform(0, 0.01) * rng.random((64, 64))
        heatmaps[i] = hm
    return heatmaps, sizes, points


def literal(heatmaps, sizes, points):
    from skimage.transform import resize
    from sklearn.metrics import roc_auc_score

    out = {"auc": [], "avg_l2": [], "min_l2": []}
    for hm, (H, W), pts in zip(heatmaps, sizes, points):
        pts = pts[np.isfinite(pts[:, 0])]
        x = hm.astype(np.float64)
        x = (x - x.min()) / (x.max() - x.min())
        up = resize(x, (H, W), order=1)
        gt = np.zeros((H, W))
        for px, py in pts:
            gt[min(int(py * H), H - 1), min(int(px * W), W - 1)] = 1
        out["auc"].append(roc_auc_score(gt.ravel(), up.ravel()))
        row, col = np.unravel_index(hm.argmax(), hm.shape)
        p = np.array([col / 64, row / 64])
        out["avg_l2"].append(np.linalg.norm(p - pts.mean(axis=0)))
        out["min_l2"].append(np.linalg.norm(p[None] - pts, axis=1).min())
    return {k: np.array(v) for k, v in out.items()}


def ours(heatmaps, sizes, points, device, batch):
    from gazecli.core.metrics import GazeFollowMeter

    meter = GazeFollowMeter("native")
    hm, sz, pt = (torch.from_numpy(a).to(device) for a in (heatmaps, sizes, points))
    for i in range(0, len(hm), batch):
        meter.update(hm[i : i + batch], sz[i : i + batch], pt[i : i + batch])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return meter.per_person()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=4782)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--white-noise", action="store_true",
                    help="iid pixel noise on the heatmaps (the metric's worst case) instead of a smooth background")
    args = ap.parse_args()

    heatmaps, sizes, points = make_case(args.persons, args.seed, args.white_noise)
    ours(heatmaps[:8], sizes[:8], points[:8], args.device, args.batch)  # warm-up
    t0 = time.perf_counter()
    fast = ours(heatmaps, sizes, points, args.device, args.batch)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = literal(heatmaps, sizes, points)
    t_lit = time.perf_counter() - t0
    diffs = {k: float(np.abs(fast[k] - ref[k]).max()) for k in ref}
    print(f"persons: {args.persons}   heatmap background: {'white noise' if args.white_noise else 'smooth'}   "
          f"device (ours): {args.device}   torch threads: {torch.get_num_threads()}")
    print(f"literal per-person (skimage + sklearn): {t_lit:8.2f} s  ({1e3 * t_lit / args.persons:.1f} ms/person)")
    print(f"gazecli vectorised:                     {t_ours:8.2f} s  ({1e3 * t_ours / args.persons:.2f} ms/person)")
    print(f"speed ratio: {t_lit / t_ours:.1f}x")
    print("max abs difference: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print("means (ours): " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in fast.items()))


if __name__ == "__main__":
    main()
