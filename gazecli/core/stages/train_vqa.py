"""`gaze data train-vqa`: the GazeWorld VQA model, trained from scratch on question-answer text.

A BLIP-architecture `BlipForQuestionAnswering` (tiny; `vqa.model`) learns to answer GazeWorld's
generated questions (`data/gazeworld_qa.py`) about prompted images (`vqa.data`): only answer words are
supervised, never a location. The curriculum: the first `--grounding-epochs` epochs ask only
grounding questions (colour, count, region, where, relations), which make the vision tower and
the question encoder's cross-attention find objects; then the gaze question joins them. Before
the --data world, `--warmup-epochs` run on large-object GazeWorld scenes rendered in memory, and
the question encoder's cross-attention starts from larger weights (`--cross-attention-init`),
with `--warmup-questions` only (by default the presence and location questions). Measured: with
a high rate (2e-3) and a large init (5) the answers stay at the language prior; at 1e-3 and 2 they
leave it after a few hundred steps.

Runs on the shared engine (run folder, resume, progress, checkpoints, NaN guard): the best epoch
by validation gaze-question accuracy (held-out training images) is scored on the world's test
split and exported as a `from_pretrained` folder, `RUN/model/`, which `gaze gradcam --vqa-model`
reads. Gradient norms of the vision tower, question encoder and answer decoder are logged to
`RUN/grad_norms.csv`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gazecli.core.engine.device import resolve_device
from gazecli.core.engine.precision import resolve_precision
from gazecli.core.io import write_text
from gazecli.core.engine.sampling import EpochBatches
from gazecli.core.engine.trainer import Callback, Reporter, SilentReporter, StepContext, TrainResult, TrainSpec, train
from gazecli.core.errors import DataError, SettingsError
from gazecli.core.settings import TrainVQASettings, to_toml
from gazecli.core.data.gazeworld_qa import GAZE, QA_NAMES, QUESTION_TYPES
from gazecli.core.vqa.data import read_qa

MODEL_FOLDER = "model"
GRAD_NORMS = "grad_norms.csv"
GRAD_NORM_EVERY = 100  # steps between gradient-norm records (and step 1)


def vqa_config(s: TrainVQASettings):
    from gazecli.core.vqa.model import VQAConfig

    return VQAConfig(image_size=s.image_size, patch_size=s.patch_size, hidden_size=s.hidden_size,
                     vision_layers=s.vision_layers, text_layers=s.text_layers, heads=s.heads)


def held_out_images(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean (n,): the images held out for validation (image-level, seeded)."""
    n_val = max(1, int(round(n * fraction))) if n > 1 else 0
    if n_val >= n:
        raise SettingsError(f"--val-fraction {fraction} leaves no training image of {n}")
    val = np.zeros(n, dtype=bool)
    val[np.random.default_rng([seed, 17]).permutation(n)[:n_val]] = True
    return val


def learning_rate(step: int, s: TrainVQASettings, total_steps: int, floor: float = 0.01) -> float:
    """Linear warm-up to --lr over --warmup-steps, then cosine to `floor` of it (BLIP 1 %, cnn 5 %)
    at the last step."""
    if s.warmup_steps and step <= s.warmup_steps:
        return s.lr * step / s.warmup_steps
    span = max(1, total_steps - s.warmup_steps)
    t = min(1.0, (step - s.warmup_steps) / span)
    return s.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))


def vqa_loss(net, batch: dict, ctx: StepContext | None = None) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of the answer tokens ([SEP] included), averaged per question, then over the
    questions of the batch; the gaze questions' share is logged apart."""
    from gazecli.core.vqa.model import normalise_pixels

    used = batch["used"].flatten()  # (B*K,)
    k = batch["used"].shape[1]
    image_index = torch.arange(batch["used"].shape[0], device=used.device).repeat_interleave(k)[used]
    q_ids, q_mask = batch["question_ids"].flatten(0, 1)[used], batch["question_mask"].flatten(0, 1)[used]
    a_ids, a_mask = batch["answer_ids"].flatten(0, 1)[used], batch["answer_mask"].flatten(0, 1)[used]
    width = int(q_mask.sum(1).max())  # the longest question of the batch goes unpadded
    q_ids, q_mask = q_ids[:, :width], q_mask[:, :width]
    a_len = int(a_mask.sum(1).max())
    a_ids, a_mask = a_ids[:, :a_len], a_mask[:, :a_len]
    logits = net(normalise_pixels(batch["image"]), image_index, q_ids, q_mask, a_ids[:, :-1], a_mask[:, :-1])
    target, weight = a_ids[:, 1:], a_mask[:, 1:].float()
    ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")  # (N, Ta - 1)
    per_question = (ce * weight).sum(1) / weight.sum(1)
    loss = per_question.mean()
    kind = batch["kind"].flatten()[used]
    gaze = kind == QUESTION_TYPES.index(GAZE)
    logs = {"gaze_loss": float(per_question[gaze].mean().detach()) if gaze.any() else float("nan"),
            "grounding_loss": float(per_question[~gaze].mean().detach()) if (~gaze).any() else float("nan")}
    return loss, logs


def vqa_evaluator(views_for, device, eval_limit: int, seed: int, score_answers=None):
    """split name -> metrics: gaze_acc (every gaze question), grounding_acc (mean over the other
    types, up to eval_limit pairs each) and by_type (a line: each type's accuracy and count).
    `score_answers(model, views, rows, device)`: the BLIP VQA's (`vqa.data`) unless given."""
    if score_answers is None:
        from gazecli.core.vqa.data import score_answers

    cache: dict = {}

    def evaluate(model, name: str) -> dict:
        views = views_for(name)
        if views is None:
            return {}
        if name not in cache:
            gaze = views.all_pairs((GAZE,))
            others = views.all_pairs(tuple(t for t in QUESTION_TYPES if t != GAZE), eval_limit, seed)
            cache[name] = np.concatenate([gaze, others])
        result = score_answers(model, views, cache[name], device)
        acc, n = result["accuracy"], result["n"]
        grounding = [v for t, v in acc.items() if t != GAZE]
        return {"gaze_acc": acc.get(GAZE, float("nan")),
                "grounding_acc": float(np.mean(grounding)) if grounding else float("nan"),
                # text, so it stays out of the curves: accuracy and count of every question type
                "by_type": "; ".join(f"{t} {acc[t]:.3f} (n={n[t]})" for t in QUESTION_TYPES if t in acc)}

    return evaluate


def train_vqa(s: TrainVQASettings, reporter: Reporter | None = None, progress=None) -> dict:
    """Train, select on validation gaze accuracy, score the test split, export RUN/model/.
    Returns {"result": TrainResult, "model_dir", "files", "parameters", "test_metrics", ...}.
    `--arch cnn` trains the convolutional VQA instead (`train_vqa_cnn`)."""
    if s.arch == "cnn":
        return train_vqa_cnn(s, reporter, progress)
    from gazecli.core.engine.distributed import env_info
    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.vqa.data import PromptedViews
    from gazecli.core.vqa.model import GazeWorldVQA, build_blip, build_tokenizer, count_parameters, export_folder

    t0 = time.perf_counter()
    device, precision, root, records = _start(s)
    train_records, val_records = split_records(records, s)
    cfg = vqa_config(s)
    tokenizer = build_tokenizer()
    bos = tokenizer.convert_tokens_to_ids("[DEC]")
    if GAZE not in s.questions and s.gaze_fraction > 0 and reporter:
        reporter.message("note: --questions has no gaze question; --gaze-fraction is ignored")

    def gaze_probability(epoch: int) -> float:
        return 0.0 if epoch < s.grounding_epochs else s.gaze_fraction

    warm_records = []
    if s.warmup_epochs and s.warmup_scenes:
        from gazecli.core.vqa.data import warmup_records

        if reporter:
            reporter.message(f"rendering {s.warmup_scenes} large-object warm-up scenes")
        warm_records = warmup_records(s.warmup_scenes, s.seed, cfg.image_size)
        warm_records = [{**r, "qa": [p for p in r["qa"] if p["type"] in s.warmup_questions]} for r in warm_records]
    if reporter:
        reporter.message(f"preparing prompted images: {len(train_records)} training, {len(val_records)} validation "
                         f"images of {root}")
    train_views = PromptedViews(root, warm_records + train_records, cfg.image_size, tokenizer, bos,
                                tuple(s.questions), s.questions_per_view, gaze_probability, s.seed, progress)
    is_warm = train_views.view_image < len(warm_records)
    eval_types = tuple(dict.fromkeys([*s.questions, GAZE]))  # the gaze question is always scored
    views: dict = {"val": None, "test": None}

    def views_for(name: str):
        if views.get(name) is None:
            if name == "val":
                views["val"] = PromptedViews(root, val_records, cfg.image_size, tokenizer, bos, eval_types)
            elif name == "test":
                if not _has_test(root):
                    return None
                views["test"] = PromptedViews(root, read_qa(root, "test"), cfg.image_size, tokenizer, bos, eval_types)
        return views[name]

    seed_everything(s.seed)  # before the model exists: its initial weights follow the seed
    model = GazeWorldVQA(build_blip(cfg, s.cross_attention_init))
    info = env_info()
    if s.batch_size % info.world_size:
        raise SettingsError(f"--batch-size {s.batch_size} must be divisible by the {info.world_size} processes")
    warm_epochs = s.warmup_epochs if warm_records else 0
    batches = PhasedBatches(np.flatnonzero(is_warm), np.flatnonzero(~is_warm), warm_epochs,
                            s.batch_size // info.world_size, seed=s.seed, rank=info.rank, world_size=info.world_size)
    epochs = warm_epochs + s.epochs
    total_steps = batches.total_steps(epochs)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate(1, s, total_steps))
    reporter = _RunFolderSpy(reporter or SilentReporter())
    norms_file: list[Path] = []

    class AfterStep(Callback):  # gradient norms now and then; the learning rate of the next step
        def on_step_end(self, step: int, logs: dict) -> None:
            after_step(step)

    def after_step(step: int) -> None:
        if (step == 1 or step % GRAD_NORM_EVERY == 0) and info.rank == 0:
            from gazecli.core.vqa.model import gradient_norms

            if not norms_file:
                norms_file.append(_grad_norms_file(reporter.run_dir / GRAD_NORMS, step))
            n = gradient_norms(model)
            with open(norms_file[0], "a", encoding="utf-8") as f:
                f.write(f"{step},{n['vision_model']:.6g},{n['text_encoder']:.6g},{n['text_decoder']:.6g}\n")
        for group in optimizer.param_groups:  # the rate of the next step: a function of the step alone
            group["lr"] = learning_rate(step + 1, s, total_steps)

    spec = TrainSpec(
        command="train-vqa", settings=s, settings_toml=to_toml(s), model=model,
        model_meta={"name": "gazeworld-vqa", "config": cfg.__dict__}, optimizer=optimizer, scheduler=None,
        dataset=train_views, batches=batches, loss_fn=vqa_loss, epochs=epochs,
        evaluate_fn=vqa_evaluator(views_for, device, s.eval_limit, s.seed), select_metric="gaze_acc", select_mode="max",
        select_on="val", eval_every=s.eval_every, checkpoint_every=s.checkpoint_every, callbacks=[AfterStep()],
        extra_meta={"data": str(root), "images": {"train": len(train_records), "val": len(val_records),
                                                  "warmup": len(warm_records)},
                    "views": {"train": int((~is_warm).sum()), "warmup": int(is_warm.sum())}, "warmup_epochs": warm_epochs},
        grad_clip=s.grad_clip)
    result: TrainResult = train(spec, device, precision, s.seed, s.project, s.name, s.resume, s.workers, reporter)

    # `model` now holds the best weights (the engine loaded them to score the test split)
    provenance = {"trained_by": "gaze data train-vqa", "settings": s.model_dump(mode="json"),
                  **_provenance(result, root, train_records, val_records), "parameters": count_parameters(model)}
    model_dir = result.run_dir / MODEL_FOLDER
    files = export_folder(model.cpu(), cfg, model_dir, provenance)
    return {"result": result, "model_dir": model_dir, "files": [*result.files, *files],
            "parameters": provenance["parameters"], "test_metrics": result.test_metrics or {},
            "val_metrics": provenance["val_metrics"], "seconds": time.perf_counter() - t0,
            "grad_norms": result.run_dir / GRAD_NORMS}




def _start(s: TrainVQASettings):
    """Threads, device, precision, the world's root and its training QA records (at least 2)."""
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
    return device, precision, root, records


def split_records(records: list[dict], s: TrainVQASettings) -> tuple[list[dict], list[dict]]:
    """(training, validation) images: --val-fraction held out, seeded (`held_out_images`)."""
    val = held_out_images(len(records), s.val_fraction, s.seed)
    return [r for r, v in zip(records, val) if not v], [r for r, v in zip(records, val) if v]


def _has_test(root: Path) -> bool:
    return (root / QA_NAMES["test"]).is_file() or (root / "gazeworld_test.jsonl").is_file()


def _provenance(result: TrainResult, root: Path, train_records: list, val_records: list) -> dict:
    """What the exported folder records of its world, its best epoch and its scores."""
    meta = json.loads((root / "gazeworld.json").read_text()) if (root / "gazeworld.json").is_file() else {}
    best_meta = json.loads(result.best.with_suffix(".json").read_text()) if result.best is not None else {}
    return {"world": {"root": str(root), "generator": meta.get("generator"), "seed": meta.get("seed"),
                      "difficulty": meta.get("difficulty"), "size": meta.get("size"),
                      "train_images": len(train_records), "val_images": len(val_records)},
            "best_epoch": best_meta.get("epoch_next"), "val_metrics": best_meta.get("metrics", {}),
            "test_metrics": result.test_metrics or {},
            "supervision": "answer text only (GazeWorld question-answer pairs); no location, box or map is a target"}


def train_vqa_cnn(s: TrainVQASettings, reporter: Reporter | None = None, progress=None) -> dict:
    """`--arch cnn`: the convolutional VQA (`vqa.cnn`), answer classes, the gaze question weighted
    --gaze-weight (`vqa.cnn_train`), a cosine to 5 % of --lr; the same selection, test score and
    export (`RUN/model/`: config.json + model.safetensors) as the BLIP VQA."""
    from gazecli.core.engine.distributed import env_info
    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.vqa.cnn import CNNVQA, CNNVQAConfig, count_parameters, save_folder
    from gazecli.core.vqa.cnn_train import cnn_views, cnn_vqa_loss, score_cnn_answers

    t0 = time.perf_counter()
    device, precision, root, records = _start(s)
    reporter = reporter or SilentReporter()
    if s.init is not None:  # checked before the views are prepared
        init_model, init_meta = init_cnn_model(s.init)
        c = init_model.cfg
        if c.image_size != s.image_size:
            raise SettingsError(f"--init {s.init}: its input side is {c.image_size}, --image-size is {s.image_size}")
        reporter.message(f"--init {s.init}: its weights and config (stem {c.stem_kind}, width {c.width}, relative hop "
                         f"{c.relative_hop}, key positions {c.key_positions}); the model flags do not apply")
    train_records, val_records = split_records(records, s)
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
            else:
                views[name] = cnn_views(root, read_qa(root, "test"), s.image_size, eval_types) if _has_test(root) else None
        return views[name]

    seed_everything(s.seed)
    if s.init is not None:
        model, cfg = init_model, init_model.cfg
    else:
        cfg = CNNVQAConfig(image_size=s.image_size, relative_hop=s.relative_hop, key_positions=s.key_positions,
                           stem_kind=s.stem, width=s.hidden_size,
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
                                  lr=learning_rate(1, s, total, floor=0.05))

    class NextRate(Callback):  # the rate of the next step: a function of the step alone
        def on_step_end(self, step: int, logs: dict) -> None:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step + 1, s, total, floor=0.05)

    spec = TrainSpec(
        command="train-vqa", settings=s, settings_toml=to_toml(s), model=model,
        model_meta={"name": "gazeworld-cnn-vqa", "config": cfg.__dict__}, optimizer=optimizer, scheduler=None,
        dataset=train_views, batches=batches, loss_fn=cnn_vqa_loss(s.gaze_weight), epochs=s.epochs,
        evaluate_fn=vqa_evaluator(views_for, device, s.eval_limit, s.seed, score_cnn_answers), select_metric="gaze_acc",
        select_mode="max", select_on="val", eval_every=s.eval_every, checkpoint_every=s.checkpoint_every,
        callbacks=[NextRate()],
        extra_meta={"data": str(root), "images": {"train": len(train_records), "val": len(val_records)},
                    "views": {"train": len(train_views)}},
        grad_clip=s.grad_clip)
    result: TrainResult = train(spec, device, precision, s.seed, s.project, s.name, s.resume, s.workers, reporter)
    provenance = {"trained_by": "gaze data train-vqa --arch cnn", "settings": s.model_dump(mode="json"),
                  **({"init": _init_provenance(s.init, init_meta)} if s.init is not None else {}),
                  **_provenance(result, root, train_records, val_records), "steps": total,
                  "seconds": time.perf_counter() - t0}
    model_dir = result.run_dir / MODEL_FOLDER
    files = save_folder(model.cpu(), model_dir, provenance)
    return {"result": result, "model_dir": model_dir, "files": [*result.files, *files],
            "parameters": count_parameters(model), "test_metrics": result.test_metrics or {},
            "val_metrics": provenance["val_metrics"], "seconds": time.perf_counter() - t0}


def init_cnn_model(init):
    """--init: the convolutional VQA of a folder or a named model (gazeworld-cnn) and its config.json.
    Anything else is one settings line (exit 2)."""
    from gazecli.core.gradcam.backends import resolve_model_source
    from gazecli.core.gradcam.vqa_backend import ModelError
    from gazecli.core.vqa.cnn import is_cnn_folder, load_folder

    try:
        folder = Path(resolve_model_source(str(init)))
    except ModelError as e:
        raise SettingsError(f"--init {init}: {str(e).split(': ', 1)[-1]}") from None
    if not is_cnn_folder(folder):
        raise SettingsError(f"--init {init}: not a convolutional GazeWorld VQA folder (train-vqa --arch cnn "
                            f"writes one as RUN/model/)")
    try:
        return load_folder(folder)
    except DataError as e:
        raise SettingsError(f"--init {init}: {e}") from None


def _init_provenance(init, meta: dict) -> dict:
    """Where the starting weights came from: the name given and, when known, how they were trained."""
    keep = ("trained_by", "world", "steps", "best_epoch", "seconds", "init")
    return {"from": str(init), **{k: meta[k] for k in keep if k in meta}}


class PhasedBatches(EpochBatches):
    """The warm-up views' batches for the first `warm_epochs` epochs, then the main views'."""

    def __init__(self, warm, main, warm_epochs: int, batch_size: int, **kwargs):
        self.warm, self.main = np.asarray(warm, dtype=np.int64), np.asarray(main, dtype=np.int64)
        self.warm_epochs = warm_epochs if len(self.warm) else 0
        super().__init__(self.warm if self.warm_epochs else self.main, batch_size, **kwargs)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.indices = self.warm if epoch < self.warm_epochs else self.main
        super().set_epoch(epoch, skip)

    def total_steps(self, epochs: int) -> int:
        n = 0
        for epoch in range(epochs):
            self.set_epoch(epoch)
            n += len(self)
        self.set_epoch(0)
        return n


class _RunFolderSpy:
    """Passes every report on and remembers the run folder the engine announces."""

    def __init__(self, inner):
        self.inner, self.run_dir = inner, None

    def run_started(self, run_dir, epochs, start_epoch):
        self.run_dir = Path(run_dir)
        self.inner.run_started(run_dir, epochs, start_epoch)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _grad_norms_file(path: Path, step: int) -> Path:
    """RUN/grad_norms.csv with its rows at or after `step` dropped (a resumed run writes them again)."""
    header = "step,vision_model,text_encoder,text_decoder"
    old = path.read_text(encoding="utf-8").splitlines()[1:] if path.is_file() else []
    kept = [line for line in old if line and int(line.split(",")[0]) < step]
    write_text(path, "\n".join([header, *kept]) + "\n")
    return path
