"""The prediction file every gazecli command writes and `gaze eval --predictions` reads.

`.npz` (no pickles) with
- `path`    (N,) str    image path as in the annotations (root-relative),
- `eye`     (N, 2) float normalised eye (GazeFollow) / head-box centre (VideoAttentionTarget),
- `heatmap` (N, h, w) float32,
- `inout`   (N,) float  optional in-frame score (higher = more likely in frame).
Persons are joined to the annotations on (path, eye) with tolerance 1e-4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError
from gazecli.core.io import write_arrays, write_text

JOIN_TOLERANCE = 1e-4


@dataclass
class Predictions:
    path: np.ndarray  # (N,) str
    eye: np.ndarray  # (N, 2) float64
    heatmap: np.ndarray  # (N, h, w) float32
    inout: np.ndarray | None = None  # (N,) float

    def __len__(self) -> int:
        return int(self.path.shape[0])

    def subset(self, index) -> "Predictions":
        return Predictions(self.path[index], self.eye[index], self.heatmap[index],
                           None if self.inout is None else self.inout[index])


def save_predictions(file: Path, predictions: Predictions) -> Path:
    """Write atomically (a temporary name, then rename)."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"path": np.asarray(predictions.path, dtype=str), "eye": np.asarray(predictions.eye, dtype=np.float64),
              "heatmap": np.asarray(predictions.heatmap, dtype=np.float32)}
    if predictions.inout is not None:
        arrays["inout"] = np.asarray(predictions.inout, dtype=np.float32)
    return write_arrays(file, arrays, compressed=True)


ACCEPTED = "a .npz with path (N,) str, eye (N, 2), heatmap (N, h, w) numbers and optional inout (N,) numbers"


def load_predictions(file: Path) -> Predictions:
    """A prediction file, every array checked (kind, shape, finite values); any problem is one DataError."""
    from gazecli.core.safe_read import load_npz_arrays, numeric_array

    file = Path(file)
    arrays = load_npz_arrays(file, "prediction file", ACCEPTED)
    missing = [k for k in ("path", "eye", "heatmap") if k not in arrays]
    if missing:
        raise DataError(f"{file.name}: prediction file lacks {', '.join(missing)} "
                        f"(needs path, eye, heatmap[, inout])")
    path, eye, heatmap = arrays["path"], arrays["eye"], arrays["heatmap"]
    inout = arrays.get("inout")
    if path.ndim != 1 or path.dtype.kind not in "US":
        raise DataError(f"{file.name}: 'path' must be a 1-D string array")
    n = len(path)
    eye = numeric_array(eye, file.name, "eye", f"of shape ({n}, 2)")
    heatmap = numeric_array(heatmap, file.name, "heatmap", f"of shape ({n}, h, w)")
    if eye.shape != (n, 2):
        raise DataError(f"{file.name}: 'eye' must have shape ({n}, 2), found {eye.shape}")
    if heatmap.ndim != 3 or heatmap.shape[0] != n:
        raise DataError(f"{file.name}: 'heatmap' must have shape ({n}, h, w), found {heatmap.shape}")
    if n and (heatmap.shape[1] < 1 or heatmap.shape[2] < 1):
        raise DataError(f"{file.name}: 'heatmap' maps are empty ({heatmap.shape[1]}x{heatmap.shape[2]})")
    if inout is not None:
        inout = numeric_array(inout, file.name, "inout", f"of shape ({n},)")
        if inout.shape != (n,):
            raise DataError(f"{file.name}: 'inout' must have shape ({n},), found {inout.shape}")
    for name, values in (("heatmap", heatmap), ("eye", eye), ("inout", inout)):
        if values is not None:
            bad = ~np.isfinite(values.reshape(n, -1)).all(axis=1) if n else np.zeros(0, bool)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{file.name}: '{name}' holds NaN or infinite values for {int(bad.sum())} persons "
                                f"(first: person {i}, {path[i]})")
    return Predictions(path.astype(str), eye, heatmap.astype(np.float32), inout)


def join_predictions(table: PersonTable, predictions: Predictions, name: str = "predictions",
                     tolerance: float = JOIN_TOLERANCE) -> np.ndarray:
    """For every person of `table`, the index of its prediction; errors on missing, extra,
    duplicate or ambiguous persons."""
    by_path: dict[str, list[int]] = {}
    for row, p in enumerate(table.path):
        by_path.setdefault(p, []).append(row)
    match = np.full(len(table), -1, dtype=np.int64)
    for i in range(len(predictions)):
        rows = by_path.get(predictions.path[i], [])
        if rows:
            d = np.abs(table.eye_xy_norm[rows] - predictions.eye[i]).max(axis=1)
            close = np.flatnonzero(d <= tolerance)
        else:
            close = np.zeros(0, dtype=np.int64)
        where = f"{name}: person {i} ({predictions.path[i]}, eye {tuple(np.round(predictions.eye[i], 6))})"
        if len(close) == 0:
            raise DataError(f"{where} is not a person of the {table.split} split")
        if len(close) > 1:
            raise DataError(f"{where} matches {len(close)} annotated persons within {tolerance:g}")
        row = rows[close[0]]
        if match[row] >= 0:
            raise DataError(f"{where} duplicates person {match[row]}")
        match[row] = i
    missing = np.flatnonzero(match < 0)
    if len(missing):
        r = missing[0]
        raise DataError(f"{name}: {len(missing)} of {len(table)} persons of the {table.split} split have no "
                        f"prediction (first: {table.path[r]}, eye {tuple(np.round(table.eye_xy_norm[r], 6))})")
    return match


def save_prediction_records(path: Path, records: list[dict]) -> Path:
    """`gaze predict`'s predictions.jsonl: one JSON object per person, one per line."""
    return write_text(path, "".join(json.dumps(r) + "\n" for r in records))
