"""The semi-supervised results table on GazeWorld (issue 7): students trained with the teachers
none, gradcam, diffusion and noise at the same ratio, budget and seed, the supervised student at
2x and 10x the labels, and the pseudo-label quality report -- over several seeds.

Each seed is one `gaze demo --ablations` run (world, Grad-CAM with the shipped GazeWorld VQA,
diffusion prior, students, report; see `gazecli/core/stages/demo.py`); a seed already run in
--out is reused. Prints mean +- std over the seeds as Markdown and writes it to OUT/table.md.

    python benchmarks/semisup_table.py --out /tmp/semisup --seeds 0 1 2
    python benchmarks/semisup_table.py --out /tmp/semisup --seeds 0 --extra --student-steps 400
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("semisup-table"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=0)
    args, extra = ap.parse_known_args()
    runs = []
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        cmd = [sys.executable, "-m", "gazecli", "demo", "--ablations", "--out", str(out), "--seed", str(seed),
               "--ratio", str(args.ratio), "--jobs", str(args.jobs), *extra]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        runs.append(json.loads((out / "results.json").read_text()))

    def cell(values) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")

    lines = [f"GazeWorld, labels {args.ratio:g}, seeds {', '.join(map(str, args.seeds))} (mean ± std)", "",
             "| student | labels | teacher | test AUC | Avg L2 | Min L2 |", "|---|---|---|---|---|---|"]
    for i, row in enumerate(runs[0]["students"]):
        same = [r["students"][i] for r in runs]
        lines.append(f"| {row['student']} | {row['ratio']:g} | {row['teacher']} | {cell([s['auc'] for s in same])} | "
                     f"{cell([s['avg_l2'] for s in same])} | {cell([s['min_l2'] for s in same])} |")
    lines += ["", "| pseudo-label (unlabelled in-frame persons) | AUC | Avg L2 | Min L2 |", "|---|---|---|---|"]
    for i, row in enumerate(runs[0]["pseudo_labels"]):
        same = [r["pseudo_labels"][i] for r in runs]
        lines.append(f"| {row['name']} | {cell([s['auc'] for s in same])} | {cell([s['avg_l2'] for s in same])} | "
                     f"{cell([s['min_l2'] for s in same])} |")
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
