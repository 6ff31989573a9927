"""What `gaze predict` writes: overlays (one colour per person), `predictions.jsonl` written and
flushed image by image (so a killed run keeps its work and `--resume` skips what is done), and
heatmaps in the prediction-file format that `gaze eval --predictions` reads (core/predictions.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from gazecli.core.io import write_text

# BGR colours, one per person (cycled): distinct on photos and on each other
PALETTE_BGR = [(0, 215, 255), (255, 0, 255), (0, 255, 0), (255, 160, 0), (0, 80, 255), (255, 255, 0),
               (160, 0, 255), (0, 160, 80)]


def person_colour_bgr(index: int) -> tuple[int, int, int]:
    return PALETTE_BGR[index % len(PALETTE_BGR)]


def draw_overlay(rgb: np.ndarray, people: Iterable, labels: list[str] | None = None) -> np.ndarray:
    """The image (BGR) with each person in their own colour: the heatmap as a tint of that colour,
    the head box, an arrow from the head to the point and the point; label = person (or track) id."""
    import cv2

    people = list(people)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.float32)
    height, width = bgr.shape[:2]
    for i, p in enumerate(people):
        heat = cv2.resize(np.asarray(p.heatmap, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        alpha = (0.6 * np.clip(heat, 0, 1))[..., None]
        bgr = bgr * (1 - alpha) + np.array(person_colour_bgr(i), dtype=np.float32) * alpha
    bgr = np.clip(bgr, 0, 255).astype(np.uint8)
    thickness = max(1, round(min(width, height) / 300))
    for i, p in enumerate(people):
        c = person_colour_bgr(i)
        x1, y1, x2, y2 = (int(round(v)) for v in p.head_box_xyxy_px)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), c, thickness)
        start = (int((x1 + x2) / 2), int((y1 + y2) / 2))
        end = (int(p.point_xy_px[0]), int(p.point_xy_px[1]))
        cv2.arrowedLine(bgr, start, end, c, thickness, cv2.LINE_AA, tipLength=0.05)
        cv2.circle(bgr, end, 3 * thickness, c, -1, cv2.LINE_AA)
        label = labels[i] if labels is not None else str(i)
        if p.inout is not None:
            label += f" in {p.inout:.2f}"
        cv2.putText(bgr, label, (x1, max(10, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, c, thickness,
                    cv2.LINE_AA)
    return bgr


class PredictionLog:
    """`predictions.jsonl`, appended one input at a time and flushed, so a killed run keeps every
    finished input. `done` holds the inputs (`path` key) already in the file: on `--resume` they are
    skipped. A torn last line (a kill in the middle of a write) is dropped on reopening."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = Path(path)
        self.done: set[str] = set()
        self.records: list[dict] = []
        if resume and self.path.is_file():
            kept = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line: that input is predicted again
                kept.append(record)
            self.records = kept
            self.done = {r["path"] for r in kept if "path" in r}
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))  # the torn line gone
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, records: list[dict]) -> None:
        """All lines of one input in one write, then flushed."""
        if not records:
            return
        self._file.write("".join(json.dumps(r) + "\n" for r in records))
        self._file.flush()
        self.records.extend(records)
        self.done.update(r["path"] for r in records if "path" in r)

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HeatmapShards:
    """Heatmaps of each input in their own small prediction file (`heatmaps/<input>.npz`, written
    atomically before the input's JSON lines), joined into one `predictions.npz` at the end."""

    def __init__(self, out: Path):
        self.folder = Path(out) / "heatmaps"

    def shard(self, relative: str) -> Path:
        return self.folder / f"{relative}.npz"

    def write(self, relative: str, paths: list[str], eyes: list, heatmaps: list, inouts: list | None) -> None:
        from gazecli.core.predictions import Predictions, save_predictions

        save_predictions(self.shard(relative), Predictions(
            np.asarray(paths, dtype=str), np.asarray(eyes, dtype=np.float64).reshape(-1, 2),
            np.asarray(heatmaps, dtype=np.float32), None if inouts is None else np.asarray(inouts, dtype=np.float64)))

    def join(self, relatives: list[str], file: Path) -> Path | None:
        """One prediction file of every input's shard, in input order; None when there is none."""
        from gazecli.core.predictions import Predictions, load_predictions, save_predictions

        parts = [load_predictions(self.shard(r)) for r in relatives if self.shard(r).is_file()]
        parts = [p for p in parts if len(p)]
        if not parts:
            return None
        with_inout = all(p.inout is not None for p in parts)
        return save_predictions(file, Predictions(
            np.concatenate([p.path for p in parts]), np.concatenate([p.eye for p in parts]),
            np.concatenate([p.heatmap for p in parts]),
            np.concatenate([p.inout for p in parts]) if with_inout else None))
