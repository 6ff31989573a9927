"""`gaze data check`: validate every annotation row and (by default) decode every image."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.data import detect_dataset, read_persons
from gazecli.core.data.images import image_size_wh, read_image_rgb
from gazecli.core.data.splits import find_split_files, load_split
from gazecli.core.data.values import box_problem, count_reasons, duplicate_rows, sizes_by_path
from gazecli.core.errors import DataError
from gazecli.core.validate import inside_root

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
                  progress: Progress | None = None, follow_symlinks: bool | None = None) -> dict:
    """A summary of the dataset; the first problem found is a DataError (rows: unless
    skip_invalid; images: after all of them were tried, with the count of bad ones).

    Values are checked, not only shapes (gazecli/core/data/values.py): normalised points in
    [0, 1] (out-of-frame sentinel excepted), head boxes inside their image, one frame size per
    VideoAttentionTarget clip, image paths inside the root (symlinks out of it refused unless
    follow_symlinks). With skip_invalid each skipped row is counted by reason
    (`skipped_by_reason`); duplicate persons are a warning with their count (`duplicates`)."""
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

    # label splits present under weak_supervision/
    if kind == "gazefollow" and "train" in tables:
        label_splits = []
        for folder, ratio in find_split_files(root):
            split = load_split(tables["train"], folder, ratio, skip_invalid=skip_invalid)
            label_splits.append({"folder": str(folder.relative_to(root)), "ratio": ratio,
                                 **split.counts(tables["train"]), "in_no_file": split.n_in_neither})
        summary["label_splits"] = label_splits

    # images: each read once (header, or decoded), refused when a symlink leaves the root
    paths = list(dict.fromkeys(p for t in tables.values() for p in t.path))
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    bad: dict[str, str] = {}
    for i, p in enumerate(paths):
        try:
            file = inside_root(root, p, follow_symlinks)
            if decode:
                image = read_image_rgb(file)
                sizes[i] = image.shape[1], image.shape[0]
            elif not file.is_file():
                raise DataError(f"{file}: image not found")
            else:
                sizes[i] = image_size_wh(file)
        except DataError as e:
            bad[p] = str(e)
        if progress is not None:
            progress(i + 1, len(paths))
    summary["images"] = {"count": len(paths), "decoded": decode, "bad": len(bad)}
    ok = sizes[(sizes > 0).all(axis=1)]
    if len(ok):
        summary["images"]["width"] = {"min": int(ok[:, 0].min()), "median": float(np.median(ok[:, 0])), "max": int(ok[:, 0].max())}
        summary["images"]["height"] = {"min": int(ok[:, 1].min()), "median": float(np.median(ok[:, 1])), "max": int(ok[:, 1].max())}
    if bad and not skip_invalid:
        first = next(iter(bad.values()))
        raise DataError(f"{len(bad)} of {len(paths)} images missing or undecodable (first: {first})"
                        + (" (use --skip-invalid to skip their rows)" if len(bad) < len(paths) else ""))

    # values against the images: head boxes inside, one frame size per clip
    size_of = sizes_by_path(paths, sizes)
    clip_size: dict[str, tuple[tuple[int, int], str]] = {}
    for split_name, table in tables.items():
        n_before = len(skipped)
        for i, p in enumerate(table.path):
            where = str(table.source[i])
            if p in bad:
                skipped.append(f"{where}: {bad[p]}")
                continue
            if p not in size_of:
                continue
            w, h = size_of[p]
            problem = box_problem(table.head_box_xyxy_px[i], w, h)
            if problem is None and table.dataset == "videoatt":
                clip = p.rsplit("/", 1)[0]
                first_size, first_frame = clip_size.setdefault(clip, ((w, h), p))
                if (w, h) != first_size:
                    problem = (f"frame {p} is {w}x{h}, another size than its clip's first frame {first_frame} "
                               f"({first_size[0]}x{first_size[1]})")
            if problem is not None:
                message = f"{where}: {problem}"
                if not skip_invalid:
                    raise DataError(message + " (use --skip-invalid to skip such rows)")
                skipped.append(message)
        summary["splits"][split_name]["skipped_rows"] += len(skipped) - n_before

    summary["skipped_rows"] = skipped
    summary["skipped_by_reason"] = count_reasons(skipped)
    summary["duplicates"] = {}
    for split, table in tables.items():
        count, first = duplicate_rows(table)
        if count:
            summary["duplicates"][split] = {"rows": count, "first": first}
    return summary
