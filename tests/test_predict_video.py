"""Video: heads tracked across frames with stable ids, one-off detections dropped, JSON lines
per frame, an output video and a per-track summary."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from gazecli.core.predict.tracking import HeadTracker
from tests.helpers import run_cli
from tests.test_predict import trained  # noqa: F401 - the module's tiny trained student

FLAT = np.full((64, 64), 128, np.uint8)  # no corners: boxes stay where detection put them


def test_ids_are_stable_and_one_off_detections_are_dropped():
    t = HeadTracker()
    a, b, ghost = [10, 10, 20, 20], [40, 10, 50, 20], [30, 40, 36, 46]
    assert t.step(FLAT, [a, b]) == [] and t.wants_detection  # both tentative
    ids = {tuple(x.box_xyxy_px): x.id for x in t.step(FLAT, [b, a])}  # found again, listed the other way
    assert ids == {tuple(map(float, a)): 0, tuple(map(float, b)): 1}
    assert [x.id for x in t.step(FLAT, None)] == [0, 1]  # between detections
    present = t.step(FLAT, [[11, 10, 21, 20], ghost, [41, 11, 51, 21]])  # a ghost appears once
    assert sorted(x.id for x in present) == [0, 1] and t.wants_detection
    present = t.step(FLAT, [[41, 11, 51, 21], [12, 10, 22, 20]])
    assert sorted(x.id for x in present) == [0, 1] and not t.wants_detection  # the ghost is gone
    assert {x.id: x.box_xyxy_px[0] for x in present} == {0: 12.0, 1: 41.0}
    # person 1 leaves: missed at 2 detections in a row ends it; a newcomer gets a new id, never an old one
    t.step(FLAT, [[12, 10, 22, 20]])
    assert sorted(x.id for x in t.step(FLAT, [[12, 10, 22, 20]])) == [0]
    t.step(FLAT, [[12, 10, 22, 20], [40, 10, 50, 20]])
    assert sorted(x.id for x in t.step(FLAT, [[12, 10, 22, 20], [40, 10, 50, 20]])) == [0, 2]


def test_boxes_follow_the_image_between_detections():
    skimage_data = pytest.importorskip("skimage.data")
    gray = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)
    t = HeadTracker(min_hits=1)
    face = [178.0, 75.0, 268.0, 185.0]
    t.step(gray, [face])
    moved = np.roll(np.roll(gray, 7, axis=1), -4, axis=0)  # the picture moves 7 px right, 4 px up
    box = t.step(moved, None)[0].box_xyxy_px
    assert box == pytest.approx([face[0] + 7, face[1] - 4, face[2] + 7, face[3] - 4], abs=1.0)


def moving_astronaut(path, n: int = 12, side: int = 256):
    skimage_data = pytest.importorskip("skimage.data")
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (side, side))
    for i in range(n):
        shift = np.float32([[1, 0, 3 * i - 15], [0, 1, 0]])
        frame = cv2.warpAffine(photo, shift, (512, 512), borderMode=cv2.BORDER_REFLECT)
        writer.write(cv2.resize(frame, (side, side), interpolation=cv2.INTER_AREA))
    writer.release()
    return path


@pytest.mark.parametrize("detector", ["cascade", "mtcnn"])
def test_video_with_detected_heads(trained, tmp_path, detector):  # noqa: F811
    if detector == "mtcnn":
        pytest.importorskip("facenet_pytorch")
    run, _ = trained
    video = moving_astronaut(tmp_path / "clip.mp4")
    code, out, err = run_cli("predict", video, "--checkpoint", run, "--detector", detector, "--detect-every", "4",
                             "--project", tmp_path, "--name", "v", "--device", "cpu", "--save-heatmaps")
    assert code == 0, err
    folder = tmp_path / "predict" / "v"
    records = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert {r["track"] for r in records} == {0}  # one person, one id, no ghosts
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames)) and frames[0] <= 1 and frames[-1] == 11  # confirmed by frame 1, kept
    x1, y1, x2, y2 = records[-1]["head_box_xyxy_px"]
    assert 70 < (x1 + x2) / 2 < 150 and 20 < (y1 + y2) / 2 < 100  # her head (the 256 px frame)
    cap = cv2.VideoCapture(str(folder / "clip_gaze.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    with np.load(folder / "predictions.npz") as data:
        assert len(data["path"]) == len(records) and data["path"][0].startswith("clip.mp4#")
    # the summary is one row per person track, not one per frame
    assert "gaze per person track" in out and out.count("\n") < 20
    assert "12 frames predicted" in out and "1 person track(s)" in out
