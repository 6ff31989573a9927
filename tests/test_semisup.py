"""Semi-supervised students: teachers, pseudo-label masks without label leakage, the cache, the
pseudo-label quality report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.data.oracle import ORACLE_MODEL, oracle_class_maps
from gazecli.core.gradcam.store import write_maps
from gazecli.core.settings import TrainStudentSettings, load_settings
from gazecli.core.stages.train_student import student_loss
from gazecli.core.engine.trainer import StepContext
from tests.helpers import csv_rows, run_cli

TINY = ["--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--device", "cpu",
        "--lr", "1e-3"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("semi")
    root = base / "gw"
    synthesize_gazeworld(root, 40, 6, seed=6, size=64)
    train = read_gazefollow(root, "train")
    # a noisy "Grad-CAM" on a 8x8 grid: the class prior (every object of the target's class) plus noise
    rng = np.random.default_rng(0)
    maps = oracle_class_maps(root, train, 8) + 0.2 * rng.random((len(train), 8, 8)).astype(np.float32)
    write_maps(base / "cams", "train", train, maps * 1e-6, ORACLE_MODEL)
    return root, base / "cams", base



def test_gradcam_teacher_trains_on_pseudo_labels(world, tmp_path):
    root, cams, _ = world
    code, out, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--teacher", "gradcam", "--gradcam", cams,
                             "--epochs", "1", "--batch-size", "8", "--labeled-batch-size", "2", *TINY,
                             "--project", tmp_path, "--name", "gc")
    assert code == 0, err
    steps = csv_rows(tmp_path / "train-student" / "gc" / "steps.csv")
    assert steps and {"pseudo_loss", "pseudo_kept", "sup_loss"} <= set(steps[0])
    assert all(0 < float(r["pseudo_kept"]) <= 1 for r in steps)  # persons without a usable map are dropped
    meta = json.loads((tmp_path / "train-student" / "gc" / "weights" / "last.json").read_text())
    assert meta["teacher"] == {"kind": "gradcam", "pseudo_inout": "all", "cached": False}


def test_teacher_needs_its_inputs(world, tmp_path):
    root, cams, _ = world
    code, _, err = run_cli("train-student", "--data", root, "--teacher", "gradcam", *TINY, "--project", tmp_path)
    assert code == 2 and "needs Grad-CAM maps: --gradcam STORE" in err
    code, _, err = run_cli("train-student", "--data", root, "--teacher", "diffusion", "--gradcam", cams, *TINY,
                           "--project", tmp_path)
    assert code == 2 and "needs --teacher-checkpoint" in err
    code, _, err = run_cli("train-student", "--data", root, "--teacher", "gradcam", "--gradcam", cams, "--ratio", "1.0",
                           *TINY, "--project", tmp_path)
    assert code == 2 and "no unlabelled persons" in err


def test_vat_teacher_refuses_a_checkpoint_of_another_kind_and_runs_cached(world, tmp_path):
    root, cams, _ = world
    code, _, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--epochs", "1", "--batch-size", "8",
                           "--model", "vat", *TINY, "--project", tmp_path, "--name", "sup")
    assert code == 0, err
    sup = tmp_path / "train-student" / "sup"
    code, _, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--teacher", "vat-gc",
                           "--teacher-checkpoint", sup, "--gradcam", cams, *TINY, "--project", tmp_path)
    assert code == 2 and "a 'vat' checkpoint, but --teacher vat-gc needs a vat-gc student" in err
    cache = tmp_path / "cache"
    code, _, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--teacher", "vat", "--teacher-checkpoint",
                           sup, "--pseudo-cache", cache, "--cache-samples", "2", "--epochs", "2", "--batch-size", "8",
                           "--labeled-batch-size", "2", *TINY, "--project", tmp_path, "--name", "cached")
    assert code == 0, err
    arrays = list(cache.glob("pseudo-*.npy"))
    assert len(arrays) == 1
    cached = np.load(arrays[0], mmap_mode="r")
    n_unlabelled = len(json.loads(next(cache.glob("pseudo-*.json")).read_text())["keys"])
    assert cached.shape == (n_unlabelled, 2, 16, 16) and cached.dtype == np.float16
    assert float(np.abs(cached[:, 0].astype(np.float32) - cached[:, 1].astype(np.float32)).max()) == 0.0  # vat: deterministic
    steps = csv_rows(tmp_path / "train-student" / "cached" / "steps.csv")
    assert all(float(r["pseudo_kept"]) == 1.0 for r in steps)


def _batch(n_lab: int, n_unl: int, inout_unl: list[float]):
    b = n_lab + n_unl
    g = torch.Generator().manual_seed(0)
    target = torch.rand(b, 1, 8, 8, generator=g)
    return {"heatmap": target, "labelled": torch.tensor([True] * n_lab + [False] * n_unl),
            "inout": torch.tensor([1.0] * n_lab + inout_unl), "gradcam": torch.rand(b, 1, 8, 8, generator=g),
            "gradcam_valid": torch.ones(b, dtype=torch.bool), "scene": torch.zeros(b, 3, 4, 4),
            "head_channel": torch.zeros(b, 1, 4, 4), "face": torch.zeros(b, 3, 4, 4)}


class _FixedNet(torch.nn.Module):
    def __init__(self, heat, inout_logit):
        super().__init__()
        self.heat, self.logit = heat, inout_logit

    def forward(self, scene, head_channel, face, gradcam=None):
        return {"heatmap": self.heat.clone().requires_grad_(True), "inout": self.logit}


@pytest.mark.parametrize("rule,expected_kept", [("all", 1.0), ("predicted", 0.5), ("ground-truth", 0.25)])
def test_pseudo_masks_and_the_leak_only_in_ground_truth_mode(world, rule, expected_kept):
    root, _, _ = world
    from gazecli.core.teachers.gradcam import GradcamTeacher

    s = load_settings(TrainStudentSettings, {"data": root, "teacher": "gradcam", "inout_weight": 1.0, "loss": "mse"})
    batch = _batch(2, 4, [-1.0, -1.0, -1.0, -1.0] if rule != "ground-truth" else [1.0, 0.0, 0.0, 0.0])
    logits = torch.tensor([0.0, 0.0, 3.0, 3.0, -3.0, -3.0])  # the student's own in/out: 2 of 4 unlabelled "in"
    net = _FixedNet(torch.zeros(6, 1, 8, 8), logits)
    ctx = StepContext(step=1, epoch=0, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    loss, logs = student_loss(s, GradcamTeacher(), rule)(net, batch, ctx)
    assert logs["pseudo_kept"] == expected_kept
    # the loss is the mean per-person MSE over labelled + kept persons, x 10000, indexed (no NaN x 0)
    unl = torch.arange(6) >= 2
    kept = {"all": unl, "predicted": unl & (torch.sigmoid(logits) >= 0.5),
            "ground-truth": unl & (batch["inout"] == 1)}[rule]
    target = torch.where(unl[:, None, None, None], batch["gradcam"], batch["heatmap"])
    per = (target ** 2).flatten(1).mean(1)
    chosen = (~unl) | kept
    assert loss.item() == pytest.approx(float(per[chosen].mean() * 10000 + logs["inout_loss"]), rel=1e-6)


def test_kl_loss_is_the_cross_entropy_of_the_spatial_softmax(world):
    root, _, _ = world
    from gazecli.core.losses import heatmap_errors

    pred = torch.randn(3, 1, 4, 4)
    target = torch.rand(3, 1, 4, 4)
    target[2] = 0  # an out-of-frame target: undefined for kl
    err, ok = heatmap_errors(pred, target, "kl")
    p = target[0].flatten() / target[0].sum()
    assert err[0].item() == pytest.approx(float(-(p * torch.log_softmax(pred[0].flatten(), 0)).sum()), rel=1e-6)
    assert ok.tolist() == [True, True, False]
    s = load_settings(TrainStudentSettings, {"data": root})
    assert (s.loss, s.loss_scale, s.coords, s.heatmap_loss_on) == ("kl", 1.0, True, "in-frame")  # GazeWorld preset
    s = load_settings(TrainStudentSettings, {"data": root, "preset": "gazefollow"})
    assert (s.loss, s.loss_scale, s.coords, s.heatmap_loss_on) == ("mse", 10000.0, False, "all")  # the paper


def test_a_nan_target_outside_the_mask_does_not_poison_the_loss(world):
    root, _, _ = world
    from gazecli.core.teachers.gradcam import GradcamTeacher

    s = load_settings(TrainStudentSettings, {"data": root, "teacher": "gradcam"})
    batch = _batch(2, 2, [-1.0, -1.0])
    batch["gradcam"][3] = float("nan")  # a missing map the official code would turn into NaN
    batch["gradcam_valid"][3] = False
    net = _FixedNet(torch.zeros(4, 1, 8, 8), None)
    ctx = StepContext(step=1, epoch=0, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    loss, logs = student_loss(s, GradcamTeacher(), "all")(net, batch, ctx)
    assert torch.isfinite(loss) and logs["pseudo_kept"] == 0.5


def test_pseudo_report_scores_maps_against_hidden_labels(world, tmp_path):
    root, cams, base = world
    code, out, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--gradcam", cams, "--pseudo-report",
                             *TINY, "--project", tmp_path)
    assert code == 0, err
    report = json.loads(next((tmp_path / "pseudo-report").glob("*/pseudo_report.json")).read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["centre prior", "Grad-CAM (raw)"]
    by = {r["name"]: r for r in report["results"]}
    # the oracle-class "Grad-CAM" knows the class: far better AUC than the centre prior
    assert by["Grad-CAM (raw)"]["auc"] > by["centre prior"]["auc"] + 0.1
    assert "Grad-CAM (raw)" in out


def test_report_prior_scores_the_prior_without_gradcam_beside_the_refined_maps(world, tmp_path):
    """--report-prior: the same prior sampled from pure noise (the noise teacher) on the same persons,
    the row a refined pseudo-label must beat for the VQA to add information."""
    root, cams, _ = world
    code, _, err = run_cli("train-diffusion", "--data", root, "--ratio", "0.3", "--epochs", "1", *TINY,
                           "--batch-size", "8", "--project", tmp_path, "--name", "prior")
    assert code == 0, err
    prior = tmp_path / "train-diffusion" / "prior"
    code, out, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--gradcam", cams, "--pseudo-report",
                             "--teacher", "diffusion", "--teacher-checkpoint", prior, "--report-prior", *TINY,
                             "--project", tmp_path)
    assert code == 0, err
    report = json.loads(next((tmp_path / "pseudo-report").glob("*/pseudo_report.json")).read_text())
    by = {r["name"]: r for r in report["results"]}
    assert list(by) == ["centre prior", "Grad-CAM (raw)", "diffusion teacher", "prior alone (noise teacher)"]
    assert by["prior alone (noise teacher)"]["n"] == by["diffusion teacher"]["n"] == report["persons"] > 0
    assert 0 <= by["prior alone (noise teacher)"]["auc"] <= 1
    assert by["prior alone (noise teacher)"]["avg_l2"] != by["diffusion teacher"]["avg_l2"]  # a different sampler
    code, _, err = run_cli("train-student", "--data", root, "--ratio", "0.3", "--gradcam", cams, "--pseudo-report",
                           "--teacher", "gradcam", "--report-prior", *TINY, "--project", tmp_path)
    assert code == 2 and "--report-prior" in err and "--teacher diffusion" in err and len(err.strip().splitlines()) == 1
