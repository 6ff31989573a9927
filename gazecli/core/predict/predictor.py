"""`gazecli.Predictor`: a trained student loaded once, gaze heatmaps and points for in-memory or
on-disk images with given or detected heads (docs/predict.md for the conventions).

Inputs go through exactly the preprocessing the model was trained with (the dataset's own
sample construction, read from the checkpoint), so a prediction here equals `gaze eval`'s for
the same person. `gaze predict` (core/stages/predict.py) and `gaze label`'s suggestions
(core/label/suggest.py) both predict through it.
"""

from __future__ import annotations

import warnings
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
    """One person's prediction; every number is a plain Python float."""

    head_box_xyxy_px: list[float]
    head_source: str  # "given" or "detected"
    heatmap: np.ndarray = field(repr=False)  # (h, w) float32 in [0, 1]
    point_xy_norm: list[float]
    point_xy_px: list[float]
    inout: float | None  # probability that the target is in frame (models with an in/out head)
    eye_xy_norm: list[float] = field(default_factory=list)  # the eye the model was given (head-box centre by default)

    def to_json(self) -> dict:
        return {"head_box_xyxy_px": [round(v, 2) for v in self.head_box_xyxy_px], "head_source": self.head_source,
                "point_xy_px": [round(v, 2) for v in self.point_xy_px],
                "point_xy_norm": [round(v, 5) for v in self.point_xy_norm],
                "inout": None if self.inout is None else round(self.inout, 5)}


class Predictor:
    """Load a trained student once, predict many times (docs/predict.md).

    >>> from gazecli import Predictor
    >>> p = Predictor.from_run("runs/train-student/run")
    >>> people = p.predict("photo.jpg", heads=["120,40,60,70"])          # x,y,w,h strings
    >>> people = p.predict(rgb, heads_xywh_px=[(120, 40, 60, 70)])        # or numbers, x,y,w,h
    >>> people = p.predict(bgr, heads_xyxy_px=[(120, 40, 180, 110)], color="bgr")  # or corners
    >>> people = p.predict("photo.jpg")                                  # heads detected
    >>> people[0].point_xy_px, people[0].heatmap.shape

    Images: a file path, or an array by the rule of core/predict/images.py (uint8 as is, float
    only in [0, 1], grayscale / RGB / RGBA, `color="rgb"` or `"bgr"`).
    """

    def __init__(self, checkpoint, device: str = "auto", precision: str = "auto", batch_size: int = 32,
                 detector: str = "auto"):
        from gazecli.core.engine.device import resolve_device
        from gazecli.core.engine.precision import resolve_precision
        from gazecli.core.models import STUDENT_MODELS
        from gazecli.core.predict.domain import trained_on
        from gazecli.core.predict.heads import DETECTORS
        from gazecli.core.models.registry import load_trained

        if detector not in DETECTORS:
            raise SettingsError(f"detector: one of {', '.join(DETECTORS)} (got {detector!r})")
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
        self.trained_on = trained_on(self.meta)
        self.detector_name = detector
        self._detector = None
        self.warning: str | None = None  # the first domain warning (given once per Predictor)
        self.on_warning = lambda text: warnings.warn(text, UserWarning, stacklevel=3)

    @classmethod
    def from_run(cls, run_dir, weights: str = "best", **kwargs) -> "Predictor":
        """A `gaze train-student` run folder: its weights/best (weights="best") or weights/last."""
        from gazecli.core.engine.checkpoint import resolve_checkpoint

        run_dir = Path(run_dir)
        if weights not in ("best", "last"):
            raise SettingsError(f"weights: 'best' or 'last' (got {weights!r})")
        if not run_dir.is_dir():
            raise DataError(f"{run_dir}: not a run folder")
        return cls(resolve_checkpoint(run_dir, prefer=weights), **kwargs)

    def __repr__(self) -> str:
        model = self.meta.get("model") or {}
        config = model.get("config") or {}
        kind = self.trained_on.get("kind", "unknown")
        return (f"Predictor(model={model.get('name')!r}, backbone={config.get('backbone')!r}, "
                f"input={self.sample_config.input_size}px, heatmap={self.sample_config.heatmap_size}px, "
                f"trained_on={kind!r}, device='{self.device}', checkpoint='{self.meta['path']}')")

    @property
    def detector(self):
        if self._detector is None:
            from gazecli.core.predict.heads import HeadDetector

            self._detector = HeadDetector(self.detector_name)
        return self._detector

    def detect_heads(self, image, color: str = "rgb") -> list[list[float]]:
        """Head boxes (xyxy px, plain floats) found in an image, left to right."""
        return self.detector(self._rgb(image, color)[0])

    def predict(self, image, heads: Iterable[str] | None = None, *, heads_xywh_px: Iterable | None = None,
                heads_xyxy_px: Iterable | None = None, color: str = "rgb", name: str | None = None,
                ) -> list[PersonPrediction]:
        """One image (a path or an array); head boxes in exactly one named convention, or none
        (then detected). Returns one prediction per head (empty when none is found)."""
        from gazecli.core.predict.boxes import head_boxes_xyxy_px

        rgb, label = self._rgb(image, color)
        name = name or label
        height, width = rgb.shape[:2]
        boxes = head_boxes_xyxy_px(width, height, heads, heads_xywh_px, heads_xyxy_px)
        if boxes is None:
            boxes, source = self.detector(rgb), "detected"
        else:
            source = "given"
        return self.predict_boxes(rgb, boxes, source, name)

    def _rgb(self, image, color: str) -> tuple[np.ndarray, str]:
        from gazecli.core.predict.images import as_rgb_uint8

        if isinstance(image, (str, Path)):
            return read_image_rgb(Path(image)), Path(image).name
        return as_rgb_uint8(image, color), "image"

    def check_domain(self, rgb: np.ndarray, name: str) -> None:
        """Warn (once per Predictor) when a GazeWorld model meets an image that is not GazeWorld."""
        from gazecli.core.predict.domain import domain_warning

        if self.warning is None:
            text = domain_warning(self.trained_on, rgb, name)
            if text is not None:
                self.warning = text
                self.on_warning(text)

    def predict_boxes(self, rgb: np.ndarray, boxes: list[list[float]], source: str, name: str,
                      eyes_xy_norm: list | None = None) -> list[PersonPrediction]:
        """The model on validated boxes (xyxy px) of an (H, W, 3) uint8 RGB image."""
        self.check_domain(rgb, name)
        if not boxes:
            return []
        results: list[PersonPrediction] = []
        for start in range(0, len(boxes), self.batch_size):
            part = boxes[start:start + self.batch_size]
            eyes = None if eyes_xy_norm is None else eyes_xy_norm[start:start + self.batch_size]
            results += self._run(rgb, part, source, name, eyes)
        return results

    def _run(self, rgb: np.ndarray, boxes: list[list[float]], source: str, name: str,
             eyes: list | None) -> list[PersonPrediction]:
        import torch

        from gazecli.core.engine.precision import autocast
        from gazecli.core.models.vat import student_forward

        height, width = rgb.shape[:2]
        dataset = _SingleImageDataset(rgb, boxes, self.sample_config, name, eyes)
        batch = torch.utils.data.default_collate([dataset[i] for i in range(len(boxes))])
        batch = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        with torch.no_grad(), autocast(self.device, self.precision):
            out = student_forward(self.model, batch)
        heat = out["heatmap"].float()[:, 0].cpu().numpy()
        inout = torch.sigmoid(out["inout"].float()).cpu().numpy() if out.get("inout") is not None else None
        results = []
        for i, box in enumerate(boxes):
            hm = minmax(heat[i])
            r, c = np.unravel_index(int(np.argmax(hm)), hm.shape)
            point = [float(c) / hm.shape[1], float(r) / hm.shape[0]]  # the metrics' decoding: no half-pixel offset
            results.append(PersonPrediction(
                head_box_xyxy_px=[float(v) for v in box], head_source=source, heatmap=hm.astype(np.float32),
                point_xy_norm=point, point_xy_px=[point[0] * width, point[1] * height],
                inout=None if inout is None else float(inout[i]),
                eye_xy_norm=[float(v) for v in dataset.eyes[i]]))
        return results


class _SingleImageDataset:
    """The training preprocessing applied to one in-memory image and a list of head boxes."""

    def __init__(self, rgb: np.ndarray, boxes: list[list[float]], config, name: str, eyes: list | None = None):
        from gazecli.core.data.dataset import GazeDataset

        n = len(boxes)
        height, width = rgb.shape[:2]
        centres = np.array([[(b[0] + b[2]) / 2 / width, (b[1] + b[3]) / 2 / height] for b in boxes])
        if eyes is not None:  # given eyes (normalised) win over the head-box centre
            centres = np.array([c if e is None else e for c, e in zip(centres, eyes)], dtype=np.float64)
        self.eyes = centres
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
