"""The small GazeWorld student (gw-student): registry, contract, presets, schedule, the prior's encoder,
and the seed summary of the demo."""

from __future__ import annotations

import math

import pytest
import torch

from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.engine.schedules import cosine_rate, make_optimizer
from gazecli.core.models import STUDENT_MODELS, build_model
from gazecli.core.models.gazeworld_student import GazeWorldConfig, GazeWorldEncoder, GazeWorldStudent
from gazecli.core.seed_summary import compare, fmt, summarize
from gazecli.core.settings import TrainDiffusionSettings, TrainStudentSettings, load_settings
from gazecli.core.stages.demo.results import demo_verdict


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gws") / "gw"
    synthesize_gazeworld(root, 12, 4, seed=1, size=64)
    return root


def inputs(b=3, s=64, f=32):
    g = torch.Generator().manual_seed(0)
    head = torch.zeros(b, 1, s, s)
    head[:, :, 8:16, 40:48] = 1
    return torch.randn(b, 3, s, s, generator=g), head, torch.randn(b, 3, f, f, generator=g)


def test_registry_builds_it_with_the_student_contract():
    assert "gw-student" in STUDENT_MODELS
    cfg = GazeWorldConfig(input_size=64, face_size=32, heatmap_size=32, inout=True).to_dict()
    model = build_model("gw-student", {**cfg, "widths": list(cfg["widths"])})  # as read back from JSON
    assert isinstance(model, GazeWorldStudent)
    out = model(*inputs())
    assert out["heatmap"].shape == (3, 1, 32, 32) and out["inout"].shape == (3,)
    # the §B size: about 0.37 M parameters
    assert 300_000 < sum(p.numel() for p in model.parameters()) < 450_000
    with pytest.raises(ValueError):
        GazeWorldConfig(input_size=60)  # not a multiple of 8 with three stages
    with pytest.raises(ValueError, match="backbone"):  # another model's config is refused, not defaulted
        build_model("gw-student", {"backbone": "tiny", "input_size": 64})


def test_the_head_position_changes_the_heatmap():
    """Head-relative coordinates at the fusion: the same scene with the head elsewhere is another map."""
    torch.manual_seed(0)
    model = GazeWorldStudent(GazeWorldConfig(input_size=64)).eval()
    scene, head, face = inputs(1)
    moved = torch.zeros_like(head)
    moved[:, :, 40:48, 8:16] = 1
    with torch.no_grad():
        a, b = model(scene, head, face)["heatmap"], model(scene, moved, face)["heatmap"]
    assert float((a - b).abs().max()) > 1e-3


def test_presets_pick_the_student_and_its_optimiser(world):
    s = load_settings(TrainStudentSettings, {"data": world})
    assert (s.model, s.optimizer, s.schedule, s.augment_kinds, s.lr) == ("gw-student", "adamw", "cosine", "flip", 4e-3)
    s = load_settings(TrainStudentSettings, {"data": world, "preset": "gazefollow"})
    assert (s.model, s.optimizer, s.schedule, s.augment_kinds) == ("vat", "adam", "step", "all")
    s = load_settings(TrainStudentSettings, {"data": world, "model": "vat", "lr": 1e-4})  # the user's choice wins
    assert (s.model, s.lr) == ("vat", 1e-4)
    d = load_settings(TrainDiffusionSettings, {"data": world})
    assert d.encoder == "gw-student"
    assert load_settings(TrainDiffusionSettings, {"data": world, "preset": "gazefollow"}).encoder == "vat"


def test_cosine_schedule_runs_from_lr_to_zero_per_step(world):
    assert cosine_rate(2e-3, 0, 100) == 2e-3 and cosine_rate(2e-3, 100, 100) == pytest.approx(0.0, abs=1e-18)
    assert cosine_rate(2e-3, 50, 100) == pytest.approx(1e-3)
    s = load_settings(TrainStudentSettings, {"data": world})
    model = torch.nn.Linear(2, 1)
    opt, sched, callbacks = make_optimizer(s, model, 10)
    assert isinstance(opt, torch.optim.AdamW) and sched is None and opt.param_groups[0]["weight_decay"] == 1e-4
    (cosine,) = callbacks  # the trainer calls it after every optimiser step
    cosine.on_step_end(5, {})
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3)
    s = load_settings(TrainStudentSettings, {"data": world, "preset": "gazefollow"})
    opt, sched, callbacks = make_optimizer(s, model, 10)
    assert type(opt) is torch.optim.Adam and callbacks == [] and sched is not None


def test_the_trunk_is_the_diffusion_priors_condition_encoder_and_loads_the_students_weights():
    from gazecli.core.models.init import load_matching

    cfg = GazeWorldConfig(input_size=64, face_size=32, heatmap_size=32)
    prior = build_model("diffusion", {"encoder": {**cfg.to_dict(), "model": "gw-student"},
                                      "denoiser": {"image_size": 32, "model_channels": 16, "channel_mult": [1, 2],
                                                   "num_res_blocks": 1, "attention_resolutions": [], "num_heads": 4,
                                                   "norm_groups": 8}})
    assert isinstance(prior.encoder, GazeWorldEncoder) and prior.encoder.out_channels == 64
    assert prior.encoder(*inputs()).shape == (3, 64, 8, 8)
    student = GazeWorldStudent(cfg)
    report = load_matching(prior.encoder, student.state_dict(), "student")
    assert not report.not_in_file and not report.shape_mismatch  # every encoder tensor comes from the student
    assert torch.equal(prior.encoder.fuse[0].weight, student.fuse[0].weight)


def test_summary_and_claims_judge_the_means_and_count_the_seeds():
    rows = [{"student": "none", "seed": s, "auc": a, "avg_l2": l, "min_l2": l} for s, a, l in
            ((0, 0.80, 0.30), (1, 0.82, 0.28), (2, 0.84, 0.32))]
    rows += [{"student": "diffusion", "seed": s, "auc": a, "avg_l2": l, "min_l2": l} for s, a, l in
             ((0, 0.90, 0.20), (1, 0.91, 0.31), (2, 0.92, 0.21))]
    summ = summarize(rows, "student")
    assert summ["none"]["auc"]["mean"] == pytest.approx(0.82)
    assert summ["none"]["auc"]["std"] == pytest.approx(math.sqrt(((0.02 ** 2) * 2) / 3))
    assert fmt(summ["none"]["avg_l2"]) == "0.300 ± 0.016"
    # AUC: +0.09 against stds ~0.016 counts; Avg L2: 0.240 vs 0.300, larger std 0.05 -> counts too
    v = compare(summ, rows, "student", "diffusion", "none", ("auc", "avg_l2"))
    assert v == {"holds": "yes", "seeds": 2, "of": 3}  # seed 1: worse Avg L2
    v = compare(summ, rows, "student", "diffusion", "none", ("min_l2",), "beats")
    assert v["holds"] == "yes"
    near = [dict(r, avg_l2=r["avg_l2"] + (0.05 if r["student"] == "diffusion" else 0.0)) for r in rows]
    assert compare(summarize(near, "student"), near, "student", "diffusion", "none", ("avg_l2",))["holds"] == \
        "within noise"
    claims = demo_verdict(summ, {}, rows, [], 0.1)
    assert claims["diffusion student beats the none student (AUC and Avg L2)"]["holds"] == "yes"
    assert not any("gradcam" in c for c in claims)  # no row, no claim
