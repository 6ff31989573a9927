"""What a checkpoint was trained on, and a warning when it is asked about something else.

Training records `trained_on = {"kind", "image_size_px"}` in the checkpoint metadata (kind:
"gazeworld", "gazefollow", "videoatt" or "unknown"; image_size_px: the side of GazeWorld's
square images). Checkpoints written before that are described from the dataset folder named in
their metadata when it still exists.

Rule for "this image is not GazeWorld" (docs/predict.md): GazeWorld renders every image as a
colour square of exactly the recorded side. An image whose size differs, or whose three channels
are equal (grayscale), is not GazeWorld. The rule is deliberately cheap and has one known blind
spot: a photograph resized to exactly that square passes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gazecli.core.data.kind import describe_dataset


def trained_on(meta: dict) -> dict:
    """The checkpoint's record, or a description of the dataset folder its metadata names."""
    if isinstance(meta.get("trained_on"), dict):
        return meta["trained_on"]
    data = meta.get("data") or (meta.get("settings") or {}).get("data")
    if data and Path(data).is_dir():
        return describe_dataset(Path(data))
    return {"kind": "unknown", "image_size_px": None}


def looks_like_gazeworld(rgb: np.ndarray, image_size_px: int | None) -> bool:
    height, width = rgb.shape[:2]
    if image_size_px is not None and (width, height) != (image_size_px, image_size_px):
        return False
    if image_size_px is None and width != height:
        return False
    sample = rgb[:: max(1, height // 64), :: max(1, width // 64)].astype(np.int16)
    grayscale = bool((np.abs(sample[..., 0] - sample[..., 1]).max() <= 2) and
                     (np.abs(sample[..., 1] - sample[..., 2]).max() <= 2))
    return not grayscale


def domain_warning(record: dict, rgb: np.ndarray, name: str) -> str | None:
    """One line when a GazeWorld-trained model meets an image that is not GazeWorld, else None."""
    if record.get("kind") != "gazeworld" or looks_like_gazeworld(rgb, record.get("image_size_px")):
        return None
    height, width = rgb.shape[:2]
    size = record.get("image_size_px")
    expected = f"{size}x{size} " if size else ""
    return (f"this checkpoint was trained on GazeWorld (synthetic {expected}scenes) and {name} ({width}x{height}) "
            f"is not one: its gaze points mean nothing on real photos (see README: Predict on your own photos)")
