"""`gaze predict FOLDER`: mirrored outputs, broken and non-image files, resumable JSON lines,
heatmaps in the prediction-file format that `gaze eval --predictions` reads."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from tests.helpers import run_cli, write_image
from tests.test_predict import trained  # noqa: F401 - the module's tiny trained student


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def messy(tmp_path):
    """a.jpg and a.png (same stem), sub/a.jpg (nested), broken.jpg, notes.txt, .hidden.png."""
    src = tmp_path / "src"
    write_image(src / "a.jpg", 64, 48, seed=1)
    write_image(src / "a.png", 64, 48, seed=2)
    write_image(src / "sub" / "a.jpg", 80, 60, seed=3)
    write_image(src / ".hidden.png", 64, 48, seed=4)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (src / "notes.txt").write_text("not an image")
    return src


def test_same_stem_nested_and_broken_files(trained, messy, tmp_path):  # noqa: F811
    run, _ = trained
    code, out, err = run_cli("predict", messy, "--checkpoint", run, "--head", "5,5,20,20", "--recursive",
                             "--project", tmp_path, "--name", "all", "--device", "cpu")
    assert code == 0, err
    folder = tmp_path / "predict" / "all"
    overlays = {p.relative_to(folder).as_posix() for p in folder.rglob("*_gaze.*")}
    assert overlays == {"a_gaze.jpg", "a_gaze.png", "sub/a_gaze.jpg"}
    assert cv2.imread(str(folder / "sub" / "a_gaze.jpg")).shape == (60, 80, 3)
    # the two a's are different images, so different overlays
    assert not np.array_equal(cv2.imread(str(folder / "a_gaze.jpg")), cv2.imread(str(folder / "a_gaze.png")))
    records = lines(folder / "predictions.jsonl")
    assert sorted({r["path"] for r in records}) == ["a.jpg", "a.png", "broken.jpg", "sub/a.jpg"]
    broken = [r for r in records if r["path"] == "broken.jpg"]
    assert len(broken) == 1 and set(broken[0]) == {"path", "error"} and "cannot decode image" in broken[0]["error"]
    assert "4 input(s): 3 predicted (3 person(s) in all)" in out and "1 could not be read" in out
    # without --recursive the subfolder is left alone
    code, out, err = run_cli("predict", messy, "--checkpoint", run, "--head", "5,5,20,20", "--project", tmp_path,
                             "--name", "flat", "--device", "cpu")
    assert code == 0, err
    assert sorted({r["path"] for r in lines(tmp_path / "predict" / "flat" / "predictions.jsonl")}) == [
        "a.jpg", "a.png", "broken.jpg"]


def test_nothing_readable_is_an_error(trained, tmp_path):  # noqa: F811
    run, _ = trained
    src = tmp_path / "src"
    src.mkdir()
    for name in ("x.png", "y.jpg"):
        (src / name).write_bytes(b"garbage")
    code, _, err = run_cli("predict", src, "--checkpoint", run, "--head", "1,1,5,5", "--project", tmp_path)
    assert code == 1 and "none of the 2 input image(s) could be read" in err and len(err.strip().splitlines()) == 1


def test_a_killed_run_keeps_its_lines_and_resume_skips_them(trained, messy, tmp_path, monkeypatch):  # noqa: F811
    from gazecli.core.stages.predict import Predictor

    run, _ = trained
    real = Predictor.predict_boxes
    calls = []

    def dies_on_the_third_image(self, *args, **kwargs):
        calls.append(args[3])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_boxes", dies_on_the_third_image)
    code, _, err = run_cli("predict", messy, "--checkpoint", run, "--head", "5,5,20,20", "--recursive",
                           "--project", tmp_path, "--name", "k", "--device", "cpu")
    assert code == 130
    folder = tmp_path / "predict" / "k"
    # inputs in order a.jpg, a.png, broken.jpg (error line), sub/a.jpg (killed): three lines made it to disk
    assert [r["path"] for r in lines(folder / "predictions.jsonl")] == ["a.jpg", "a.png", "broken.jpg"]
    with open(folder / "predictions.jsonl", "a") as f:
        f.write('{"path": "sub/a.jpg", "ima')  # a torn line, as a kill in the middle of a write leaves
    monkeypatch.setattr(Predictor, "predict_boxes", real)
    seen = []
    monkeypatch.setattr(Predictor, "predict_boxes", lambda self, *a, **k: seen.append(a[3]) or real(self, *a, **k))
    code, out, err = run_cli("predict", messy, "--checkpoint", run, "--head", "5,5,20,20", "--recursive",
                             "--resume", folder, "--device", "cpu")
    assert code == 0, err
    assert seen == ["sub/a.jpg"]  # only what was not done
    records = lines(folder / "predictions.jsonl")
    assert [r["path"] for r in records] == ["a.jpg", "a.png", "broken.jpg", "sub/a.jpg"]
    assert "3 already done (skipped)" in out


def test_heatmaps_are_a_prediction_file_that_eval_scores(trained, tmp_path):  # noqa: F811
    run, world = trained
    root = tmp_path / "root"  # the test half of the GazeWorld: annotations and test2/ images
    shutil.copytree(world / "test2", root / "test2")
    shutil.copy(world / "test_annotations_release_persondet.txt", root)
    table = read_gazefollow(world, "test")
    heads = tmp_path / "heads.csv"
    with open(heads, "w") as f:
        f.write("file,x,y,w,h,eye_x,eye_y\n")
        for path, (x1, y1, x2, y2), (ex, ey) in zip(table.path, table.head_box_xyxy_px, table.eye_xy_norm):
            values = [float(v) for v in (x1, y1, x2 - x1, y2 - y1, ex, ey)]
            f.write(f"{path}," + ",".join(repr(v) for v in values) + "\n")
    code, _, err = run_cli("predict", root, "--recursive", "--checkpoint", run, "--heads-csv", heads,
                           "--save-heatmaps", "--project", tmp_path, "--name", "p", "--device", "cpu")
    assert code == 0, err
    npz = tmp_path / "predict" / "p" / "predictions.npz"
    with np.load(npz) as data:
        assert sorted(data.files) == ["eye", "heatmap", "inout", "path"] or sorted(data.files) == ["eye", "heatmap", "path"]
        assert len(data["path"]) == len(table)
    code, out, err = run_cli("eval", "--data", root, "--predictions", npz, "--out", tmp_path / "m1.json")
    assert code == 0, err
    code, out, err = run_cli("eval", "--data", root, "--checkpoint", run, "--out", tmp_path / "m2.json",
                             "--device", "cpu")
    assert code == 0, err
    from_file = json.loads((tmp_path / "m1.json").read_text())
    from_model = json.loads((tmp_path / "m2.json").read_text())
    for key in ("avg_l2", "min_l2", "auc"):
        assert from_file[key] == pytest.approx(from_model[key], abs=1e-4), key
