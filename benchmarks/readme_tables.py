"""Write README's demo tables from a `gaze demo` run (no hand-copied numbers).

    python benchmarks/readme_tables.py gaze-demo             # rewrite README.md between the markers
    python benchmarks/readme_tables.py gaze-demo --print     # only print the block

Reads RUN/results.json (written by `gaze demo`), renders the mean ± std tables, the claims and the
wall / CPU time, and states the machine (cores, CPU model), the load and the commit of the code
that ran. The block replaces what lies between `<!-- demo-tables:start -->` and
`<!-- demo-tables:end -->` in README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
from pathlib import Path

from gazecli.core.stages.demo.results import seeds_markdown

START, END = "<!-- demo-tables:start -->", "<!-- demo-tables:end -->"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit(repo: Path) -> str:
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def block(results: dict, repo: Path, cores: int | None = None) -> str:
    seeds = ", ".join(map(str, results["seeds"]))
    head = (f"`gaze demo` (seeds {seeds}), run on {cores or os.cpu_count()} CPU cores ({cpu_model()}), commit "
            f"{results.get('commit') or commit(repo)}; written by `python benchmarks/readme_tables.py`. A rerun on the "
            f"same machine gives the same digits; another machine's CPU kernels round differently, so expect "
            f"nearby, not identical, numbers.")
    return f"{START}\n{head}\n\n{seeds_markdown(results).strip()}\n{END}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a gaze demo --out folder (holds results.json)")
    ap.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[1] / "README.md")
    ap.add_argument("--print", action="store_true", help="print the block, do not touch README")
    ap.add_argument("--commit", default=None, help="the commit the run was made with (default: HEAD)")
    args = ap.parse_args()
    results = json.loads((args.run / "results.json").read_text(encoding="utf-8"))
    if args.commit:
        results["commit"] = args.commit
    text = block(results, args.readme.parent)
    if args.print:
        print(text)
        return
    readme = args.readme.read_text(encoding="utf-8")
    if START not in readme or END not in readme:
        raise SystemExit(f"{args.readme}: no {START} ... {END} markers")
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: text, readme, flags=re.S)
    args.readme.write_text(new, encoding="utf-8")
    print(f"{args.readme}: demo tables from {args.run / 'results.json'}")


if __name__ == "__main__":
    main()
