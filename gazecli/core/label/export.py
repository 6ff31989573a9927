"""The finished images of a labelling session as a dataset in the extended GazeFollow layout
(docs/labelling.md, "The exported dataset"), which `gaze data check` passes and
`gaze train-student` reads.

ROOT/dataset/ gets:
- `train/NNNNNNNN.ext`, `test2/NNNNNNNN.ext`: the images (hard links where the file system allows,
  else copies), renamed by number so no path can break a CSV row; `label_sources.csv` maps each
  back to its original file;
- `train_annotations_release_persondet.txt` (21 columns) and `test_annotations_release_persondet.txt`
  (20 columns): one row per person; the eye is the head box centre; gaze normalised, `-1,-1`
  with inout 0 for "outside"; the body box is estimated from the head box (see `body_box_from_head`);
- the test images: a seeded image-level hold-out of `test_fraction` of the finished images, drawn
  among the images whose persons all look inside the frame (GazeFollow's test set has no "outside");
  `train-student` holds its own seeded validation images out of the rest.

The folder is written beside as `dataset.tmp` (each file through `core/io.py`) and swapped in, so a
crash never leaves half a dataset.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np

from gazecli.core.data.gazefollow import ANNOTATION_FILES
from gazecli.core.errors import DataError
from gazecli.core.io import write_json, write_text
from gazecli.core.label.session import LabelSession

DATASET_FOLDER = "dataset"
SOURCES_NAME = "label_sources.csv"
MIN_IMAGES = 3  # one test image and two training images (one of them held out for validation)


def body_box_from_head(head_box_xyxy_px, width: int, height: int) -> list[float]:
    """A body box from the head box alone (no person detector): 2.5 head widths wide, centred under
    the head, from the top of the head down 5 head heights, clipped to the image."""
    x1, y1, x2, y2 = head_box_xyxy_px
    w, h, cx = x2 - x1, y2 - y1, (x1 + x2) / 2
    return [max(0.0, cx - 1.25 * w), max(0.0, y1), min(float(width), cx + 1.25 * w), min(float(height), y1 + 5 * h)]


def _f6(v: float) -> str:
    return f"{v:.6f}"


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _rows(image, rel: str, first_idx: int, split: str) -> list[str]:
    rows = []
    w, h = image.width, image.height
    for k, p in enumerate(image.persons):
        x1, y1, x2, y2 = p.head_box_xyxy_px
        body = body_box_from_head(p.head_box_xyxy_px, w, h)
        eye = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h)
        gaze = ["-1", "-1"] if p.inout == 0 else [_f6(p.gaze_xy_px[0] / w), _f6(p.gaze_xy_px[1] / h)]
        cells = [rel, str(first_idx + k),
                 _f6(body[0] / w), _f6(body[1] / h), _f6((body[2] - body[0]) / w), _f6((body[3] - body[1]) / h),
                 _f6(eye[0]), _f6(eye[1]), *gaze, *(_f2(v) for v in p.head_box_xyxy_px)]
        if split == "train":
            cells.append(str(p.inout))
        cells += ["gaze-label", f"label/{first_idx + k}", *(_f2(v) for v in body)]
        rows.append(",".join(cells))
    return rows


def choose_test_images(keys: list[str], all_inside: list[bool], test_fraction: float, seed: int) -> set[str]:
    """round(test_fraction * images) test images (at least one), drawn with `seed` among the images
    whose persons all look inside the frame; at least two images always stay for training."""
    eligible = [k for k, ok in zip(keys, all_inside) if ok]
    n_test = min(max(1, int(round(test_fraction * len(keys)))), len(eligible), len(keys) - 2)
    if n_test < 1:
        raise DataError(f"cannot hold out a test image: {len(keys)} finished images, {len(eligible)} with every person "
                        f"looking inside the frame (label at least {MIN_IMAGES} images, one of them without 'outside')")
    rng = np.random.default_rng([seed, 17])
    return set(rng.choice(sorted(eligible), size=n_test, replace=False).tolist())


def export_dataset(session: LabelSession, test_fraction: float = 0.2, seed: int = 0, out: Path | None = None) -> dict:
    """Write the finished images as a GazeFollow-layout dataset (default ROOT/dataset); a summary."""
    out = Path(out) if out is not None else session.root / DATASET_FOLDER
    done = [session.images[k] for k in session.order if session.images[k].done]
    done.sort(key=lambda s: s.key)  # the dataset does not depend on the labelling order
    if len(done) < MIN_IMAGES:
        raise DataError(f"export needs at least {MIN_IMAGES} finished images (one test image, two to train on), "
                        f"found {len(done)}")
    test = choose_test_images([s.key for s in done], [all(p.inout == 1 for p in s.persons) for s in done],
                              test_fraction, seed)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows: dict[str, list[str]] = {"train": [], "test": []}
    sources = [("path", "source")]
    for number, image in enumerate(done):
        split = "test" if image.key in test else "train"
        rel = f"{'test2' if split == 'test' else 'train'}/{number:08d}{Path(image.key).suffix.lower()}"
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = session.images_dir / image.key
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        rows[split] += _rows(image, rel, len(rows[split]), split)
        sources.append((rel, image.key))
    files = {}
    for split in ("train", "test"):
        name = ANNOTATION_FILES[split][0]
        write_text(tmp / name, "".join(r + "\n" for r in rows[split]))
        files[split] = name
    sources_csv = io.StringIO(newline="")
    csv.writer(sources_csv).writerows(sources)
    write_text(tmp / SOURCES_NAME, sources_csv.getvalue())
    n_train_images = len(done) - len(test)
    summary = {"dataset": str(out), "images": len(done), "train_images": n_train_images, "test_images": len(test),
               "train_persons": len(rows["train"]), "test_persons": len(rows["test"]),
               "outside_persons": sum(p.inout == 0 for s in done for p in s.persons),
               "test_fraction": test_fraction, "seed": seed, "skipped_images": sum(s.skipped for s in session.images.values()),
               "unfinished_images": sum(s.status in ("open", "todo") for s in session.images.values())}
    write_json(tmp / "label_export.json", summary)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return summary
