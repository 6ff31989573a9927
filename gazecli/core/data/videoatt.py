"""VideoAttentionTarget (Chong et al. 2020) annotation files (docs/design.md, "Data").

Layout: `annotations/{train,test}/<show>/<clip>/<person>.txt`, one file per person track,
each line `frame, xmin, ymin, xmax, ymax, gazex, gazey` (head box and gaze in pixels; gaze
(-1, -1) = out of frame, other negative values are clipped to 0 and count as in frame).
The extended layout `annotations_body/` adds `body_x1, body_y1, body_x2, body_y2` (11 columns)
and optionally a 12th column (`pred_inout`, ignored). Frames are `images/<show>/<clip>/<frame>`.

Every person-frame becomes one row of a PersonTable whose `path` is root-relative
(`images/<show>/<clip>/<frame>`), whose `eye_xy_norm` is the centre of the annotated head box
(the key predictions are joined on), and whose `head_box_xyxy_px` is smoothed with an 11-frame
moving average over the track (edge-replicated), as the official dataset classes do.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from gazecli.core.data.gazefollow import read_text_lines, safe_relative_path
from gazecli.core.data.images import image_size_wh
from gazecli.core.data.table import PersonTable
from gazecli.core.data.values import box_problem, pixel_point_problem
from gazecli.core.errors import DataError, location

SMOOTHING_WINDOW = 11
VAT_COLUMNS = {7: "frame, head box, gaze", 11: "+ body box", 12: "+ body box, pred_inout"}


def is_videoatt_root(root: Path) -> bool:
    root = Path(root)
    return (root / "images").is_dir() and any((root / d).is_dir() for d in ("annotations", "annotations_body"))


def annotation_folder(root: Path, split: str) -> Path:
    root = Path(root)
    for name in ("annotations_body", "annotations"):
        if (root / name / split).is_dir():
            return root / name / split
    raise DataError(f"{root}: no VideoAttentionTarget {split} annotations (annotations[_body]/{split}/)")


def smooth_boxes(boxes: np.ndarray, window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Moving average over a track, the edges replicated: (T, 4) -> (T, 4)."""
    if len(boxes) == 0:
        return boxes
    half = window // 2
    padded = np.concatenate([np.repeat(boxes[:1], half, 0), boxes, np.repeat(boxes[-1:], half, 0)])
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(4)], axis=1)


def _parse_track(file: Path, errors: list[str], skip_invalid: bool):
    rows = []
    n_columns = None
    lines = read_text_lines(file)
    for line_no, cells in enumerate(csv.reader(lines), start=1):
        if not cells or not "".join(cells).strip():
            continue
        where = location(file, line_no)

        def bad(message: str) -> None:
            if not skip_invalid:
                raise DataError(message + " (use --skip-invalid to skip such rows)")
            errors.append(message)

        if n_columns is None:
            if len(cells) not in VAT_COLUMNS:
                raise DataError(f"{where}: expected 7, 11 or 12 columns for a VideoAttentionTarget track, "
                                f"found {len(cells)}")
            n_columns = len(cells)
        if len(cells) != n_columns:
            bad(f"{where}: expected {n_columns} columns, found {len(cells)}")
            continue
        frame = safe_relative_path(cells[0])
        if frame is None or "/" in frame:
            bad(f"{where}: frame name {cells[0].strip()!r} is empty or not a plain file name")
            continue
        try:
            values = [float(c) for c in cells[1:11 if n_columns > 7 else 7]]
        except ValueError:
            bad(f"{where}: non-numeric value in {cells[1:]}")
            continue
        if not all(math.isfinite(v) for v in values):
            bad(f"{where}: non-finite value in {cells[1:]}")
            continue
        x1, y1, x2, y2 = values[0:4]
        if not (x2 > x1 and y2 > y1):
            bad(f"{where}: head box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has zero or negative area")
            continue
        body = values[6:10] if n_columns > 7 else [math.nan] * 4
        if n_columns > 7 and (min(body) < 0 or body[2] <= body[0] or body[3] <= body[1]):
            body = [math.nan] * 4
        rows.append((frame, values[0:4], values[4:6], body, line_no))
    return rows


def read_videoatt(root: Path, split: str, skip_invalid: bool = False, smooth: bool = True,
                  need_image_sizes: bool = True) -> PersonTable:
    """All person-frames of a VideoAttentionTarget split as one PersonTable."""
    root = Path(root)
    folder = annotation_folder(root, split)
    files = sorted(folder.glob("*/*/*.txt"))
    if not files:
        raise DataError(f"{folder}: no track files (<show>/<clip>/<person>.txt)")
    errors: list[str] = []
    paths, eyes, heads, bodies, gazes, inouts, sources, tracks, sizes = [], [], [], [], [], [], [], [], []
    clip_size: dict[Path, tuple[int, int]] = {}
    for track_id, file in enumerate(files):
        rows = _parse_track(file, errors, skip_invalid)
        if not rows:
            continue
        show, clip = file.parent.parent.name, file.parent.name
        clip_dir = root / "images" / show / clip
        if need_image_sizes and clip_dir not in clip_size:
            clip_size[clip_dir] = image_size_wh(clip_dir / rows[0][0])
        W, H = clip_size.get(clip_dir, (0, 0))
        if W:  # values against the clip's frame size: a gaze of (5000, -7000) is not "clipped to 0"
            kept = []
            for r in rows:
                problem = pixel_point_problem(r[2][0], r[2][1], W, H) or box_problem(r[1], W, H)
                if problem is None:
                    kept.append(r)
                    continue
                message = f"{location(file, r[4])}: {problem}"
                if not skip_invalid:
                    raise DataError(message + " (use --skip-invalid to skip such rows)")
                errors.append(message)
            rows = kept
            if not rows:
                continue
        raw = np.array([r[1] for r in rows], dtype=np.float64)
        smoothed = smooth_boxes(raw) if smooth else raw
        for (frame, head, gaze, body, line_no), box in zip(rows, smoothed):
            paths.append(f"images/{show}/{clip}/{frame}")
            cx, cy = (head[0] + head[2]) / 2, (head[1] + head[3]) / 2
            eyes.append((cx / W, cy / H) if W else (math.nan, math.nan))
            heads.append(box)
            bodies.append(body)
            out = gaze[0] == -1 and gaze[1] == -1
            inouts.append(0 if out else 1)
            if out or not W:
                gazes.append((math.nan, math.nan))
            else:
                gazes.append((max(gaze[0], 0.0) / W, max(gaze[1], 0.0) / H))
            sources.append(location(file, line_no))
            tracks.append(track_id)
            sizes.append((W, H))
    if not paths:
        raise DataError(f"{folder}: no usable rows")
    n = len(paths)
    return PersonTable(
        dataset="videoatt",
        split=split,
        root=root,
        path=np.array(paths, dtype=object),
        eye_xy_norm=np.array(eyes, dtype=np.float64),
        head_box_xyxy_px=np.array(heads, dtype=np.float64).reshape(n, 4),
        body_box_xyxy_px=np.array(bodies, dtype=np.float64).reshape(n, 4),
        gaze_xy_norm=np.array(gazes, dtype=np.float64).reshape(n, 1, 2),
        inout=np.array(inouts, dtype=np.int8),
        source=np.array(sources, dtype=object),
        image_size_wh=np.array(sizes, dtype=np.int64),
        track=np.array(tracks, dtype=np.int64),
        annotation_file=folder,
        skipped=errors,
    )
