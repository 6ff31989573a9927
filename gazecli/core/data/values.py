"""Value checks of annotations (not only their shapes), shared by the readers and `gaze data check`.

- Normalised points (GazeFollow eyes and gaze points) lie in [0, 1]; the one exception is the
  documented out-of-frame sentinel (-1, -1) of a GazeFollow train row with inout == 0.
- Pixel coordinates (head boxes; VideoAttentionTarget gaze points) lie inside the image, allowing
  `FRAME_MARGIN` of the image size on each side for annotation-tool rounding; VideoAttentionTarget's
  gaze (-1, -1) means out of frame, and small negative values are clipped to 0 (its convention).
- Every frame of a VideoAttentionTarget clip has the same size.
- Rows that repeat an earlier row's person key (image, eye) are duplicates: a warning with their count.

Every problem message carries one of the `REASONS` phrases, so `--skip-invalid` can count skipped
rows by reason (docs/reliability.md).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

FRAME_MARGIN = 0.05  # fraction of the image's width / height a pixel coordinate may lie outside it

# phrase in a problem message -> the reason it is counted under
REASONS = (
    ("columns", "wrong number of columns"),
    ("not a number", "non-numeric value"),
    ("non-numeric", "non-numeric value"),
    ("finite", "NaN or infinite value"),
    ("image path", "bad image path"),
    ("frame name", "bad image path"),
    ("zero or negative area", "empty head box"),
    ("column inout", "inout not -1, 0 or 1"),
    ("outside [0, 1]", "normalised point outside [0, 1]"),
    ("outside the frame", "gaze point outside the frame"),
    ("head box", "head box outside the image"),
    ("another size", "frame of another size in its clip"),
    ("leaves the dataset root", "symbolic link leaving the dataset root"),
    ("image not found", "image missing"),
    ("pixels, above the limit", "image above the pixel limit"),
    ("cannot", "image unreadable"),
)


def reason_of(message: str) -> str:
    """The reason a problem message is counted under (its text after `file:line: `)."""
    text = re.sub(r"^\S+:\d+: ", "", message)
    for phrase, reason in REASONS:
        if phrase in text:
            return reason
    return "other"


def count_reasons(messages) -> dict[str, int]:
    return dict(Counter(reason_of(m) for m in messages).most_common())


def in_unit_square(x: float, y: float) -> bool:
    return 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0


def point_problem(name: str, x: float, y: float, sentinel_ok: bool = False) -> str | None:
    """None when (x, y) is a valid normalised point, else the message tail."""
    if in_unit_square(x, y) or (sentinel_ok and x == -1.0 and y == -1.0):
        return None
    allowed = " (or -1, -1 when out of frame)" if sentinel_ok else ""
    return f"{name} ({x:g}, {y:g}) outside [0, 1]{allowed}"


def pixel_point_problem(x: float, y: float, width: int, height: int) -> str | None:
    """A VideoAttentionTarget gaze point in pixels: (-1, -1) or inside the frame (with the margin)."""
    if x == -1.0 and y == -1.0:
        return None
    mx, my = FRAME_MARGIN * width, FRAME_MARGIN * height
    if -mx <= x <= width + mx and -my <= y <= height + my:
        return None
    return f"gaze ({x:g}, {y:g}) lies outside the frame ({width}x{height} pixels)"


def box_problem(box_xyxy_px, width: int, height: int) -> str | None:
    """A head box (pixels, xyxy) must lie inside the width x height image (with the margin)."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy_px)
    mx, my = FRAME_MARGIN * width, FRAME_MARGIN * height
    if x1 >= -mx and y1 >= -my and x2 <= width + mx and y2 <= height + my and x2 > x1 and y2 > y1:
        return None
    return f"head box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {width}x{height} image"


def duplicate_rows(table) -> tuple[int, str | None]:
    """(rows whose (image, eye) key repeats an earlier row's, the first such row's file:line)."""
    seen: set = set()
    count, first = 0, None
    for i, key in enumerate(table.keys()):
        if table.track is not None:
            key = (*key, int(table.track[i]))
        if key in seen:
            count += 1
            first = first or str(table.source[i])
        seen.add(key)
    return count, first


def sizes_by_path(paths, sizes_wh: np.ndarray) -> dict[str, tuple[int, int]]:
    return {p: (int(w), int(h)) for p, (w, h) in zip(paths, sizes_wh) if w > 0 and h > 0}
