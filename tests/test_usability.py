"""Small things a user meets: Ctrl-C says how to resume, --help shows each preset's defaults,
every validation problem is listed, numbers in messages are plain."""

from __future__ import annotations

import numpy as np
import pytest

from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.errors import DataError
from tests.helpers import csv_rows, run_cli

TINY = ["--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--batch-size", "8",
        "--device", "cpu", "--epochs", "2"]


def test_ctrl_c_during_training_prints_the_resume_command(tmp_path, monkeypatch):
    from gazecli.core.engine.runs import RunDir

    world = tmp_path / "gw"
    synthesize_gazeworld(world, 16, 4, seed=2, size=64)
    real = RunDir.append_steps
    calls = []

    def ctrl_c_at_the_end_of_the_second_epoch(self, rows):  # before its checkpoint
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self, rows)

    monkeypatch.setattr(RunDir, "append_steps", ctrl_c_at_the_end_of_the_second_epoch)
    code, out, err = run_cli("train-student", "--data", world, "--ratio", "1.0", *TINY, "--project", tmp_path,
                             "--name", "r")
    run = tmp_path / "train-student" / "r"
    assert code == 130
    assert err.strip() == f"error: interrupted; continue from the last checkpoint with: gaze train-student --resume {run}"
    monkeypatch.setattr(RunDir, "append_steps", real)
    code, out, err = run_cli("train-student", "--resume", run)  # the printed command works
    assert code == 0, err
    assert [int(r["epoch"]) for r in csv_rows(run / "metrics.csv")] == [1, 2]
    assert (run / "curves.png").is_file()  # matplotlib is a base dependency: curves are always drawn


def test_help_shows_the_defaults_of_each_preset():
    code, out, _ = run_cli("train-student", "--help", env={"COLUMNS": "300"})
    assert code == 0
    text = " ".join(out.split())
    assert "[default: 40 (GazeFollow) / 30 (GazeWorld); with --teacher: 25 (GazeFollow) / 30 (GazeWorld)]" in text
    assert "[default: 0.00025 (GazeFollow) / 0.004 (GazeWorld)]" in text
    assert "[default: resnet50 (GazeFollow) / tiny (GazeWorld)]" in text


def test_every_validation_problem_is_listed(tmp_path):
    synthesize_gazeworld(tmp_path / "gw", 4, 2, seed=1, size=64)
    code, _, err = run_cli("data", "split", tmp_path / "gw", "--ratio", "1.5", "--val-fraction", "-0.5")
    assert code == 2
    assert err.strip() == ("error: --ratio: input should be less than 1 (got 1.5); "
                           "--val-fraction: input should be greater than or equal to 0 (got -0.5)")
    assert "more problem" not in err


def test_numbers_in_messages_are_plain():
    from gazecli.core.data.table import PersonTable
    from gazecli.core.predictions import Predictions, join_predictions

    assert str(DataError(f"value {np.float64(0.53)!r} and {[np.int64(3)]}")) == "value 0.53 and [3]"
    table = PersonTable(dataset="gazefollow", split="test", root=".", path=np.array(["a.png"], dtype=object),
                        eye_xy_norm=np.array([[0.5, 0.25]]), head_box_xyxy_px=np.zeros((1, 4)),
                        body_box_xyxy_px=np.full((1, 4), np.nan), gaze_xy_norm=np.full((1, 1, 2), 0.5),
                        inout=np.ones(1, np.int8), source=np.array(["x:1"], dtype=object))
    predictions = Predictions(np.array(["a.png"]), np.array([[0.53, 0.2]]), np.zeros((1, 4, 4), np.float32))
    with pytest.raises(DataError) as e:
        join_predictions(table, predictions)
    assert "eye (0.53, 0.2)" in str(e.value) and "np." not in str(e.value)
