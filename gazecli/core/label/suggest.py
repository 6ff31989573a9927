"""Model suggestions for `gaze label --checkpoint` (docs/labelling.md): the head boxes of an image
(a heads CSV, else detected faces) with the gaze a trained student predicts for them, the gaze of a
head box the user draws, and the `--order uncertain` score of an image. The student runs through
`gazecli.Predictor` (core/predictor.py).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError


def read_suggested_heads(path: Path) -> dict[str, list[list[float]]]:
    """CSV `file,x,y,w,h` (pixels; header optional; several rows per image) -> {file: [xyxy boxes]};
    `file` is the image's path relative to IMAGES, or its bare name."""
    heads: dict[str, list[list[float]]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].strip().lower() in ("file", "image"):
                continue
            try:
                x, y, w, h = (float(v) for v in row[1:5])
                if len(row) != 5 or w <= 0 or h <= 0:
                    raise ValueError
            except ValueError:
                raise DataError(f"{Path(path).name}:{line_no}: expected file,x,y,w,h with a positive width and height") from None
            heads.setdefault(row[0].strip().replace("\\", "/"), []).append([x, y, x + w, y + h])
    return heads


class ModelSuggester:
    """Suggestions from a trained student: head boxes (--heads-csv, else detected faces) with their
    predicted gaze, and the gaze of any head box the user draws. Results are cached per image."""

    def __init__(self, checkpoint: Path, images_dir: Path, device: str = "auto", heads: dict | None = None):
        from gazecli.core.data.images import read_image_rgb
        from gazecli.core.predictor import Predictor

        self.predictor = Predictor(checkpoint, device=device)
        self.images_dir = Path(images_dir)
        self.heads = heads
        self._read = read_image_rgb
        self._cache: dict[str, list[dict]] = {}
        self._rgb: dict[str, np.ndarray] = {}

    def rgb(self, key: str) -> np.ndarray:
        if key not in self._rgb:
            if len(self._rgb) > 8:
                self._rgb.pop(next(iter(self._rgb)))
            self._rgb[key] = self._read(self.images_dir / key)
        return self._rgb[key]

    def head_boxes(self, key: str) -> list[list[float]] | None:
        """Known head boxes of an image (None: detect them)."""
        if self.heads is None:
            return None
        return self.heads.get(key, self.heads.get(Path(key).name, []))

    def _predict(self, key: str, boxes: list[list[float]] | None) -> list:
        heads = None if boxes is None else [f"{b[0]},{b[1]},{b[2] - b[0]},{b[3] - b[1]}" for b in boxes]
        if heads == []:
            return []
        return self.predictor.predict(self.rgb(key), heads, name=key)

    @staticmethod
    def _person(p) -> dict:
        return {"head_box_xyxy_px": [round(float(v), 2) for v in p.head_box_xyxy_px],
                "gaze_xy_px": [round(float(v), 2) for v in p.point_xy_px],
                "inout": None if p.inout is None else round(float(p.inout), 4)}

    def persons(self, key: str) -> list[dict]:
        if key not in self._cache:
            self._cache[key] = [self._person(p) for p in self._predict(key, self.head_boxes(key))]
        return self._cache[key]

    def gaze(self, key: str, head_box_xyxy_px: list[float]) -> dict:
        person = self._person(self._predict(key, [head_box_xyxy_px])[0])
        return {"gaze_xy_px": person["gaze_xy_px"], "inout": person["inout"]}

    def points_norm(self, rgb: np.ndarray, boxes_xyxy_px: np.ndarray) -> np.ndarray:
        """(N, 2) predicted gaze points, normalised, for given head boxes (the uncertainty's predictor)."""
        heads = [f"{b[0]},{b[1]},{b[2] - b[0]},{b[3] - b[1]}" for b in np.asarray(boxes_xyxy_px, dtype=float)]
        return np.array([p.point_xy_norm for p in self.predictor.predict(rgb, heads)], dtype=np.float64).reshape(-1, 2)

    def uncertainty(self, key: str) -> float | None:
        """Mean flip disagreement over the image's suggested persons (None: no head known)."""
        from gazecli.core.label.uncertainty import flip_disagreement

        boxes = [p["head_box_xyxy_px"] for p in self.persons(key)]
        if not boxes:
            return None
        return float(flip_disagreement(self.points_norm, self.rgb(key), np.array(boxes)).mean())
