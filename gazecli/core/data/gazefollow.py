"""GazeFollow annotation files (docs/design.md, "Data"): Chong et al.'s originals and the GCDR
"extended" files with detected body boxes, told apart by their column count.

Every malformed row is a `DataError` naming the file and line
(`train_annotations_release.txt:3: expected 21 columns, found 20`); with `skip_invalid=True`
it is counted and skipped instead.
"""

from __future__ import annotations

import csv
import math
import posixpath
from pathlib import Path

import numpy as np

from gazecli.core.data.table import PersonTable
from gazecli.core.data.values import point_problem
from gazecli.core.errors import DataError, location

BASE_COLUMNS = (
    "path", "idx",
    "body_bbox_x", "body_bbox_y", "body_bbox_w", "body_bbox_h",  # GazeFollow's own, unused
    "eye_x", "eye_y",  # normalised
    "gaze_x", "gaze_y",  # normalised
    "bbox_x_min", "bbox_y_min", "bbox_x_max", "bbox_y_max",  # head box, pixels
)
BODY_COLUMNS = ("body_x1", "body_y1", "body_x2", "body_y2")  # detected body box, pixels; <0: none

# column layouts by (split, count)
COLUMNS = {
    ("train", 16): BASE_COLUMNS + ("inout", "meta"),
    ("train", 21): BASE_COLUMNS + ("inout", "meta", "ori_name") + BODY_COLUMNS,
    ("test", 15): BASE_COLUMNS + ("meta",),
    ("test", 20): BASE_COLUMNS + ("meta", "ori_name") + BODY_COLUMNS,
}
NUMERIC = {"eye_x", "eye_y", "gaze_x", "gaze_y", "bbox_x_min", "bbox_y_min", "bbox_x_max",
           "bbox_y_max", "inout", *BODY_COLUMNS}

# preferred first: the extended files (with body boxes), then Chong's originals
ANNOTATION_FILES = {
    "train": ("train_annotations_release_persondet.txt", "train_annotations_release.txt"),
    "test": ("test_annotations_release_persondet.txt", "test_annotations_release.txt"),
}


def find_annotation_file(root: Path, split: str) -> Path:
    root = Path(root)
    for name in ANNOTATION_FILES[split]:
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"{root}: no GazeFollow {split} annotations (looked for {' or '.join(ANNOTATION_FILES[split])})"
    )


def is_gazefollow_root(root: Path) -> bool:
    return any((Path(root) / n).is_file() for names in ANNOTATION_FILES.values() for n in names)


def safe_relative_path(value: str) -> str | None:
    """The normalised relative path, or None when it is empty, absolute or escapes the root."""
    value = value.strip().replace("\\", "/")
    if not value or value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        return None
    norm = posixpath.normpath(value)
    if norm == "." or norm == ".." or norm.startswith("../"):
        return None
    return norm


def read_text_lines(file: Path) -> list[str]:
    """Lines of an annotation file; a missing, empty or binary file is a DataError."""
    file = Path(file)
    if not file.is_file():
        raise DataError(f"{file}: annotation file not found")
    data = file.read_bytes()
    if b"\x00" in data:
        raise DataError(f"{location(file)}: not a text annotation file (binary content)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{location(file)}: not a text annotation file ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{location(file)}: empty annotation file")
    return lines


class _RowErrors:
    """Raise on the first malformed row, or count and keep going with skip_invalid."""

    def __init__(self, skip_invalid: bool):
        self.skip_invalid = skip_invalid
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        if not self.skip_invalid:
            raise DataError(message + " (use --skip-invalid to skip such rows)")
        self.messages.append(message)


def parse_rows(file: Path, split: str, skip_invalid: bool = False):
    """Parse and validate the rows of a GazeFollow train/test file.

    Returns (rows, errors, n_columns): rows are dicts with the numeric columns as floats plus
    `path`, `line` and `raw`.
    """
    if split not in ("train", "test"):
        raise ValueError(split)
    file = Path(file)
    lines = read_text_lines(file)
    allowed = sorted(n for s, n in COLUMNS if s == split)
    errors = _RowErrors(skip_invalid)
    rows: list[dict] = []
    n_columns = None
    for line_no, (line, cells) in enumerate(zip(lines, csv.reader(lines)), start=1):
        if not line.strip():
            continue
        where = location(file, line_no)
        if n_columns is None:
            if len(cells) not in allowed:
                raise DataError(
                    f"{where}: expected {' or '.join(map(str, allowed))} columns for a GazeFollow "
                    f"{split} file, found {len(cells)}"
                )
            n_columns = len(cells)
            names = COLUMNS[(split, n_columns)]
        if len(cells) != n_columns:
            errors(f"{where}: expected {n_columns} columns, found {len(cells)}")
            continue
        row = _parse_row(cells, names, where, errors)
        if row is not None:
            row["line"] = line_no
            row["raw"] = line
            rows.append(row)
    return rows, errors.messages, n_columns


def _parse_row(cells, names, where, errors) -> dict | None:
    row: dict = {}
    for name, cell in zip(names, cells):
        if name not in NUMERIC:
            row[name] = cell.strip()
            continue
        try:
            value = float(cell)
        except ValueError:
            errors(f"{where}: column {name}: not a number: {cell.strip()!r}")
            return None
        if not math.isfinite(value):
            errors(f"{where}: column {name}: {cell.strip()} is not a finite number")
            return None
        row[name] = value
    path = safe_relative_path(row["path"])
    if path is None:
        errors(f"{where}: image path {row['path']!r} is empty, absolute or outside the dataset root")
        return None
    row["path"] = path
    x1, y1, x2, y2 = (row[k] for k in ("bbox_x_min", "bbox_y_min", "bbox_x_max", "bbox_y_max"))
    if not (x2 > x1 and y2 > y1):
        errors(f"{where}: head box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has zero or negative area")
        return None
    if "inout" in row and row["inout"] not in (-1.0, 0.0, 1.0):
        errors(f"{where}: column inout: expected -1, 0 or 1, found {row['inout']:g}")
        return None
    if row.get("inout") != -1.0:  # rows with inout == -1 are dropped unread
        problem = (point_problem("eye", row["eye_x"], row["eye_y"])
                   or point_problem("gaze", row["gaze_x"], row["gaze_y"], sentinel_ok=row.get("inout") == 0.0))
        if problem:
            errors(f"{where}: {problem}")
            return None
    return row


def _body_box(row: dict) -> list[float]:
    if "body_x1" not in row:
        return [math.nan] * 4
    box = [row[k] for k in BODY_COLUMNS]
    if min(box) < 0 or box[2] <= box[0] or box[3] <= box[1]:
        return [math.nan] * 4  # "no body detected / matched" (a negative value in the file)
    return box


def read_gazefollow(root: Path, split: str, file: Path | None = None, skip_invalid: bool = False) -> PersonTable:
    """Read GazeFollow train or test annotations into a PersonTable.

    Train: one person per row; rows with inout == -1 are dropped (and counted); out-of-frame
    persons (inout == 0) get NaN gaze points. Test: rows sharing (path, eye) are one person
    whose gaze points are all of that person's annotator rows; every test person is in frame.
    """
    root = Path(root)
    file = Path(file) if file is not None else find_annotation_file(root, split)
    rows, skipped, _ = parse_rows(file, split, skip_invalid)
    n_dropped = 0
    if split == "train":
        kept = [r for r in rows if r["inout"] != -1.0]
        n_dropped = len(rows) - len(kept)
        persons = [[r] for r in kept]
    else:
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r["path"], r["eye_x"], r["eye_y"]), []).append(r)
        persons = list(groups.values())
    if not persons:
        raise DataError(f"{location(file)}: no usable rows")
    n = len(persons)
    n_ann = max(len(p) for p in persons)
    gaze = np.full((n, n_ann, 2), np.nan)
    inout = np.ones(n, dtype=np.int8)
    for i, group in enumerate(persons):
        first = group[0]
        if split == "train" and first["inout"] == 0.0:
            inout[i] = 0
            continue
        for a, r in enumerate(group):
            gaze[i, a] = (r["gaze_x"], r["gaze_y"])
    first_rows = [p[0] for p in persons]
    return PersonTable(
        dataset="gazefollow",
        split=split,
        root=root,
        path=np.array([r["path"] for r in first_rows], dtype=object),
        eye_xy_norm=np.array([(r["eye_x"], r["eye_y"]) for r in first_rows], dtype=np.float64),
        head_box_xyxy_px=np.array(
            [(r["bbox_x_min"], r["bbox_y_min"], r["bbox_x_max"], r["bbox_y_max"]) for r in first_rows],
            dtype=np.float64,
        ),
        body_box_xyxy_px=np.array([_body_box(r) for r in first_rows], dtype=np.float64).reshape(n, 4),
        gaze_xy_norm=gaze,
        inout=inout,
        source=np.array([location(file, r["line"]) for r in first_rows], dtype=object),
        raw=np.array([r["raw"] for r in first_rows], dtype=object) if split == "train" else None,
        annotation_file=file,
        n_dropped_invalid_inout=n_dropped,
        skipped=skipped,
    )
