"""`gaze demo`: the whole method end to end on GazeWorld, and the table that says whether it works.

Stages (each a job; independent jobs run side by side in `--jobs` worker processes, one torch
thread each, so the numbers do not depend on how the jobs were scheduled):

1. world      GazeWorld train and test (world seed --seed);
2. gradcam    Grad-CAM of every training person with the GazeWorld VQA (`--vqa-model`, default the
              shipped `gazeworld`; `--train-vqa` retrains it first), and of a few test persons
              for the figure (once: every seed shares the world);
3. diffusion  the diffusion prior on the labelled persons (`gaze train-diffusion`);
4. students   `gaze train-student` with teachers none, gradcam and diffusion at --ratio, and none
              at 2x and 10x the labels, all with the same number of optimiser steps and seed;
5. report     raw Grad-CAM vs diffusion-refined pseudo-labels of the unlabelled persons scored
              against their hidden truth (`--pseudo-report`, with the none student as a row),
              every student scored on test;
6. results    results.md / results.json / results.png (figure) in --out.

Stages 3-5 run once per seed of `--seeds` (default 0, 1, 2: the image-level --ratio label split and
every training run, in --out/seed<N>); the tables give every seed's rows and mean ± std, and the
claims are judged on the means (stages/demo/results.py).

A stage whose result file exists is not run again (a killed demo resumes where it stopped);
`--force` starts over. Everything is seeded: two runs with the same seeds give the same table.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from gazecli.core.errors import SettingsError
from gazecli.core.io import write_json
from gazecli.core.seed_summary import cpu_clock
from gazecli.core.stages.demo.figure import quiet_transformers, write_figure
from gazecli.core.stages.demo.plan import (DEMO_ENTRIES, DEMO_VAL_FRACTION, LABELLED_BATCH, PLANS, STUDENT_BATCH,
    Job, build_jobs, demo_seeds, epochs_for, gradcam_values, is_seed_folder, resolve_plan, seed_jobs, seeds_graph,
    student_ratios)
from gazecli.core.stages.demo.results import (PRIOR_CLAIM, collect_results, combine_seeds, demo_verdict,
    results_markdown, seeds_markdown, verdict, write_results)

__all__ = ["DEMO_ENTRIES", "DEMO_VAL_FRACTION", "LABELLED_BATCH", "PLANS", "PRIOR_CLAIM", "STUDENT_BATCH", "Job",
           "JobRunner",
           "build_jobs", "collect_results", "combine_seeds", "demo_seeds", "demo_verdict",
           "drop_stale_vqa_results", "epochs_for", "job_threads",
           "gradcam_values", "resolve_plan", "results_markdown", "run_demo", "run_job", "seed_jobs", "seeds_graph",
           "seeds_markdown", "student_ratios", "verdict", "write_figure", "write_results"]


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
        write_json(self.progress_path, {"epoch": self.epoch, "epochs": self.epochs, "done": done, "total": total},
                   indent=None, newline=False)

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
        from gazecli.core.stages.gradcam import run_gradcam

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


def read_progress(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _same_job(saved: dict, job: Job) -> bool:
    """A finished job's JSON was made by this job: the same settings and the same fingerprint."""
    return saved.get("values") == job.values and saved.get("fingerprint", {}) == job.fingerprint


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
                if _same_job(saved, job):
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
        write_json(self.paths(job)[0], {"values": job.values, "fingerprint": job.fingerprint, "result": result},
                   indent=1, newline=False, default=str)

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


def split_counter(root: Path, seed: int, val_fraction: float = DEMO_VAL_FRACTION):
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
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES and not is_seed_folder(p.name))
        if foreign:
            raise SettingsError(f"--out {out}: holds {', '.join(foreign[:3])}, not only a demo's files; "
                                f"refusing to delete it with --force")
    if settings.force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return synthesize_world(settings, resolve_plan(settings), out / "world", progress)


def run_demo(settings, show: Callable[[list[Job]], None] | None = None) -> dict:
    """Every stage of the demo (those already done in --out are reused); the results dict."""
    if settings.sweep:  # the VQA-quality sweep (an ablation): the demo per seed and VQA, sweep.py
        from gazecli.core.stages.demo.sweep import run_sweep

        return run_sweep(settings, run_demo, show)
    out = Path(settings.out)
    plan = resolve_plan(settings)
    t0 = time.perf_counter()
    root = out / "world"
    world = prepare_world(settings.model_copy(update={"force": False}))
    if settings.train_vqa:
        settings = train_demo_vqa(settings, out, root)
    seeds = demo_seeds(settings)
    per_seed = {s: settings.model_copy(update={"seed": s, "out": out / f"seed{s}"}) for s in seeds}
    graph = seeds_graph({s: build_jobs(ss, plan, root, split_counter(root, s), gradcam_dir=out / "gradcam")
                         for s, ss in per_seed.items()})
    drop_stale_vqa_results(out, graph)
    jobs = settings.jobs or max(1, min(2, os.cpu_count() or 1))
    threads = job_threads(settings.device, jobs)
    cpu0, load0 = cpu_clock(), os.getloadavg()
    done_all = JobRunner(out / "jobs", jobs, threads, show).run(graph)
    done = {s: seed_jobs(done_all, s) for s in seeds}
    results = combine_seeds(settings, plan, world, {s: collect_results(per_seed[s], plan, world, done[s])
                                                    for s in seeds})
    results["seconds"] = time.perf_counter() - t0
    results["cpu_seconds"], results["load"] = cpu_clock() - cpu0, [load0[0], os.getloadavg()[0]]
    results["files"] = [str(p) for p in write_results(out, results)]
    results["figure"] = str(write_figure(settings.model_copy(update={"seed": seeds[0]}), plan, out, root,
                                         done[seeds[0]]))
    results["files"].append(results["figure"])
    return results


def job_threads(device: str, jobs: int) -> int:
    """Torch threads of each job: 1 whenever the jobs run on the CPU (`--device cpu`, or `auto` on a
    machine without an accelerator), whatever --jobs is, because CPU float reductions round
    differently with other thread counts and the table must not depend on --jobs; 0 (torch's
    default) when an accelerator runs them one at a time."""
    from gazecli.core.engine.device import resolve_device

    if jobs > 1 or resolve_device(device).type == "cpu":
        return 1
    return 0


def drop_stale_vqa_results(out: Path, graph: list[Job]) -> bool:
    """When --out holds Grad-CAM made with another VQA or other weights (a gazecli upgrade ships new
    weights under the same name), drop it and everything built on it in every seed folder, as the
    VQA sweep does between VQAs; the job cache alone would rerun the Grad-CAM but keep the students
    and pseudo-label caches made from the old maps. True when something was dropped."""
    from gazecli.core.stages.demo.sweep import clear_vqa_results

    job = next((j for j in graph if j.kind == "gradcam"), None)
    saved = out / "jobs" / f"{job.name}.json" if job is not None else None
    if saved is None or not saved.is_file():
        return False
    try:
        if _same_job(json.loads(saved.read_text(encoding="utf-8")), job):
            return False
    except ValueError:
        pass
    seeds = {int(p.name[4:]) for p in out.glob("seed*") if p.is_dir() and is_seed_folder(p.name)}
    for seed in sorted(seeds) or [0]:
        clear_vqa_results(out, seed)
    return True


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
    write_json(done, {"model_dir": str(result["model_dir"])}, indent=None, newline=False)
    return settings.model_copy(update={"vqa_model": str(result["model_dir"])})
