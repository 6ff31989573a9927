"""GazeFollow metric speed: gazecli's vectorised metrics vs the literal per-person recipe
(min-max, skimage.transform.resize(order=1), sklearn roc_auc_score on the multi-hot map, argmax
distances), on synthetic predictions shaped like a model's output, on an idle machine and on a
loaded one (a second process busy on every core this process may use).

    python benchmarks/eval_speed.py                       # 4,782 persons (GazeFollow test size), idle + loaded
    python benchmarks/eval_speed.py --load idle --persons 500
    python benchmarks/eval_speed.py --configs policy,torch-default,one-thread
    python benchmarks/eval_speed.py --device cuda          # ours on the GPU (literal stays on CPU)

Configurations of ours: `policy` = what every gaze command does (docs/threads.md: threads from
the CPU affinity, OpenMP waiting passively), `torch-default` = torch's own thread count and
OpenMP's default (spinning) wait, `one-thread` = 1 thread. Each runs in a fresh process, so
the OpenMP settings apply before torch loads. The literal recipe (single-threaded) is timed on
`--literal-persons` persons (its cost per person does not depend on how many there are) before
and after ours (the mean; the load drifts) and the ratio is per person. Prints per-person times, the ratio, and the largest metric difference.
Needs the dev extras (scikit-learn, scikit-image).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import cv2
import numpy as np

TARGETS = {"idle": 50.0, "loaded": 25.0}
CONFIGS = ("policy", "torch-default", "one-thread")


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
    import torch

    from gazecli.core.metrics import GazeFollowMeter

    meter = GazeFollowMeter("native")
    hm, sz, pt = (torch.from_numpy(a).to(device) for a in (heatmaps, sizes, points))
    for i in range(0, len(hm), batch):
        meter.update(hm[i : i + batch], sz[i : i + batch], pt[i : i + batch])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return meter.per_person()


def child(args) -> dict:
    """One measurement in this (fresh) process: `args.config` applied before torch loads."""
    from gazecli.core.engine.threads import apply_thread_policy

    if args.config == "policy":
        apply_thread_policy(args.threads)
    elif args.config == "one-thread":
        apply_thread_policy(1)
    import torch

    heatmaps, sizes, points = make_case(args.persons, args.seed, args.white_noise)
    out = {"config": args.config, "threads": torch.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY", "")}
    if args.what == "literal":
        n = min(args.literal_persons, args.persons)
        t0 = time.perf_counter()
        ref = literal(heatmaps[:n], sizes[:n], points[:n])
        out["literal_ms"] = 1e3 * (time.perf_counter() - t0) / n
        fast = ours(heatmaps[:n], sizes[:n], points[:n], args.device, args.batch)
        out["max_diff"] = {k: float(np.abs(fast[k] - ref[k]).max()) for k in ref}
        out["means"] = {k: float(np.mean(v)) for k, v in fast.items()}
        return out
    ours(heatmaps[:8], sizes[:8], points[:8], args.device, args.batch)  # warm-up
    t0 = time.perf_counter()
    ours(heatmaps, sizes, points, args.device, args.batch)
    out["ours_ms"] = 1e3 * (time.perf_counter() - t0) / args.persons
    return out


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def run_child(args, what: str, config: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--what", what, "--config", config,
           "--persons", str(args.persons), "--literal-persons", str(args.literal_persons), "--batch", str(args.batch),
           "--device", args.device, "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.white_noise:
        cmd.append("--white-noise")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=4782)
    ap.add_argument("--literal-persons", type=int, default=300, help="persons the literal recipe is timed on")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="--threads of the policy configuration (0: its default)")
    ap.add_argument("--load", choices=("idle", "loaded", "both"), default="both")
    ap.add_argument("--configs", default="policy", help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--white-noise", action="store_true",
                    help="iid pixel noise on the heatmaps (the metric's worst case) instead of a smooth background")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--what", default="ours", help=argparse.SUPPRESS)
    ap.add_argument("--config", default="policy", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    configs = [c for c in args.configs.split(",") if c]
    if any(c not in CONFIGS for c in configs):
        ap.error(f"--configs: of {', '.join(CONFIGS)}")

    from gazecli.core.engine.threads import available_cores

    cores = available_cores()
    print(f"persons: {args.persons} (literal timed on {min(args.literal_persons, args.persons)})   heatmap background: "
          f"{'white noise' if args.white_noise else 'smooth'}   device (ours): {args.device}   cores: {cores}   "
          f"load average before: {os.getloadavg()[0]:.2f}")
    loads = ["idle", "loaded"] if args.load == "both" else [args.load]
    for load in loads:
        stop, spinners = mp.Event(), []
        if load == "loaded":
            spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cores)]
            for p in spinners:
                p.start()
        try:
            lit = run_child(args, "literal", "one-thread")
            results = [run_child(args, "ours", config) for config in configs]
            again = run_child(args, "literal", "one-thread")  # the load drifts: the literal time before and after
            literal_ms = (lit["literal_ms"] + again["literal_ms"]) / 2
            for r, config in zip(results, configs):
                ratio = literal_ms / r["ours_ms"]
                verdict = "meets" if ratio >= TARGETS[load] else "misses"
                print(f"{load:6s} {config:13s} threads {r['threads']}  wait {r['wait'] or 'default':7s}  "
                      f"ours {r['ours_ms']:6.2f} ms/person  literal {literal_ms:6.1f} ms/person  "
                      f"ratio {ratio:5.1f}x  ({verdict} the {TARGETS[load]:.0f}x target)")
        finally:
            stop.set()
            for p in spinners:
                p.join(timeout=5)
        print(f"{load:6s} max abs difference (literal persons): " +
              ", ".join(f"{k} {v:.2e}" for k, v in lit["max_diff"].items()))
    print(f"load average after: {os.getloadavg()[0]:.2f} (other processes on this machine count too)")


if __name__ == "__main__":
    main()
