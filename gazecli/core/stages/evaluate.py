"""`gaze eval --predictions`: score a prediction file against a dataset split."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.data import read_persons
from gazecli.core.data.images import image_sizes_wh
from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError, writing
from gazecli.core.predictions import Predictions, join_predictions, load_predictions, save_predictions
from gazecli.core.settings import EvalSettings

Progress = Callable[[int, int], None]


def score_predictions(table: PersonTable, predictions: Predictions, auc_resolution: str = "native",
                      device: str = "auto", batch_size: int = 256, progress: Progress | None = None) -> dict:
    """Metrics of predictions already aligned with `table` (row i predicts person i).

    GazeFollow: AUC / Avg L2 / Min L2 over in-frame persons (all test persons are in frame).
    VideoAttentionTarget: AUC / L2 over in-frame frames, AP of `inout` over all frames.
    """
    import torch

    from gazecli.core.engine.device import resolve_device
    from gazecli.core.metrics import GazeFollowMeter, VATMeter

    check_scores_finite(table, predictions)
    dev = resolve_device(device)
    if dev.type == "mps":  # the metrics run in float64, which MPS lacks
        dev = torch.device("cpu")
    n = len(table)
    heatmaps = torch.from_numpy(np.ascontiguousarray(predictions.heatmap))
    if table.dataset == "videoatt":
        meter = VATMeter()
        gaze = torch.from_numpy(table.gaze_xy_norm[:, 0])
        inout = torch.from_numpy(table.inout.astype(np.float64))
        score = None if predictions.inout is None else torch.from_numpy(predictions.inout)
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            meter.update(heatmaps[sl].to(dev), gaze[sl], inout[sl], None if score is None else score[sl])
            if progress:
                progress(min(i + batch_size, n), n)
        result = meter.compute()
    else:
        inside = np.flatnonzero(table.inout == 1)
        sizes = image_sizes_wh(table.root, table.path[inside])[:, ::-1].copy()  # (H, W)
        meter = GazeFollowMeter(auc_resolution)
        gaze = torch.from_numpy(table.gaze_xy_norm[inside])
        sizes_t = torch.from_numpy(sizes)
        hm = heatmaps[torch.from_numpy(inside)]
        for i in range(0, len(inside), batch_size):
            sl = slice(i, i + batch_size)
            meter.update(hm[sl].to(dev), sizes_t[sl], gaze[sl])
            if progress:
                progress(min(i + batch_size, len(inside)), len(inside))
        result = meter.compute()
        result["n_out_of_frame_skipped"] = int(n - len(inside))
    result["dataset"] = table.dataset
    result["split"] = table.split
    result["device"] = str(dev)
    return result


def check_scores_finite(table: PersonTable, predictions: Predictions, where: str = "predictions") -> None:
    """Metrics refuse NaN / infinite heatmaps and in-frame scores, naming the first such person
    (a NaN score would sort arbitrarily: an all-NaN inout once scored AP 1.0)."""
    from gazecli.core.validate import require_finite

    names = [f"{p}, eye ({x:.4f}, {y:.4f})" for p, (x, y) in zip(table.path, table.eye_xy_norm)]
    require_finite(predictions.heatmap, "the heatmap", names, where)
    if predictions.inout is not None:
        require_finite(predictions.inout, "the in-frame score (inout)", names, where)


def load_trained_model(checkpoint: Path, device=None):
    """(model in eval mode, checkpoint metadata) from a run folder or a .safetensors file."""
    from gazecli.core.engine.checkpoint import load_checkpoint, load_weights_into, resolve_checkpoint
    from gazecli.core.models import build_model

    path = resolve_checkpoint(checkpoint)
    state, meta, _ = load_checkpoint(path)
    spec = meta.get("model") or {}
    try:
        model = build_model(spec["name"], spec["config"])
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise DataError(f"{path}: a checkpoint of an unknown model ({spec.get('name')!r}: {e})") from None
    load_weights_into(model, state, path.name)
    try:  # the sample settings every caller rebuilds the preprocessing from
        from gazecli.core.data.transforms import SampleConfig

        SampleConfig(**{**(meta.get("sample") or {}), "augment": False})
    except (TypeError, ValueError) as e:
        raise DataError(f"{path.name}: the checkpoint's sample settings are unusable ({e})") from None
    if device is not None:
        model.to(device)
    model.eval()
    meta["path"] = str(path)
    return model, meta


def model_forward(model, meta: dict):
    """batch -> {"heatmap", "inout"} for a trained model of any kind (by its checkpoint's name)."""
    from gazecli.core.models import DIFFUSION_MODELS, STUDENT_MODELS

    name = meta["model"]["name"]
    if name in STUDENT_MODELS:
        from gazecli.core.stages.train_student import student_forward

        return lambda batch: student_forward(model, batch)
    if name in DIFFUSION_MODELS:  # sampled from pure noise with the run's --inference-steps / --eta / --compat
        from gazecli.core.stages.train_diffusion import prior_forward

        return prior_forward(model, meta)
    raise DataError(f"{meta.get('path')}: no inference for models of kind {name!r}")


def persons_to_score(settings: EvalSettings, meta: dict | None = None) -> PersonTable:
    """The persons of --split: test/train from the annotations; val = the held-out labelled
    images of the label split (the checkpoint's, unless --ratio / --split-dir say otherwise)."""
    if settings.split != "val":
        return read_persons(settings.data, settings.split, settings.dataset, settings.skip_invalid)
    from gazecli.core.data.splits import resolve_label_split

    saved = (meta or {}).get("split") or {}
    ratio = settings.ratio or saved.get("ratio")
    if ratio is None:
        raise DataError("--split val: the checkpoint records no label split; give --ratio (and --split-dir)")
    train = read_persons(settings.data, "train", settings.dataset, settings.skip_invalid)
    split, _ = resolve_label_split(settings.data, train, ratio, settings.split_dir or saved.get("dir"),
                                   saved.get("seed", 0), saved.get("val_fraction", 0.1))
    table = train.subset(split.val)
    table.split = "val"
    return table


def evaluate_checkpoint(settings: EvalSettings, progress: Progress | None = None) -> dict:
    """Run a trained model over a split, write its prediction file beside the metrics, score it."""
    from gazecli.core.data.dataset import GazeDataset
    from gazecli.core.data.transforms import SampleConfig
    from gazecli.core.engine.device import resolve_device
    from gazecli.core.engine.inference import predict_dataset
    from gazecli.core.engine.precision import resolve_precision
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    model, meta = load_trained_model(settings.checkpoint, device)
    table = persons_to_score(settings, meta)
    dataset = GazeDataset(table, SampleConfig(**{**meta.get("sample", {}), "augment": False}))
    preds = predict_dataset(model_forward(model, meta), dataset, settings.batch_size, device, precision,
                            settings.workers, progress)
    out = settings.out or Path(meta["path"]).parent.parent / f"eval_{settings.split}.json"
    check_scores_finite(table, preds, Path(meta["path"]).name)  # before writing: no NaN prediction file
    save_predictions(Path(out).with_suffix(".npz"), preds)
    result = score_predictions(table, preds, settings.auc_resolution, settings.device)
    result.update(checkpoint=meta["path"], predictions_file=str(Path(out).with_suffix(".npz")), data=str(settings.data))
    write_json(out, result)
    result["out"] = str(out)
    return result


def evaluate_predictions(settings: EvalSettings, progress: Progress | None = None) -> dict:
    if settings.checkpoint is not None:
        return evaluate_checkpoint(settings, progress)
    table = read_persons(settings.data, settings.split, settings.dataset, settings.skip_invalid)
    predictions = load_predictions(settings.predictions)
    match = join_predictions(table, predictions, name=Path(settings.predictions).name)
    result = score_predictions(table, predictions.subset(match), settings.auc_resolution, settings.device,
                               settings.batch_size, progress)
    result["predictions"] = str(settings.predictions)
    result["data"] = str(settings.data)
    if settings.out is not None:
        write_json(settings.out, result)
    return result


def write_json(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, tmp):
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return path
