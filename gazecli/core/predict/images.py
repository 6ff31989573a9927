"""Images as the user hands them to `Predictor`, turned into the (H, W, 3) uint8 RGB arrays the
model's preprocessing reads; and the image files of a folder.

Array rule (docs/predict.md): uint8 arrays are taken as they are; float arrays must lie in
[0, 1] and are scaled by 255 (a float array with values outside [0, 1] is an error, never
guessed at); other integer types (uint16, ...) are an error. Shapes: (H, W) and (H, W, 1)
grayscale, (H, W, 3) colour, (H, W, 4) colour with alpha (alpha is dropped). `color` says
the channel order of 3- and 4-channel arrays: "rgb" (default; what skimage, PIL and
matplotlib give) or "bgr" (what `cv2.imread` gives).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError, SettingsError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def as_rgb_uint8(image: np.ndarray, color: str = "rgb") -> np.ndarray:
    """(H, W, 3) uint8 RGB from an array that follows the module's rule."""
    if color not in ("rgb", "bgr"):
        raise SettingsError(f"color must be 'rgb' or 'bgr', got {color!r}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise SettingsError(f"image: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {tuple(a.shape)}")
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise SettingsError(f"image: too small ({a.shape[1]}x{a.shape[0]} pixels)")
    if a.dtype == np.uint8:
        pass
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise SettingsError("image: a float image holds NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise SettingsError(f"image: a float image must lie in [0, 1] (found {lo:.4g} to {hi:.4g}); "
                                f"pass 0-255 values as uint8")
        a = np.round(a * 255.0).astype(np.uint8)
    else:
        raise SettingsError(f"image: expected uint8 (0-255) or float (0-1) values, got dtype {a.dtype}")
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    a = a[..., :3]
    if color == "bgr":
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files of a folder (by suffix; others are ignored), sorted, as paths relative to it.
    Hidden files and folders (a leading '.') are skipped."""
    folder = Path(folder)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(dirpath, name).relative_to(folder))
    return sorted(found, key=lambda p: p.as_posix())


def overlay_path(out: Path, relative: Path) -> Path:
    """Where the overlay of input `relative` goes: its relative path under `out`, `_gaze` added to
    the stem, the input's extension kept (so `a.jpg` and `a.png` never share an output)."""
    relative = Path(relative)
    return Path(out) / relative.parent / f"{relative.stem}_gaze{relative.suffix}"


def source_items(source: Path, recursive: bool = False) -> tuple[str, list[Path]]:
    """('images', paths relative to the folder) for a folder; ('images', [file]) for one image;
    ('video', [file]) for a video."""
    source = Path(source)
    if source.is_dir():
        files = list_images(source, recursive)
        if not files:
            hint = "" if recursive else " (add --recursive to look into subfolders)"
            raise DataError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}){hint}")
        return "images", files
    if not source.is_file():
        raise DataError(f"{source}: not found")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return "video", [source]
    return "images", [source]
