"""Image files: decoding with OpenCV and header-only sizes, with one-line errors.

Every image's size is read from its header (PIL reads it without decoding the pixels) before
it is decoded, and an image larger than `max_image_pixels()` (default `MAX_IMAGE_PIXELS`,
100 megapixels; raise it with `GAZE_MAX_IMAGE_PIXELS` or `gaze data check --max-image-pixels`)
is refused in one line: a 74-byte PNG can claim 200000 x 200000 pixels (a decompression bomb).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError, SettingsError

MAX_IMAGE_PIXELS = 100_000_000  # width x height above which an image is refused before decoding
MAX_PIXELS_ENV = "GAZE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit: GAZE_MAX_IMAGE_PIXELS when set (a positive integer), else MAX_IMAGE_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) <= 0:
        raise SettingsError(f"{MAX_PIXELS_ENV}: expected a positive whole number of pixels (got {text!r})")
    return int(text)


def _header_size_wh(path: Path) -> tuple[int, int]:
    """(width, height) from the header; PIL's own bomb check is left to ours (it would refuse
    before we can name the limit, and ignore a raised GAZE_MAX_IMAGE_PIXELS)."""
    from PIL import Image, UnidentifiedImageError

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: cannot read image header ({e.__class__.__name__})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_pixels(path: Path, size_wh: tuple[int, int]) -> tuple[int, int]:
    w, h = size_wh
    if w <= 0 or h <= 0:
        raise DataError(f"{path}: image header claims {w}x{h} pixels")
    limit = max_image_pixels()
    if w * h > limit:
        raise DataError(f"{path}: image header claims {w}x{h} = {w * h} pixels, above the limit of {limit} "
                        f"(raise it with {MAX_PIXELS_ENV} or --max-image-pixels if the image is genuine)")
    return w, h

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what counts as an image in a folder


def read_image_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a missing or undecodable file is a DataError."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        raise DataError(f"{path}: cannot decode image (empty file)")
    try:
        _check_pixels(path, _header_size_wh(path))
    except DataError as e:
        if "cannot read image header" not in str(e):
            raise  # a bomb; a format PIL does not know may still decode with OpenCV
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise DataError(f"{path}: cannot decode image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size_wh(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    return _check_pixels(path, _header_size_wh(path))


def image_sizes_wh(root: Path, paths) -> np.ndarray:
    """(N, 2) sizes for root-relative paths, each distinct file read once."""
    cache: dict[str, tuple[int, int]] = {}
    out = np.empty((len(paths), 2), dtype=np.int64)
    for i, p in enumerate(paths):
        if p not in cache:
            cache[p] = image_size_wh(Path(root) / p)
        out[i] = cache[p]
    return out
