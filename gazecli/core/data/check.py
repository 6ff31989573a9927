"""`gaze data check`: validate every annotation row and (by default) decode every image."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.data import detect_dataset, read_persons
from gazecli.core.data.images import image_size_wh, read_image_rgb
from gazecli.core.data.splits import find_split_files, load_split
from gazecli.core.errors import DataError

Progress = Callable[[int, int], None]


def _split_summary(table) -> dict:
    n_ann = table.n_annotators
    out = {
        "file": table.annotation_file.name if table.annotation_file else "",
        "persons": len(table),
        "images": int(len(np.unique(table.path))),
        "in_frame": int((table.inout == 1).sum()),
        "out_of_frame": int((table.inout == 0).sum()),
        "with_body_box": int(table.has_body.sum()),
        "dropped_inout_-1": table.n_dropped_invalid_inout,
        "skipped_rows": len(table.skipped),
    }
    if table.split == "test" and table.dataset == "gazefollow":
        out["annotators_per_person"] = {"min": int(n_ann.min()), "mean": float(n_ann.mean()), "max": int(n_ann.max())}
    if table.track is not None:
        out["tracks"] = int(len(np.unique(table.track)))
    return out


def check_dataset(root: Path, dataset: str = "auto", decode: bool = True, skip_invalid: bool = False,
                  progress: Progress | None = None) -> dict:
    """A summary of the dataset; the first problem found is a DataError (rows: unless
    skip_invalid; images: after all of them were tried, with the count of bad ones)."""
    root = Path(root)
    kind = detect_dataset(root) if dataset == "auto" else dataset
    tables = {}
    for split in ("train", "test"):
        try:
            tables[split] = read_persons(root, split, kind, skip_invalid)
        except DataError as e:
            if "no GazeFollow" in str(e) or "no VideoAttentionTarget" in str(e):
                continue  # a dataset may have only one of the splits
            raise
    if not tables:
        raise DataError(f"{root}: no train or test annotations found")
    summary: dict = {"root": str(root), "dataset": kind, "splits": {s: _split_summary(t) for s, t in tables.items()}}
    skipped = [m for t in tables.values() for m in t.skipped]
    summary["skipped_rows"] = skipped

    # label splits present under weak_supervision/
    if kind == "gazefollow" and "train" in tables:
        label_splits = []
        for folder, ratio in find_split_files(root):
            split = load_split(tables["train"], folder, ratio, skip_invalid=skip_invalid)
            label_splits.append({"folder": str(folder.relative_to(root)), "ratio": ratio,
                                 **split.counts(tables["train"]), "in_no_file": split.n_in_neither})
        summary["label_splits"] = label_splits

    # images
    paths = list(dict.fromkeys(p for t in tables.values() for p in t.path))
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    bad: list[str] = []
    for i, p in enumerate(paths):
        file = root / p
        try:
            if decode:
                image = read_image_rgb(file)
                sizes[i] = image.shape[1], image.shape[0]
            elif not file.is_file():
                raise DataError(f"{file}: image not found")
            else:
                sizes[i] = image_size_wh(file)
        except DataError as e:
            bad.append(str(e))
        if progress is not None:
            progress(i + 1, len(paths))
    summary["images"] = {"count": len(paths), "decoded": decode, "bad": len(bad)}
    ok = sizes[(sizes > 0).all(axis=1)]
    if len(ok):
        summary["images"]["width"] = {"min": int(ok[:, 0].min()), "median": float(np.median(ok[:, 0])), "max": int(ok[:, 0].max())}
        summary["images"]["height"] = {"min": int(ok[:, 1].min()), "median": float(np.median(ok[:, 1])), "max": int(ok[:, 1].max())}
    if bad:
        raise DataError(f"{len(bad)} of {len(paths)} images missing or undecodable (first: {bad[0]})")
    return summary
