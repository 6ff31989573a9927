"""`gaze eval --predictions`: score a prediction file against a dataset split."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gazecli.core.data import read_persons
from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError
from gazecli.core.io import write_json
from gazecli.core.metrics import check_scores_finite, score_predictions
from gazecli.core.predictions import join_predictions, load_predictions, save_predictions
from gazecli.core.settings import EvalSettings

Progress = Callable[[int, int], None]


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
    from gazecli.core.engine.device import resolve_device
    from gazecli.core.engine.inference import predict_dataset
    from gazecli.core.engine.precision import resolve_precision
    from gazecli.core.engine.runs import RunDir
    from gazecli.core.models.registry import load_trained

    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    trained = load_trained(settings.checkpoint, device)
    meta = trained.meta
    table = persons_to_score(settings, meta)
    dataset = GazeDataset(table, trained.sample)
    preds = predict_dataset(trained.forward, dataset, settings.batch_size, device, precision,
                            settings.workers, progress)
    out = settings.out or RunDir.of_weights(meta["path"]).eval_json(settings.split)
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
