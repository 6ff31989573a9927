"""Results over several seeds: mean ± std per row, claims judged on the means, Markdown tables.

Pure Python + numpy (no torch). A *row* is a dict with a name key (`student` or `name`), a `seed`
and the metrics `auc`, `avg_l2`, `min_l2`. `summarize` groups rows by name (first-seen order) into
{name: {metric: {"mean", "std"}}}; std is the population standard deviation over the seeds (0 for
one seed).

A claim compares two rows on one or more metrics. A difference *counts* when it exceeds the
larger of the two stds; a claim is "yes" when every metric is better by a counted difference,
"no" when some metric is worse by a counted difference, else "within noise". Each claim also
says on how many seeds its per-seed comparison (plain better / worse) holds.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("auc", "avg_l2", "min_l2")
HIGHER_IS_BETTER = {"auc": True, "avg_l2": False, "min_l2": False}


def summarize(rows: list[dict], key: str) -> dict:
    """{name: {metric: {"mean", "std", "n"}}} over the rows that share `row[key]`."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(row)
    out = {}
    for name, same in groups.items():
        out[name] = {}
        for metric in METRICS:
            values = [float(r[metric]) for r in same if r.get(metric) is not None and not math.isnan(float(r[metric]))]
            out[name][metric] = ({"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
                                 if values else {"mean": None, "std": None, "n": 0})
    return out


def _per_seed(rows: list[dict], key: str) -> dict:
    """{seed: {name: row}}."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["seed"], {})[str(row[key])] = row
    return out


def compare(summary: dict, rows: list[dict], key: str, a: str, b: str, metrics: tuple[str, ...],
            mode: str = "beats") -> dict | None:
    """Is row `a` better than row `b` on every metric? mode "beats": better by a counted difference;
    "reaches": not worse (a counted difference against it is a "no", a smaller one "within noise").
    None when either row is missing."""
    if a not in summary or b not in summary:
        return None
    verdicts = []
    for metric in metrics:
        sa, sb = summary[a][metric], summary[b][metric]
        if sa["mean"] is None or sb["mean"] is None:
            return None
        gain = (sa["mean"] - sb["mean"]) * (1 if HIGHER_IS_BETTER[metric] else -1)  # > 0: a is better
        noise = max(sa["std"], sb["std"])
        if gain > noise:
            verdicts.append("yes")
        elif gain < -noise:
            verdicts.append("no")
        elif mode == "reaches" and gain >= 0:
            verdicts.append("yes")
        else:
            verdicts.append("within noise")
    holds = "no" if "no" in verdicts else "yes" if all(v == "yes" for v in verdicts) else "within noise"
    seeds = _per_seed(rows, key)
    n, k = 0, 0
    for by in seeds.values():
        if a in by and b in by:
            n += 1
            ok = True
            for metric in metrics:
                gain = (by[a][metric] - by[b][metric]) * (1 if HIGHER_IS_BETTER[metric] else -1)
                ok &= gain >= 0 if mode == "reaches" else gain > 0
            k += int(ok)
    return {"holds": holds, "seeds": k, "of": n}


def fmt(stat: dict, digits: int = 3) -> str:
    """'0.912 ± 0.012' (no ± for a single seed), '-' when missing."""
    if not stat or stat.get("mean") is None:
        return "-"
    text = f"{stat['mean']:.{digits}f}"
    return text + (f" ± {stat['std']:.{digits}f}" if stat.get("n", 1) > 1 else "")


def summary_table(summary: dict, first: str, extra: dict[str, dict] | None = None) -> list[str]:
    """Markdown lines: | first | [extra columns] | AUC | Avg L2 | Min L2 | with mean ± std cells.
    extra: {column title: {name: text}}."""
    extra = extra or {}
    head = [first, *extra, "AUC", "Avg L2", "Min L2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, stats in summary.items():
        cells = [name, *(str(col.get(name, "")) for col in extra.values()), *(fmt(stats[m]) for m in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def claim_line(claim: str, verdict: dict) -> str:
    """'- yes (3 of 3 seeds): claim'."""
    return f"- {verdict['holds']} (per seed: {verdict['seeds']} of {verdict['of']}): {claim}"


def cpu_clock() -> float:
    """CPU seconds (user + system) of this process and of its finished children (e.g. worker pools)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ------------------------------------------------------------------------------------------ the demo
def demo_verdict(summary: dict, pseudo_summary: dict, students: list[dict], pseudo: list[dict],
                 ratio: float) -> dict:
    """The demo's claims on the means over seeds: {claim: {"holds": yes | no | within noise,
    "seeds": on how many seeds the plain comparison holds, "of": seeds}}."""
    baseline = f"{ratio * 100:g} % student (none)"
    checks = [
        ("refined pseudo-labels beat raw Grad-CAM (AUC and Avg L2)",
         pseudo_summary, pseudo, "name", "diffusion teacher", "Grad-CAM (raw)", ("auc", "avg_l2"), "beats"),
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
        verdict = compare(summ, rows, key, a, b, metrics, mode)
        if verdict is not None:
            out[claim] = verdict
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
        lines.append(f"| {r['seed']} | {r['student']} | {_num(r['auc'])} | {_num(r['avg_l2'])} | {_num(r['min_l2'])} |")
    lines += ["", "| seed | pseudo-label | AUC | Avg L2 | Min L2 |", "|---|---|---|---|---|"]
    for r in results["pseudo_labels"]:
        lines.append(f"| {r['seed']} | {r['name']} | {_num(r['auc'])} | {_num(r['avg_l2'])} | {_num(r['min_l2'])} |")
    if "seconds" in results:
        cpu = results.get("cpu_seconds")
        load = results.get("load")
        lines += ["", f"Wall time {results['seconds']:.0f} s" + (f", {cpu / 60:.1f} CPU minutes" if cpu else "")
                  + (f", load average {load[0]:.1f} at the start, {load[1]:.1f} at the end" if load else "") + "."]
    return "\n".join(lines) + "\n"


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"
