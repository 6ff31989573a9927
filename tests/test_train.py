"""The shared engine through `gaze train-student`: run folders, checkpoints, eval, resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.engine.checkpoint import load_checkpoint
from tests.helpers import csv_rows, run_cli

TINY = ["--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--batch-size", "8",
        "--lr", "1e-3", "--device", "cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "gw"
    synthesize_gazeworld(root, 48, 10, seed=4, size=64)
    return root



def test_run_folder_checkpoints_and_eval(world, tmp_path):
    code, out, err = run_cli("train-student", "--data", world, "--ratio", "0.5", "--epochs", "2", *TINY,
                             "--project", tmp_path / "runs", "--name", "sup")
    assert code == 0, err
    run = tmp_path / "runs" / "train-student" / "sup"
    for f in ("settings.toml", "metrics.csv", "steps.csv", "curves.png", "test_metrics.json",
              "weights/last.safetensors", "weights/last.json", "weights/best.safetensors", "weights/best.json"):
        assert (run / f).is_file(), f
    epochs = csv_rows(run / "metrics.csv")
    assert [r["epoch"] for r in epochs] == ["1", "2"]
    assert {"train_loss", "val_auc", "val_avg_l2", "lr", "images_per_s"} <= set(epochs[0])
    steps = csv_rows(run / "steps.csv")
    assert int(steps[-1]["step"]) == int(epochs[-1]["step"]) == len(steps)
    state, meta, training = load_checkpoint(run / "weights" / "last.safetensors")
    # the GazeWorld preset's student
    assert meta["model"]["name"] == "gw-student" and meta["epoch_next"] == 2 and training["optimizer"]["state"]
    best_state, best_meta, best_training = load_checkpoint(run / "weights" / "best.safetensors")
    assert best_training is None and json.loads((run / "weights" / "best.json").read_text())["step"] == best_meta["step"]
    assert str(run) in out  # the command says where everything went
    # the next run with the same name gets a new folder
    code, _, err = run_cli("train-student", "--data", world, "--ratio", "0.5", "--epochs", "1", *TINY,
                           "--project", tmp_path / "runs", "--name", "sup")
    assert code == 0 and (tmp_path / "runs" / "train-student" / "sup2").is_dir()

    # eval --checkpoint reproduces the final test metrics and writes predictions that
    # eval --predictions scores identically
    test = json.loads((run / "test_metrics.json").read_text())
    code, _, err = run_cli("eval", "--checkpoint", run, "--data", world, "--device", "cpu", "-o", tmp_path / "e.json")
    assert code == 0, err
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["auc"] == pytest.approx(test["auc"], abs=1e-12)
    assert again["avg_l2"] == pytest.approx(test["avg_l2"], abs=1e-12)
    code, _, err = run_cli("eval", "--predictions", tmp_path / "e.npz", "--data", world, "-o", tmp_path / "p.json")
    assert code == 0, err
    scored = json.loads((tmp_path / "p.json").read_text())
    assert (scored["auc"], scored["avg_l2"], scored["min_l2"]) == (again["auc"], again["avg_l2"], again["min_l2"])
    code, _, err = run_cli("eval", "--checkpoint", run, "--data", world, "--split", "val", "--device", "cpu",
                           "-o", tmp_path / "v.json")
    assert code == 0, err
    assert json.loads((tmp_path / "v.json").read_text())["split"] == "val"


def test_same_seed_same_losses(world, tmp_path):
    for name in ("a", "b"):
        code, _, err = run_cli("train-student", "--data", world, "--ratio", "0.5", "--epochs", "1", *TINY,
                               "--project", tmp_path, "--name", name, "--seed", "3")
        assert code == 0, err
    a = csv_rows(tmp_path / "train-student" / "a" / "steps.csv")
    b = csv_rows(tmp_path / "train-student" / "b" / "steps.csv")
    assert a == b and len(a) > 1


def test_nan_loss_stops_with_a_clear_message(world, tmp_path):
    code, _, err = run_cli("train-student", "--data", world, "--ratio", "0.5", "--epochs", "1", *TINY,
                           "--project", tmp_path, "--lr", "1e30")
    assert code == 1
    assert "the loss is" in err and "stopped" in err and len(err.strip().splitlines()) == 1


def _train_cmd(world, project, name, extra=()):
    return [sys.executable, "-m", "gazecli", "train-student", "--data", str(world), "--ratio", "1.0",
            "--epochs", "3", *TINY, "--project", str(project), "--name", name, "--checkpoint-every", "2", *extra]


def test_kill_and_resume_equals_an_uninterrupted_run(world, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = subprocess.run(_train_cmd(world, tmp_path, "full"), capture_output=True, text=True, env=env)
    assert full.returncode == 0, full.stderr
    run = tmp_path / "train-student" / "killed"
    proc = subprocess.Popen(_train_cmd(world, tmp_path, "killed"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    sidecar = run / "weights" / "last.json"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill right after the first mid-epoch checkpoint of epoch 2
        if sidecar.is_file():
            try:
                meta = json.loads(sidecar.read_text())
            except json.JSONDecodeError:
                meta = {}
            if meta.get("epoch_next") == 1 and meta.get("skip", 0) > 0:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # it was still running: killed mid-epoch
    assert len(csv_rows(run / "metrics.csv")) < 3
    resumed = subprocess.run([sys.executable, "-m", "gazecli", "train-student", "--resume", str(run)],
                             capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert csv_rows(run / "steps.csv") == csv_rows(tmp_path / "train-student" / "full" / "steps.csv")
    a, _, _ = load_checkpoint(run / "weights" / "last.safetensors")
    b, _, _ = load_checkpoint(tmp_path / "train-student" / "full" / "weights" / "last.safetensors")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in b)


def _stop_after_a_checkpoint_then_resume(world, tmp_path, monkeypatch, extra: list, mid_epoch: bool):
    """An uninterrupted 2-epoch run and one stopped (Ctrl-C) right after its first mid-epoch
    (`mid_epoch`) or end-of-epoch checkpoint of epoch 1, checked for what the stop left, then resumed:
    (metrics.csv rows of the full run, of the cut run after its resume)."""
    from gazecli.core.engine import trainer

    args = ["train-student", "--data", world, "--ratio", "1.0", "--epochs", "2", *TINY, "--project", tmp_path, *extra]
    code, _, err = run_cli(*args, "--name", "full")
    assert code == 0, err
    real = trainer.save_checkpoint

    def save_then_stop(path, model_state, meta, state=None):
        written = real(path, model_state, meta, state)
        if state is not None and meta["epoch_next"] == 1 and (meta["skip"] > 0) == mid_epoch:
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_stop)
    code, _, _ = run_cli(*args, "--name", "cut")
    assert code == 130
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    run = tmp_path / "train-student" / "cut"
    assert [r["epoch"] for r in csv_rows(run / "metrics.csv")] == ["1"]  # epoch 1 done either way
    code, out, err = run_cli("train-student", "--resume", run)
    assert code == 0 and "resuming" in out, err
    return csv_rows(tmp_path / "train-student" / "full" / "metrics.csv"), csv_rows(run / "metrics.csv")


def test_mid_epoch_resume_reports_the_uninterrupted_epoch_mean(world, tmp_path, monkeypatch):
    """The epoch mean loss of a resumed epoch averages all its steps, not only the resumed ones
    (the checkpoint carries the running sums)."""
    full, cut = _stop_after_a_checkpoint_then_resume(world, tmp_path, monkeypatch, ["--checkpoint-every", "2"],
                                                     mid_epoch=True)
    assert [r["epoch"] for r in cut] == ["1", "2"]
    assert [r["train_loss"] for r in cut] == [r["train_loss"] for r in full]


def test_stop_right_after_an_end_of_epoch_checkpoint_keeps_the_epoch_row(world, tmp_path, monkeypatch):
    """Ctrl-C just after the end-of-epoch checkpoint: the resumed run starts at the next epoch, and
    metrics.csv still holds every epoch's row, equal to an uninterrupted run's."""
    full, cut = _stop_after_a_checkpoint_then_resume(world, tmp_path, monkeypatch, [], mid_epoch=False)
    assert [r["epoch"] for r in cut] == ["1", "2"]
    assert [r["train_loss"] for r in cut] == [r["train_loss"] for r in full]


def test_two_process_ddp_with_gloo(world, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "gazecli",
           "train-student", "--data", str(world), "--ratio", "1.0", "--epochs", "2", *TINY,
           "--project", str(tmp_path), "--name", "ddp"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    check = json.loads((tmp_path / "train-student" / "ddp" / "ddp_check.json").read_text())
    assert check["world_size"] == 2
    r0, r1 = sorted(check["ranks"], key=lambda r: r["rank"])
    for epoch in ("0", "1"):
        assert r0["seen"][epoch] and r1["seen"][epoch]
        assert not set(r0["seen"][epoch]) & set(r1["seen"][epoch])  # disjoint shards
    assert r0["weights"] == r1["weights"]  # identical weights at the end
    assert (tmp_path / "train-student" / "ddp" / "weights" / "best.safetensors").is_file()
