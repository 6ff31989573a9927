"""Results over several seeds: mean ± std per row, claims judged on the means, Markdown tables
(the demo's claims and results.md are in gazecli/core/stages/demo/results.py).

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
