"""Head detection for `gaze predict` when no head boxes are given.

Two face detectors, chosen by `detector`:
- "mtcnn": facenet-pytorch's MTCNN, whose weights ship inside the package (`pip install
  'gazecli[detect]'`; pinned to 2.5.3, the release that leaves torch alone). Chosen as the
  default by the measurements in benchmarks/head_detectors.py (docs/predict.md has the table).
- "cascade": OpenCV's bundled Haar cascades (frontal, and profile in both directions), always
  available: the fallback when facenet-pytorch is not installed.
"auto" takes MTCNN when it is installed, else the cascade.

A face box becomes a head box by one rule for both (`face_to_head_xyxy`): 25 % of the face width
added on each side, 40 % of the face height added above (hair, forehead), 20 % below (the chin: the detectors' boxes stop near the mouth);
then clipped to the image.
"""

from __future__ import annotations

import os

import numpy as np

from gazecli.core.errors import SettingsError

DETECTORS = ("auto", "mtcnn", "cascade")
GROW_SIDES, GROW_UP, GROW_DOWN = 0.25, 0.40, 0.20
MTCNN_SIDE = 320  # MTCNN looks at frames scaled to this longer side (benchmarks/head_detectors.py)


def face_to_head_xyxy(face_xyxy, width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in face_xyxy)
    w, h = x2 - x1, y2 - y1
    box = [x1 - GROW_SIDES * w, y1 - GROW_UP * h, x2 + GROW_SIDES * w, y2 + GROW_DOWN * h]
    return [max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])]


def iou_xyxy(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mtcnn_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("facenet_pytorch") is not None


class CascadeFaces:
    """OpenCV Haar cascades: face boxes (xyxy px) with a score of 1 each, overlaps merged."""

    name = "cascade"

    def __init__(self, min_size: int = 24):
        import cv2

        self.min_size = min_size
        self.cascades = []
        for file in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
            cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, file))
            if not cascade.empty():
                self.cascades.append((cascade, "profile" in file))

    def faces(self, rgb: np.ndarray) -> list[tuple[list[float], float]]:
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        width = gray.shape[1]
        boxes: list[list[float]] = []
        for cascade, profile in self.cascades:
            for flipped in (False, True) if profile else (False,):
                img = np.ascontiguousarray(gray[:, ::-1]) if flipped else gray
                for (x, y, w, h) in cascade.detectMultiScale(img, 1.1, 5, minSize=(self.min_size, self.min_size)):
                    if flipped:
                        x = width - x - w
                    boxes.append([float(x), float(y), float(x + w), float(y + h)])
        kept: list[list[float]] = []
        for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
            if all(iou_xyxy(b, k) < 0.3 for k in kept):
                kept.append(b)
        return [(b, 1.0) for b in kept]


class MtcnnFaces:
    """facenet-pytorch's MTCNN (weights inside the package), on the CPU or a given device."""

    name = "mtcnn"

    def __init__(self, min_size: int = 20, threshold: float = 0.9, device: str = "cpu", max_side: int | None = MTCNN_SIDE):
        from facenet_pytorch import MTCNN

        self.model = MTCNN(keep_all=True, min_face_size=min_size, device=device)
        self.threshold = threshold
        self.max_side = max_side

    def faces(self, rgb: np.ndarray) -> list[tuple[list[float], float]]:
        """Faces of at least `min_size` px in the frame scaled so that its longer side is at most
        `max_side` (faster; at 512 px input and the defaults, faces from 32 px up)."""
        import cv2
        import torch

        height, width = rgb.shape[:2]
        scale = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            rgb = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            boxes, probs = self.model.detect(np.ascontiguousarray(rgb))
        if boxes is None:
            return []
        return [([float(v) / scale for v in b], float(p)) for b, p in zip(boxes, probs)
                if p is not None and p >= self.threshold]


class HeadDetector:
    """Faces from one of the detectors above, grown into head boxes (xyxy px)."""

    def __init__(self, detector: str = "auto", device: str = "cpu"):
        if detector not in DETECTORS:
            raise SettingsError(f"--detector: one of {', '.join(DETECTORS)} (got {detector!r})")
        if detector == "mtcnn" and not mtcnn_available():
            raise SettingsError("--detector mtcnn needs facenet-pytorch: pip install 'gazecli[detect]' "
                                "(or --detector cascade)")
        if detector == "auto":
            detector = "mtcnn" if mtcnn_available() else "cascade"
        self.faces = MtcnnFaces(device=device) if detector == "mtcnn" else CascadeFaces()
        self.name = detector

    def __call__(self, rgb: np.ndarray) -> list[list[float]]:
        height, width = rgb.shape[:2]
        found = sorted(self.faces.faces(rgb), key=lambda fp: fp[0][0])  # left to right
        return [face_to_head_xyxy(box, width, height) for box, _ in found]

    @property
    def description(self) -> str:
        return "facenet-pytorch MTCNN" if self.name == "mtcnn" else "OpenCV's face cascades"
