"""`gaze predict VIDEO` speed: frames per second for a 512x512 one-person video on CPU threads.

The video is made from a real photograph (scikit-image's astronaut, moving and zooming slowly
across the frame: `--frames` frames at 25 fps). The student is the GazeWorld preset's (tiny
backbone, 128 px scenes; trained for one epoch on a 16-image GazeWorld, so its weights are
meaningless and its speed is the real one), or `--backbone resnet18|resnet50` at the paper's
224 px. Each setting runs `gaze predict` end to end (decode, head detection every
`--detect-every` frames with tracking between, the model, overlays, the output video, JSON
lines) and prints frames/s of its frame loop from wall-clock time and from CPU time (summed over
threads): on a machine other jobs load, the CPU-time figure with `--threads 1` is the better
estimate of what one unloaded core does (idle threads spinning inflate CPU time with more).

    python benchmarks/predict_video.py                         # MTCNN (if installed) and the cascade
    python benchmarks/predict_video.py --detect-every 1 5 10
    python benchmarks/predict_video.py --backbone resnet50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers: run_cli


def make_video(path: Path, frames: int, side: int = 512) -> Path:
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (side, side))
    for i in range(frames):
        t = i / max(frames - 1, 1)
        zoom = 1.0 + 0.3 * t
        shift_x = 40 * np.sin(2 * np.pi * t)
        m = np.float32([[zoom, 0, shift_x - (zoom - 1) * 256], [0, zoom, -(zoom - 1) * 200]])
        writer.write(cv2.warpAffine(photo, m, (side, side), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detect-every", type=int, nargs="+", default=[5])
    parser.add_argument("--detector", nargs="+", default=["mtcnn", "cascade"])
    parser.add_argument("--backbone", default="tiny", choices=["tiny", "resnet18", "resnet50"])
    args = parser.parse_args()
    import warnings

    import torch

    warnings.filterwarnings("ignore", message="this checkpoint was trained on GazeWorld")  # expected here
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from gazecli.core.data.gazeworld import synthesize_gazeworld
    from gazecli.core.predict.heads import mtcnn_available
    from gazecli.core.settings import PredictSettings, load_settings
    from gazecli.core.stages.predict import run_predict
    from tests.helpers import run_cli

    work = Path(tempfile.mkdtemp(prefix="predict_video_"))
    world = work / "gw"
    synthesize_gazeworld(world, 16, 4, seed=0, size=128)
    model = ["--preset", "gazeworld"] if args.backbone == "tiny" else [
        "--preset", "gazefollow", "--backbone", args.backbone]
    code, _, err = run_cli("train-student", "--data", world, "--ratio", "1.0", "--epochs", "1", *model,
                           "--batch-size", "8", "--device", "cpu", "--project", work, "--name", "m")
    assert code == 0, err
    video = make_video(work / "astronaut.mp4", args.frames)
    print(f"{args.frames} frames of 512x512; student: {args.backbone}; {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'detector':10s} {'detect every':>12s} {'frames/s':>9s} {'frames/s (cpu)':>15s} {'tracks':>7s} "
          f"{'frames with a person':>21s}")
    for detector in args.detector:
        if detector == "mtcnn" and not mtcnn_available():
            print("mtcnn: facenet-pytorch not installed, skipped")
            continue
        for k in args.detect_every:
            name = f"{detector}-{k}"
            settings = load_settings(PredictSettings, {
                "source": video, "checkpoint": work / "train-student" / "m", "detector": detector,
                "detect_every": k, "device": "cpu", "project": work, "name": name})
            result = run_predict(settings)  # the frame loop is timed inside: model loading excluded
            tracks = len(result["tracks"])
            with_person = len({r["frame"] for r in result["records"]})
            print(f"{detector:10s} {k:12d} {result['frames_per_s']:9.1f} "
                  f"{result['n_frames'] / result['cpu_seconds']:15.1f} {tracks:7d} {with_person:>21d}", flush=True)
    print("(frames/s (cpu): frames / CPU seconds of the frame loop, all threads summed: with --threads 1, the "
          "rate of one unloaded core)")


if __name__ == "__main__":
    main()
