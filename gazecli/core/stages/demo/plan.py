"""The demo's plan: sizes and budgets, and the job graph (which stage runs with which settings)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gazecli.core.errors import SettingsError

# Sizes and budgets. "quick": <= 10 minutes on 2 CPU cores (README states the measured time);
# "full": a larger world and longer training, for a GPU.
PLANS = {
    "quick": {"train_images": 1000, "test_images": 300, "student_steps": 200, "diffusion_epochs": 50,
              "figure_persons": 4, "cache_samples": 2, "input_size": 64},
    "full": {"train_images": 8000, "test_images": 1000, "student_steps": 3000, "diffusion_epochs": 150,
             "figure_persons": 6, "cache_samples": 4, "input_size": 128},
}
DEMO_ENTRIES = {"world", "jobs", "runs", "gradcam", "pseudo-cache-diffusion", "pseudo-cache-noise", "figure-gradcam", "results.md", "results.json",
                "results.png"}
STUDENT_BATCH, LABELLED_BATCH = 32, 8  # the GazeWorld preset's batch; 1 in 4 labelled in two-stream batches
# no validation split: ~14 validation persons at 10 % labels select noisily (the std over seeds), so
# every labelled person trains and every run keeps its last weights (the cosine schedule ends at lr 0)
DEMO_VAL_FRACTION = 0.0
DEFAULT_SEEDS = (0, 1, 2)


@dataclass
class Job:
    name: str
    kind: str  # gradcam | diffusion | student | report
    values: dict
    needs: tuple[str, ...] = ()
    title: str = ""
    result: dict | None = None
    state: str = "waiting"
    started: float = 0.0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    # compared with `values` before a finished job is reused, but not a setting of the command: the
    # gradcam job's fingerprint of the VQA's weights (new weights under the same name, a gazecli
    # upgrade or a retrained folder, make its maps and everything built on them stale: run_demo)
    fingerprint: dict = field(default_factory=dict)


def resolve_plan(settings) -> dict:
    plan = dict(PLANS["full" if settings.full else "quick"])
    for key in plan:
        value = getattr(settings, key, None)
        if value is not None:
            plan[key] = value
    return plan


def student_ratios(ratio: float, ablations: bool = False) -> list[tuple[str, str, float]]:
    """(row name, teacher, ratio) of the students: the method and its ablations at --ratio (with
    `ablations`, also the prior sampled from pure noise, no Grad-CAM), and the supervised student at
    2x and 10x the labels (capped at all labels)."""
    rows = [("none", "none", ratio), ("gradcam", "gradcam", ratio), ("diffusion", "diffusion", ratio)]
    if ablations:
        rows.append(("noise", "noise", ratio))
    return rows + [("none-2x", "none", min(1.0, 2 * ratio)), ("none-10x", "none", min(1.0, 10 * ratio))]


def epochs_for(steps: int, per_epoch: int) -> int:
    return max(1, math.ceil(steps / max(1, per_epoch)))


def gradcam_values(settings) -> dict:
    """Grad-CAM options of the demo. The shipped BLIP GazeWorld VQA grounds better in its last text
    layer than in the second-to-last (the paper's choice for OFA): Grad-CAM AUC 0.740 vs 0.651 on a
    separate fresh world (benchmarks/gazeworld_vqa.py), so the demo stores that one; the convolutional
    VQA has one map; other models keep -2."""
    from gazecli.core.gradcam.backends import GAZEWORLD_DEFAULT

    values = {"vqa_model": settings.vqa_model, "device": settings.device, "batch_size": 64}
    name = GAZEWORLD_DEFAULT if settings.vqa_model == "gazeworld" else settings.vqa_model
    if name == "gazeworld-blip" or settings.train_vqa:  # the convolutional VQA has one map: layers do not apply
        values["layers"] = [-1]
    return values


def build_jobs(settings, plan: dict, root: Path, split_counts: Callable[[float], tuple[int, int]],
               gradcam_dir: Path | None = None) -> list[Job]:
    """The demo's job graph. `split_counts(ratio)` -> (labelled-for-training persons, unlabelled persons).
    `gradcam_dir`: the training persons' Grad-CAM store (default --out/gradcam; seeds share it)."""
    out = Path(settings.out)
    gradcam_dir = Path(gradcam_dir) if gradcam_dir is not None else out / "gradcam"
    runs = out / "runs"
    common = {"data": str(root), "seed": settings.seed, "split_seed": settings.seed, "device": settings.device,
              "project": str(runs), "preset": "gazeworld", "workers": 0, "input_size": plan["input_size"],
              "val_fraction": DEMO_VAL_FRACTION, "select_on": "last"}
    # GazeWorld has no pretrained weights (the paper starts the prior's encoder from Chong et al.'s
    # ImageNet / gaze initialisation): the prior's encoder starts from the supervised student trained on
    # the same labels, which the demo trains anyway (no extra data, no unlabelled person's label).
    none_run = runs / "train-student" / "student-none"  # its best weights (last, without a validation split)
    from gazecli.core.gradcam.backends import weights_fingerprint

    jobs = [Job("gradcam", "gradcam", {**gradcam_values(settings), "split": "train", "out": str(gradcam_dir),
                                       "data": str(root)},
                title="Grad-CAM of the training persons (VQA: " + str(settings.vqa_model) + ")",
                fingerprint={"vqa_weights": weights_fingerprint(settings.vqa_model)}),
            Job("diffusion", "diffusion", {**common, "ratio": settings.ratio, "name": "diffusion",
                                           "epochs": plan["diffusion_epochs"], "init": str(none_run),
                                           "eval_every": max(1, plan["diffusion_epochs"] // 5)},
                needs=("student-none",), title=f"diffusion prior on {settings.ratio:g} of the labels",
                extra={"run_folder": runs / "train-diffusion" / "diffusion"})]
    steps = plan["student_steps"]
    for name, teacher, ratio in student_ratios(settings.ratio, settings.ablations):
        labelled, unlabelled = split_counts(ratio)
        values = {**common, "ratio": ratio, "teacher": teacher, "name": f"student-{name}",
                  "batch_size": STUDENT_BATCH}
        if teacher == "none":
            batch = min(STUDENT_BATCH, max(1, labelled))  # a tiny world: one batch of every labelled person
            values["batch_size"] = batch
            per_epoch = labelled // batch
            needs: tuple[str, ...] = ()
        else:
            per_epoch = unlabelled // (STUDENT_BATCH - LABELLED_BATCH)
            values.update(labeled_batch_size=LABELLED_BATCH, gradcam=str(gradcam_dir))
            needs = ("gradcam",)
        epochs = epochs_for(steps, per_epoch)
        values.update(epochs=epochs, milestones=[max(1, round(epochs * 2 / 3))], eval_every=max(1, epochs // 8))
        if teacher in ("diffusion", "noise"):
            values.update(teacher_checkpoint=str(runs / "train-diffusion" / "diffusion"),
                          pseudo_cache=str(out / f"pseudo-cache-{teacher}"), cache_samples=plan["cache_samples"])
            needs = ("gradcam", "diffusion")
        label = f"{ratio:g} labels" + ("" if teacher == "none" else f", teacher {teacher}")
        jobs.append(Job(f"student-{name}", "student", values, needs, title=f"student: {label}",
                        extra={"row": name, "teacher": teacher, "ratio": ratio, "steps": epochs * per_epoch,
                               "run_folder": runs / "train-student" / f"student-{name}"}))
    report = {**common, "ratio": settings.ratio, "teacher": "diffusion", "name": "pseudo-report",
              "gradcam": str(gradcam_dir), "teacher_checkpoint": str(runs / "train-diffusion" / "diffusion"),
              "pseudo_report": True, "report_student": str(none_run), "report_prior": True}
    jobs.append(Job("pseudo-report", "report", report, ("gradcam", "diffusion", "student-none"),
                    title="pseudo-labels of the unlabelled persons vs their hidden truth"))
    jobs.sort(key=lambda j: j.name != "student-none")  # first: the prior's encoder starts from it
    return jobs


# ------------------------------------------------------------------------------------------ seeds
def is_seed_folder(name: str) -> bool:
    return name.startswith("seed") and name[4:].isdigit()


def demo_seeds(settings) -> list[int]:
    """--seeds (default 0, 1, 2), each once, in the order given."""
    seeds = list(dict.fromkeys(settings.seeds if settings.seeds else DEFAULT_SEEDS))
    if any(s < 0 for s in seeds):
        raise SettingsError(f"--seeds: seeds must be >= 0 (got {', '.join(map(str, seeds))})")
    return seeds


# the order jobs start in when their inputs are ready: the critical path first (the prior's encoder
# starts from student-none; the semi-supervised students wait for the prior)
STAGE_ORDER = ("gradcam", "student-none", "diffusion", "student-diffusion", "pseudo-report", "student-gradcam",
               "student-noise", "student-none-2x", "student-none-10x")


def seeds_graph(graphs: dict[int, list[Job]]) -> list[Job]:
    """One job graph for several seeds: each seed's jobs renamed NAME-sSEED (their `needs` too), the
    Grad-CAM job (the same world for every seed) once."""
    merged: dict[str, Job] = {}
    for seed, graph in graphs.items():
        for job in graph:
            if job.kind == "gradcam":
                merged.setdefault(job.name, job)
                continue
            job.extra["seed_of"] = (seed, job.name)
            job.name = f"{job.name}-s{seed}"
            job.needs = tuple(n if n == "gradcam" else f"{n}-s{seed}" for n in job.needs)
            merged[job.name] = job
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    seeds = list(graphs)
    return sorted(merged.values(), key=lambda j: (rank.get(j.extra.get("seed_of", (0, j.name))[1], len(rank)),
                                                  seeds.index(j.extra["seed_of"][0]) if "seed_of" in j.extra else 0))


def seed_jobs(done: dict[str, Job], seed: int) -> dict[str, Job]:
    """The jobs of one seed under their own names (and the shared ones)."""
    return {(j.extra["seed_of"][1] if "seed_of" in j.extra else name): j for name, j in done.items()
            if "seed_of" not in j.extra or j.extra["seed_of"][0] == seed}
