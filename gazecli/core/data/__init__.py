"""Datasets: annotation readers (GazeFollow, VideoAttentionTarget), label splits, GazeWorld,
heatmaps and the torch Dataset. Readers are numpy-only; `dataset.py` is the torch part."""

from __future__ import annotations

from pathlib import Path

from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError



def detect_dataset(root: Path) -> str:
    """'gazefollow' or 'videoatt' from the files under root."""
    from gazecli.core.data.gazefollow import is_gazefollow_root
    from gazecli.core.data.videoatt import is_videoatt_root

    if is_gazefollow_root(root):
        return "gazefollow"
    if is_videoatt_root(root):
        return "videoatt"
    raise DataError(
        f"{root}: not a GazeFollow root (train/test_annotations_release*.txt) nor a "
        f"VideoAttentionTarget root (images/ and annotations/)"
    )


def read_persons(root: Path, split: str, dataset: str = "auto", skip_invalid: bool = False) -> PersonTable:
    """The persons of a split ("train" or "test") of a dataset of either kind."""
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.videoatt import read_videoatt

    kind = detect_dataset(root) if dataset == "auto" else dataset
    if kind == "gazefollow":
        return read_gazefollow(root, split, skip_invalid=skip_invalid)
    if kind == "videoatt":
        return read_videoatt(root, split, skip_invalid=skip_invalid)
    raise ValueError(f"unknown dataset {dataset!r}")


__all__ = ["PersonTable", "detect_dataset", "read_persons"]
