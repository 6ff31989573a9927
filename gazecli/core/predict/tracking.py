"""Head tracks across video frames: detection every k-th frame, optical flow between.

- At a detection frame, detections are matched to the tracks' current boxes greedily by IoU
  (>= `iou_match`); a matched track takes the detected box.
- A detection no track claims starts a *tentative* track. It becomes a person (gets the next
  id, 0, 1, 2, ... in order of confirmation, left to right among equals) when the next detection finds it again; a
  detection seen once only is dropped (false "heads" on the background rarely repeat at the
  same place). While a tentative track exists the caller detects on the very next frame
  (`wants_detection`), so a new person is confirmed one frame after it first appears.
- Between detection frames every track's box moves by the median optical flow (pyramidal
  Lucas-Kanade) of corner points inside it.
- A person not found at `max_missed` detection frames in a row is ended; while missed, its box
  keeps following the flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gazecli.core.predict.heads import iou_xyxy


@dataclass
class Track:
    box_xyxy_px: list[float]
    id: int | None = None  # None while tentative
    hits: int = 1
    missed: int = 0
    frames: list[int] = field(default_factory=list)


class HeadTracker:
    def __init__(self, iou_match: float = 0.3, min_hits: int = 2, max_missed: int = 2):
        self.iou_match = iou_match
        self.min_hits = min_hits
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.next_id = 0
        self._gray: np.ndarray | None = None

    @property
    def wants_detection(self) -> bool:
        """True while a tentative track waits for its confirming detection."""
        return any(t.id is None for t in self.tracks)

    def _flow(self, gray: np.ndarray) -> None:
        """Move every track's box by the median flow of its corner points since the last frame."""
        import cv2

        prev = self._gray
        self._gray = gray
        if prev is None or not self.tracks or prev.shape != gray.shape:
            return
        height, width = gray.shape
        for t in self.tracks:
            x1, y1, x2, y2 = (int(round(v)) for v in t.box_xyxy_px)
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
            if x2 - x1 < 4 or y2 - y1 < 4:
                continue
            mask = np.zeros_like(prev)
            mask[y1:y2, x1:x2] = 255
            points = cv2.goodFeaturesToTrack(prev, maxCorners=40, qualityLevel=0.01, minDistance=3, mask=mask)
            if points is None or len(points) < 3:
                continue
            moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, gray, points, None, winSize=(15, 15), maxLevel=2)
            ok = status.reshape(-1) == 1
            if ok.sum() < 3:
                continue
            dx, dy = np.median((moved - points).reshape(-1, 2)[ok], axis=0)
            bx1, by1, bx2, by2 = t.box_xyxy_px
            t.box_xyxy_px = [float(np.clip(bx1 + dx, 0, width)), float(np.clip(by1 + dy, 0, height)),
                             float(np.clip(bx2 + dx, 0, width)), float(np.clip(by2 + dy, 0, height))]

    def step(self, gray: np.ndarray, detections: list[list[float]] | None) -> list[Track]:
        """One frame (grayscale uint8); `detections` (xyxy px) on detection frames, else None.
        Returns the confirmed tracks present in this frame."""
        self._flow(gray)
        if detections is not None:
            self._match(detections)
        return [t for t in self.tracks if t.id is not None]

    def _match(self, detections: list[list[float]]) -> None:
        pairs = sorted(((iou_xyxy(t.box_xyxy_px, d), ti, di) for ti, t in enumerate(self.tracks)
                        for di, d in enumerate(detections)), reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        for iou, ti, di in pairs:
            if iou < self.iou_match:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t = self.tracks[ti]
            t.box_xyxy_px = [float(v) for v in detections[di]]
            t.hits += 1
            t.missed = 0
        kept = []
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
                if t.id is None or t.missed >= self.max_missed:
                    continue  # a tentative track seen once, or a person lost for too long
            kept.append(t)
        kept += [Track(box_xyxy_px=[float(v) for v in d]) for di, d in enumerate(detections) if di not in used_d]
        for t in sorted(kept, key=lambda t: t.box_xyxy_px[0]):  # persons confirmed together: left to right
            if t.id is None and t.hits >= self.min_hits:
                t.id = self.next_id
                self.next_id += 1
        self.tracks = kept
