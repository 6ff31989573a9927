"""Training and scoring pieces of the convolutional GazeWorld VQA (`vqa.cnn`), for
`gaze data train-vqa --arch cnn` (stages/train_vqa.py) and benchmarks/gazeworld_vqa.py.

Every prompted image (`vqa.data.PromptedViews`: one per person asked about, its body box drawn
in green, resized to --image-size exactly as `gaze gradcam` draws it) gets --questions-per-view
questions per step: slot 0 is the person's gaze question (weighted --gaze-weight in the loss),
the others a question type drawn uniformly, then a pair of that type. Answers are one class each
over every GazeWorld answer (`cnn.ANSWERS`; cross-entropy); greedy answers are the argmax.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gazecli.core.data.gazeworld_qa import GAZE, QUESTION_TYPES
from gazecli.core.errors import DataError
from gazecli.core.vqa.data import PromptedViews


class WordTokenizer:
    """The minimal tokenizer interface `PromptedViews` needs, over the CNN's word list."""

    unk_token_id = 1
    pad_token_id = 0
    sep_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        from gazecli.core.vqa.cnn import tokenize

        return {"input_ids": tokenize(text)}


class CNNViews(PromptedViews):
    """PromptedViews whose items also carry each slot's answer class (`cnn.ANSWERS` index)."""

    answer_class: np.ndarray  # (A,) answer index -> class, set by `cnn_views`

    def __getitem__(self, index):
        item = super().__getitem__(index)
        slots = self.draw_slots(index, self.epoch)
        pair = self.pairs[np.where(slots >= 0, slots, 0)] if len(self.pairs) else np.zeros((len(slots), 3), np.int64)
        item["answer_class"] = torch.from_numpy(self.answer_class[pair[:, 1]])
        return item


def cnn_views(root, records, image_size: int, types, questions_per_view: int = 16, seed: int = 0,
              progress=None) -> CNNViews:
    """The views of `records` for the CNN VQA (no gaze curriculum: slot 0 always asks the gaze question)."""
    from gazecli.core.vqa.cnn import ANSWERS

    views = CNNViews(root, records, image_size, WordTokenizer(), 0, tuple(types), questions_per_view,
                     lambda epoch: 1.0, seed, progress)
    index = {a: i for i, a in enumerate(ANSWERS)}
    unknown = [a for a in views.encoded.answers if a not in index]
    if unknown:
        raise DataError(f"answers outside the CNN VQA's answer list: {unknown[:3]}")
    views.answer_class = np.array([index[a] for a in views.encoded.answers], dtype=np.int64)
    return views


def cnn_vqa_loss(gaze_weight: float):
    """The loss function: cross-entropy over answer classes, the gaze questions weighted `gaze_weight`."""
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


def predict_rows(model, views: CNNViews, rows: np.ndarray, device, batch_views: int = 64) -> np.ndarray:
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


def score_cnn_answers(model, views: CNNViews, rows: np.ndarray, device) -> dict:
    """As `vqa.data.score_answers`: {"accuracy": {type: acc}, "n": {type: count}, "correct", "predicted"}."""
    pred = predict_rows(model, views, rows, device)
    truth = views.answer_class[views.pairs[rows[:, 1], 1]]
    correct = pred == truth
    kinds = views.pairs[rows[:, 1], 2]
    acc = {QUESTION_TYPES[t]: float(correct[kinds == t].mean()) for t in np.unique(kinds)}
    n = {QUESTION_TYPES[t]: int((kinds == t).sum()) for t in np.unique(kinds)}
    return {"accuracy": acc, "n": n, "correct": correct, "predicted": pred}
