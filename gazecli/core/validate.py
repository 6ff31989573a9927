"""Checks shared by the readers: paths that must stay inside a dataset root, values that must be finite.

Kept apart from the readers so every reader asks the same question the same way (docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError, SettingsError

FOLLOW_SYMLINKS_ENV = "GAZE_FOLLOW_SYMLINKS"


def follow_symlinks_allowed() -> bool:
    """GAZE_FOLLOW_SYMLINKS=1 (or `gaze data check --follow-symlinks`): files may link out of the root."""
    text = os.environ.get(FOLLOW_SYMLINKS_ENV, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{FOLLOW_SYMLINKS_ENV}: expected 1/true or 0/false (got {text!r})")


def inside_root(root: Path, relative: str, follow_symlinks: bool | None = None) -> Path:
    """root / relative, refused (DataError) when a symbolic link takes it outside `root`."""
    path = Path(root) / relative
    if follow_symlinks is None:
        follow_symlinks = follow_symlinks_allowed()
    if follow_symlinks:
        return path
    try:
        real = path.resolve()
        base = Path(root).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise DataError(f"{path}: unresolvable path (a symbolic link loop?)") from None
    if real != base and base not in real.parents:
        raise DataError(f"{path}: a symbolic link that leaves the dataset root (to {real}); if that is intended, "
                        f"set {FOLLOW_SYMLINKS_ENV}=1 (any command) or use gaze data check --follow-symlinks")
    return path


def require_finite(values, what: str, names, where: str) -> None:
    """Refuse NaN / infinite entries of `values` (first axis = persons), naming the first person."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return
    bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: {what} is NaN or infinite for {int(bad.sum())} of {len(bad)} persons "
                        f"(first: person {i}, {names[i]}); scores must be finite numbers")
