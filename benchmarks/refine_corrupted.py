"""Does the diffusion prior pull a wrong heatmap towards the truth? (the paper's SDEdit refinement, issue 5)

Each test person's ground-truth heatmap (a Gaussian at the annotators' mean) is deliberately corrupted:
the blob moves by --shift (normalised image units, in a random direction that stays in the frame), is
blurred (sigma x --blur), and --distractors extra blobs of random height (0.5-1) land at random places; the
map is min-max normalised, like a Grad-CAM pseudo-label. `refine_with_diffusion` then noises it to
--start-step and denoises it in --ddim-steps DDIM steps with the trained model, conditioned on the person's
scene, head and face. AUC / Avg L2 / Min L2 (GazeFollow protocol) before and after, for the corrected and the
official (--compat) sampler, plus the model sampled from pure noise in the same number of steps (what it
knows without the prior) and how often the refined argmax is closer to the truth than the corrupted one.

    python benchmarks/refine_corrupted.py --checkpoint runs/train-diffusion/run --data /tmp/gw_diff
    python benchmarks/refine_corrupted.py --checkpoint RUN --data ROOT --start-step 200 --shift 0.25 --limit 300

Deterministic for a given --seed (corruptions from numpy, diffusion noise from a torch generator).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.heatmaps import gaussian_heatmaps
from gazecli.core.data.transforms import SampleConfig
from gazecli.core.diffusion import refine_with_diffusion
from gazecli.core.predictions import Predictions
from gazecli.core.metrics import score_predictions
from gazecli.core.data.heatmaps import OFFICIAL_MINMAX_EPS, minmax
from gazecli.core.diffusion.prior import load_prior


def corrupt(gaze_xy_norm: np.ndarray, size: int, sigma: float, shift: float, blur: float, distractors: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) true points -> ((N, size, size) corrupted maps in [0,1], (N, 2) where the moved blob went)."""
    n = len(gaze_xy_norm)
    moved = np.empty_like(gaze_xy_norm)
    for i, p in enumerate(gaze_xy_norm):
        for _ in range(100):  # a direction that keeps the blob in the frame
            angle = rng.uniform(0, 2 * np.pi)
            q = p + shift * np.array([np.cos(angle), np.sin(angle)])
            if (q > 0.02).all() and (q < 0.98).all():
                break
        moved[i] = np.clip(q, 0.0, 0.999)
    maps = gaussian_heatmaps(moved, size, size, sigma * blur)
    for _ in range(distractors):
        where = rng.uniform(0.02, 0.98, size=(n, 2))
        height = rng.uniform(0.5, 1.0, size=(n, 1, 1)).astype(np.float32)
        maps = np.maximum(maps, height * gaussian_heatmaps(where, size, size, sigma))
    lo = maps.reshape(n, -1).min(1)[:, None, None]
    hi = maps.reshape(n, -1).max(1)[:, None, None]
    return (maps - lo) / (hi - lo + 1e-11), moved


def argmax_l2(maps: np.ndarray, gaze_xy_norm: np.ndarray) -> np.ndarray:
    n, h, w = maps.shape
    flat = maps.reshape(n, -1).argmax(1)
    xy = np.stack([(flat % w + 0.5) / w, (flat // w + 0.5) / h], 1)
    return np.linalg.norm(xy - gaze_xy_norm, axis=1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="train-diffusion / mean-teacher run folder or weights")
    parser.add_argument("--data", required=True, help="dataset root (GazeFollow layout, e.g. a GazeWorld)")
    parser.add_argument("--network", choices=["teacher", "student"], default=None, help="of a mean-teacher checkpoint")
    parser.add_argument("--start-step", type=int, default=250, help="SDEdit noise level (paper: 250; 200 at 5 %%)")
    parser.add_argument("--ddim-steps", type=int, default=2)
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--shift", type=float, default=0.15, help="how far the blob moves (normalised units)")
    parser.add_argument("--blur", type=float, default=2.0, help="sigma factor of the moved blob")
    parser.add_argument("--distractors", type=int, default=2, help="extra blobs per map")
    parser.add_argument("--limit", type=int, default=0, help="only the first N test persons (0: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded, meta = load_prior(args.checkpoint, "cpu", args.network)
    network, scheduler = loaded.network, loaded.scheduler
    sample = SampleConfig(**{**meta.get("sample", {}), "augment": False})
    table = read_gazefollow(args.data, "test")
    if args.limit:
        table = table.subset(np.arange(min(args.limit, len(table))))
    table = table.subset(np.flatnonzero(table.inout == 1))
    dataset = GazeDataset(table, sample)
    gaze = np.nanmean(table.gaze_xy_norm, axis=1)  # (N, 2) the annotators' mean, as the test heatmaps
    size = sample.heatmap_size
    priors, _ = corrupt(gaze, size, sample.sigma, args.shift, args.blur, args.distractors,
                        np.random.default_rng(args.seed))

    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size)
    variants = {"refined (correct sampler)": dict(compat=False), "refined (--compat sampler)": dict(compat=True),
                "from noise, no prior": dict(compat=False, noise_only=True)}
    outputs = {name: [] for name in variants}
    times = {name: 0.0 for name in variants}
    generators = {name: torch.Generator().manual_seed(args.seed + k) for k, name in enumerate(variants)}
    with torch.no_grad():
        done = 0
        for batch in loader:
            condition = network.condition(batch["scene"], batch["head_channel"], batch["face"])
            prior = torch.from_numpy(priors[done:done + len(batch["index"])])[:, None]
            done += len(batch["index"])

            def denoise(x, t):
                return network.denoise(x, t, condition)

            for name, v in variants.items():
                start = time.perf_counter()
                if v.get("noise_only"):
                    out = scheduler.replace(compat=False).sample(denoise, prior.shape, args.ddim_steps, eta=args.eta,
                                                                 generator=generators[name])
                else:
                    out = refine_with_diffusion(denoise, prior, args.start_step, args.ddim_steps, eta=args.eta,
                                                generator=generators[name], compat=v["compat"], scheduler=scheduler)
                times[name] += time.perf_counter() - start
                outputs[name].append(minmax(out.float(), OFFICIAL_MINMAX_EPS)[:, 0].numpy())

    def score(maps: np.ndarray) -> dict:
        preds = Predictions(path=table.path.astype(str), eye=table.eye_xy_norm, heatmap=maps.astype(np.float32))
        return score_predictions(table, preds, "native", "cpu", 256)

    print(f"checkpoint {meta['path']} ({meta['model']['name']}), {len(table)} in-frame test persons of {args.data}")
    print(f"corruption: shift {args.shift}, blur x{args.blur}, {args.distractors} distractors; "
          f"SDEdit from step {args.start_step}, {args.ddim_steps} DDIM steps, eta {args.eta}, seed {args.seed}")
    before = score(priors)
    l2_before = argmax_l2(priors, gaze)
    header = f"{'heatmaps':<30} {'AUC':>7} {'Avg L2':>8} {'Min L2':>8} {'closer':>7} {'farther':>8} {'ms/person':>10}"
    print(header)
    print("-" * len(header))
    print(f"{'corrupted ground truth':<30} {before['auc']:7.4f} {before['avg_l2']:8.4f} {before['min_l2']:8.4f} "
          f"{'':>7} {'':>8} {'':>10}")
    for name in variants:
        maps = np.concatenate(outputs[name])
        m = score(maps)
        l2_after = argmax_l2(maps, gaze)
        closer, farther = float(np.mean(l2_after < l2_before - 1e-9)), float(np.mean(l2_after > l2_before + 1e-9))
        print(f"{name:<30} {m['auc']:7.4f} {m['avg_l2']:8.4f} {m['min_l2']:8.4f} {closer:7.1%} {farther:8.1%} "
              f"{1000 * times[name] / len(table):10.2f}")
    print("closer / farther: share of persons whose argmax is nearer to / farther from the annotators' mean than the "
          "corrupted map's argmax")


if __name__ == "__main__":
    main()
