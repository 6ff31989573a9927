"""Which kind of dataset a folder holds, recorded in checkpoints as `trained_on` (see
docs/predict.md: a GazeWorld checkpoint warns on images that are not GazeWorld)."""

from __future__ import annotations

import json
from pathlib import Path


def describe_dataset(root: Path) -> dict:
    """{"kind", "image_size_px"} of a dataset folder (never raises)."""
    root = Path(root)
    meta = root / "gazeworld.json"
    if meta.is_file():
        try:
            size = int(json.loads(meta.read_text(encoding="utf-8")).get("size"))
        except (ValueError, TypeError, OSError, json.JSONDecodeError):
            size = None
        return {"kind": "gazeworld", "image_size_px": size}
    from gazecli.core.data.gazefollow import is_gazefollow_root
    from gazecli.core.data.videoatt import is_videoatt_root

    if is_gazefollow_root(root):
        return {"kind": "gazefollow", "image_size_px": None}
    if is_videoatt_root(root):
        return {"kind": "videoatt", "image_size_px": None}
    return {"kind": "unknown", "image_size_px": None}
