"""`gaze predict`: heatmaps and gaze points for your own images, folders and videos, with given
or detected heads, through `gazecli.Predictor` (core/predictor.py)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np

from gazecli.core.data.images import IMAGE_SUFFIXES, read_image_rgb
from gazecli.core.errors import DataError
from gazecli.core.io import write_arrays
from gazecli.core.predictions import save_prediction_records
from gazecli.core.predictor import PersonPrediction, Predictor

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def draw_overlay(rgb: np.ndarray, people: list[PersonPrediction]) -> np.ndarray:
    """The image with each person's heatmap blended in, head box, and an arrow to the point (BGR)."""
    import cv2

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    height, width = bgr.shape[:2]
    if people:
        heat = np.max([cv2.resize(p.heatmap, (width, height), interpolation=cv2.INTER_LINEAR) for p in people], axis=0)
        colour = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        alpha = (0.55 * heat)[..., None]
        bgr = (bgr * (1 - alpha) + colour * alpha).astype(np.uint8)
    thickness = max(1, round(min(width, height) / 300))
    palette = [(0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 128, 0), (0, 128, 255)]
    for i, p in enumerate(people):
        c = palette[i % len(palette)]
        x1, y1, x2, y2 = (int(round(v)) for v in p.head_box_xyxy_px)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), c, thickness)
        start = (int((x1 + x2) / 2), int((y1 + y2) / 2))
        end = (int(p.point_xy_px[0]), int(p.point_xy_px[1]))
        cv2.arrowedLine(bgr, start, end, c, thickness, cv2.LINE_AA, tipLength=0.05)
        cv2.circle(bgr, end, 3 * thickness, c, -1, cv2.LINE_AA)
        label = f"{i}" + ("" if p.inout is None else f" in {p.inout:.2f}")
        cv2.putText(bgr, label, (x1, max(0, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, c, thickness, cv2.LINE_AA)
    return bgr


def read_heads_csv(path: Path) -> dict[str, list[str]]:
    """CSV `file,x,y,w,h` (a header row is optional; several rows per file) -> {file name: ['x,y,w,h']}."""
    from gazecli.core.data.gazefollow import read_text_lines

    heads: dict[str, list[str]] = {}
    for line_no, row in enumerate(csv.reader(read_text_lines(path)), start=1):  # UTF-8 text, or one error line
        if not row or row[0].strip().lower() in ("file", "image", "frame"):
            continue
        if len(row) != 5:
            raise DataError(f"{Path(path).name}:{line_no}: expected file,x,y,w,h")
        heads.setdefault(Path(row[0].strip()).name, []).append(
            HeadSpec(",".join(v.strip() for v in row[1:]), f"{Path(path).name}:{line_no}"))
    return heads


class HeadSpec(str):
    """An 'x,y,w,h' head box that remembers the file:line it was read from (for error messages)."""

    def __new__(cls, text: str, source: str):
        value = super().__new__(cls, text)
        value.source = source
        return value


def input_items(source: Path) -> tuple[str, list[Path]]:
    """('images', files) for an image or a folder, ('video', [file]) for a video."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return "images", files
    if not source.is_file():
        raise DataError(f"{source}: not found")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return "video", [source]
    return "images", [source]


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
            ok, frame = cap.read()
            if not ok:
                break
            if n % every == 0:
                yield n, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), fps
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: no frames could be decoded")


def run_predict(settings, progress=None) -> dict:
    """The `gaze predict` command: every input, its overlay, one JSON line per person."""
    import cv2

    from gazecli.core.engine.runs import new_run_dir

    kind, files = input_items(settings.source)
    predictor = Predictor(settings.checkpoint, settings.device, settings.precision)
    csv_heads = read_heads_csv(settings.heads_csv) if settings.heads_csv is not None else {}
    out = new_run_dir(settings.project, "predict", settings.name)
    records: list[dict] = []
    heatmaps: dict[str, np.ndarray] = {}
    written: list[Path] = []
    no_face: list[str] = []

    def heads_for(file_name: str):
        if settings.head:
            return list(settings.head)
        if file_name in csv_heads:
            return csv_heads[file_name]
        return None

    if kind == "images":
        for k, file in enumerate(files):
            rgb = read_image_rgb(file)
            people = predictor.predict(rgb, heads_for(file.name), name=file.name)
            if not people:
                no_face.append(file.name)
            overlay = out / f"{file.stem}_gaze.jpg"
            cv2.imwrite(str(overlay), draw_overlay(rgb, people))
            written.append(overlay)
            for i, p in enumerate(people):
                records.append({"image": str(file), "person": i, **p.to_json()})
                heatmaps[f"{file.stem}/{i}"] = p.heatmap
            if progress:
                progress(k + 1, len(files))
    else:
        video = files[0]
        writer = None
        target = out / f"{video.stem}_gaze.mp4"
        given = heads_for(video.name)
        n_frames = 0
        for frame_no, rgb, fps in video_frames(video, settings.every):
            people = predictor.predict(rgb, given, name=f"{video.name}#{frame_no}")
            if not people:
                no_face.append(f"frame {frame_no}")
            bgr = draw_overlay(rgb, people)
            if writer is None:
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps / settings.every,
                                         (bgr.shape[1], bgr.shape[0]))
            writer.write(bgr)
            for i, p in enumerate(people):
                records.append({"video": str(video), "frame": frame_no, "person": i, **p.to_json()})
                if settings.save_heatmaps:
                    heatmaps[f"{frame_no}/{i}"] = p.heatmap
            n_frames += 1
            if progress:
                progress(n_frames, n_frames)
        if writer is not None:
            writer.release()
            written.append(target)
    jsonl = out / "predictions.jsonl"
    save_prediction_records(jsonl, records)
    written.append(jsonl)
    if settings.save_heatmaps and heatmaps:
        write_arrays(out / "heatmaps.npz", {k.replace("/", "__"): v for k, v in heatmaps.items()}, compressed=True)
        written.append(out / "heatmaps.npz")
    return {"out": out, "records": records, "files": written, "no_face": no_face, "kind": kind,
            "detected": not settings.head and not csv_heads}
