"""`gaze predict` / `gazecli.Predictor` on images, folders, videos; given and detected heads."""

from __future__ import annotations

import json

import cv2
import pytest

from gazecli.core.data.gazeworld import synthesize_gazeworld
from tests.helpers import run_cli, write_image

TINY = ["--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--batch-size", "8",
        "--device", "cpu", "--epochs", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    world = base / "gw"
    synthesize_gazeworld(world, 24, 4, seed=1, size=64)
    code, _, err = run_cli("train-student", "--data", world, "--ratio", "1.0", *TINY, "--project", base, "--name", "m")
    assert code == 0, err
    return base / "train-student" / "m", world


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_image_with_given_heads_equals_the_evaluation_path(trained, tmp_path):
    run, world = trained
    image = world / "test2/00000000/00000001.png"
    code, out, err = run_cli("predict", image, "--checkpoint", run, "--head", "5,6,12,14", "--head", "30,20,10,10",
                             "--project", tmp_path, "--device", "cpu")
    assert code == 0, err
    folder = tmp_path / "predict" / "run"
    records = lines(folder / "predictions.jsonl")
    assert [r["person"] for r in records] == [0, 1]
    assert records[0]["head_box_xyxy_px"] == [5.0, 6.0, 17.0, 20.0] and records[0]["head_source"] == "given"
    assert all(0 <= v <= 1 for r in records for v in r["point_xy_norm"])
    assert records[0]["point_xy_px"] == pytest.approx([records[0]["point_xy_norm"][0] * 64,
                                                       records[0]["point_xy_norm"][1] * 64], abs=0.01)
    overlay = cv2.imread(str(folder / "00000001_gaze.png"))  # the input's extension kept
    assert overlay is not None and overlay.shape == (64, 64, 3)
    # the Python API gives the same point
    from gazecli import Predictor

    people = Predictor(run, device="cpu").predict(image, heads=["5,6,12,14"])
    assert people[0].point_xy_norm == pytest.approx(records[0]["point_xy_norm"])
    assert people[0].heatmap.shape == (16, 16) and people[0].heatmap.max() == pytest.approx(1.0)


def test_detected_heads_on_a_real_photo(trained, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    run, _ = trained
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    code, out, err = run_cli("predict", photo, "--checkpoint", run, "--project", tmp_path, "--device", "cpu",
                             "--detector", "cascade")
    assert code == 0, err
    records = lines(tmp_path / "predict" / "run" / "predictions.jsonl")
    assert records and all(r["head_source"] == "detected" for r in records)
    x1, y1, x2, y2 = records[0]["head_box_xyxy_px"]
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # her face
    assert "detected with OpenCV" in out


def test_no_face_found_is_reported(trained, tmp_path):
    run, _ = trained
    blank = write_image(tmp_path / "in" / "flat.png", 80, 60)
    code, out, err = run_cli("predict", blank.parent, "--checkpoint", run, "--project", tmp_path, "--device", "cpu")
    assert code == 0, err
    assert "no head found in 1 input(s)" in out and "--head x,y,w,h" in out


def test_folder_with_a_heads_csv_and_a_video(trained, tmp_path):
    run, world = trained
    folder = world / "test2/00000000"
    csv_file = tmp_path / "heads.csv"
    csv_file.write_text("file,x,y,w,h\n00000000.png,5,5,10,10\n00000000.png,40,30,10,10\n00000002.png,20,20,8,8\n")
    code, _, err = run_cli("predict", folder, "--checkpoint", run, "--heads-csv", csv_file, "--project", tmp_path,
                           "--name", "csv", "--device", "cpu")
    assert code == 0, err
    records = [r for r in lines(tmp_path / "predict" / "csv" / "predictions.jsonl") if "person" in r]
    assert [(r["image"].rsplit("/", 1)[-1], r["person"]) for r in records] == [
        ("00000000.png", 0), ("00000000.png", 1), ("00000002.png", 0)]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for i in range(6):
        writer.write(cv2.imread(str(folder / f"0000000{i % 4}.png")))
    writer.release()
    code, _, err = run_cli("predict", video, "--checkpoint", run, "--head", "5,5,12,12", "--every", "2",
                           "--project", tmp_path, "--name", "vid", "--device", "cpu")
    assert code == 0, err
    records = lines(tmp_path / "predict" / "vid" / "predictions.jsonl")
    assert [r["frame"] for r in records] == [0, 2, 4]
    cap = cv2.VideoCapture(str(tmp_path / "predict" / "vid" / "clip_gaze.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


@pytest.mark.parametrize("args,code,message", [
    (["--head", "10,10,0,5"], 2, "--head '10,10,0,5': width and height must be positive"),
    (["--head", "100,100,5,5"], 2, "lies outside the 64x64 image"),
    (["--head", "a,b"], 2, "expected x,y,w,h in pixels"),
])
def test_bad_heads(trained, tmp_path, args, code, message):
    run, world = trained
    got, _, err = run_cli("predict", world / "test2/00000000/00000001.png", "--checkpoint", run, *args,
                          "--project", tmp_path, "--device", "cpu")
    assert got == code and message in err and len(err.strip().splitlines()) == 1


def test_bad_inputs(trained, tmp_path):
    run, world = trained
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    code, _, err = run_cli("predict", broken, "--checkpoint", run, "--head", "1,1,5,5", "--project", tmp_path)
    assert code == 1 and "cannot decode image" in err
    code, _, err = run_cli("predict", tmp_path / "nothing.png", "--checkpoint", run, "--project", tmp_path)
    assert code == 2 and "SOURCE not found" in err
    code, _, err = run_cli("predict", world / "test2/00000000/00000001.png", "--checkpoint", tmp_path / "x.safetensors",
                           "--head", "1,1,5,5", "--project", tmp_path)
    assert code == 1 and "checkpoint not found" in err
