"""`gaze demo --sweep`: how good must the VQA be for the method to pay? (an ABLATION study)

For each seed, the demo runs once per VQA: the shipped one (`--vqa-model`, the method) and
SIMULATED VQAs (gradcam/simulated.py; never the method) whose answer accuracy is p in
--sweep-p ("guess": the gaze-free most-frequent-class guess), each with a class-level CAM.
Everything that does not depend on the VQA (the world, the `none` students at --ratio and at 2x,
10x, the diffusion prior) is trained once per seed and reused: only the Grad-CAM store, the
pseudo-label report and the students that read the store are redone per VQA.

Writes, under --out: `seed<N>/` (the demo folder of that seed), `sweep.json`, `sweep.md` (the
table: each VQA's measured answer accuracy on the training persons, raw and refined pseudo-label
quality on the unlabelled persons, the diffusion student's test AUC / Avg L2, beside none at
--ratio and 2x) and `sweep.png` (answer accuracy on x, the students' Avg L2 with std bars).

The demo's runner (`run_demo`, stages/demo/__init__.py) is passed in, so this module does not
import its own package back; the other stages run only through the demo's jobs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.constants import PRIOR_ALONE
from gazecli.core.io import write_figure, write_json, write_text

# what a one-seed demo folder holds that depends on the VQA (deleted before the next VQA's run): the
# shared Grad-CAM store at the top, the seed's pseudo-label caches and students under seed<N>/, and
# the jobs that made them (per-seed jobs are named NAME-s<N>, the Grad-CAM job is shared)
VQA_SHARED = ("gradcam", "figure-gradcam")
VQA_PER_SEED = ("figure-gradcam", "pseudo-cache-diffusion", "pseudo-cache-noise",
                "runs/train-student/student-gradcam", "runs/train-student/student-diffusion",
                "runs/train-student/student-noise")
VQA_JOBS = ("student-gradcam", "student-diffusion", "student-noise", "pseudo-report")


def clear_vqa_results(folder: Path, seed: int) -> None:
    paths = [folder / rel for rel in VQA_SHARED] + [folder / f"seed{seed}" / rel for rel in VQA_PER_SEED]
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
    for name in ("gradcam", *(f"{job}-s{seed}" for job in VQA_JOBS)):
        for suffix in (".json", ".progress.json", ".log"):
            (folder / "jobs" / f"{name}{suffix}").unlink(missing_ok=True)


def answer_accuracy(folder: Path) -> dict:
    """The VQA's gaze answers in the demo's store vs the sidecar: accuracy over the training persons
    who look at an object, and how often the gaze-free guess (most frequent class present) is right."""
    from collections import Counter

    from gazecli.core.gradcam.store import GradcamStore
    from gazecli.core.data.gazeworld import SIDECAR_NAMES
    from gazecli.core.data.gazeworld_qa import CLASS_NAMES

    split = GradcamStore(folder / "gradcam").split("train")
    answers = split.index()["persons"]["answer"]
    keys = split.keys()
    truth = {}
    for line in (folder / "world" / SIDECAR_NAMES["train"]).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        counts = Counter(o["cls"] for o in r["objects"])
        top = max(counts.values()) if counts else 0
        for p in r["persons"]:
            truth[(r["path"], round(p["eye_xy_norm"][0], 6), round(p["eye_xy_norm"][1], 6))] = (
                p["target_class"], [c for c, n in counts.items() if n == top])
    ok, guess = [], []
    for (path, x, y), answer in zip(keys, answers):
        t, modal = truth.get((path, round(x, 6), round(y, 6)), (None, []))
        if t in CLASS_NAMES:
            ok.append(answer.strip().lower() == t)
            guess.append((t in modal) / max(1, len(modal)))
    return {"answer_accuracy": float(np.mean(ok)) if ok else float("nan"),
            "guess_accuracy": float(np.mean(guess)) if guess else float("nan"), "n": len(ok)}


def run_sweep(settings, run_demo: Callable, show=None) -> dict:
    """Every (seed, VQA) demo; returns {"rows", "baselines", "files", ...}."""
    from gazecli.core.gradcam.simulated import simulated_name

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    real = ([str(settings.vqa_model)] if settings.sweep_shipped else []) + list(settings.sweep_also)
    vqas = [("shipped VQA: " + model, model, None) for model in dict.fromkeys(real)]
    for p in settings.sweep_p:
        label = "simulated p=gaze-free guess" if p == "guess" else f"simulated p={float(p):g}"
        vqas.append((label + " (ablation)", None, p))
    per_run = []
    for seed in settings.sweep_seeds:
        folder = out / f"seed{seed}"
        for label, model, p in vqas:
            done = folder / "sweep" / (_slug(label) + ".json")
            if done.is_file():
                per_run.append(json.loads(done.read_text(encoding="utf-8")))
                continue
            clear_vqa_results(folder, seed)
            name = model if model is not None else simulated_name(p, seed)
            s = settings.model_copy(update={"out": folder, "seed": seed, "seeds": [seed], "vqa_model": name,
                                            "sweep": False,
                                            "force": False, "train_vqa": False})
            results = run_demo(s, show=show)
            row = {"seed": seed, "vqa": label, "vqa_model": name, "p": p, **answer_accuracy(folder),
                   "students": {r["student"]: {"auc": r["auc"], "avg_l2": r["avg_l2"]} for r in results["students"]},
                   "pseudo": {r["name"]: {"auc": r["auc"], "avg_l2": r["avg_l2"]} for r in results["pseudo_labels"]},
                   "verdict": results["verdict"]}
            done.parent.mkdir(parents=True, exist_ok=True)
            write_json(done, row, indent=1, newline=False)
            per_run.append(row)
    summary = summarise(per_run, [v[0] for v in vqas], settings.ratio)
    files = write_sweep(out, summary)
    summary["files"] = [str(f) for f in files]
    return summary


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)[:80]


def _ms(values) -> dict:
    v = np.array([x for x in values if x is not None], dtype=float)
    return {"mean": float(v.mean()) if len(v) else None, "std": float(v.std()) if len(v) else None, "n": int(len(v))}


def summarise(per_run: list[dict], labels: list[str], ratio: float) -> dict:
    rows = []
    for label in labels:
        runs = [r for r in per_run if r["vqa"] == label]
        if not runs:
            continue
        rows.append({
            "vqa": label, "p": runs[0]["p"], "seeds": [r["seed"] for r in runs],
            "answer_accuracy": _ms(r["answer_accuracy"] for r in runs),
            "raw_auc": _ms(r["pseudo"].get("Grad-CAM (raw)", {}).get("auc") for r in runs),
            "raw_l2": _ms(r["pseudo"].get("Grad-CAM (raw)", {}).get("avg_l2") for r in runs),
            "refined_auc": _ms(r["pseudo"].get("diffusion teacher", {}).get("auc") for r in runs),
            "refined_l2": _ms(r["pseudo"].get("diffusion teacher", {}).get("avg_l2") for r in runs),
            "student_auc": _ms(r["students"].get("diffusion", {}).get("auc") for r in runs),
            "student_l2": _ms(r["students"].get("diffusion", {}).get("avg_l2") for r in runs),
        })
    first = {}  # the none students do not depend on the VQA: one value per seed
    for r in per_run:
        first.setdefault(r["seed"], r)
    baselines = {}
    for name, row in (("none", "none"), ("none-2x", "none-2x")):
        baselines[name] = {"ratio": ratio if name == "none" else min(1.0, 2 * ratio),
                           "auc": _ms(r["students"].get(row, {}).get("auc") for r in first.values()),
                           "avg_l2": _ms(r["students"].get(row, {}).get("avg_l2") for r in first.values())}
    # the prior alone has no VQA in it: one value per seed (every VQA's run of a seed reports the same)
    prior = {r["seed"]: r["pseudo"][PRIOR_ALONE] for r in per_run if PRIOR_ALONE in r["pseudo"]}
    if prior:
        baselines["prior"] = {"ratio": ratio, "refined_auc": _ms(v["auc"] for v in prior.values()),
                              "refined_l2": _ms(v["avg_l2"] for v in prior.values())}
    guess = _ms(r["guess_accuracy"] for r in first.values())
    return {"rows": rows, "baselines": baselines, "guess_accuracy": guess, "runs": per_run, "ratio": ratio}


def _pm(m: dict, digits: int = 3) -> str:
    if m["mean"] is None:
        return "-"
    return f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}" if m["n"] > 1 else f"{m['mean']:.{digits}f}"


def sweep_markdown(summary: dict) -> str:
    seeds = sorted({r["seed"] for r in summary["runs"]})
    lines = [f"VQA-quality sweep (simulated VQAs are an ABLATION, not the method): labels {summary['ratio']:g}, "
             f"seeds {', '.join(map(str, seeds))} (mean ± std over seeds). Answer accuracy: the VQA's gaze answers "
             f"on the training persons who look at an object (the gaze-free guess scores "
             f"{_pm(summary['guess_accuracy'])}). Pseudo-labels: the unlabelled in-frame persons vs their hidden "
             f"truth. Student: the diffusion-teacher student on test.", "",
             "| VQA | answer acc | raw AUC | raw Avg L2 | refined AUC | refined Avg L2 | student AUC | student Avg L2 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['vqa']} | {_pm(r['answer_accuracy'])} | {_pm(r['raw_auc'])} | {_pm(r['raw_l2'])} | "
                     f"{_pm(r['refined_auc'])} | {_pm(r['refined_l2'])} | {_pm(r['student_auc'])} | "
                     f"{_pm(r['student_l2'])} |")
    for name, b in summary["baselines"].items():
        if name == "prior":
            lines.append(f"| no VQA: {PRIOR_ALONE} as the pseudo-label | - | - | - | {_pm(b['refined_auc'])} | "
                         f"{_pm(b['refined_l2'])} | - | - |")
            continue
        lines.append(f"| no VQA: student `{name}` ({b['ratio']:g} labels) | - | - | - | - | - | {_pm(b['auc'])} | "
                     f"{_pm(b['avg_l2'])} |")
    return "\n".join(lines) + "\n"


def write_sweep(out: Path, summary: dict) -> list[Path]:
    md, js, png = out / "sweep.md", out / "sweep.json", out / "sweep.png"
    write_text(md, sweep_markdown(summary))
    write_json(js, summary, indent=2, newline=False, default=str)
    return [md, js] + ([png] if sweep_plot(summary, png) is not None else [])


def sweep_plot(summary: dict, path: Path) -> Path | None:
    """sweep.png (needs matplotlib: pip install 'gazecli[plots]'; None without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    colours = {"none": "tab:grey", "none-2x": "tab:green"}
    for name, b in summary["baselines"].items():
        if "avg_l2" not in b:
            continue
        m, s = b["avg_l2"]["mean"], b["avg_l2"]["std"]
        if m is None:
            continue
        ax.axhline(m, color=colours.get(name, "k"), ls="--", lw=1, label=f"student none, {b['ratio']:g} labels")
        ax.axhspan(m - s, m + s, color=colours.get(name, "k"), alpha=0.12)
    sim = sorted((r for r in summary["rows"] if r["p"] is not None and r["student_l2"]["mean"] is not None),
                 key=lambda r: r["answer_accuracy"]["mean"])
    if sim:
        ax.errorbar([r["answer_accuracy"]["mean"] for r in sim], [r["student_l2"]["mean"] for r in sim],
                    yerr=[r["student_l2"]["std"] for r in sim], fmt="o-", color="tab:blue", capsize=3,
                    label="student diffusion, simulated VQA (ablation)")
        for r in sim:
            ax.annotate("guess" if r["p"] == "guess" else f"p={float(r['p']):g}",
                        (r["answer_accuracy"]["mean"], r["student_l2"]["mean"]), textcoords="offset points",
                        xytext=(4, 5), fontsize=7)
    real = [r for r in summary["rows"] if r["p"] is None and r["student_l2"]["mean"] is not None]
    for r, colour, marker in zip(real, ("tab:red", "tab:purple", "tab:orange", "tab:brown"), "*DsP"):
        ax.errorbar([r["answer_accuracy"]["mean"]], [r["student_l2"]["mean"]], yerr=[r["student_l2"]["std"]],
                    fmt=marker, ms=11 if marker == "*" else 7, color=colour, capsize=3,
                    label="student diffusion, " + r["vqa"])
    ax.set_xlabel("VQA answer accuracy on the gaze question (training persons)")
    ax.set_ylabel("student test Avg L2 (lower is better)")
    ax.set_title(f"How good must the VQA be? (labels {summary['ratio']:g})", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
    return path
