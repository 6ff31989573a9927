"""`gaze data import`: the user's own labels (a CSV or JSON of image, head box, gaze point or
"outside") become a GazeFollow-layout dataset that every other command reads.

Input (docs/predict.md has examples), pixels in each image's own coordinates:
- CSV with a header: `image,head_x,head_y,head_w,head_h,gaze_x,gaze_y[,eye_x,eye_y]`; `gaze_x`
  (and `gaze_y`) "outside" or empty when the person looks out of the frame.
- JSON: a list of `{"image": ..., "head_xywh_px": [x, y, w, h], "gaze_xy_px": [x, y] | "outside",
  "eye_xy_px": [x, y] (optional)}`.
`image` is a path relative to `--images`. The eye defaults to the head-box centre.

Every row is checked (image exists and decodes, head box positive and inside the image, gaze
inside the image, eye inside the head box, no two persons of an image with the same eye) and
every problem is reported. Images are then split by a seeded draw into train and test (test:
only images whose persons all look inside the frame, as in GazeFollow's test set), copied to
`ROOT/train/...` and `ROOT/test2/...` keeping their relative paths, and described by Chong et
al.'s original annotation files (train 16 columns, test 15), which `gaze data check` then
validates with the same reader training uses.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np

from gazecli.core.data.gazefollow import safe_relative_path
from gazecli.core.data.images import image_size_wh
from gazecli.core.errors import DataError, SettingsError
from gazecli.core.io import write_text

CSV_COLUMNS = ("image", "head_x", "head_y", "head_w", "head_h", "gaze_x", "gaze_y")
OUTSIDE = "outside"


def _number(value, what: str, where: str, problems: list) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        problems.append(f"{where}: {what} is not a number ({value!r})")
        return None
    if not math.isfinite(v):
        problems.append(f"{where}: {what} is not a finite number")
        return None
    return v


def read_labels(file: Path) -> list[dict]:
    """Rows as {"where", "image", "head" (xywh), "gaze" (xy or None), "eye" (xy or None)}, strings
    still unchecked; a file that cannot be read at all is a DataError."""
    file = Path(file)
    if not file.is_file():
        raise DataError(f"{file}: labels file not found")
    if file.suffix.lower() == ".json":
        try:
            items = json.loads(file.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{file.name}: not valid JSON ({e})") from None
        if not isinstance(items, list):
            raise DataError(f"{file.name}: expected a JSON list of persons")
        rows = []
        for i, item in enumerate(items):
            where = f"{file.name}[{i}]"
            if not isinstance(item, dict) or "image" not in item or "head_xywh_px" not in item:
                raise DataError(f"{where}: expected an object with image, head_xywh_px and gaze_xy_px")
            rows.append({"where": where, "image": item["image"], "head": item["head_xywh_px"],
                         "gaze": item.get("gaze_xy_px"), "eye": item.get("eye_xy_px")})
        return rows
    with open(file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{file.name}: the header lacks {', '.join(missing)} (expected "
                            f"{','.join(CSV_COLUMNS)}[,eye_x,eye_y])")
        rows = []
        for line, r in enumerate(reader, start=2):
            gx, gy = (r.get("gaze_x") or "").strip(), (r.get("gaze_y") or "").strip()
            outside = gx.lower() in ("", OUTSIDE) and gy.lower() in ("", OUTSIDE)
            eye = None
            if (r.get("eye_x") or "").strip() or (r.get("eye_y") or "").strip():
                eye = [r.get("eye_x"), r.get("eye_y")]
            rows.append({"where": f"{file.name}:{line}", "image": r["image"] or "",
                         "head": [r["head_x"], r["head_y"], r["head_w"], r["head_h"]],
                         "gaze": OUTSIDE if outside else [gx, gy], "eye": eye})
        return rows


def validate_labels(rows: list[dict], images: Path) -> list[dict]:
    """Checked persons {"image", "size", "head_xyxy_px", "eye_xy_px", "gaze_xy_px" or None};
    every problem of every row in one DataError."""
    problems: list[str] = []
    sizes: dict[str, tuple[int, int] | None] = {}
    persons = []
    for r in rows:
        where = r["where"]
        rel = safe_relative_path(str(r["image"]))
        if rel is None:
            problems.append(f"{where}: image path {r['image']!r} is empty, absolute or outside --images")
            continue
        if rel not in sizes:
            try:
                sizes[rel] = image_size_wh(Path(images) / rel)
            except DataError as e:
                sizes[rel] = None
                problems.append(f"{where}: {e}")
        size = sizes[rel]
        if size is None:
            continue
        width, height = size
        head = r["head"]
        if not isinstance(head, (list, tuple)) or len(head) != 4:
            problems.append(f"{where}: head box: expected x, y, w, h")
            continue
        x, y, w, h = (_number(v, n, where, problems) for v, n in zip(head, ("head x", "head y", "head w", "head h")))
        if None in (x, y, w, h):
            continue
        if w <= 0 or h <= 0:
            problems.append(f"{where}: head box width and height must be positive")
            continue
        if x < 0 or y < 0 or x + w > width or y + h > height:
            problems.append(f"{where}: head box ({x:g}, {y:g}, {w:g}, {h:g}) leaves the {width}x{height} image")
            continue
        gaze = r["gaze"]
        if gaze is None:
            problems.append(f"{where}: no gaze point (give x, y in pixels or \"{OUTSIDE}\")")
            continue
        if isinstance(gaze, str):
            if gaze.strip().lower() != OUTSIDE:
                problems.append(f"{where}: gaze {gaze!r}: give x, y in pixels or \"{OUTSIDE}\"")
                continue
            gaze_xy = None
        else:
            if not isinstance(gaze, (list, tuple)) or len(gaze) != 2:
                problems.append(f"{where}: gaze: expected x, y in pixels or \"{OUTSIDE}\"")
                continue
            gx, gy = (_number(v, n, where, problems) for v, n in zip(gaze, ("gaze x", "gaze y")))
            if gx is None or gy is None:
                continue
            if not (0 <= gx <= width and 0 <= gy <= height):
                problems.append(f"{where}: gaze point ({gx:g}, {gy:g}) lies outside the {width}x{height} image "
                                f"(write \"{OUTSIDE}\" for a person looking out of the frame)")
                continue
            gaze_xy = (gx, gy)
        if r["eye"] is None:
            eye = (x + w / 2, y + h / 2)
        else:
            ex, ey = (_number(v, n, where, problems) for v, n in zip(r["eye"], ("eye x", "eye y")))
            if ex is None or ey is None:
                continue
            if not (x <= ex <= x + w and y <= ey <= y + h):
                problems.append(f"{where}: eye ({ex:g}, {ey:g}) lies outside the head box")
                continue
            eye = (ex, ey)
        persons.append({"where": where, "image": rel, "size": size, "head_xyxy_px": (x, y, x + w, y + h),
                        "eye_xy_px": eye, "gaze_xy_px": gaze_xy})
    seen: dict[tuple, str] = {}
    for p in persons:
        key = (p["image"], round(p["eye_xy_px"][0] / p["size"][0], 6), round(p["eye_xy_px"][1] / p["size"][1], 6))
        if key in seen:
            problems.append(f"{p['where']}: same image and eye as {seen[key]} (a person is its image and eye)")
        seen.setdefault(key, p["where"])
    if problems:
        raise DataError(f"{len(problems)} problem(s): " + "; ".join(problems))
    if not persons:
        raise DataError("no persons in the labels file")
    return persons


def _row(p: dict, idx: int, split: str) -> str:
    width, height = p["size"]
    x1, y1, x2, y2 = p["head_xyxy_px"]
    ex, ey = p["eye_xy_px"]
    gaze = ["-1", "-1"] if p["gaze_xy_px"] is None else [f"{p['gaze_xy_px'][0] / width:.6f}",
                                                         f"{p['gaze_xy_px'][1] / height:.6f}"]
    path = f"{'train' if split == 'train' else 'test2'}/{p['image']}"
    cells = [path, str(idx),  # GazeFollow's own body box (unused by gazecli): the head box, normalised
             f"{x1 / width:.6f}", f"{y1 / height:.6f}", f"{(x2 - x1) / width:.6f}", f"{(y2 - y1) / height:.6f}",
             f"{ex / width:.6f}", f"{ey / height:.6f}", *gaze, f"{x1:.2f}", f"{y1:.2f}", f"{x2:.2f}", f"{y2:.2f}"]
    if split == "train":
        cells.append("1" if p["gaze_xy_px"] is not None else "0")
    cells.append("imported")
    return ",".join(cells)


def import_labels(file: Path, images: Path, out: Path, test_fraction: float = 0.2, seed: int = 0,
                  force: bool = False) -> dict:
    """Validate, split, copy and write; returns counts. See the module docstring."""
    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise SettingsError(f"--images {images}: folder not found")
    if out.exists() and any(out.iterdir()) and not force:
        raise SettingsError(f"--out {out}: folder exists and is not empty (add --force to write into it)")
    persons = validate_labels(read_labels(file), images)
    by_image: dict[str, list[dict]] = {}
    for p in persons:
        by_image.setdefault(p["image"], []).append(p)
    names = sorted(by_image)
    eligible = [n for n in names if all(p["gaze_xy_px"] is not None for p in by_image[n])]
    n_test = int(round(test_fraction * len(names)))
    if test_fraction > 0:
        n_test = max(1, n_test)
    n_test = min(n_test, len(eligible), len(names) - 1)
    rng = np.random.default_rng(seed)
    test = set(rng.permutation(eligible)[:n_test].tolist()) if n_test > 0 else set()
    split_of = {n: ("test" if n in test else "train") for n in names}
    out.mkdir(parents=True, exist_ok=True)
    lines = {"train": [], "test": []}
    idx = 0
    for name in names:
        split = split_of[name]
        target = out / ("train" if split == "train" else "test2") / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(images / name, target)
        for p in by_image[name]:
            lines[split].append(_row(p, idx, split))
            idx += 1
    written = []
    for split, file_name in (("train", "train_annotations_release.txt"), ("test", "test_annotations_release.txt")):
        path = out / file_name
        if lines[split]:
            write_text(path, "\n".join(lines[split]) + "\n")
            written.append(path)
        elif path.exists():
            path.unlink()  # --force over an earlier import: no stale split
    return {"root": str(out), "persons": len(persons), "images": len(names),
            "train_images": len(names) - len(test), "test_images": len(test),
            "train_persons": len(lines["train"]), "test_persons": len(lines["test"]),
            "out_of_frame": sum(p["gaze_xy_px"] is None for p in persons), "files": written, "seed": seed}
