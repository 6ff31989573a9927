"""`gaze train-diffusion` and `gaze mean-teacher` (method-spec §3.3, §4) on a tiny GazeWorld."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.engine.checkpoint import load_checkpoint
from gazecli.core.engine.trainer import SilentReporter, StepContext
from gazecli.core.settings import MeanTeacherSettings, TrainDiffusionSettings, load_settings
from tests.helpers import csv_rows, run_cli

TINY = ["--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--batch-size", "8",
        "--model-channels", "16", "--norm-groups", "8", "--channel-mult", "1,2", "--attention-resolutions", "8",
        "--lr", "1e-3", "--inference-steps", "3", "--device", "cpu"]
MT = ["--ratio", "0.3", "--labeled-batch-size", "2", "--teacher-steps", "2", "--ema-every", "2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusion") / "gw"
    synthesize_gazeworld(root, 40, 8, seed=4, size=64)
    return root



# ------------------------------------------------------------------------------------- train-diffusion
@pytest.fixture(scope="module")
def diffusion_run(world, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    code, out, err = run_cli("train-diffusion", "--data", world, "--ratio", "0.3", "--epochs", "2", *TINY,
                             "--project", project, "--name", "d")
    assert code == 0, err
    run = project / "train-diffusion" / "d"
    assert str(run) in out
    return run


def test_train_diffusion_run_folder_and_eval_checkpoint(world, diffusion_run, tmp_path):
    run = diffusion_run
    for f in ("settings.toml", "metrics.csv", "steps.csv", "test_metrics.json", "weights/last.safetensors",
              "weights/best.safetensors"):
        assert (run / f).is_file(), f
    epochs = csv_rows(run / "metrics.csv")
    assert [r["epoch"] for r in epochs] == ["1", "2"]
    assert {"train_x0_loss", "val_auc", "val_avg_l2"} <= set(epochs[0])
    _, meta, training = load_checkpoint(run / "weights" / "last.safetensors")
    assert meta["model"]["name"] == "diffusion" and training["optimizer"]["state"]
    assert set(meta["model"]["config"]) == {"encoder", "denoiser", "scheduler"}
    assert meta["model"]["config"]["scheduler"]["num_train_timesteps"] == 500
    # eval --checkpoint samples from noise again and reproduces the run's test numbers, whatever the batch
    # size (the noise is drawn per person)
    test = json.loads((run / "test_metrics.json").read_text())
    code, _, err = run_cli("eval", "--checkpoint", run, "--data", world, "--device", "cpu", "--batch-size", "3",
                           "-o", tmp_path / "e.json")
    assert code == 0, err
    again = json.loads((tmp_path / "e.json").read_text())
    assert (again["auc"], again["avg_l2"], again["min_l2"]) == pytest.approx((test["auc"], test["avg_l2"], test["min_l2"]),
                                                                            abs=1e-9)
    heatmaps = np.load(tmp_path / "e.npz")["heatmap"]
    assert heatmaps.shape[1:] == (16, 16) and heatmaps.min() >= 0 and heatmaps.max() <= 1  # min-max normalised


def test_paper_defaults_depend_on_the_ratio(world):
    def settings(cls, **flags):
        return load_settings(cls, {"data": world, "preset": "gazefollow", **flags})

    assert [settings(TrainDiffusionSettings, ratio=r).epochs for r in (0.05, 0.1, 0.2)] == [150, 150, 100]
    s = settings(TrainDiffusionSettings, ratio=0.1)
    assert (s.lr, s.batch_size, s.eval_every, s.inference_steps, s.eta, s.loss_scale) == (5e-5, 48, 2, 10, 1.0, 1e4)
    assert (s.model_channels, s.channel_mult, s.attention_resolutions, s.diffusion_steps) == (64, [1, 2, 3, 4], [16, 8], 500)
    assert [settings(MeanTeacherSettings, ratio=r).epochs for r in (0.05, 0.1, 0.2)] == [40, 60, 80]
    m = settings(MeanTeacherSettings)
    assert (m.batch_size, m.labeled_batch_size, m.consistency, m.ema_decay, m.ema_every) == (40, 10, 4000.0, 0.99, 15)


def test_sampling_loop_matches_the_scheduler():
    from gazecli.core.diffusion import HeatmapScheduler

    def model(x, t):  # any smooth function of (x_t, t)
        return torch.sigmoid(3 * x - 1.5) * (1 + t[:, None, None, None] / 1000)

    for compat in (False, True):
        scheduler = HeatmapScheduler(compat=compat)
        a = scheduler.sample(model, (2, 1, 8, 8), 4, eta=1.0, generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        b = scheduler.sample(model, (2, 1, 8, 8), 4, eta=1.0, noise_fn=lambda: torch.randn((2, 1, 8, 8), generator=g))
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------- mean teacher rules
def test_ema_alpha_numbers():
    from gazecli.core.models.ema import ema_alpha

    assert [ema_alpha(s) for s in (0, 14)] == [0.0, 0.0]  # the first 15 steps copy the student
    assert ema_alpha(15) == 0.5 and ema_alpha(29) == 0.5 and ema_alpha(30) == pytest.approx(2 / 3)
    assert ema_alpha(1484) == pytest.approx(1 - 1 / 99) and ema_alpha(1485) == 0.99 and ema_alpha(10**6) == 0.99
    assert ema_alpha(7, decay=0.9, every=1) == 0.875 and ema_alpha(100, decay=0.9, every=1) == 0.9


def test_update_teacher_averages_parameters_and_in_default_mode_buffers():
    from gazecli.core.models.ema import EMAPair

    def net(value):
        m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
        for t in [*m.parameters(), *m.buffers()]:
            if t.dtype.is_floating_point:
                t.data.fill_(value)
        return m

    pair = EMAPair(net(1.0), net(3.0))
    pair.update_teacher(0.75)
    assert all(torch.allclose(p, torch.full_like(p, 0.75 * 3 + 0.25 * 1)) for p in pair.teacher.parameters())
    assert torch.allclose(pair.teacher[1].running_mean, torch.full((2,), 2.5))
    assert not any(p.requires_grad for p in pair.teacher.parameters())
    pair.train()
    assert pair.student.training and not pair.teacher.training  # the default teacher is always in eval mode
    official = EMAPair(net(1.0), net(3.0), teacher_train_mode=True)
    official.update_teacher(0.5, buffers=False)  # --compat: parameters only
    assert torch.allclose(official.teacher[0].weight, torch.full_like(official.teacher[0].weight, 2.0))
    assert torch.allclose(official.teacher[1].running_mean, torch.full((2,), 3.0))
    official.train()
    assert official.teacher.training


def test_consistency_rampup_numbers():
    from gazecli.core.losses import consistency_weight

    assert consistency_weight(0) == pytest.approx(26.9518, abs=1e-4) == 4000 * math.exp(-5)
    assert consistency_weight(1) == pytest.approx(4000 * math.exp(-5 * 0.8**2))
    assert consistency_weight(5) == consistency_weight(7) == 4000.0
    assert consistency_weight(3, 10.0, 0) == 10.0


def test_kl_consistency_is_kl_of_the_pixel_softmaxes():
    from gazecli.core.losses import consistency_loss

    g = torch.Generator().manual_seed(0)
    s, t = torch.rand(3, 1, 4, 4, generator=g), torch.rand(3, 1, 4, 4, generator=g)
    mask = torch.tensor([True, False, True])
    p, q = torch.softmax(t.flatten(1), 1), torch.softmax(s.flatten(1), 1)
    kl = (p * (p / q).log()).sum(1)
    assert consistency_loss(s, t, mask, "kl").item() == pytest.approx(kl[mask].mean().item(), rel=1e-5)
    assert consistency_loss(s, s, mask, "kl").item() == pytest.approx(0.0, abs=1e-7)
    assert consistency_loss(s, t, mask, "mse").item() == pytest.approx(((s - t) ** 2).flatten(1).mean(1)[mask].mean().item())


def _tiny_pair_and_batch():
    from gazecli.core.models import build_model

    torch.manual_seed(0)
    config = {"encoder": {"backbone": "tiny", "input_size": 32, "face_size": 16, "heatmap_size": 16, "inout": False},
              "denoiser": {"image_size": 16, "model_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
                           "attention_resolutions": [8], "num_heads": 2, "norm_groups": 8},
              "scheduler": {"num_train_timesteps": 500, "scale": 2.0}}
    pair = build_model("diffusion-mean-teacher", config)
    with torch.no_grad():  # the zero-initialised output layers would make every map constant
        for p in pair.student.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    pair.teacher.load_state_dict(pair.student.state_dict())
    pair.train()
    g = torch.Generator().manual_seed(1)
    b = 6
    batch = {"scene": torch.randn(b, 3, 32, 32, generator=g), "head_channel": torch.rand(b, 1, 32, 32, generator=g),
             "face": torch.randn(b, 3, 16, 16, generator=g), "heatmap": torch.rand(b, 1, 16, 16, generator=g),
             "inout": torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0]),
             "labelled": torch.tensor([False, False, False, True, True, True]),
             "gaze_xy_norm": torch.rand(b, 2, generator=g)}
    batch.update({f"{k}_2": batch[k] + 0.1 for k in ("scene", "head_channel", "face")})
    return pair, batch


@pytest.mark.parametrize("compat", [False, True])
def test_default_loss_never_reads_unlabelled_labels(world, compat):
    from gazecli.core.diffusion import HeatmapScheduler
    from gazecli.core.stages.mean_teacher import mean_teacher_loss

    settings = load_settings(MeanTeacherSettings, {"data": world, "teacher_steps": 2, "compat": compat})
    pair, batch = _tiny_pair_and_batch()
    loss_fn = mean_teacher_loss(HeatmapScheduler(compat=compat), settings)

    def loss(b):
        ctx = StepContext(step=1, epoch=2, device=torch.device("cpu"), generator=torch.Generator().manual_seed(5))
        return loss_fn(pair, b, ctx)[0].item()

    clean = loss(batch)
    unlabelled = ~batch["labelled"]
    poisoned = dict(batch)
    poisoned["heatmap"] = batch["heatmap"].clone()
    poisoned["heatmap"][unlabelled] = float("nan") if not compat else 0.0
    poisoned["inout"] = torch.where(unlabelled, 1.0 - batch["inout"], batch["inout"])  # flip their in/out
    poisoned["gaze_xy_norm"] = torch.full_like(batch["gaze_xy_norm"], float("nan"))
    if compat:  # the official masks use the ground-truth in/out of unlabelled persons: the loss changes
        assert loss(poisoned) != pytest.approx(clean, rel=1e-6)
    else:
        assert math.isfinite(clean) and loss(poisoned) == clean


def test_two_views_share_crop_and_flip(world):
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.transforms import SampleConfig
    from gazecli.core.stages.mean_teacher import TwoViewDataset

    table = read_gazefollow(world, "train")
    labelled = np.arange(len(table)) % 2 == 0
    cfg = SampleConfig(input_size=32, face_size=16, heatmap_size=16, sigma=1.0, augment=True, crop_prob=1.0,
                       jitter_prob=1.0, jitter_max=0.5, colour_prob=0.0)
    ds = TwoViewDataset(table, cfg, labelled=labelled, seed=1)
    samples = [ds[i] for i in range(6)]
    for i, s in enumerate(samples):
        assert torch.equal(s["scene"], s["scene_2"])  # same crop and flip, no colour: the same image
        if not labelled[i]:
            assert s["inout"].item() == -1 and not s["heatmap"].any()  # labels stay hidden
    assert sum(not torch.equal(s["face"], s["face_2"]) for s in samples) >= 4  # each view its own head-box jitter


# ------------------------------------------------------------------------------------- mean-teacher runs
class Interrupt(Exception):
    pass


class StopAt(SilentReporter):
    def __init__(self, step):
        self.stop, self.seen = step, 0

    def step(self, done, n_steps, logs):
        self.seen += 1
        if self.seen == self.stop:
            raise Interrupt


def test_mean_teacher_saves_both_networks_and_resumes_exactly(world, tmp_path):
    from gazecli.core.stages.mean_teacher import mean_teacher

    args = ["--data", world, "--epochs", "1", *TINY, *MT, "--project", tmp_path, "--checkpoint-every", "3"]
    code, out, err = run_cli("mean-teacher", *args, "--name", "full")
    assert code == 0, err
    full = tmp_path / "mean-teacher" / "full"
    assert "teacher (selected)" in out
    epochs = csv_rows(full / "metrics.csv")
    assert {"train_x0_loss", "train_consistency", "val_teacher_auc", "val_student_auc", "val_avg_l2"} <= set(epochs[0])
    assert float(epochs[0]["train_consistency_weight"]) == pytest.approx(26.9518, abs=1e-3)
    best, meta, _ = load_checkpoint(full / "weights" / "best.safetensors")
    assert meta["model"]["name"] == "diffusion-mean-teacher" and meta["network"] == "teacher"
    assert any(k.startswith("student.unet.") for k in best) and any(k.startswith("teacher.unet.") for k in best)
    test = json.loads((full / "test_metrics.json").read_text())
    assert {"teacher_auc", "student_auc", "auc"} <= set(test) and test["auc"] == test["teacher_auc"]

    # killed after the mid-epoch checkpoint of step 3, then `--resume` alone: the same run
    flags = {k.lstrip("-").replace("-", "_"): v for k, v in zip(args[::2], args[1::2])}
    settings = load_settings(MeanTeacherSettings, {**flags, "channel_mult": "1,2", "attention_resolutions": "8",
                                                   "name": "killed"})
    with pytest.raises(Interrupt):
        mean_teacher(settings, StopAt(4))
    killed = tmp_path / "mean-teacher" / "killed"
    assert json.loads((killed / "weights" / "last.json").read_text())["step"] == 3
    code, out, err = run_cli("mean-teacher", "--resume", killed)
    assert code == 0, err
    assert "resuming" in out
    assert csv_rows(killed / "steps.csv") == csv_rows(full / "steps.csv")
    a, _, _ = load_checkpoint(killed / "weights" / "last.safetensors")
    b, _, _ = load_checkpoint(full / "weights" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)

    # eval --checkpoint runs the selected network (the teacher) and reproduces its test numbers
    code, _, err = run_cli("eval", "--checkpoint", full, "--data", world, "--device", "cpu", "-o", tmp_path / "e.json")
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["avg_l2"] == pytest.approx(test["teacher_avg_l2"], abs=1e-9)


def test_mean_teacher_from_a_train_diffusion_checkpoint(world, diffusion_run, tmp_path):
    code, out, err = run_cli("mean-teacher", "--data", world, "--epochs", "1", *TINY, *MT, "--from", diffusion_run,
                             "--project", tmp_path, "--name", "mt")
    assert code == 0, err
    assert "start from" in out
    code, _, err = run_cli("mean-teacher", "--data", world, "--epochs", "1", *TINY, *MT, "--from", diffusion_run,
                           "--model-channels", "32", "--project", tmp_path)
    assert code != 0 and "other sizes" in err and "model_channels" in err
