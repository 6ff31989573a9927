"""How good is the GazeWorld VQA model (issue 6)? Measured on a fresh GazeWorld test split.

    python benchmarks/gazeworld_vqa.py [--model gazeworld] [--root /tmp/gw_vqa_bench] [--seed 7]
                                       [--images 500] [--out results.json]

1. Synthesize a fresh world (its seed differs from the model's training world).
2. Run `gaze gradcam` on its test split through the real code path (`run_gradcam`: the person's
   green box drawn, the default question, greedy answer, key-noun step, Grad-CAM of every layer).
3. Score:
   - gaze-question answer accuracy against the sidecar's target class ("nothing" for a person
     looking at no object), next to three model-free guesses: the majority answer, a uniform
     guess among the classes present (0.365 in the prototype's notes), and the most frequent
     class present (GazeWorld's same-class twins make it strong: it needs no gaze at all), and the
     accuracy on the persons whose gazed class is not (one of) the most frequent class(es) present
     (`gaze_accuracy_not_modal`, `n_not_modal`), where that guess fails;
   - the Grad-CAM as a gaze heatmap against the true target (GazeFollow AUC at native
     resolution, Avg L2 of the argmax; the map resampled as `train-student` reads stores), for
     each layer (BLIP: text-encoder layers, the store's default is the second-to-last; cnn: its one
     conv map, classic Grad-CAM), beside the centre prior
     and the ORACLE-class ablation maps (Gaussians on every object of the true class);
   - where the CAM mass goes: the share of the (min-max normalised) map on grid cells that an
     object of the *answered* class / of the *true* class overlaps, and how often the argmax cell
     lies on such an object or on the gazed instance itself; "cells" is the share of cells that
     class covers (what a flat map would put there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np


def class_cells(record: dict, cls: str, grid: int) -> np.ndarray:
    """(grid, grid) bool: the cells an object of `cls` overlaps (boxes in pixels at record size)."""
    out = np.zeros((grid, grid), dtype=bool)
    size = record["size"]
    for o in record["objects"]:
        if o["cls"] != cls:
            continue
        x1, y1, x2, y2 = (v / size * grid for v in o["box_xyxy_px"])
        out[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = True
    return out


def instance_cells(record: dict, index: int, grid: int) -> np.ndarray:
    out = np.zeros((grid, grid), dtype=bool)
    x1, y1, x2, y2 = (v / record["size"] * grid for v in record["objects"][index]["box_xyxy_px"])
    out[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = True
    return out


def mass_stats(maps: np.ndarray, records: list[dict], persons: list[dict], answers: list[str]) -> dict:
    """Share of each map's mass on cells of the answered / true class, argmax hits."""
    grid = maps.shape[-1]
    on_answer, on_true, cells_answer, cells_true, hit_answer, hit_true, hit_target = [], [], [], [], [], [], []
    for m, record, person, answer in zip(maps, records, persons, answers):
        m = m.astype(np.float64)
        m = m - m.min()
        total = m.sum()
        r, c = np.unravel_index(int(m.argmax()), m.shape)
        if answer in {o["cls"] for o in record["objects"]}:
            cells = class_cells(record, answer, grid)
            on_answer.append(m[cells].sum() / total if total > 0 else np.nan)
            cells_answer.append(cells.mean())
            hit_answer.append(bool(cells[r, c]))
        if person["target"] is not None:
            cells = class_cells(record, person["target_class"], grid)
            on_true.append(m[cells].sum() / total if total > 0 else np.nan)
            cells_true.append(cells.mean())
            hit_true.append(bool(cells[r, c]))
            hit_target.append(bool(instance_cells(record, person["target"], grid)[r, c]))
    mean = lambda v: float(np.nanmean(v)) if len(v) else float("nan")  # noqa: E731
    return {"mass_on_answered_class": mean(on_answer), "answered_class_cells": mean(cells_answer),
            "argmax_on_answered_class": mean(hit_answer), "n_answered_present": len(on_answer),
            "mass_on_true_class": mean(on_true), "true_class_cells": mean(cells_true),
            "argmax_on_true_class": mean(hit_true), "argmax_on_target": mean(hit_target)}


def accuracy_by_type(model_folder, world: Path, limit: int = 500) -> dict:
    """{type: {"accuracy", "n", "majority"}} on the world's test QA pairs; "majority" is the
    accuracy of always giving the most frequent answer of each question (a language prior that
    looks at no image, measured on the same pairs: an upper bound on what the prior can do)."""
    from gazecli.core.data.gazeworld_qa import QUESTION_TYPES
    from gazecli.core.vqa.cnn import is_cnn_folder
    from gazecli.core.vqa.data import read_qa

    records = read_qa(world, "test")
    if is_cnn_folder(model_folder):  # the convolutional VQA (gaze data train-vqa --arch cnn)
        from gazecli.core.vqa.cnn import load_folder as load_cnn
        from gazecli.core.vqa.cnn_train import cnn_views, score_cnn_answers

        model, _ = load_cnn(Path(model_folder))
        views = cnn_views(world, records, model.cfg.image_size, QUESTION_TYPES)
        rows = views.all_pairs(QUESTION_TYPES, limit, seed=0)
        result = score_cnn_answers(model, views, rows, "cpu")
    else:
        from gazecli.core.vqa.data import PromptedViews, score_answers
        from gazecli.core.vqa.model import load_folder

        model, processor = load_folder(Path(model_folder))
        tok = processor.tokenizer
        views = PromptedViews(world, records, processor.image_processor.size["height"], tok,
                              tok.convert_tokens_to_ids("[DEC]"), types=QUESTION_TYPES)
        rows = views.all_pairs(QUESTION_TYPES, limit, seed=0)
        result = score_answers(model, views, rows, "cpu")
    pairs = views.pairs[rows[:, 1]]
    out = {}
    for t, name in enumerate(QUESTION_TYPES):
        sel = pairs[:, 2] == t
        if not sel.any():
            continue
        by_question: dict = {}
        for q, a in pairs[sel, :2]:
            by_question.setdefault(int(q), Counter())[int(a)] += 1
        majority = sum(c.most_common(1)[0][1] for c in by_question.values()) / int(sel.sum())
        out[name] = {"accuracy": result["accuracy"][name], "n": result["n"][name], "majority": majority}
    return out


def heat_scores(table, maps: np.ndarray, size: int = 32) -> dict:
    from gazecli.core.data.transforms import transform_map
    from gazecli.core.predictions import Predictions
    from gazecli.core.metrics import score_predictions

    heat = np.stack([transform_map(m, (0.0, 0.0, 1.0, 1.0), False, size)[0] for m in maps])
    preds = Predictions(table.path.astype(str), table.eye_xy_norm, heat)
    r = score_predictions(table, preds, "native", "cpu")
    return {"auc": r["auc"], "avg_l2": r["avg_l2"], "min_l2": r["min_l2"], "n": r["n"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gazeworld", help="--vqa-model: a folder or a named model")
    ap.add_argument("--root", type=Path, default=Path("/tmp/gw_vqa_bench"))
    ap.add_argument("--seed", type=int, default=7, help="seed of the fresh test world")
    ap.add_argument("--images", type=int, default=500, help="test images")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.gazeworld import CLASSES, synthesize_gazeworld
    from gazecli.core.data.oracle import oracle_class_maps
    from gazecli.core.gradcam.backends import load_backend
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.gradcam.store import GradcamStore
    from gazecli.core.settings import GradcamSettings, load_settings
    from gazecli.core.stages.baseline import baseline_heatmap

    t0 = time.perf_counter()
    if args.root.exists():
        shutil.rmtree(args.root)
    world = args.root / "world"
    synthesize_gazeworld(world, 0, args.images, seed=args.seed)
    backend = load_backend(args.model, device="cpu")
    layers = list(range(backend.num_layers))
    store_dir = args.root / "store"
    s = load_settings(GradcamSettings, dict(data=world, split="test", vqa_model=args.model, out=store_dir,
                                            layers=layers, device="cpu", batch_size=64))
    t1 = time.perf_counter()
    summary = run_gradcam(s, backend=backend)
    seconds_gradcam = time.perf_counter() - t1

    table = read_gazefollow(world, "test")
    split = GradcamStore(store_dir).split("test")
    index = {k: i for i, k in enumerate(split.keys())}
    rows = [index[k] for k in table.keys()]
    answers = [split.index()["persons"]["answer"][i] for i in rows]
    side = {json.loads(line)["path"]: json.loads(line) for line in (world / "gazeworld_test.jsonl").read_text().splitlines()}
    records, persons = [], []
    for path, ex, ey in table.keys():
        record = side[path]
        person = next(p for p in record["persons"] if np.allclose(p["eye_xy_norm"], (ex, ey), atol=1e-6))
        records.append(record)
        persons.append(person)
    truth = [p["target_class"] if p["target_class"] in CLASSES else "nothing" for p in persons]

    # answers vs model-free guesses
    correct = np.array([a == t for a, t in zip(answers, truth)])
    majority = Counter(truth).most_common(1)[0][0]
    uniform, frequent, not_modal = [], [], []
    for record, t in zip(records, truth):
        counts = Counter(o["cls"] for o in record["objects"])
        uniform.append(float(t in counts) / len(counts))
        top = [c for c, n in counts.items() if n == max(counts.values())]
        frequent.append(float(t in top) / len(top))
        not_modal.append(t not in top)  # the gazed class is not (one of) the most frequent class(es) present
    not_modal = np.array(not_modal, dtype=bool)
    subject = np.array([record["persons"][0] is p for record, p in zip(records, persons)])
    accuracy = {
        "gaze_question_accuracy": float(correct.mean()), "subjects_only": float(correct[subject].mean()),
        "n_persons": int(len(truth)), "n_subjects": int(subject.sum()),
        "guess_majority": float(np.mean([t == majority for t in truth])),
        "guess_uniform_among_present": float(np.mean(uniform)),
        "guess_most_frequent_present": float(np.mean(frequent)),
        "gaze_accuracy_not_modal": float(correct[not_modal].mean()) if not_modal.any() else float("nan"),
        "n_not_modal": int(not_modal.sum()),
        "gaze_accuracy_modal": float(correct[~not_modal].mean()) if (~not_modal).any() else float("nan"),
        "answers": dict(Counter(answers).most_common()),
    }

    # every question type of the fresh world's QA pairs (text answers, greedy), up to 500 per type
    accuracy["by_type"] = accuracy_by_type(backend.source, world)

    # maps
    results = {}
    default = split.default_layer()
    for layer in split.layers:
        maps = np.stack([split.raw(layer, i) for i in rows])
        results[f"gradcam layer {layer}" + (" (default)" if layer == default else "")] = {
            **heat_scores(table, maps), **mass_stats(maps, records, persons, answers)}
    maps = np.stack([split.raw(default, i) for i in rows])
    ok = correct
    results["gradcam default layer, correctly answered"] = {
        **heat_scores(table.subset(np.flatnonzero(ok)), maps[ok]),
        **mass_stats(maps[ok], [r for r, k in zip(records, ok) if k], [p for p, k in zip(persons, ok) if k],
                     [a for a, k in zip(answers, ok) if k])}
    grid = maps.shape[-1]
    centre = np.broadcast_to(baseline_heatmap("center", world, grid), (len(table), grid, grid))
    results["centre prior"] = {**heat_scores(table, centre), **mass_stats(centre, records, persons, truth)}
    oracle = oracle_class_maps(world, table, grid=grid)
    results["ORACLE class maps (ablation)"] = {**heat_scores(table, oracle), **mass_stats(oracle, records, persons, truth)}

    out = {"model": args.model, "model_folder": backend.source, "world": {"seed": args.seed, "test_images": args.images},
           "grid": list(summary["grid"]), "layers": split.layers, "default_layer": default,
           "accuracy": accuracy, "maps": results, "seconds_gradcam": seconds_gradcam,
           "persons_per_s": summary["persons_per_s"], "seconds": time.perf_counter() - t0}
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
