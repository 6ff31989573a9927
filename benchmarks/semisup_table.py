"""The semi-supervised results table on GazeWorld (issue 7): students trained with the teachers
none, gradcam, diffusion and noise at the same ratio, budget and seed, the supervised student at
2x and 10x the labels, and the pseudo-label quality report -- over several seeds.

One `gaze demo --ablations --seeds ...` run (world, Grad-CAM with the shipped GazeWorld VQA, and per
seed the diffusion prior, the students and the report; see `gazecli/core/stages/demo/`); a demo
already run in --out is reused. Prints its results.md (mean ± std over the seeds, the claims judged
on the means, every seed's rows) and copies it to OUT/table.md.

    python benchmarks/semisup_table.py --out /tmp/semisup --seeds 0 1 2
    python benchmarks/semisup_table.py --out /tmp/semisup --seeds 0 --student-steps 400
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("semisup-table"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=0)
    args, extra = ap.parse_known_args()
    cmd = [sys.executable, "-m", "gazecli", "demo", "--ablations", "--out", str(args.out), "--seeds",
           ",".join(map(str, args.seeds)), "--ratio", str(args.ratio), "--jobs", str(args.jobs), *extra]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    shutil.copyfile(args.out / "results.md", args.out / "table.md")
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
