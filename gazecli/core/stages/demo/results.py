"""The demo's results: the table of every student and pseudo-label, and the claims it checks; over
several seeds, every seed's rows, mean ± std per row and the claims judged on the means
(gazecli/core/seed_summary.py does the arithmetic)."""

from __future__ import annotations

from pathlib import Path

from gazecli.core.constants import PRIOR_ALONE
from gazecli.core.io import write_json, write_text
from gazecli.core.seed_summary import claim_line, compare, summarize, summary_table
from gazecli.core.stages.demo.plan import Job, student_ratios


def collect_results(settings, plan: dict, world: dict, done: dict[str, Job]) -> dict:
    rows = []
    for job in done.values():
        if job.kind != "student":
            continue
        test = job.result["test"] or {}
        rows.append({"student": job.extra["row"], "seed": settings.seed, "teacher": job.extra["teacher"],
                     "ratio": job.extra["ratio"], "steps": job.extra["steps"], "auc": test.get("auc"), "avg_l2": test.get("avg_l2"),
                     "min_l2": test.get("min_l2"), "n": test.get("n"), "seconds": job.seconds,
                     "run_dir": job.result["run_dir"]})
    report = done["pseudo-report"].result
    pseudo = [{**{k: r[k] for k in ("name", "auc", "avg_l2", "min_l2", "n", "usable")}, "seed": settings.seed}
              for r in report["results"]]
    diffusion = done["diffusion"].result
    return {"ratio": settings.ratio, "seed": settings.seed, "plan": plan, "device": settings.device,
            "vqa_model": str(settings.vqa_model), "world": {k: world.get(k) for k in
                                                             ("train_images", "test_images", "train_persons",
                                                              "test_persons")},
            "students": rows, "pseudo_labels": pseudo, "pseudo_split": report["split"],
            "denoise_steps": report["denoise_steps"], "ddim_steps": report["ddim_steps"],
            "diffusion_prior": {"test": diffusion["test"], "run_dir": diffusion["run_dir"]},
            "gradcam": done["gradcam"].result,
            "jobs": {name: round(job.seconds, 1) for name, job in done.items()},
            "verdict": verdict(rows, pseudo)}


PRIOR_CLAIM = ("refined pseudo-labels beat the prior alone (noise teacher, no Grad-CAM): the VQA adds "
               "information (AUC and Avg L2)")


def verdict(rows: list[dict], pseudo: list[dict]) -> dict:
    """The demo's claims, checked on its own numbers (True / False, never hidden)."""
    by = {r["student"]: r for r in rows}
    p = {r["name"]: r for r in pseudo}
    raw, refined = p.get("Grad-CAM (raw)"), p.get("diffusion teacher")
    out = {}
    if raw and refined:
        out["refined pseudo-labels beat raw Grad-CAM (AUC and Avg L2)"] = bool(
            refined["auc"] > raw["auc"] and refined["avg_l2"] < raw["avg_l2"])
    prior = p.get(PRIOR_ALONE)
    if prior and refined:
        out[PRIOR_CLAIM] = bool(refined["auc"] > prior["auc"] and refined["avg_l2"] < prior["avg_l2"])
    d = by.get("diffusion")
    for other in ("none", "gradcam"):
        if d and other in by and d["auc"] is not None and by[other]["auc"] is not None:
            out[f"diffusion student beats the {other} student (AUC and Avg L2)"] = bool(
                d["auc"] > by[other]["auc"] and d["avg_l2"] < by[other]["avg_l2"])
    if d and "none-2x" in by and by["none-2x"]["auc"] is not None:
        out["diffusion student reaches the none student at 2x labels (Avg L2)"] = bool(
            d["avg_l2"] <= by["none-2x"]["avg_l2"])
    return out


def _f(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def results_markdown(results: dict) -> str:
    lines = [f"GazeWorld demo: {results['world']['train_images']} training images "
             f"({results['world']['train_persons']} persons), {results['world']['test_images']} test images; "
             f"labels {results['ratio']:g}, seed {results['seed']}, VQA `{results['vqa_model']}`.", "",
             "| student | labels | teacher | steps | test AUC | Avg L2 | Min L2 |",
             "|---|---|---|---|---|---|---|"]
    for r in results["students"]:
        lines.append(f"| {r['student']} | {r['ratio']:g} | {r['teacher']} | {r['steps']} | {_f(r['auc'])} | "
                     f"{_f(r['avg_l2'])} | {_f(r['min_l2'])} |")
    lines += ["", f"Pseudo-labels of the unlabelled in-frame persons against their hidden ground truth "
                  f"(SDEdit from step {results['denoise_steps']}, {results['ddim_steps']} DDIM steps):", "",
              "| pseudo-label | AUC | Avg L2 | Min L2 | usable |", "|---|---|---|---|---|"]
    for r in results["pseudo_labels"]:
        lines.append(f"| {r['name']} | {_f(r['auc'])} | {_f(r['avg_l2'])} | {_f(r['min_l2'])} | {_f(r['usable'], 2)} |")
    lines += ["", "Claims checked on these numbers:", ""]
    lines += [f"- {'yes' if ok else 'no'}: {claim}" for claim, ok in results["verdict"].items()]
    if "seconds" in results:
        lines += ["", f"Wall time {results['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def write_results(out: Path, results: dict) -> list[Path]:
    md, js = out / "results.md", out / "results.json"
    write_text(md, seeds_markdown(results) if "seeds" in results else results_markdown(results))
    write_json(js, results, newline=False, default=str)
    return [md, js]


# ------------------------------------------------------------------------------------------ seeds
def combine_seeds(settings, plan: dict, world: dict, per_seed: dict[int, dict]) -> dict:
    """The demo's results over seeds: every per-seed row, mean ± std per student and pseudo-label,
    the claims judged on the means (and on how many seeds each holds)."""
    seeds = list(per_seed)
    first = per_seed[seeds[0]]
    order = [name for name, _, _ in student_ratios(settings.ratio, settings.ablations)]
    students = [r for s in seeds for r in sorted(per_seed[s]["students"], key=lambda r: order.index(r["student"]))]
    pseudo = [r for s in seeds for r in per_seed[s]["pseudo_labels"]]
    summary, pseudo_summary = summarize(students, "student"), summarize(pseudo, "name")
    return {**{k: first[k] for k in ("ratio", "plan", "device", "vqa_model", "world", "pseudo_split",
                                     "denoise_steps", "ddim_steps", "gradcam")},
            "world_seed": settings.seed, "seeds": seeds, "students": students, "pseudo_labels": pseudo,
            "summary": summary, "pseudo_summary": pseudo_summary,
            "verdict": demo_verdict(summary, pseudo_summary, students, pseudo, first["ratio"]),
            "per_seed": {str(s): {k: per_seed[s][k] for k in ("verdict", "diffusion_prior", "jobs")} for s in seeds}}


def demo_verdict(summary: dict, pseudo_summary: dict, students: list[dict], pseudo: list[dict],
                 ratio: float) -> dict:
    """The demo's claims on the means over seeds: {claim: {"holds": yes | no | within noise,
    "seeds": on how many seeds the plain comparison holds, "of": seeds}}."""
    baseline = f"{ratio * 100:g} % student (none)"
    checks = [
        ("refined pseudo-labels beat raw Grad-CAM (AUC and Avg L2)",
         pseudo_summary, pseudo, "name", "diffusion teacher", "Grad-CAM (raw)", ("auc", "avg_l2"), "beats"),
        (PRIOR_CLAIM,
         pseudo_summary, pseudo, "name", "diffusion teacher", PRIOR_ALONE, ("auc", "avg_l2"), "beats"),
        (f"refined pseudo-labels beat the {baseline} on the same persons (AUC and Avg L2)",
         pseudo_summary, pseudo, "name", "diffusion teacher", baseline, ("auc", "avg_l2"), "beats"),
        ("diffusion student beats the none student (AUC and Avg L2)",
         summary, students, "student", "diffusion", "none", ("auc", "avg_l2"), "beats"),
        ("diffusion student beats the gradcam student (AUC and Avg L2)",
         summary, students, "student", "diffusion", "gradcam", ("auc", "avg_l2"), "beats"),
        ("diffusion student reaches the none student at 2x labels (Avg L2)",
         summary, students, "student", "diffusion", "none-2x", ("avg_l2",), "reaches"),
        ("all labels beat 10x fewer (none-10x vs none, Avg L2)",
         summary, students, "student", "none-10x", "none", ("avg_l2",), "beats"),
    ]
    out = {}
    for claim, summ, rows, key, a, b, metrics, mode in checks:
        judged = compare(summ, rows, key, a, b, metrics, mode)
        if judged is not None:
            out[claim] = judged
    return out


def seeds_markdown(results: dict) -> str:
    """results.md of a demo over seeds: mean ± std tables, the claims, then every seed's rows."""
    world, seeds = results["world"], results["seeds"]
    first = {}
    for r in results["students"]:
        first.setdefault(r["student"], r)
    lines = [f"GazeWorld demo: {world['train_images']} training images ({world['train_persons']} persons), "
             f"{world['test_images']} test images (world seed {results.get('world_seed', 0)}); labels "
             f"{results['ratio']:g}, VQA `{results['vqa_model']}`; seeds {', '.join(map(str, seeds))} (label split "
             f"and training), mean ± std over the seeds.", ""]
    lines += summary_table(results["summary"], "student", {
        "labels": {k: f"{r['ratio']:g}" for k, r in first.items()},
        "teacher": {k: r["teacher"] for k, r in first.items()},
        "steps": {k: str(r["steps"]) for k, r in first.items()}})
    lines += ["", f"Pseudo-labels of the unlabelled in-frame persons against their hidden ground truth "
                  f"(SDEdit from step {results['denoise_steps']}, {results['ddim_steps']} DDIM steps):", ""]
    lines += summary_table(results["pseudo_summary"], "pseudo-label")
    lines += ["", "Claims, judged on the means (a difference counts when it exceeds the larger std):", ""]
    lines += [claim_line(claim, v) for claim, v in results["verdict"].items()]
    lines += ["", "Every seed:", "", "| seed | student | test AUC | Avg L2 | Min L2 |", "|---|---|---|---|---|"]
    for r in results["students"]:
        lines.append(f"| {r['seed']} | {r['student']} | {_f(r['auc'])} | {_f(r['avg_l2'])} | {_f(r['min_l2'])} |")
    lines += ["", "| seed | pseudo-label | AUC | Avg L2 | Min L2 |", "|---|---|---|---|---|"]
    for r in results["pseudo_labels"]:
        lines.append(f"| {r['seed']} | {r['name']} | {_f(r['auc'])} | {_f(r['avg_l2'])} | {_f(r['min_l2'])} |")
    if "seconds" in results:
        cpu = results.get("cpu_seconds")
        load = results.get("load")
        lines += ["", f"Wall time {results['seconds']:.0f} s" + (f", {cpu / 60:.1f} CPU minutes" if cpu else "")
                  + (f", load average {load[0]:.1f} at the start, {load[1]:.1f} at the end" if load else "") + "."]
    return "\n".join(lines) + "\n"

