"""Head boxes given by a user, in one of three named conventions, validated alike.

- `heads=["x,y,w,h", ...]`: strings, pixels, top-left corner plus width and height (the CLI's `--head`);
- `heads_xywh_px=[(x, y, w, h), ...]`: the same convention as numbers;
- `heads_xyxy_px=[(x1, y1, x2, y2), ...]`: corners in pixels.

Every box must hold four finite numbers, have positive width and height (x2 > x1, y2 > y1) and
overlap the image; it is then clipped to the image. Anything else is a `SettingsError` naming the
argument and the box (see docs/predict.md).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from gazecli.core.errors import DataError, SettingsError

CONVENTIONS = ("heads", "heads_xywh_px", "heads_xyxy_px")


def _numbers(box, label: str) -> list[float]:
    if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) and not hasattr(box, "__len__"):
        raise SettingsError(f"{label}: expected 4 numbers, got {box!r}")
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise SettingsError(f"{label}: expected 4 numbers, got {list(box)!r}") from None
    if len(values) != 4:
        raise SettingsError(f"{label}: expected 4 numbers, got {len(values)}")
    return values


def parse_xywh_text(text: str, label: str, error: type = SettingsError) -> list[float]:
    """'x,y,w,h' -> [x, y, w, h] (numbers only; validity is checked by `checked_xyxy`)."""
    if not isinstance(text, str):
        raise error(f"{label}: expected an 'x,y,w,h' string, got {text!r} (give number boxes as "
                            f"heads_xywh_px=[(x, y, w, h)] or heads_xyxy_px=[(x1, y1, x2, y2)])")
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise error(f"{label}: expected x,y,w,h in pixels")
    return values


def checked_xyxy(x1: float, y1: float, x2: float, y2: float, width: int, height: int, label: str,
                 as_xywh: bool, error: type = SettingsError) -> list[float]:
    """Validate one corner box against a width x height image and clip it to the image."""
    values = (x1, y1, x2, y2)
    if not all(math.isfinite(v) for v in values):
        names = "x, y, w and h" if as_xywh else "x1, y1, x2 and y2"
        raise error(f"{label}: {names} must be finite numbers")
    if x2 <= x1 or y2 <= y1:
        if as_xywh:
            raise error(f"{label}: width and height must be positive")
        raise error(f"{label}: empty or inverted box (needs x2 > x1 and y2 > y1; this convention is "
                    f"corners x1,y1,x2,y2)")
    if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        raise error(f"{label}: the box lies outside the {width}x{height} image")
    return [max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)]


def head_boxes_xyxy_px(width: int, height: int, heads: Iterable[str] | None = None,
                       heads_xywh_px: Iterable | None = None, heads_xyxy_px: Iterable | None = None,
                       ) -> list[list[float]] | None:
    """The user's head boxes as clipped corner boxes in pixels; None when no convention was used
    (heads are then detected). At most one of the three arguments may be given."""
    given = {k: v for k, v in zip(CONVENTIONS, (heads, heads_xywh_px, heads_xyxy_px)) if v is not None}
    if not given:
        return None
    if len(given) > 1:
        raise SettingsError(f"give head boxes in one convention only (got {', '.join(given)})")
    (name, boxes), = given.items()
    if isinstance(boxes, str):
        boxes = [boxes]
    out = []
    for i, box in enumerate(list(boxes)):
        if name == "heads":
            label = f"heads[{i}] {box!r}"
            x, y, w, h = parse_xywh_text(box, label)
            out.append(checked_xyxy(x, y, x + w, y + h, width, height, label, as_xywh=True))
        else:
            label = f"{name}[{i}]"
            a, b, c, d = _numbers(box, label)
            if name == "heads_xywh_px":
                out.append(checked_xyxy(a, b, a + c, b + d, width, height, label, as_xywh=True))
            else:
                out.append(checked_xyxy(a, b, c, d, width, height, label, as_xywh=False))
    return out


def option_boxes_xyxy_px(texts: list[str], width: int, height: int) -> list[list[float]]:
    """`--head` values (or GAZE_HEAD / the config file's `head`: named as the user gave them);
    a bad one is a SettingsError."""
    from gazecli.core.settings.option_source import option_name

    out = []
    for text in texts:
        label = f"{option_name('head')} {text!r}"
        x, y, w, h = parse_xywh_text(text, label)
        out.append(checked_xyxy(x, y, x + w, y + h, width, height, label, as_xywh=True))
    return out


def csv_boxes_xyxy_px(rows: list[tuple], width: int, height: int) -> list[list[float]]:
    """Boxes of a heads CSV (`read_heads_csv` rows); a bad one is a DataError naming file:line."""
    out = []
    for text, _, source in rows:
        label = f"{source}: head {text!r}"
        x, y, w, h = parse_xywh_text(text, label, DataError)
        out.append(checked_xyxy(x, y, x + w, y + h, width, height, label, as_xywh=True, error=DataError))
    return out


def read_heads_csv(path) -> dict[str, list[tuple[str, list[float] | None, str]]]:
    """CSV `file,x,y,w,h[,eye_x,eye_y]` (header optional; several rows per file) ->
    {file: [('x,y,w,h', eye or None, 'file.csv:line')]}. `file` is the image's path relative to the input folder
    (a bare name also matches when it is unique); the eye, normalised to [0, 1], is optional and
    only labels the person in the prediction file (default: the head-box centre)."""
    import csv
    from pathlib import Path, PurePosixPath

    from gazecli.core.data.gazefollow import read_text_lines

    heads: dict[str, list[tuple[str, list[float] | None, str]]] = {}
    name = Path(path).name
    for line_no, row in enumerate(csv.reader(read_text_lines(path)), start=1):  # UTF-8 text, or one error line
        if not row or row[0].strip().lower() in ("file", "image", "frame", "path"):
            continue
        if len(row) not in (5, 7):
            raise DataError(f"{name}:{line_no}: expected file,x,y,w,h[,eye_x,eye_y]")
        eye = None
        if len(row) == 7:
            try:
                eye = [float(row[5]), float(row[6])]
            except ValueError:
                raise DataError(f"{name}:{line_no}: eye_x,eye_y must be numbers") from None
            if not all(math.isfinite(v) and 0 <= v <= 1 for v in eye):
                raise DataError(f"{name}:{line_no}: eye_x,eye_y must lie in [0, 1]")
        key = PurePosixPath(row[0].strip().replace("\\", "/")).as_posix()
        heads.setdefault(key, []).append((",".join(v.strip() for v in row[1:5]), eye, f"{name}:{line_no}"))
    return heads


def heads_for(table: dict, relative: str) -> list[tuple] | None:
    """The CSV rows of an input: by relative path, else by file name when that is unambiguous."""
    if relative in table:
        return table[relative]
    name = relative.rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    return None
