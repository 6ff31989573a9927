"""VideoAttentionTarget: per-track files, out-of-frame frames, smoothing, and the VAT protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gazecli.core.data.videoatt import read_videoatt, smooth_boxes
from gazecli.core.errors import DataError
from gazecli.core.predictions import Predictions, save_predictions
from tests import reference
from tests.helpers import run_cli, write_image

sklearn = pytest.importorskip("sklearn.metrics")

W, H = 160, 120


def make_vat(root, body: bool = False):
    rng = np.random.default_rng(0)
    folder = "annotations_body" if body else "annotations"
    for show, clip, n_frames, persons in (("ShowA", "1", 14, 2), ("Show B", "7", 5, 1)):
        for f in range(n_frames):
            write_image(root / "images" / show / clip / f"{f:05d}.jpg", W, H, seed=f)
        for p in range(persons):
            lines = []
            for f in range(n_frames):
                x1, y1 = 10 + 3 * f + 40 * p, 20 + 2 * p
                gx, gy = (-1, -1) if f % 4 == 3 else (float(rng.uniform(0, W)), float(rng.uniform(0, H)))
                if f == 2:
                    gx = -0.5  # slightly negative: clipped to 0, in frame
                cells = [f"{f:05d}.jpg", x1, y1, x1 + 20, y1 + 24, gx, gy]
                if body:
                    cells += [x1 - 5, y1 - 2, x1 + 30, y1 + 80]
                lines.append(",".join(str(c) for c in cells))
            track = root / folder / "test" / show / clip / f"s{p:02d}.txt"
            track.parent.mkdir(parents=True, exist_ok=True)
            track.write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("body", [False, True])
def test_reader(tmp_path, body):
    root = make_vat(tmp_path / "vat", body)
    t = read_videoatt(root, "test")
    assert len(t) == 14 * 2 + 5 and len(np.unique(t.track)) == 3
    assert t.path[0].startswith("images/") and (root / t.path[0]).is_file()
    assert (t.inout == 0).sum() == 3 + 3 + 1
    assert np.isnan(t.gaze_xy_norm[t.inout == 0]).all() and np.isfinite(t.gaze_xy_norm[t.inout == 1]).all()
    assert (t.image_size_wh == (W, H)).all()
    assert t.has_body.all() == body
    # head boxes of a track are smoothed (11-frame moving average, edges replicated) ...
    track = np.array([p.startswith("images/ShowA/") and s.startswith("s00.txt") for p, s in zip(t.path, t.source)])
    raw = np.array([[10 + 3 * f, 20, 30 + 3 * f, 44] for f in range(14)], dtype=float)
    assert np.allclose(t.head_box_xyxy_px[track], smooth_boxes(raw))
    assert t.head_box_xyxy_px[track][0, 0] == pytest.approx(np.mean([10 + 3 * max(0, f) for f in range(-5, 6)]))
    # ... while the join key is the raw box centre
    assert t.eye_xy_norm[track][0] == pytest.approx([20 / W, 32 / H])
    assert t.gaze_xy_norm[track][2, 0, 0] == 0.0  # -0.5 clipped to 0


def test_bad_track_file(tmp_path):
    root = make_vat(tmp_path / "vat")
    bad = root / "annotations/test/ShowA/1/s00.txt"
    lines = bad.read_text().splitlines()
    lines[4] = "00004.jpg,10,20,5,44,3,3"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"^s00.txt:5: head box \(10, 20, 5, 44\) has zero or negative area"):
        read_videoatt(root, "test")
    assert len(read_videoatt(root, "test", skip_invalid=True)) == 14 * 2 + 5 - 1


def test_eval_with_the_vat_protocol(tmp_path):
    root = make_vat(tmp_path / "vat")
    t = read_videoatt(root, "test")
    rng = np.random.default_rng(1)
    heatmaps = rng.random((len(t), 64, 64)).astype(np.float32)
    scores = rng.random(len(t))
    order = rng.permutation(len(t))  # the file's order does not matter
    save_predictions(tmp_path / "p.npz", Predictions(t.path[order].astype(str), t.eye_xy_norm[order],
                                                      heatmaps[order], scores[order]))
    code, out, err = run_cli("eval", "--predictions", tmp_path / "p.npz", "--data", root, "--out", tmp_path / "m.json")
    assert code == 0, err
    result = json.loads((tmp_path / "m.json").read_text())
    inside = t.inout == 1
    refs = [reference.vat_frame(h, g) for h, g in zip(heatmaps[inside], t.gaze_xy_norm[inside, 0])]
    assert result["auc"] == pytest.approx(np.mean([r["auc"] for r in refs]), abs=1e-9)
    assert result["l2"] == pytest.approx(np.mean([r["l2"] for r in refs]), abs=1e-9)
    assert result["ap"] == pytest.approx(sklearn.average_precision_score(t.inout, scores), abs=1e-9)
    assert result["n"] == int(inside.sum()) and result["protocol"]["dataset"] == "videoatt"
