"""Which images to label first: random order vs `gaze label --order uncertain`, on GazeWorld.

Per seed: a random 2.5 % of the training persons (image-level) is labelled first and a supervised
student M0 is trained on it (`gaze train-student`, the real command). M0 then scores every other
training image as `gaze label --order uncertain` does (flip disagreement, gazecli/core/label/
uncertainty.py; the ground-truth head boxes stand in for the boxes a labeller draws). The labelled
set grows to 5 % and to 10 % of the persons in two ways, from the same first 2.5 %:
- random: further images in a seeded random order (what labelling in any fixed order gives);
- uncertain: the images M0 is least sure of first.
A supervised student with the same budget (steps, batch, seed) is trained on each set and scored
on the test split. Prints mean +- std over the seeds as Markdown and writes OUT/table.md and
OUT/results.json. A seed already run in OUT is reused.

    OMP_NUM_THREADS=1 python benchmarks/active_order.py --out /tmp/active --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.data.splits import split_file
from gazecli.core.label.uncertainty import flip_disagreement

FIRST = 0.025  # the random start, before any model exists


def image_index(table) -> tuple[list[str], np.ndarray]:
    keys = list(dict.fromkeys(table.path))
    position = {k: i for i, k in enumerate(keys)}
    return keys, np.array([position[p] for p in table.path])


def grow(order: np.ndarray, chosen: np.ndarray, persons_per_image: np.ndarray, target: int) -> np.ndarray:
    """Add images in `order` (skipping chosen ones) until the chosen images hold >= target persons."""
    chosen = chosen.copy()
    for i in order:
        if persons_per_image[chosen].sum() >= target:
            break
        chosen[i] = True
    return chosen


def write_split(table, image_of_row: np.ndarray, chosen: np.ndarray, folder: Path, ratio: float) -> None:
    """`_use` / `_left` files (no `_val`: train-student holds out its seeded 10 % of the labelled images)."""
    folder.mkdir(parents=True, exist_ok=True)
    labelled = chosen[image_of_row]
    for part, mask in (("use", labelled), ("left", ~labelled)):
        split_file(folder, ratio, part).write_text("".join(line + "\n" for line in table.raw[mask]))


def train(world: Path, folder: Path, ratio: float, name: str, seed: int, args) -> dict:
    run = args.out / "runs" / "train-student" / name
    if not (run / "test_metrics.json").is_file():
        cmd = [sys.executable, "-m", "gazecli", "train-student", "--data", str(world), "--ratio", str(ratio),
               "--split-dir", str(folder), "--seed", str(seed), "--split-seed", str(seed), "--device", "cpu",
               "--input-size", str(args.input_size), "--batch-size", str(args.batch_size),
               "--epochs", "1", "--project", str(args.out / "runs"), "--name", name]
        labelled = sum(1 for _ in split_file(folder, ratio, "use").open())
        steps_per_epoch = max(1, int(labelled * 0.9) // args.batch_size)
        epochs = max(1, -(-args.steps // steps_per_epoch))
        cmd[cmd.index("--epochs") + 1] = str(epochs)
        cmd += ["--eval-every", str(max(1, epochs // 5))]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads((run / "test_metrics.json").read_text())


def scores(world: Path, table, image_of_row: np.ndarray, keys: list[str], checkpoint: Path) -> np.ndarray:
    """Per image: mean flip disagreement of M0 over the image's persons (its ground-truth head boxes)."""
    from gazecli import Predictor
    from gazecli.core.data.images import read_image_rgb

    predictor = Predictor(checkpoint, device="cpu")

    def points(rgb, boxes):
        heads = [f"{b[0]},{b[1]},{b[2] - b[0]},{b[3] - b[1]}" for b in boxes]
        return np.array([p.point_xy_norm for p in predictor.predict(rgb, heads)])

    out = np.zeros(len(keys))
    for i, key in enumerate(keys):
        boxes = table.head_box_xyxy_px[image_of_row == i]
        out[i] = flip_disagreement(points, read_image_rgb(world / key), boxes).mean()
    return out


def one_seed(seed: int, world: Path, args) -> dict:
    done = args.out / f"seed{seed}.json"
    if done.is_file():
        return json.loads(done.read_text())
    table = read_gazefollow(world, "train")
    keys, image_of_row = image_index(table)
    per_image = np.bincount(image_of_row, minlength=len(keys))
    n = len(table)
    rng = np.random.default_rng([seed, 99])
    random_order = rng.permutation(len(keys))
    first = grow(random_order, np.zeros(len(keys), dtype=bool), per_image, round(FIRST * n))
    folder = args.out / "splits" / f"seed{seed}"
    write_split(table, image_of_row, first, folder / "first", FIRST)
    m0 = train(world, folder / "first", FIRST, f"s{seed}-first", seed, args)
    checkpoint = args.out / "runs" / "train-student" / f"s{seed}-first"
    s = scores(world, table, image_of_row, keys, checkpoint)
    result = {"seed": seed, "persons": n, "images": len(keys), "first": {"persons": int(per_image[first].sum()), **m0},
              "score_mean_first": float(s[first].mean()), "score_mean_rest": float(s[~first].mean())}
    uncertain_order = np.argsort(-s, kind="stable")
    for ratio in args.ratios:
        for arm, order in (("random", random_order), ("uncertain", uncertain_order)):
            chosen = grow(order, first, per_image, round(ratio * n))
            name = f"{arm}-{ratio:g}"
            write_split(table, image_of_row, chosen, folder / name, ratio)
            metrics = train(world, folder / name, ratio, f"s{seed}-{name}", seed, args)
            result[name] = {"persons": int(per_image[chosen].sum()), "images": int(chosen.sum()),
                            "mean_score": float(s[chosen & ~first].mean()), **metrics}
            print(f"seed {seed} {name}: {result[name]}", flush=True)
    done.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("active-order"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--train-images", type=int, default=600)
    ap.add_argument("--test-images", type=int, default=150)
    ap.add_argument("--steps", type=int, default=200, help="optimiser steps of every student")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--input-size", type=int, default=96)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    world = args.out / "world"
    if not (world / "gazeworld.json").is_file():
        synthesize_gazeworld(world, args.train_images, args.test_images, seed=0, force=True)
    results = [one_seed(seed, world, args) for seed in args.seeds]

    def cell(values) -> str:
        return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")

    lines = [f"GazeWorld ({args.train_images} train / {args.test_images} test images, {results[0]['persons']} training "
             f"persons), supervised student, {args.steps} steps, batch {args.batch_size}, input {args.input_size} px; "
             f"seeds {', '.join(map(str, args.seeds))} (mean ± std)", "",
             "| labels | order | persons | flip score of the added images | test AUC | Avg L2 | Min L2 |",
             "|---|---|---|---|---|---|---|",
             f"| {FIRST:g} | first (random) | {cell([r['first']['persons'] for r in results])} | - | "
             f"{cell([r['first']['auc'] for r in results])} | {cell([r['first']['avg_l2'] for r in results])} | "
             f"{cell([r['first']['min_l2'] for r in results])} |"]
    for ratio in args.ratios:
        for arm in ("random", "uncertain"):
            rows = [r[f"{arm}-{ratio:g}"] for r in results]
            lines.append(f"| {ratio:g} | {arm} | {cell([x['persons'] for x in rows])} | "
                         f"{cell([x['mean_score'] for x in rows])} | {cell([x['auc'] for x in rows])} | "
                         f"{cell([x['avg_l2'] for x in rows])} | {cell([x['min_l2'] for x in rows])} |")
    table = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
