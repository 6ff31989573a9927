"""`gaze predict VIDEO`: heads detected every `--detect-every` predicted frames and tracked between
(core/predict/tracking.py), the model on every tracked head, one set of JSON lines per frame
(flushed as it goes), an output video with the overlays, and a summary per person track."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np

from gazecli.core.errors import DataError, SettingsError


def video_frames(path: Path, every: int = 1) -> Iterator[tuple[int, np.ndarray, float]]:
    """(frame number, RGB frame, fps) of a video, every `every`-th frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    n = 0
    try:
        while True:
            if n % every == 0:
                ok, frame = cap.read()
                if not ok:
                    break
                yield n, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), fps
            elif not cap.grab():  # skipped frames are not decoded
                break
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: no frames could be decoded")


def predict_video(predictor, video: Path, out: Path, settings, csv_heads: dict, progress=None) -> dict:
    """`predictor`: a `gazecli.Predictor`. Returns the per-track summary and the files written."""
    import cv2

    from gazecli.core.predict.boxes import csv_boxes_xyxy_px, heads_for, option_boxes_xyxy_px
    from gazecli.core.predict.outputs import PredictionLog, draw_overlay
    from gazecli.core.predict.tracking import HeadTracker

    if settings.resume is not None:
        raise SettingsError("--resume continues folders of images; predict a video again into a new folder")
    rows = heads_for(csv_heads, Path(video).name) if csv_heads else None
    tracker = HeadTracker()
    target = out / f"{Path(video).stem}_gaze.mp4"
    writer = None
    tracks: dict[int, dict] = {}
    heatmaps: list[tuple[str, list[float], np.ndarray, float | None]] = []
    no_face: list[int] = []
    n_frames = 0
    cap = cv2.VideoCapture(str(video))
    expected = -(-int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) // settings.every)  # for the progress bar only
    cap.release()
    t0, c0 = time.perf_counter(), time.process_time()
    with PredictionLog(out / "predictions.jsonl") as log:
        for frame_no, rgb, fps in video_frames(video, settings.every):
            height, width = rgb.shape[:2]
            name = f"{Path(video).name}#{frame_no}"
            if settings.head or rows:
                boxes = (option_boxes_xyxy_px(list(settings.head), width, height) if settings.head
                         else csv_boxes_xyxy_px(rows, width, height))
                ids = list(range(len(boxes)))
                source = "given"
            else:
                gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
                detect = n_frames % settings.detect_every == 0 or tracker.wants_detection
                detections = predictor.detector(rgb) if detect else None
                present = tracker.step(gray, detections)
                boxes = [t.box_xyxy_px for t in present]
                ids = [t.id for t in present]
                source = "detected" if detections is not None else "tracked"
            boxes_ok = [(i, b) for i, b in zip(ids, boxes) if b[2] - b[0] >= 2 and b[3] - b[1] >= 2]
            ids, boxes = [i for i, _ in boxes_ok], [b for _, b in boxes_ok]
            people = predictor.predict_boxes(rgb, boxes, source, name)
            if not people:
                no_face.append(frame_no)
            bgr = draw_overlay(rgb, people, labels=[f"#{i}" for i in ids])
            if writer is None:
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps / settings.every,
                                         (width, height))
            writer.write(bgr)
            records = []
            for track_id, p in zip(ids, people):
                records.append({"video": str(video), "frame": frame_no, "track": track_id, "person": track_id,
                                **p.to_json()})
                s = tracks.setdefault(track_id, {"track": track_id, "frames": 0, "first_frame": frame_no,
                                                 "points": [], "inouts": []})
                s["frames"] += 1
                s["last_frame"] = frame_no
                s["points"].append(p.point_xy_px)
                if p.inout is not None:
                    s["inouts"].append(p.inout)
                if settings.save_heatmaps:
                    heatmaps.append((name, p.eye_xy_norm, p.heatmap, p.inout))
            log.write(records)
            n_frames += 1
            if progress:
                progress(n_frames, max(expected, n_frames))
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    files: list[Path] = []
    if writer is not None:
        writer.release()
        files.append(target)
    files.append(out / "predictions.jsonl")
    if settings.save_heatmaps and heatmaps:
        from gazecli.core.predictions import Predictions, save_predictions

        with_inout = all(h[3] is not None for h in heatmaps)
        files.append(save_predictions(out / "predictions.npz", Predictions(
            np.array([h[0] for h in heatmaps], dtype=str), np.array([h[1] for h in heatmaps], dtype=np.float64),
            np.stack([h[2] for h in heatmaps]), np.array([h[3] for h in heatmaps], dtype=np.float64) if with_inout
            else None)))
    summary = []
    for s in sorted(tracks.values(), key=lambda s: s["track"]):
        summary.append({"track": s["track"], "frames": s["frames"], "first_frame": s["first_frame"],
                        "last_frame": s["last_frame"],
                        "mean_point_xy_px": [float(v) for v in np.mean(s["points"], axis=0)],
                        "mean_inout": float(np.mean(s["inouts"])) if s["inouts"] else None})
    return {"records": log.records, "tracks": summary, "n_frames": n_frames, "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "frames_per_s": n_frames / max(seconds, 1e-9), "no_face": no_face, "files": files,
            "errors": [], "n_errors": 0, "n_skipped": 0, "n_inputs": 1}
