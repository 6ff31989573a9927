"""`gazecli.Predictor`: a trained student loaded once, gaze heatmaps and points for in-memory or
on-disk images with given or detected heads (docs/design.md, "Student").

Inputs go through exactly the preprocessing the model was trained with (the dataset's own
sample construction, read from the checkpoint), so a prediction here equals `gaze eval`'s for
the same person. `gaze predict` (core/stages/predict.py) and `gaze label`'s suggestions
(core/label/suggest.py) both predict through it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from gazecli.core.data.heatmaps import minmax
from gazecli.core.data.images import read_image_rgb
from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError, SettingsError


@dataclass
class PersonPrediction:
    head_box_xyxy_px: list[float]
    head_source: str  # "given" or "detected"
    heatmap: np.ndarray = field(repr=False)  # (h, w) float32 in [0, 1]
    point_xy_norm: list[float]
    point_xy_px: list[float]
    inout: float | None  # probability that the target is in frame (models with an in/out head)

    def to_json(self) -> dict:
        return {"head_box_xyxy_px": [round(v, 2) for v in self.head_box_xyxy_px], "head_source": self.head_source,
                "point_xy_px": [round(v, 2) for v in self.point_xy_px],
                "point_xy_norm": [round(v, 5) for v in self.point_xy_norm],
                "inout": None if self.inout is None else round(self.inout, 5)}


def parse_head(text: str, width: int, height: int) -> list[float]:
    """'x,y,w,h' in pixels -> xyxy, checked against the image. A box read from --heads-csv
    (a `HeadSpec`) is a DataError naming its file and line; one from --head / GAZE_HEAD a SettingsError."""
    from gazecli.core.settings.option_source import option_name

    source = getattr(text, "source", None)
    error, where = (DataError, f"{source}: head") if source else (SettingsError, option_name("head"))
    try:
        x, y, w, h = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise error(f"{where} {text!r}: expected x,y,w,h in pixels") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise error(f"{where} {text!r}: x, y, w and h must be finite numbers")
    if w <= 0 or h <= 0:
        raise error(f"{where} {text!r}: width and height must be positive")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise error(f"{where} {text!r}: the box lies outside the {width}x{height} image")
    return [max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)]


def detect_heads(image_rgb: np.ndarray, min_size: int = 24) -> list[list[float]]:
    """Head boxes (xyxy px) from OpenCV's bundled Haar cascades (frontal and profile faces, both
    directions), merged; a face box is grown to a head box (+25 % each side, +40 % upwards)."""
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
    width = gray.shape[1]
    boxes: list[list[float]] = []
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
        cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
        if cascade.empty():
            continue
        for flipped in (False, True) if "profile" in name else (False,):
            img = gray[:, ::-1] if flipped else gray
            for (x, y, w, h) in cascade.detectMultiScale(np.ascontiguousarray(img), 1.1, 5, minSize=(min_size, min_size)):
                if flipped:
                    x = width - x - w
                boxes.append([x - 0.25 * w, y - 0.4 * h, x + 1.25 * w, y + 1.1 * h])
    kept: list[list[float]] = []
    for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        if all(_iou(b, k) < 0.3 for k in kept):
            kept.append(b)
    h_img, w_img = gray.shape
    return [[max(0.0, b[0]), max(0.0, b[1]), min(float(w_img), b[2]), min(float(h_img), b[3])] for b in kept]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Predictor:
    """Load a trained student once, predict many times.

    >>> from gazecli import Predictor
    >>> p = Predictor("runs/train-student/run")
    >>> people = p.predict("photo.jpg", heads=["120,40,60,70"])   # or heads=None: detected
    >>> people[0].point_xy_px, people[0].heatmap.shape
    """

    def __init__(self, checkpoint, device: str = "auto", precision: str = "auto", batch_size: int = 32):
        from gazecli.core.engine.device import resolve_device
        from gazecli.core.engine.precision import resolve_precision
        from gazecli.core.models import STUDENT_MODELS
        from gazecli.core.models.registry import load_trained

        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        trained = load_trained(checkpoint, self.device)
        self.model, self.meta = trained.model, trained.meta
        name = (self.meta.get("model") or {}).get("name")
        if name not in STUDENT_MODELS:
            raise DataError(f"{self.meta['path']}: a {name!r} checkpoint cannot predict gaze; use a student "
                            f"checkpoint (gaze train-student)")
        if name == "vat-gc":
            raise DataError(f"{self.meta['path']}: VAT-GC needs a Grad-CAM map per person; predict with a VAT student")
        self.sample_config = trained.sample
        self.batch_size = batch_size

    def predict(self, image, heads: Iterable | None = None, name: str = "image") -> list[PersonPrediction]:
        """One image (a path or an RGB uint8 array); heads as 'x,y,w,h' strings or xyxy boxes in
        pixels; None: detect them. Returns one prediction per head (empty when none is found)."""
        rgb = read_image_rgb(Path(image)) if not isinstance(image, np.ndarray) else image
        height, width = rgb.shape[:2]
        if heads is None:
            boxes, source = detect_heads(rgb), "detected"
        else:
            boxes = [parse_head(h, width, height) if isinstance(h, str) else [float(v) for v in h] for h in heads]
            source = "given"
        if not boxes:
            return []
        return self._run(rgb, boxes, source, name)

    def _run(self, rgb: np.ndarray, boxes: list[list[float]], source: str, name: str) -> list[PersonPrediction]:
        import torch

        from gazecli.core.engine.precision import autocast
        from gazecli.core.models.vat import student_forward

        height, width = rgb.shape[:2]
        dataset = _SingleImageDataset(rgb, boxes, self.sample_config, name)
        batch = torch.utils.data.default_collate([dataset[i] for i in range(len(boxes))])
        batch = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        with torch.no_grad(), autocast(self.device, self.precision):
            out = student_forward(self.model, batch)
        heat = out["heatmap"].float()[:, 0].cpu().numpy()
        inout = torch.sigmoid(out["inout"].float()).cpu().numpy() if out.get("inout") is not None else None
        results = []
        for i, box in enumerate(boxes):
            hm = heat[i]
            hm = minmax(hm)
            r, c = np.unravel_index(int(np.argmax(hm)), hm.shape)
            point = [c / hm.shape[1], r / hm.shape[0]]  # the metrics' decoding: no half-pixel offset
            results.append(PersonPrediction(head_box_xyxy_px=list(box), head_source=source, heatmap=hm.astype(np.float32),
                                            point_xy_norm=point, point_xy_px=[point[0] * width, point[1] * height],
                                            inout=None if inout is None else float(inout[i])))
        return results


class _SingleImageDataset:
    """The training preprocessing applied to one in-memory image and a list of head boxes."""

    def __init__(self, rgb: np.ndarray, boxes: list[list[float]], config, name: str):
        from gazecli.core.data.dataset import GazeDataset

        n = len(boxes)
        height, width = rgb.shape[:2]
        centres = np.array([[(b[0] + b[2]) / 2 / width, (b[1] + b[3]) / 2 / height] for b in boxes])
        table = PersonTable(
            dataset="predict", split="predict", root=Path("."), path=np.array([name] * n, dtype=object),
            eye_xy_norm=centres, head_box_xyxy_px=np.array(boxes, dtype=np.float64),
            body_box_xyxy_px=np.full((n, 4), np.nan), gaze_xy_norm=np.full((n, 1, 2), np.nan),
            inout=np.zeros(n, dtype=np.int8), source=np.array([name] * n, dtype=object))
        self.rgb = rgb
        self.dataset = GazeDataset(table, config)
        self.dataset.load = lambda index: self.rgb  # the image is already in memory

    def __getitem__(self, i: int) -> dict:
        sample = self.dataset[i]
        return {k: v for k, v in sample.items() if k in ("scene", "face", "head_channel", "index")}
