"""gaze demo: the job graph, budgets, resume, the results table; the whole demo end to end (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gazecli.core.settings import DemoSettings
from gazecli.core.stages import demo as D


def settings(tmp_path, **kw) -> DemoSettings:
    return DemoSettings.model_validate({"out": str(tmp_path / "demo"), **kw})


def test_demo_reads_the_blip_vqas_last_layer_by_any_of_its_names(tmp_path):
    """`gazeworld` (whichever VQA it names) and `gazeworld-blip` store BLIP's last text layer; the
    convolutional VQA has one map, so no layer is asked of it."""
    from gazecli.core.gradcam.backends import GAZEWORLD_DEFAULT

    assert D.gradcam_values(settings(tmp_path, vqa_model="gazeworld-blip"))["layers"] == [-1]
    assert "layers" not in D.gradcam_values(settings(tmp_path, vqa_model="gazeworld-cnn"))
    default = D.gradcam_values(settings(tmp_path))
    assert default["vqa_model"] == "gazeworld"
    assert default.get("layers") == ([-1] if GAZEWORLD_DEFAULT == "gazeworld-blip" else None)


def test_jobs_give_every_student_the_same_budget_and_the_right_inputs(tmp_path):
    s = settings(tmp_path, ratio=0.1, seed=3)
    plan = D.resolve_plan(s)
    counts = {0.1: (140, 1260), 0.2: (280, 1120), 1.0: (1400, 0)}
    graph = D.build_jobs(s, plan, tmp_path / "world", lambda r: counts[round(r, 6)])
    by = {j.name: j for j in graph}
    students = [j for j in graph if j.kind == "student"]
    assert [j.extra["row"] for j in students] == ["none", "gradcam", "diffusion", "none-2x", "none-10x"]
    assert [j.extra["ratio"] for j in students] == [0.1, 0.1, 0.1, 0.2, 1.0]
    for j in students:  # same optimiser steps (up to one epoch's rounding), same seed and batch
        assert plan["student_steps"] <= j.extra["steps"] < plan["student_steps"] + 60, j.extra
        assert j.values["input_size"] == 64
        assert j.values["seed"] == 3 and j.values["split_seed"] == 3 and j.values["batch_size"] == 32
    # none at 0.1: 140 // 32 = 4 steps an epoch; two-stream: 1260 // 24 = 52 steps an epoch
    assert by["student-none"].values["epochs"] == 50 and by["student-diffusion"].values["epochs"] == 4
    assert by["student-diffusion"].needs == ("gradcam", "diffusion")
    assert by["student-diffusion"].values["teacher_checkpoint"].endswith("train-diffusion/diffusion")
    assert by["student-gradcam"].needs == ("gradcam",) and by["student-none"].needs == ()
    assert by["diffusion"].needs == ("student-none",) and graph[0].name == "student-none"
    assert by["diffusion"].values["init"].endswith("train-student/student-none")
    assert by["student-gradcam"].values["labeled_batch_size"] == 8
    assert by["pseudo-report"].needs == ("gradcam", "diffusion", "student-none") and by["pseudo-report"].values["pseudo_report"]
    assert by["pseudo-report"].values["report_student"].endswith("train-student/student-none")  # the baseline row
    assert all(j.values.get("select_on", "last") == "last" for j in graph)  # no noisy selection on ~14 persons
    # every job's values are valid settings of the command it runs
    from gazecli.core.settings import GradcamSettings, TrainDiffusionSettings, TrainStudentSettings

    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "gazeworld.json").write_text("{}")
    kinds = {"gradcam": GradcamSettings, "diffusion": TrainDiffusionSettings, "student": TrainStudentSettings,
             "report": TrainStudentSettings}
    for job in graph:
        parsed = kinds[job.kind].model_validate(job.values)
        if job.kind == "student":
            assert parsed.preset == "gazeworld" and parsed.teacher == job.extra["teacher"]


def test_ratio_multiples_are_capped_at_all_labels():
    rows = D.student_ratios(0.3)
    assert [(r[0], r[2]) for r in rows][-2:] == [("none-2x", 0.6), ("none-10x", 1.0)]


def test_runner_reuses_finished_jobs_and_reruns_changed_ones(tmp_path, monkeypatch):
    calls = []

    def fake(kind, values, progress_path, log_path, threads):
        calls.append((kind, values["x"]))
        Path(progress_path).write_text(json.dumps({"done": 1, "total": 1}))
        return {"x2": values["x"] * 2, "seconds": 0.01}

    monkeypatch.setattr(D, "run_job", fake)
    graph = lambda x: [D.Job("a", "k", {"x": 1}), D.Job("b", "k", {"x": x}, needs=("a",))]  # noqa: E731
    done = D.JobRunner(tmp_path / "jobs", 1, 1).run(graph(5))
    assert calls == [("k", 1), ("k", 5)] and done["b"].result["x2"] == 10
    calls.clear()
    done = D.JobRunner(tmp_path / "jobs", 1, 1).run(graph(5))
    assert calls == [] and done["b"].state.startswith("done") and done["b"].result["x2"] == 10
    done = D.JobRunner(tmp_path / "jobs", 1, 1).run(graph(6))  # b's settings changed: b runs again, a does not
    assert calls == [("k", 6)] and done["b"].result["x2"] == 12
    calls.clear()
    changed = graph(6)
    changed[0].fingerprint = {"weights": "other"}  # same settings, other weights: a runs again
    D.JobRunner(tmp_path / "jobs", 1, 1).run(changed)
    assert calls == [("k", 1)]


def test_jobs_on_the_cpu_run_one_thread_each_whatever_jobs_is(monkeypatch):
    """`gaze demo --jobs 1` on a machine without a GPU once ran its jobs with every core's threads
    and gave other digits than the default --jobs 2 (one thread each): CPU jobs get one thread."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert [D.job_threads(d, j) for d in ("auto", "cpu") for j in (1, 2)] == [1, 1, 1, 1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.job_threads("auto", 1) == 0 and D.job_threads("cpu", 1) == 1 and D.job_threads("auto", 2) == 1


def test_new_vqa_weights_under_the_same_name_drop_the_old_maps_and_what_was_built_on_them(tmp_path):
    """A gazecli upgrade ships new weights under the name `gazeworld`: the gradcam job's values carry
    a fingerprint of the weights, and a demo folder whose Grad-CAM was made with other weights loses
    it and every VQA-dependent result of every seed (the supervised students stay)."""
    import shutil

    from gazecli.core.gradcam.backends import resolve_model_source, weights_fingerprint

    model = tmp_path / "vqa"
    shutil.copytree(resolve_model_source("gazeworld-cnn"), model)
    first = weights_fingerprint(str(model))
    assert first is not None and first == weights_fingerprint(str(model))
    assert weights_fingerprint("SIMULATED-ablation:p=1") is None
    s = settings(tmp_path, vqa_model=str(model))
    out = Path(s.out)
    job = lambda: next(j for j in D.build_jobs(s, D.resolve_plan(s), out / "world", lambda r: (14, 126))  # noqa: E731
                       if j.kind == "gradcam")
    assert job().fingerprint == {"vqa_weights": first}
    jobs = out / "jobs"
    jobs.mkdir(parents=True)
    for name in ("gradcam", "student-diffusion-s0", "student-diffusion-s1", "student-none-s0"):
        (jobs / f"{name}.json").write_text(json.dumps({"values": job().values if name == "gradcam" else {},
                                                       "fingerprint": job().fingerprint if name == "gradcam" else {},
                                                       "result": {"seconds": 1}}))
    for rel in ("gradcam", "seed0/pseudo-cache-diffusion", "seed1/pseudo-cache-diffusion", "seed0/runs"):
        (out / rel).mkdir(parents=True)
    assert not D.drop_stale_vqa_results(out, [job()])  # same weights: everything stays
    assert (jobs / "gradcam.json").is_file() and (out / "seed1" / "pseudo-cache-diffusion").is_dir()

    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 1  # other weights, same name and size
    (model / "model.safetensors").write_bytes(bytes(data))
    assert weights_fingerprint(str(model)) != first
    assert D.drop_stale_vqa_results(out, [job()])
    assert not (out / "gradcam").exists() and not (jobs / "gradcam.json").exists()
    for seed in (0, 1):
        assert not (out / f"seed{seed}" / "pseudo-cache-diffusion").exists()
        assert not (jobs / f"student-diffusion-s{seed}.json").exists()
    assert (jobs / "student-none-s0.json").is_file() and (out / "seed0" / "runs").is_dir()


def test_verdict_and_table_say_what_the_numbers_say():
    rows = [{"student": "none", "teacher": "none", "ratio": 0.1, "steps": 10, "auc": 0.90, "avg_l2": 0.20, "min_l2": 0.1},
            {"student": "gradcam", "teacher": "gradcam", "ratio": 0.1, "steps": 10, "auc": 0.85, "avg_l2": 0.25,
             "min_l2": 0.2},
            {"student": "diffusion", "teacher": "diffusion", "ratio": 0.1, "steps": 10, "auc": 0.92, "avg_l2": 0.21,
             "min_l2": 0.1},
            {"student": "none-2x", "teacher": "none", "ratio": 0.2, "steps": 10, "auc": 0.95, "avg_l2": 0.15,
             "min_l2": 0.1}]
    pseudo = [{"name": "Grad-CAM (raw)", "auc": 0.6, "avg_l2": 0.4, "min_l2": 0.4, "n": 5, "usable": 1.0},
              {"name": "diffusion teacher", "auc": 0.7, "avg_l2": 0.3, "min_l2": 0.3, "n": 5, "usable": 1.0}]
    with_prior = pseudo + [{"name": "prior alone (noise teacher)", "auc": 0.75, "avg_l2": 0.35, "min_l2": 0.35,
                            "n": 5, "usable": 1.0}]
    assert D.verdict(rows, with_prior)[D.PRIOR_CLAIM] is False  # the prior alone has the better AUC
    with_prior[-1]["auc"] = 0.65
    assert D.verdict(rows, with_prior)[D.PRIOR_CLAIM] is True
    v = D.verdict(rows, pseudo)
    assert v == {"refined pseudo-labels beat raw Grad-CAM (AUC and Avg L2)": True,
                 "diffusion student beats the none student (AUC and Avg L2)": False,  # better AUC, worse L2
                 "diffusion student beats the gradcam student (AUC and Avg L2)": True,
                 "diffusion student reaches the none student at 2x labels (Avg L2)": False}
    md = D.results_markdown({"world": {"train_images": 9, "train_persons": 12, "test_images": 3}, "ratio": 0.1,
                             "seed": 0, "vqa_model": "gazeworld", "students": rows, "pseudo_labels": pseudo,
                             "denoise_steps": 250, "ddim_steps": 2, "verdict": v})
    assert "| diffusion | 0.1 | diffusion | 10 | 0.920 | 0.210 | 0.100 |" in md
    assert "| diffusion teacher | 0.700 | 0.300 | 0.300 | 1.00 |" in md
    assert "- no: diffusion student beats the none student (AUC and Avg L2)" in md


def test_demo_command_rejects_bad_values_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "gazecli", "demo", "--ratio", "1.5", "--out", str(tmp_path / "d")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--ratio" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    p = subprocess.run([sys.executable, "-m", "gazecli", "demo", "--force", "--out", str(tmp_path / "mine")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "refusing" in p.stderr and (tmp_path / "mine" / "thesis.tex").exists()


TINY = ["--train-images", "60", "--test-images", "20", "--student-steps", "6", "--diffusion-epochs", "2",
        "--figure-persons", "2", "--seeds", "0,1"]
NAMES = ["none", "gradcam", "diffusion", "none-2x", "none-10x"]


@pytest.mark.slow
def test_reduced_demo_end_to_end_is_deterministic(tmp_path):
    """Every stage writes its outputs, the table has every row, two runs give the same table."""
    tables = []
    for name in ("a", "b"):
        out = tmp_path / name
        p = subprocess.run([sys.executable, "-m", "gazecli", "demo", "--out", str(out), "--device", "cpu", *TINY],
                           capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        results = json.loads((out / "results.json").read_text())
        assert results["seeds"] == [0, 1]
        assert [(r["seed"], r["student"]) for r in results["students"]] == [(s, n) for s in (0, 1) for n in NAMES]
        assert all(r["auc"] is not None and r["n"] > 0 for r in results["students"])
        pseudo = ["centre prior", "Grad-CAM (raw)", "diffusion teacher", "prior alone (noise teacher)",
                  "10 % student (none)"]
        assert [r["name"] for r in results["pseudo_labels"]] == pseudo * 2
        assert list(results["summary"]) == NAMES and list(results["pseudo_summary"]) == pseudo
        none = [r["avg_l2"] for r in results["students"] if r["student"] == "none"]
        assert results["summary"]["none"]["avg_l2"]["mean"] == pytest.approx(sum(none) / 2)
        assert all(set(v) == {"holds", "seeds", "of"} and v["of"] == 2 for v in results["verdict"].values())
        for f in ("results.md", "results.png", "gradcam/train/index.json",
                  "seed0/runs/train-diffusion/diffusion/test_metrics.json",
                  "seed1/runs/train-student/student-diffusion/test_metrics.json", "jobs/pseudo-report-s1.json"):
            assert (out / f).is_file(), f
        assert "| none-10x | 1 | none |" in (out / "results.md").read_text()
        assert " ± " in (out / "results.md").read_text()
        tables.append((results["students"], results["pseudo_labels"]))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in rows]  # noqa: E731
    assert strip(tables[0][0]) == strip(tables[1][0]) and tables[0][1] == tables[1][1]
    # a rerun in the same folder reuses every stage
    p = subprocess.run([sys.executable, "-m", "gazecli", "demo", "--out", str(tmp_path / "a"), "--device", "cpu", *TINY],
                       capture_output=True, text=True)
    assert p.returncode == 0 and json.loads((tmp_path / "a" / "results.json").read_text())["students"] == tables[0][0]
