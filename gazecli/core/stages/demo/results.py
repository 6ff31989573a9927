"""The demo's results: the table of every student and pseudo-label, and the claims it checks."""

from __future__ import annotations

from pathlib import Path

from gazecli.core.io import write_json, write_text
from gazecli.core.stages.demo.plan import Job


def collect_results(settings, plan: dict, world: dict, done: dict[str, Job]) -> dict:
    rows = []
    for job in done.values():
        if job.kind != "student":
            continue
        test = job.result["test"] or {}
        rows.append({"student": job.extra["row"], "teacher": job.extra["teacher"], "ratio": job.extra["ratio"],
                     "steps": job.extra["steps"], "auc": test.get("auc"), "avg_l2": test.get("avg_l2"),
                     "min_l2": test.get("min_l2"), "n": test.get("n"), "seconds": job.seconds,
                     "run_dir": job.result["run_dir"]})
    report = done["pseudo-report"].result
    pseudo = [{k: r[k] for k in ("name", "auc", "avg_l2", "min_l2", "n", "usable")} for r in report["results"]]
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


def verdict(rows: list[dict], pseudo: list[dict]) -> dict:
    """The demo's claims, checked on its own numbers (True / False, never hidden)."""
    by = {r["student"]: r for r in rows}
    p = {r["name"]: r for r in pseudo}
    raw, refined = p.get("Grad-CAM (raw)"), p.get("diffusion teacher")
    out = {}
    if raw and refined:
        out["refined pseudo-labels beat raw Grad-CAM (AUC and Avg L2)"] = bool(
            refined["auc"] > raw["auc"] and refined["avg_l2"] < raw["avg_l2"])
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
    write_text(md, results_markdown(results))
    write_json(js, results, newline=False, default=str)
    return [md, js]
