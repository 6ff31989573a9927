"""How good must the VQA be for the method to pay? The VQA-quality sweep (an ABLATION).

    python benchmarks/vqa_quality_sweep.py [--out /tmp/vqa_sweep] [--seeds 0 1 2]
                                           [--p guess 0.5 0.75 1.0] [--no-shipped] [--also MODEL ...]
                                           [--train-images N --student-steps N --diffusion-epochs N ...]

The same as `gaze demo --sweep` (gazecli/core/stages/demo/sweep.py): per seed, the demo with the shipped
VQA and with SIMULATED VQAs (gradcam/simulated.py: answers read from the sidecar, right with
probability p, a class-level CAM; "guess" answers the gaze-free most-frequent-class guess);
the VQA-independent parts (world, `none` students, diffusion prior) are trained once per seed.
Prints the table (sweep.md) and writes sweep.json / sweep.png into --out; a rerun resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/vqa_sweep"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--p", nargs="+", default=["guess", "0.5", "0.75", "1.0"])
    ap.add_argument("--vqa-model", default="gazeworld")
    ap.add_argument("--no-shipped", action="store_true", help="simulated VQAs only")
    ap.add_argument("--also", nargs="*", default=[], help="more real VQA models (a row each, like --vqa-model's)")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=2)
    for name in ("train-images", "test-images", "student-steps", "diffusion-epochs", "input-size", "figure-persons"):
        ap.add_argument(f"--{name}", type=int, default=None, help="the demo's budget (default: its quick plan)")
    args = ap.parse_args()

    from gazecli.core.settings import DemoSettings, load_settings
    from gazecli.core.stages.demo import run_demo
    from gazecli.core.stages.demo.sweep import sweep_markdown

    values = dict(out=args.out, sweep=True, sweep_seeds=args.seeds, sweep_p=args.p, sweep_shipped=not args.no_shipped, sweep_also=args.also,
                  vqa_model=args.vqa_model, ratio=args.ratio, jobs=args.jobs, device="cpu")
    for name in ("train_images", "test_images", "student_steps", "diffusion_epochs", "input_size", "figure_persons"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    summary = run_demo(load_settings(DemoSettings, values))
    print(sweep_markdown(summary))
    print("files:", *summary["files"])


if __name__ == "__main__":
    main()
