"""Image files: decoding with OpenCV and header-only sizes, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what counts as an image in a folder


def read_image_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a missing or undecodable file is a DataError."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{path}: cannot decode image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size_wh(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: cannot read image header ({e.__class__.__name__})") from None


def image_sizes_wh(root: Path, paths) -> np.ndarray:
    """(N, 2) sizes for root-relative paths, each distinct file read once."""
    cache: dict[str, tuple[int, int]] = {}
    out = np.empty((len(paths), 2), dtype=np.int64)
    for i, p in enumerate(paths):
        if p not in cache:
            cache[p] = image_size_wh(Path(root) / p)
        out[i] = cache[p]
    return out
