"""Prompted GazeWorld images with their question-answer pairs, for training and scoring the VQA.

A *view* is one image as the VQA sees it: for each person asked about, the image with that
person's body box drawn in green and resized to the model's square input, exactly as
`gaze gradcam` prepares it (`gradcam.prompt.draw_prompt` then `resize_square`); an image with no
person to ask about gives one view without a box. A view carries the image's pairs (colour,
count, region, ...) and its person's pairs (gaze, where-person, direction).

Training draws `questions_per_view` question slots per view and epoch from a generator seeded by
(seed, epoch, view), so batches are reproducible and resume exactly: slot 0 is the gaze question
with probability `gaze_probability(epoch)` (the curriculum: none in the first epochs), the other
slots a question type drawn uniformly among the view's types, then a pair of that type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gazecli.core.errors import DataError, SettingsError
from gazecli.core.data.gazeworld import SIDECAR_NAMES
from gazecli.core.data.gazeworld_qa import GAZE, PERSON_TYPES, QA_NAMES, QUESTION_TYPES, qa_record
from gazecli.core.safe_read import read_json_lines

NO_BOX = np.full(4, np.nan)
WARMUP_SEED_OFFSET = 1_000_000  # warm-up scenes draw from other seeds than any world a user makes


def large_object_config():
    """GazeWorld scenes with large objects and heads, for the first (warm-up) epochs: an object
    covers 4-9 of the 64 patches instead of 1-2, so the image is not a faint average over the
    patches and grounding can start ("simpler teacher scenes")."""
    from gazecli.core.data.gazeworld import GazeWorldConfig

    return GazeWorldConfig(n_objects=(2, 4), object_half_size_px=(14.0, 20.0), head_radius_px=(10.0, 14.0),
                           twin_probability=0.3, second_person_probability=0.2, out_of_frame_probability=0.0,
                           occlusion_probability=0.0, target_min_distance_radii=1.5)


def warmup_records(n: int, seed: int, size: int = 128, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """QA records of `n` large-object scenes rendered in memory (no files), each with its RGB
    image under "_image"; the same (n, seed, size) always gives the same scenes."""
    from gazecli.core.data.gazeworld import _sidecar_record, render_scene

    cfg = large_object_config()
    out = []
    for i in range(n):
        scene = render_scene(WARMUP_SEED_OFFSET + seed, "train", i, size, cfg)
        rel = f"warmup/{i:08d}.png"
        record = json.loads(json.dumps(_sidecar_record(scene, rel, [[] for _ in scene.persons])))
        out.append({**qa_record(record), "_image": np.ascontiguousarray(scene.image[..., ::-1])})
        if progress is not None:
            progress(i + 1, n)
    return out


@dataclass
class Encoded:
    """Token ids of every distinct question and answer, padded."""

    question_ids: torch.Tensor  # (Q, Tq) [CLS] question [SEP] [PAD]...
    question_mask: torch.Tensor  # (Q, Tq)
    answer_ids: torch.Tensor  # (A, Ta) [DEC] answer [SEP] [PAD]...
    answer_mask: torch.Tensor  # (A, Ta)
    questions: list[str]
    answers: list[str]


def encode_texts(tokenizer, questions: list[str], answers: list[str], bos_id: int) -> Encoded:
    q = [tokenizer(text)["input_ids"] for text in questions]
    unknown = [t for t, ids in zip(questions, q) if tokenizer.unk_token_id in ids]
    a = [[bos_id, *tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.sep_token_id] for text in answers]
    unknown += [t for t, ids in zip(answers, a) if tokenizer.unk_token_id in ids]
    if unknown:
        raise DataError(f"words outside the VQA vocabulary in {unknown[:3]} (a newer QA file than this gazecli?)")

    def pad(rows):
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return ids, mask

    qi, qm = pad(q)
    ai, am = pad(a)
    return Encoded(qi, qm, ai, am, list(questions), list(answers))


class PromptedViews(torch.utils.data.Dataset):
    """The views of some GazeWorld images and their pairs (see the module docstring)."""

    def __init__(self, root: Path, records: list[dict], image_size: int, tokenizer, bos_id: int,
                 types: tuple[str, ...] = QUESTION_TYPES, questions_per_view: int = 4,
                 gaze_probability: Callable[[int], float] = lambda epoch: 0.5, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None):
        from gazecli.core.data.images import read_image_rgb
        from gazecli.core.gradcam.prompt import draw_prompt, resize_square

        unknown = [t for t in types if t not in QUESTION_TYPES]
        if unknown:
            raise SettingsError(f"unknown question types {unknown} (known: {', '.join(QUESTION_TYPES)})")
        self.types = tuple(t for t in QUESTION_TYPES if t in types)
        self.questions_per_view = questions_per_view
        self.gaze_probability = gaze_probability
        self.seed, self.epoch = seed, 0
        questions: dict[str, int] = {}
        answers: dict[str, int] = {}
        pairs = []  # (question index, answer index, type index)
        images, view_pairs, view_image, view_person = [], [], [], []
        for n, record in enumerate(records):
            image = record["_image"] if "_image" in record else read_image_rgb(Path(root) / record["path"])
            general, by_person = [], {}
            for pair in record["qa"]:
                if pair["type"] not in self.types:
                    continue
                q = questions.setdefault(pair["question"], len(questions))
                a = answers.setdefault(pair["answer"], len(answers))
                pairs.append((q, a, QUESTION_TYPES.index(pair["type"])))
                if pair["type"] in PERSON_TYPES:
                    box = pair["body_box_xyxy_px"]
                    by_person.setdefault((pair["person"], None if box is None else tuple(box)), []).append(len(pairs) - 1)
                else:
                    general.append(len(pairs) - 1)
            prompts = list(by_person.items()) or [((None, None), [])]
            for (person, box), own in prompts:
                drawn, _, _ = draw_prompt(image, NO_BOX if box is None else np.asarray(box))
                images.append(resize_square(drawn, image_size))
                view_pairs.append(general + own)
                view_image.append(n)
                view_person.append(-1 if person is None else person)
            if progress is not None:
                progress(n + 1, len(records))
        if not images:
            raise DataError(f"{root}: no images to make VQA views from")
        self.images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (V, 3, S, S) uint8
        self.pairs = np.array(pairs, dtype=np.int64).reshape(-1, 3)
        self.view_pairs = [np.array(v, dtype=np.int64) for v in view_pairs]
        self.view_image = np.array(view_image, dtype=np.int64)
        self.view_person = np.array(view_person, dtype=np.int64)
        self.records = [{k: v for k, v in r.items() if k != "_image"} for r in records]
        self.encoded = encode_texts(tokenizer, list(questions), list(answers), bos_id)
        gaze = QUESTION_TYPES.index(GAZE)
        self._by_type = [{t: v[self.pairs[v, 2] == t] for t in np.unique(self.pairs[v, 2])} if len(v) else {}
                         for v in self.view_pairs]
        self._gaze = gaze

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw_slots(self, index: int, epoch: int) -> np.ndarray:
        """(K,) pair indices of the view's question slots in this epoch (-1: an empty slot)."""
        rng = np.random.default_rng([self.seed, epoch, index, 13])
        by_type = self._by_type[index]
        slots = np.full(self.questions_per_view, -1, dtype=np.int64)
        others = [t for t in by_type if t != self._gaze]
        p_gaze = self.gaze_probability(epoch)
        start = 0
        if self._gaze in by_type and rng.random() < p_gaze:
            slots[0] = by_type[self._gaze][rng.integers(len(by_type[self._gaze]))]
            start = 1
        for k in range(start, self.questions_per_view):
            if not others:
                break
            t = others[rng.integers(len(others))]
            slots[k] = by_type[t][rng.integers(len(by_type[t]))]
        return slots

    def __getitem__(self, index: int) -> dict:
        slots = self.draw_slots(index, self.epoch)
        used = slots >= 0
        pair = self.pairs[np.where(used, slots, 0)] if len(self.pairs) else np.zeros((len(slots), 3), dtype=np.int64)
        e = self.encoded
        return {
            "index": index,
            "image": self.images[index],  # (3, S, S) uint8
            "question_ids": e.question_ids[pair[:, 0]], "question_mask": e.question_mask[pair[:, 0]],
            "answer_ids": e.answer_ids[pair[:, 1]], "answer_mask": e.answer_mask[pair[:, 1]],
            "kind": torch.from_numpy(pair[:, 2]), "used": torch.from_numpy(used),
        }

    # -- scoring

    def all_pairs(self, types: tuple[str, ...], limit_per_type: int | None = None, seed: int = 0) -> np.ndarray:
        """(M, 2) rows (view, pair) of the given types; with a limit, a seeded subsample per type."""
        rows = [(v, p) for v, ps in enumerate(self.view_pairs) for p in ps]
        rows = np.array(rows, dtype=np.int64).reshape(-1, 2)
        wanted = [QUESTION_TYPES.index(t) for t in types]
        keep = []
        for t in wanted:
            sel = np.flatnonzero(self.pairs[rows[:, 1], 2] == t)
            if limit_per_type is not None and len(sel) > limit_per_type:
                sel = np.sort(np.random.default_rng([seed, t, 5]).choice(sel, limit_per_type, replace=False))
            keep.append(sel)
        return rows[np.concatenate(keep)] if keep else rows[:0]


def score_answers(model, views: PromptedViews, rows: np.ndarray, device, batch_size: int = 256,
                  tokenizer=None) -> dict:
    """Greedy answers for (view, pair) rows: accuracy per question type, overall, and the answers.

    Returns {"accuracy": {type: acc}, "n": {type: count}, "predicted": [answer text or token ids],
    "correct": (M,) bool}."""
    from gazecli.core.vqa.model import normalise_pixels

    e = views.encoded
    correct = np.zeros(len(rows), dtype=bool)
    predicted: list = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            uniq, inverse = np.unique(chunk[:, 0], return_inverse=True)
            pixels = normalise_pixels(views.images[uniq].to(device))
            pair = views.pairs[chunk[:, 1]]
            q_ids, q_mask = e.question_ids[pair[:, 0]], e.question_mask[pair[:, 0]]
            width = int(q_mask.sum(1).max())
            q_ids, q_mask = q_ids[:, :width].to(device), q_mask[:, :width].to(device)
            answers = model.greedy_answers(pixels, torch.from_numpy(inverse).to(device), q_ids, q_mask)
            for j, ids in enumerate(answers):
                target = e.answer_ids[pair[j, 1]][1:int(e.answer_mask[pair[j, 1]].sum()) - 1].tolist()
                correct[start + j] = ids == target
                predicted.append(tokenizer.decode(ids) if tokenizer is not None else ids)
    model.train(was_training)
    kinds = views.pairs[rows[:, 1], 2]
    acc, n = {}, {}
    for t in np.unique(kinds):
        name = QUESTION_TYPES[t]
        acc[name] = float(correct[kinds == t].mean())
        n[name] = int((kinds == t).sum())
    return {"accuracy": acc, "n": n, "predicted": predicted, "correct": correct}


def read_qa(root: Path, split: str) -> list[dict]:
    """The QA records of a GazeWorld split: from `gazeworld_{split}_qa.jsonl`, or made from the
    sidecar when that file is missing (a world written before QA pairs existed)."""
    root = Path(root)
    path = root / QA_NAMES[split]
    if path.is_file():
        return read_json_lines(path, "question-answer file")
    sidecar = root / SIDECAR_NAMES[split]
    if not sidecar.is_file():
        raise DataError(f"{root}: no {QA_NAMES[split]} or {SIDECAR_NAMES[split]}: not a GazeWorld "
                        f"(write one with gaze data synth)")
    return [qa_record(r) for r in read_json_lines(sidecar, "GazeWorld sidecar")]
