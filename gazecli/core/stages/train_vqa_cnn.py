"""`gaze data train-vqa --arch cnn`: train the convolutional GazeWorld VQA (core/vqa/cnn.py) on a
GazeWorld's question-answer text only.

Every prompted image (one per person asked about: its body box drawn in green, resized to
--image-size, exactly as `gaze gradcam` draws it) gets --questions-per-view questions per
step: slot 0 is the person's gaze question (weighted --gaze-weight in the loss), the others a
question type drawn uniformly, then a pair of that type (`vqa.data.PromptedViews`). Answers
are one class each over every GazeWorld answer (cross-entropy). AdamW with a linear warm-up
and a cosine decay to 5 % of --lr, on the shared engine (run folder, resume, checkpoints);
the best epoch by validation gaze accuracy is scored on the world's test split and exported
as `RUN/model/` (config.json + model.safetensors), which `gaze gradcam --vqa-model` reads.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gazecli.core.errors import DataError, SettingsError
from gazecli.core.vqa.questions import GAZE, QA_NAMES, QUESTION_TYPES, read_qa

MODEL_FOLDER = "model"


class WordTokenizer:
    """The minimal tokenizer interface `PromptedViews` needs, over the CNN's word list."""

    unk_token_id = 1
    pad_token_id = 0
    sep_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        from gazecli.core.vqa.cnn import tokenize

        return {"input_ids": tokenize(text)}


def cnn_views(root, records, image_size: int, types, questions_per_view: int = 16, seed: int = 0, progress=None):
    """PromptedViews whose items also carry each slot's answer class (`cnn.ANSWERS` index)."""
    from gazecli.core.vqa.cnn import ANSWERS
    from gazecli.core.vqa.data import PromptedViews

    class _Views(PromptedViews):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            slots = self.draw_slots(index, self.epoch)
            pair = self.pairs[np.where(slots >= 0, slots, 0)] if len(self.pairs) else np.zeros((len(slots), 3), np.int64)
            item["answer_class"] = torch.from_numpy(self.answer_class[pair[:, 1]])
            return item

    views = _Views(root, records, image_size, WordTokenizer(), 0, tuple(types), questions_per_view,
                   lambda epoch: 1.0, seed, progress)
    index = {a: i for i, a in enumerate(ANSWERS)}
    unknown = [a for a in views.encoded.answers if a not in index]
    if unknown:
        raise DataError(f"answers outside the CNN VQA's answer list: {unknown[:3]}")
    views.answer_class = np.array([index[a] for a in views.encoded.answers], dtype=np.int64)
    return views


def learning_rate(step: int, lr: float, warmup: int, total: int) -> float:
    if warmup and step <= warmup:
        return lr * step / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


def make_loss(gaze_weight: float):
    gaze = QUESTION_TYPES.index(GAZE)

    def loss_fn(net, batch: dict, ctx=None):
        used = batch["used"]  # (B, K)
        k = used.shape[1]
        flat = used.flatten()
        image_index = torch.arange(used.shape[0], device=flat.device).repeat_interleave(k)[flat]
        q_ids = batch["question_ids"].flatten(0, 1)[flat]
        q_len = batch["question_mask"].flatten(0, 1)[flat].sum(1)
        target = batch["answer_class"].flatten()[flat]
        kind = batch["kind"].flatten()[flat]
        logits = net(batch["image"], image_index, q_ids, q_len)
        ce = F.cross_entropy(logits.float(), target, reduction="none")
        is_gaze = kind == gaze
        w = torch.where(is_gaze, torch.full_like(ce, gaze_weight), torch.ones_like(ce))
        loss = (ce * w).sum() / w.sum()
        logs = {"gaze_loss": float(ce[is_gaze].mean().detach()) if is_gaze.any() else float("nan"),
                "other_loss": float(ce[~is_gaze].mean().detach()) if (~is_gaze).any() else float("nan")}
        return loss, logs

    return loss_fn


def predict_rows(model, views, rows: np.ndarray, device, batch_views: int = 64) -> np.ndarray:
    """Answer class for (view, pair) rows (greedy = argmax)."""
    from gazecli.core.vqa.cnn import encode_questions

    out = np.zeros(len(rows), dtype=np.int64)
    was = model.training
    model.eval()
    order = np.argsort(rows[:, 0], kind="stable")
    with torch.no_grad():
        uniq_all = np.unique(rows[:, 0])
        for s in range(0, len(uniq_all), batch_views):
            chunk_views = uniq_all[s:s + batch_views]
            sel = order[np.isin(rows[order, 0], chunk_views)]
            local = {v: i for i, v in enumerate(chunk_views)}
            feats = model.features(views.images[chunk_views].to(device))
            qs = [views.encoded.questions[views.pairs[p, 0]] for p in rows[sel, 1]]
            q_ids, q_len = encode_questions(qs)
            idx = torch.tensor([local[v] for v in rows[sel, 0]], device=device)
            logits = model.answer_logits(feats, idx, model.question(q_ids.to(device), q_len))
            out[sel] = logits.argmax(-1).cpu().numpy()
    model.train(was)
    return out


def score(model, views, rows: np.ndarray, device) -> dict:
    pred = predict_rows(model, views, rows, device)
    truth = views.answer_class[views.pairs[rows[:, 1], 1]]
    correct = pred == truth
    kinds = views.pairs[rows[:, 1], 2]
    acc = {QUESTION_TYPES[t]: float(correct[kinds == t].mean()) for t in np.unique(kinds)}
    n = {QUESTION_TYPES[t]: int((kinds == t).sum()) for t in np.unique(kinds)}
    return {"accuracy": acc, "n": n, "correct": correct, "predicted": pred}


def train_vqa_cnn(s, reporter=None, progress=None) -> dict:
    """Train (settings: TrainVQASettings with arch "cnn"), export RUN/model/. Returns a summary."""
    from gazecli.core.engine.device import resolve_device
    from gazecli.core.engine.distributed import env_info
    from gazecli.core.engine.precision import resolve_precision
    from gazecli.core.engine.sampling import EpochBatches
    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.engine.trainer import SilentReporter, TrainSpec, train
    from gazecli.core.settings import to_toml
    from gazecli.core.vqa.cnn import CNNVQA, CNNVQAConfig, count_parameters, save_folder

    t0 = time.perf_counter()
    if s.threads:
        torch.set_num_threads(s.threads)
    device = resolve_device(s.device)
    precision = resolve_precision(s.precision, device)
    root = Path(s.data)
    records = read_qa(root, "train")
    if s.max_images is not None:
        records = records[: s.max_images]
    if len(records) < 2:
        raise DataError(f"{root}: {len(records)} training image(s); train-vqa needs at least 2")
    n_val = max(1, int(round(len(records) * s.val_fraction)))
    if n_val >= len(records):
        raise SettingsError(f"--val-fraction {s.val_fraction} leaves no training image of {len(records)}")
    val = np.zeros(len(records), dtype=bool)
    val[np.random.default_rng([s.seed, 17]).permutation(len(records))[:n_val]] = True
    train_records = [r for r, v in zip(records, val) if not v]
    val_records = [r for r, v in zip(records, val) if v]
    reporter = reporter or SilentReporter()
    reporter.message(f"preparing prompted images: {len(train_records)} training, {len(val_records)} validation "
                     f"images of {root}")
    types = tuple(dict.fromkeys([*s.questions]))
    train_views = cnn_views(root, train_records, s.image_size, types, s.questions_per_view, s.seed, progress)
    eval_types = tuple(dict.fromkeys([*types, GAZE]))
    views: dict = {}

    def views_for(name: str):
        if name not in views:
            if name == "val":
                views[name] = cnn_views(root, val_records, s.image_size, eval_types)
            elif (root / QA_NAMES["test"]).is_file() or (root / "gazeworld_test.jsonl").is_file():
                views[name] = cnn_views(root, read_qa(root, "test"), s.image_size, eval_types)
            else:
                views[name] = None
        return views[name]

    rows_cache: dict = {}

    def evaluate(model, name: str) -> dict:
        v = views_for(name)
        if v is None:
            return {}
        if name not in rows_cache:
            rows_cache[name] = np.concatenate([v.all_pairs((GAZE,)), v.all_pairs(
                tuple(t for t in eval_types if t != GAZE), s.eval_limit, s.seed)])
        r = score(model, v, rows_cache[name], device)
        acc, n = r["accuracy"], r["n"]
        others = [a for t, a in acc.items() if t != GAZE]
        return {"gaze_acc": acc.get(GAZE, float("nan")),
                "grounding_acc": float(np.mean(others)) if others else float("nan"),
                "by_type": "; ".join(f"{t} {acc[t]:.3f} (n={n[t]})" for t in QUESTION_TYPES if t in acc)}

    seed_everything(s.seed)
    cfg = CNNVQAConfig(image_size=s.image_size, relative_hop=s.relative_hop, width=s.hidden_size,
                       stem=(s.hidden_size // 2, s.hidden_size), cam_channels=2 * s.hidden_size)
    model = CNNVQA(cfg)
    info = env_info()
    batches = EpochBatches(np.arange(len(train_views)), s.batch_size // info.world_size, seed=s.seed,
                           rank=info.rank, world_size=info.world_size)
    total = len(batches) * s.epochs
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=learning_rate(1, s.lr, s.warmup_steps, total))

    def after_step(step: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step + 1, s.lr, s.warmup_steps, total)

    spec = TrainSpec(
        command="train-vqa", settings=s, settings_toml=to_toml(s), model=model,
        model_meta={"name": "gazeworld-cnn-vqa", "config": cfg.__dict__}, optimizer=optimizer, scheduler=None,
        dataset=train_views, batches=batches, loss_fn=make_loss(s.gaze_weight), epochs=s.epochs,
        evaluate_fn=evaluate, select_metric="gaze_acc", select_mode="max", select_on="val",
        eval_every=s.eval_every, checkpoint_every=s.checkpoint_every, after_step=after_step,
        extra_meta={"data": str(root), "images": {"train": len(train_records), "val": len(val_records)},
                    "views": {"train": len(train_views)}},
        grad_clip=s.grad_clip)
    result = train(spec, device, precision, s.seed, s.project, s.name, s.resume, s.workers, reporter)
    meta = json.loads((root / "gazeworld.json").read_text()) if (root / "gazeworld.json").is_file() else {}
    best_meta = json.loads(result.best.with_suffix(".json").read_text()) if result.best is not None else {}
    provenance = {
        "trained_by": "gaze data train-vqa --arch cnn", "settings": s.model_dump(mode="json"),
        "world": {"root": str(root), "generator": meta.get("generator"), "seed": meta.get("seed"),
                  "difficulty": meta.get("difficulty"), "size": meta.get("size"),
                  "train_images": len(train_records), "val_images": len(val_records)},
        "steps": total, "best_epoch": best_meta.get("epoch_next"),
        "val_metrics": best_meta.get("metrics", {}), "test_metrics": result.test_metrics or {},
        "seconds": time.perf_counter() - t0,
        "supervision": "answer text only (GazeWorld question-answer pairs); no location, box or map is a target",
    }
    model_dir = result.run_dir / MODEL_FOLDER
    files = save_folder(model.cpu(), model_dir, provenance)
    return {"result": result, "model_dir": model_dir, "files": [*result.files, *files],
            "parameters": count_parameters(model), "test_metrics": result.test_metrics or {},
            "val_metrics": provenance["val_metrics"], "seconds": time.perf_counter() - t0}
