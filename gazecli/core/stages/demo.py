"""`gaze demo`: the whole method end to end on GazeWorld, and the table that says whether it works.

Stages (each a job; independent jobs run side by side in `--jobs` worker processes, one torch
thread each, so the numbers do not depend on how the jobs were scheduled):

1. world      GazeWorld train (an image-level --ratio split, its validation part) and test;
2. gradcam    Grad-CAM of every training person with the GazeWorld VQA (`--vqa-model`, default the
              shipped `gazeworld`; `--train-vqa` retrains it first), and of a few test persons
              for the figure;
3. diffusion  the diffusion prior on the labelled persons (`gaze train-diffusion`);
4. students   `gaze train-student` with teachers none, gradcam and diffusion at --ratio, and none
              at 2x and 10x the labels, all with the same number of optimiser steps and seed;
5. report     raw Grad-CAM vs diffusion-refined pseudo-labels of the unlabelled persons scored
              against their hidden truth (`--pseudo-report`), every student scored on test;
6. results    results.md / results.json / results.png (figure) in --out.

A stage whose result file exists is not run again (a killed demo resumes where it stopped);
`--force` starts over. Everything is seeded: two runs with the same seed give the same table.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.errors import SettingsError

# Sizes and budgets. "quick": <= 10 minutes on 2 CPU cores (README states the measured time);
# "full": a larger world and longer training, for a GPU.
PLANS = {
    "quick": {"train_images": 1000, "test_images": 300, "student_steps": 200, "diffusion_epochs": 50,
              "figure_persons": 4, "cache_samples": 2, "input_size": 96},
    "full": {"train_images": 8000, "test_images": 1000, "student_steps": 3000, "diffusion_epochs": 150,
             "figure_persons": 6, "cache_samples": 4, "input_size": 128},
}
DEMO_ENTRIES = {"world", "jobs", "runs", "gradcam", "pseudo-cache-diffusion", "pseudo-cache-noise", "figure-gradcam", "results.md", "results.json",
                "results.png"}
STUDENT_BATCH, LABELLED_BATCH = 32, 8  # the GazeWorld preset's batch; 1 in 4 labelled in two-stream batches


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
    """Grad-CAM options of the demo. The shipped GazeWorld VQA grounds better in its last text layer
    than in the second-to-last (the paper's choice for OFA): Grad-CAM AUC 0.740 vs 0.651 on a separate
    fresh world (benchmarks/gazeworld_vqa.py), so the demo stores that one; other models keep -2."""
    values = {"vqa_model": settings.vqa_model, "device": settings.device, "batch_size": 64}
    if settings.vqa_model == "gazeworld" or settings.train_vqa:
        values["layers"] = [-1]
    return values


def build_jobs(settings, plan: dict, root: Path, split_counts: Callable[[float], tuple[int, int]]) -> list[Job]:
    """The demo's job graph. `split_counts(ratio)` -> (labelled-for-training persons, unlabelled persons)."""
    out = Path(settings.out)
    runs = out / "runs"
    common = {"data": str(root), "seed": settings.seed, "split_seed": settings.seed, "device": settings.device,
              "project": str(runs), "preset": "gazeworld", "workers": 0, "input_size": plan["input_size"]}
    # GazeWorld has no pretrained weights (the paper starts the prior's encoder from Chong et al.'s
    # ImageNet / gaze initialisation): the prior's encoder starts from the supervised student trained on
    # the same labels, which the demo trains anyway (no extra data, no unlabelled person's label).
    none_run = runs / "train-student" / "student-none"  # its best weights (last, without a validation split)
    jobs = [Job("gradcam", "gradcam", {**gradcam_values(settings), "split": "train", "out": str(out / "gradcam"),
                                       "data": str(root)},
                title="Grad-CAM of the training persons (VQA: " + str(settings.vqa_model) + ")"),
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
            values.update(labeled_batch_size=LABELLED_BATCH, gradcam=str(out / "gradcam"))
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
              "gradcam": str(out / "gradcam"), "teacher_checkpoint": str(runs / "train-diffusion" / "diffusion"),
              "pseudo_report": True}
    jobs.append(Job("pseudo-report", "report", report, ("gradcam", "diffusion"),
                    title="pseudo-labels of the unlabelled persons vs their hidden truth"))
    jobs.sort(key=lambda j: j.name != "student-none")  # first: the prior's encoder starts from it
    return jobs


# ------------------------------------------------------------------------------------------ running jobs
class FileReporter:
    """The engine's Reporter for a job in a worker: its progress in a small JSON file that the
    demo's main process polls, and its lines in a log."""

    def __init__(self, progress_path: Path, log_path: Path):
        self.progress_path, self.log_path = progress_path, log_path
        self.epoch, self.epochs = 0, 0
        self.last = 0.0

    def _write(self, done: int, total: int, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epoch": self.epoch, "epochs": self.epochs, "done": done, "total": total}))
        os.replace(tmp, self.progress_path)

    def message(self, text: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(text + "\n")

    def run_started(self, run_dir, epochs, start_epoch):
        self.epochs = epochs
        self.message(f"run folder {run_dir}")

    def epoch_started(self, epoch, epochs, n_steps, done):
        self.epoch, self.epochs = epoch + 1, epochs
        self._write(done, n_steps, force=True)

    def step(self, done, n_steps, logs):
        self._write(done, n_steps)

    def epoch_finished(self, epoch, row):
        self.message("epoch " + json.dumps(row))

    def progress(self, done: int, total: int) -> None:  # for non-training jobs
        self._write(done, total)


def run_job(kind: str, values: dict, progress_path: str, log_path: str, threads: int) -> dict:
    """One job, in a worker process (or inline). Returns a small JSON-able result."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    reporter = FileReporter(Path(progress_path), Path(log_path))
    t0 = time.perf_counter()
    if kind == "gradcam":
        from gazecli.core.gradcam.run import run_gradcam

        quiet_transformers()
        from gazecli.core.settings import GradcamSettings

        result = run_gradcam(GradcamSettings.model_validate(values), progress=reporter.progress)
        out = {k: result[k] for k in ("persons", "computed", "grid", "layers", "model") if k in result}
        out["key_noun"] = str(result.get("key_noun", ""))
    elif kind == "diffusion":
        from gazecli.core.engine.checkpoint import resolve_checkpoint
        from gazecli.core.settings import TrainDiffusionSettings
        from gazecli.core.stages.train_diffusion import train_diffusion

        if Path(values.get("init", "")).is_dir():  # a run folder: its weights file
            values = {**values, "init": str(resolve_checkpoint(Path(values["init"])))}
        r = train_diffusion(TrainDiffusionSettings.model_validate(values), reporter)
        out = {"run_dir": str(r.run_dir), "test": r.test_metrics, "epochs": r.epochs_done}
    elif kind == "student":
        from gazecli.core.settings import TrainStudentSettings
        from gazecli.core.stages.train_student import train_student

        r = train_student(TrainStudentSettings.model_validate(values), reporter)
        out = {"run_dir": str(r.run_dir), "test": r.test_metrics, "epochs": r.epochs_done}
    elif kind == "report":
        from gazecli.core.settings import TrainStudentSettings
        from gazecli.core.stages.train_student import pseudo_label_report

        out = pseudo_label_report(TrainStudentSettings.model_validate(values), reporter.progress)
    else:  # pragma: no cover - build_jobs makes only these
        raise ValueError(kind)
    out["seconds"] = time.perf_counter() - t0
    return out


def quiet_transformers() -> None:
    """No "Loading weights" bars from transformers inside the demo's own progress display."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def read_progress(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class JobRunner:
    """Runs a job graph with at most `jobs` at a time; results are cached as JSON files."""

    def __init__(self, folder: Path, jobs: int, threads: int, on_change: Callable[[list[Job]], None] | None = None):
        self.folder, self.jobs, self.threads, self.on_change = folder, jobs, threads, on_change
        folder.mkdir(parents=True, exist_ok=True)

    def paths(self, job: Job) -> tuple[Path, Path, Path]:
        return (self.folder / f"{job.name}.json", self.folder / f"{job.name}.progress.json",
                self.folder / f"{job.name}.log")

    def run(self, graph: list[Job]) -> dict[str, Job]:
        by_name = {j.name: j for j in graph}
        for job in graph:
            done_path = self.paths(job)[0]
            if done_path.is_file():
                saved = json.loads(done_path.read_text(encoding="utf-8"))
                if saved.get("values") == job.values:
                    job.result, job.state, job.seconds = saved["result"], "done (earlier run)", saved["result"]["seconds"]
        self._notify(graph)
        pending = [j for j in graph if j.result is None]
        if not pending:
            return by_name
        if self.jobs <= 1:
            for job in pending:  # graph order respects the dependencies
                self._start(job)
                self._finish(job, run_job(job.kind, job.values, *map(str, self.paths(job)[1:]), self.threads))
                self._notify(graph)
            return by_name
        import multiprocessing

        with ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            running: dict = {}
            while pending or running:
                for job in list(pending):
                    if len(running) >= self.jobs:
                        break
                    if all(by_name[n].result is not None for n in job.needs):
                        pending.remove(job)
                        self._start(job)
                        running[pool.submit(run_job, job.kind, job.values, *map(str, self.paths(job)[1:]),
                                            self.threads)] = job
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    self._finish(job, future.result())  # a failed job raises here and stops the demo
                self._notify(graph)
        return by_name

    def _start(self, job: Job) -> None:
        job.state, job.started = "running", time.perf_counter()
        if "run_folder" in job.extra and Path(job.extra["run_folder"]).exists():
            shutil.rmtree(job.extra["run_folder"])  # a killed run of this job: start it again under its name
        for p in self.paths(job)[1:]:
            p.unlink(missing_ok=True)

    def _finish(self, job: Job, result: dict) -> None:
        job.result, job.state, job.seconds = result, "done", result["seconds"]
        path = self.paths(job)[0]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"values": job.values, "result": result}, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)

    def _notify(self, graph: list[Job]) -> None:
        if self.on_change:
            for job in graph:
                if job.state == "running":
                    job.extra["progress"] = read_progress(self.paths(job)[1])
            self.on_change(graph)


# ------------------------------------------------------------------------------------------ the demo
def synthesize_world(settings, plan: dict, root: Path, progress=None) -> dict:
    """The demo's GazeWorld (reused when the folder already holds the same one)."""
    from gazecli.core.data.gazeworld import synthesize_gazeworld

    meta = root / "gazeworld.json"
    if meta.is_file():
        info = json.loads(meta.read_text(encoding="utf-8"))
        c = info.get("counts", {})
        if (info.get("seed") == settings.seed and c.get("train_images") == plan["train_images"]
                and c.get("test_images") == plan["test_images"]):
            return {"reused": True, **c}
    summary = synthesize_gazeworld(root, plan["train_images"], plan["test_images"], seed=settings.seed,
                                   progress=progress, force=True)
    return {"reused": False, **summary}


def split_counter(root: Path, seed: int, val_fraction: float = 0.1):
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.splits import resolve_label_split

    table = read_gazefollow(root, "train")

    def counts(ratio: float) -> tuple[int, int]:
        split, _ = resolve_label_split(root, table, ratio, None, seed, val_fraction)
        return int(split.labelled.sum()), int(split.unlabelled.sum())

    return counts


def prepare_world(settings, progress: Callable[[int, int], None] | None = None) -> dict:
    """--force: start over; then the demo's world (synthesized, or the one already in --out)."""
    out = Path(settings.out)
    if settings.force and out.exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if foreign:
            raise SettingsError(f"--out {out}: holds {', '.join(foreign[:3])}, not only a demo's files; "
                                f"refusing to delete it with --force")
    if settings.force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return synthesize_world(settings, resolve_plan(settings), out / "world", progress)


def run_demo(settings, show: Callable[[list[Job]], None] | None = None) -> dict:
    """Every stage of the demo (those already done in --out are reused); the results dict."""
    if settings.sweep:  # the VQA-quality sweep (an ablation): the demo per seed and VQA, gazecli/core/vqa/sweep.py
        from gazecli.core.vqa.sweep import run_sweep

        return run_sweep(settings, run_demo, show)
    out = Path(settings.out)
    plan = resolve_plan(settings)
    t0 = time.perf_counter()
    root = out / "world"
    world = prepare_world(settings.model_copy(update={"force": False}))
    if settings.train_vqa:
        settings = train_demo_vqa(settings, out, root)
    graph = build_jobs(settings, plan, root, split_counter(root, settings.seed))
    jobs = settings.jobs or max(1, min(2, os.cpu_count() or 1))
    threads = 1 if (jobs > 1 or settings.device == "cpu") else 0
    done = JobRunner(out / "jobs", jobs, threads, show).run(graph)
    results = collect_results(settings, plan, world, done)
    results["seconds"] = time.perf_counter() - t0
    results["files"] = [str(p) for p in write_results(out, results)]
    results["figure"] = str(write_figure(settings, plan, out, root, done))
    results["files"].append(results["figure"])
    return results


def train_demo_vqa(settings, out: Path, root: Path):
    """--train-vqa: train the GazeWorld VQA on this world's question-answer pairs and use it."""
    from gazecli.core.settings import TrainVQASettings
    from gazecli.core.stages.train_vqa import train_vqa

    done = out / "jobs" / "vqa.json"
    if done.is_file():  # trained by an earlier run of this demo
        return settings.model_copy(update={"vqa_model": json.loads(done.read_text(encoding="utf-8"))["model_dir"]})
    folder = out / "runs" / "train-vqa" / "vqa"
    if folder.exists():
        shutil.rmtree(folder)
    result = train_vqa(TrainVQASettings.model_validate({"data": str(root), "device": settings.device,
                                                         "project": str(out / "runs"), "name": "vqa",
                                                         "seed": settings.seed, "threads": 1}))
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps({"model_dir": str(result["model_dir"])}), encoding="utf-8")
    return settings.model_copy(update={"vqa_model": str(result["model_dir"])})


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
    from gazecli.core.engine.runs import atomic_write_text

    md, js = out / "results.md", out / "results.json"
    atomic_write_text(md, results_markdown(results))
    atomic_write_text(js, json.dumps(results, indent=2, default=str))
    return [md, js]


# ------------------------------------------------------------------------------------------ figure
def write_figure(settings, plan: dict, out: Path, root: Path, done: dict[str, Job]) -> Path:
    """results.png: for a few test persons, the image with its head box and true gaze point, the
    raw Grad-CAM, the diffusion-refined pseudo-label, and every student's predicted heatmap."""
    import cv2
    import torch

    from gazecli.core.data.dataset import GazeDataset
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.gradcam.run import run_gradcam
    from gazecli.core.settings import GradcamSettings
    from gazecli.core.stages.evaluate import load_trained_model
    from gazecli.core.stages.teachers import DiffusionTeacher
    from gazecli.core.stages.train_diffusion import load_diffusion_prior
    from gazecli.core.stages.train_student import student_forward

    n = plan["figure_persons"]
    table = read_gazefollow(root, "test")
    inside = np.flatnonzero(table.inout == 1)
    rng = np.random.default_rng(settings.seed)
    pick = np.sort(rng.choice(inside, size=min(n, len(inside)), replace=False))
    sub = table.subset(pick)
    store = out / "figure-gradcam"
    quiet_transformers()
    run_gradcam(GradcamSettings.model_validate({**gradcam_values(settings), "data": str(root), "split": "test",
                                                "out": str(store), "device": "cpu", "limit": int(pick.max()) + 1}))
    from gazecli.core.gradcam.store import GradcamStore

    maps = {"gradcam": GradcamStore(store).for_table(sub, None)}
    student_jobs = [j for j in done.values() if j.kind == "student"]
    first, meta0 = load_trained_model(Path(student_jobs[0].result["run_dir"]), "cpu")
    from gazecli.core.data.transforms import SampleConfig

    sample = SampleConfig(**{k: v for k, v in meta0["sample"].items()})
    ds = GazeDataset(sub, sample, maps=maps, seed=settings.seed)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    net, scheduler, _ = load_diffusion_prior(Path(done["diffusion"].result["run_dir"]), "cpu")
    teacher = DiffusionTeacher(net, scheduler, done["pseudo-report"].result["denoise_steps"],
                               done["pseudo-report"].result["ddim_steps"])
    with torch.no_grad():
        refined, _ = teacher(batch, torch.Generator().manual_seed(settings.seed))
    columns = [("Grad-CAM (raw)", batch["gradcam"][:, 0].numpy()), ("refined", refined[:, 0].numpy())]
    for job in student_jobs:
        model, _ = load_trained_model(Path(job.result["run_dir"]), "cpu")
        with torch.no_grad():
            heat = student_forward(model, batch)["heatmap"][:, 0].float().numpy()
        columns.append((f"{job.extra['row']}", heat))
    cell, pad, top = 128, 4, 18
    width = (1 + len(columns)) * (cell + pad) + pad
    height = top + len(pick) * (cell + pad) + pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    titles = ["image, head, truth"] + [c[0] for c in columns]
    for j, title in enumerate(titles):
        cv2.putText(canvas, title[:18], (pad + j * (cell + pad), 13), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(pick):
        y = top + i * (cell + pad)
        image = cv2.imread(str(root / table.path[row]))
        h, w = image.shape[:2]
        base = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA)
        sx, sy = cell / w, cell / h
        x1, y1, x2, y2 = table.head_box_xyxy_px[row]
        cv2.rectangle(base, (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy)), (255, 255, 255), 1)
        pts = table.gaze_xy_norm[row]
        mean = np.nanmean(pts, axis=0)
        centre = (int((x1 + x2) / 2 * sx), int((y1 + y2) / 2 * sy))
        target = (int(mean[0] * cell), int(mean[1] * cell))
        panel = base.copy()
        cv2.arrowedLine(panel, centre, target, (0, 255, 0), 1, cv2.LINE_AA, tipLength=0.08)
        canvas[y:y + cell, pad:pad + cell] = panel
        for j, (_, maps_) in enumerate(columns, start=1):
            heat = maps_[i]
            heat = (heat - heat.min()) / (heat.max() - heat.min() + 1e-9)
            colour = cv2.applyColorMap(cv2.resize((heat * 255).astype(np.uint8), (cell, cell)), cv2.COLORMAP_JET)
            blend = cv2.addWeighted(base, 0.45, colour, 0.55, 0)
            cv2.circle(blend, target, 3, (255, 255, 255), 1, cv2.LINE_AA)
            x = pad + j * (cell + pad)
            canvas[y:y + cell, x:x + cell] = blend
    path = out / "results.png"
    tmp = out / "results.tmp.png"
    cv2.imwrite(str(tmp), canvas)
    os.replace(tmp, path)
    return path
