"""`gaze data import`: a user's own labels become a GazeFollow-layout dataset that checks and trains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from tests.helpers import run_cli, write_image

TINY = ["--backbone", "tiny", "--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0",
        "--batch-size", "4", "--device", "cpu", "--epochs", "1"]


@pytest.fixture
def labelled(tmp_path):
    """12 images (two in a subfolder, sizes vary), 14 persons: one image with two, two looking outside."""
    images = tmp_path / "photos"
    rows = ["image,head_x,head_y,head_w,head_h,gaze_x,gaze_y,eye_x,eye_y"]
    for i in range(12):
        name = f"{'sub/' if i < 2 else ''}img{i:02d}.jpg"
        width, height = 96 + 8 * i, 80
        write_image(images / name, width, height, seed=i)
        rows.append(f"{name},10,12,20,24,{width - 10},{70},,")
        if i == 3:
            rows.append(f"{name},50,10,20,20,outside,outside,60,18")
        if i == 5:
            rows.append(f"{name},40,30,16,16,,,,")  # empty gaze: outside too
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "labels.csv", images


def test_import_checks_splits_and_trains(labelled, tmp_path):
    labels, images = labelled
    root = tmp_path / "mine"
    code, out, err = run_cli("data", "import", labels, "--images", images, "--out", root, "--test-fraction", "0.25",
                             "--seed", "3")
    assert code == 0, err
    train, test = read_gazefollow(root, "train"), read_gazefollow(root, "test")
    assert len(train) + len(test) == 14 and len(np.unique(test.path)) == 3  # 25 % of 12 images
    assert (train.inout == 0).sum() == 2 and (test.inout == 1).all()  # outside persons stay in train
    assert not {"train/img03.jpg", "train/img05.jpg"} - set(train.path)
    # the numbers survive: a person of img07 (width 152)
    row = next(i for t in (train, test) for i, p in enumerate(t.path) if p.endswith("img07.jpg"))
    table = train if any(p.endswith("img07.jpg") for p in train.path) else test
    assert table.head_box_xyxy_px[row].tolist() == [10.0, 12.0, 30.0, 36.0]
    assert table.eye_xy_norm[row] == pytest.approx([20 / 152, 24 / 80], abs=1e-6)
    assert np.nanmean(table.gaze_xy_norm[row], axis=0) == pytest.approx([142 / 152, 70 / 80], abs=1e-6)
    assert (root / "train" / "sub" / "img00.jpg").is_file() or (root / "test2" / "sub" / "img00.jpg").is_file()
    code, _, err = run_cli("data", "check", root)
    assert code == 0, err
    # the same seed draws the same test images
    code, _, err = run_cli("data", "import", labels, "--images", images, "--out", tmp_path / "again",
                           "--test-fraction", "0.25", "--seed", "3")
    assert code == 0, err
    assert sorted(read_gazefollow(tmp_path / "again", "test").path) == sorted(test.path)
    # and a student trains on it
    code, _, err = run_cli("train-student", "--data", root, "--ratio", "1.0", *TINY, "--project", tmp_path)
    assert code == 0, err


def test_json_labels(tmp_path):
    images = tmp_path / "im"
    for i in range(3):
        write_image(images / f"{i}.png", 64, 64, seed=i)
    items = [{"image": f"{i}.png", "head_xywh_px": [5, 5, 10, 10], "gaze_xy_px": [50, 40]} for i in range(3)]
    items.append({"image": "1.png", "head_xywh_px": [40, 5, 10, 10], "gaze_xy_px": "outside", "eye_xy_px": [45, 9]})
    (tmp_path / "l.json").write_text(json.dumps(items))
    code, _, err = run_cli("data", "import", tmp_path / "l.json", "--images", images, "--out", tmp_path / "r")
    assert code == 0, err
    assert len(read_gazefollow(tmp_path / "r", "train")) + len(read_gazefollow(tmp_path / "r", "test")) == 4


def test_every_problem_is_reported(tmp_path):
    images = tmp_path / "im"
    write_image(images / "a.png", 64, 48)
    (images / "broken.png").write_bytes(b"nope")
    (tmp_path / "l.csv").write_text(
        "image,head_x,head_y,head_w,head_h,gaze_x,gaze_y\n"
        "a.png,50,10,20,20,10,10\n"          # head box leaves the image
        "a.png,5,5,10,10,70,10\n"            # gaze outside the image
        "missing.png,5,5,10,10,1,1\n"
        "a.png,5,5,x,10,1,1\n"
        "a.png,5,5,10,10,up,left\n"         # two problems
        "../a.png,5,5,10,10,1,1\n"
        "broken.png,5,5,10,10,1,1\n")
    code, _, err = run_cli("data", "import", tmp_path / "l.csv", "--images", images, "--out", tmp_path / "r")
    assert code == 1 and len(err.strip().splitlines()) == 1
    for message in ("8 problem(s)", "l.csv:2: head box (50, 10, 20, 20) leaves the 64x48 image",
                    "l.csv:3: gaze point (70, 10) lies outside the 64x48 image", "l.csv:4:", "image not found",
                    "l.csv:5: head w is not a number ('x')", "l.csv:6: gaze x is not a number ('up')",
                    "l.csv:7: image path '../a.png' is empty, absolute or outside --images", "l.csv:8:"):
        assert message in err, message
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli("data", "import", tmp_path / "l.csv", "--images", images, "--out", images)
    assert code == 2 and "not empty" in err
