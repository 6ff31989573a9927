"""`gaze gradcam` speed: persons/s batched vs one person at a time, same tiny backend, same
persons (a GazeWorld split), through the whole pipeline (image decode, prompt drawing,
answer generation, key noun, teacher-forced Grad-CAM, store chunks).

    python benchmarks/gradcam_speed.py                        # tiny BLIP and tiny LLaVA, CPU
    python benchmarks/gradcam_speed.py --model blip --images 80 --batch-size 32
    python benchmarks/gradcam_speed.py --device cuda          # on a GPU when there is one
    python benchmarks/gradcam_speed.py --threads 1            # torch threads (default: torch's)

Prints persons/s for both, the ratio, and checks that both runs stored the same answers and
(up to float rounding) the same maps. The tiny models are random-init, built offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.tiny_vqa: the tiny models


def run(world: Path, model_dir: Path, backend, out: Path, batch_size: int) -> tuple[dict, object]:
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.gradcam.store import GradcamStore
    from gazecli.core.settings import GradcamSettings, load_settings

    s = load_settings(GradcamSettings, dict(data=world, vqa_model=str(model_dir), out=out, batch_size=batch_size,
                                            chunk_size=256, device=str(backend.device)))
    summary = run_gradcam(s, backend=backend)
    return summary, GradcamStore(out).split("train")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["blip", "llava", "both"], default="both")
    p.add_argument("--images", type=int, default=48, help="GazeWorld train images (about 1.4 persons each)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = p.parse_args()

    import torch

    from gazecli.core.data.gazeworld import synthesize_gazeworld
    from gazecli.core.gradcam.backends import load_backend
    from tests.tiny_vqa import save_tiny_blip, save_tiny_llava

    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["blip", "llava"] if args.model == "both" else [args.model]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = tmp / "gw"
        synthesize_gazeworld(world, args.images, 1, seed=0, size=128)
        print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch size {args.batch_size}")
        for name in names:
            folder = (save_tiny_blip if name == "blip" else save_tiny_llava)(tmp / name)
            backend = load_backend(str(folder), device=args.device, answer_hint="Answer with a single word or phrase.")
            run(world, folder, backend, tmp / f"{name}-warmup", args.batch_size)  # first-call costs
            one, store_one = run(world, folder, backend, tmp / f"{name}-one", 1)
            many, store_many = run(world, folder, backend, tmp / f"{name}-batched", args.batch_size)
            same_answers = store_one.column("answer") == store_many.column("answer") and \
                store_one.column("step") == store_many.column("step")
            layer = store_one.layers[0]
            a, b = store_one.records().raw(layer), store_many.records().raw(layer)
            rel = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
            ratio = many["persons_per_s"] / one["persons_per_s"]
            print(f"{name:6s} {one['computed']} persons: one at a time {one['persons_per_s']:7.1f} persons/s, "
                  f"batched {many['persons_per_s']:7.1f} persons/s, ratio {ratio:5.2f}x; "
                  f"same answers {same_answers}, max relative map difference {rel:.1e}")


if __name__ == "__main__":
    main()
