"""`gaze label --checkpoint`: model suggestions (head boxes and gaze), the uncertain order, and
accepting a suggestion with enter in the browser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="gaze label needs the 'label' extra (starlette, uvicorn, httpx)")
pytest.importorskip("httpx", reason="the API tests use Starlette's TestClient (httpx)")

from starlette.testclient import TestClient  # noqa: E402

from gazecli.core.data.gazefollow import read_gazefollow  # noqa: E402
from gazecli.core.data.gazeworld import synthesize_gazeworld  # noqa: E402
from gazecli.core.label.server import build_app  # noqa: E402
from gazecli.core.label.session import LabelSession  # noqa: E402
from gazecli.core.label.suggest import ModelSuggester, read_suggested_heads  # noqa: E402
from gazecli.core.settings import LabelSettings  # noqa: E402
from gazecli.core.stages.label import open_session  # noqa: E402
from tests.helpers import run_cli  # noqa: E402

TINY = ["--input-size", "64", "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--batch-size", "8",
        "--device", "cpu", "--epochs", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny student, and a folder of 6 GazeWorld images with a heads CSV of their true head boxes."""
    base = tmp_path_factory.mktemp("label-suggest")
    world = base / "gw"
    synthesize_gazeworld(world, 30, 4, seed=2, size=64)
    code, _, err = run_cli("train-student", "--data", world, "--ratio", "1.0", *TINY, "--project", base, "--name", "m")
    assert code == 0, err
    table = read_gazefollow(world, "train")
    images = base / "photos"
    images.mkdir()
    rows = ["file,x,y,w,h"]
    for key in list(dict.fromkeys(table.path))[:6]:
        name = Path(key).name
        (images / name).write_bytes((world / key).read_bytes())
        for box in table.head_box_xyxy_px[table.path == key]:
            rows.append(f"{name},{box[0]},{box[1]},{box[2] - box[0]},{box[3] - box[1]}")
    (base / "heads.csv").write_text("\n".join(rows) + "\n")
    return base / "train-student" / "m", images, base / "heads.csv"


def test_suggestions_are_the_given_heads_with_the_models_gaze(trained, tmp_path):
    checkpoint, images, heads_csv = trained
    heads = read_suggested_heads(heads_csv)
    suggester = ModelSuggester(checkpoint, images, "cpu", heads)
    session = LabelSession(images, tmp_path / "labels")
    try:
        client = TestClient(build_app(session, suggester))
        key = session.order[0]
        r = client.get("/api/suggest", params={"key": key})
        assert r.status_code == 200
        people = r.json()["persons"]
        want = [[x, y, x + w, y + h] for x, y, w, h in ([float(v) for v in line.split(",")[1:]]
                                                         for line in heads_csv.read_text().splitlines()[1:]
                                                         if line.startswith(key + ","))]
        np.testing.assert_allclose([p["head_box_xyxy_px"] for p in people], want, atol=0.01)
        for p in people:
            assert 0 <= p["gaze_xy_px"][0] <= 64 and 0 <= p["gaze_xy_px"][1] <= 64
        # the gaze of a drawn head box equals the prediction for that box
        box = people[0]["head_box_xyxy_px"]
        r = client.post("/api/suggest-gaze", json={"key": key, "head_box_xyxy_px": box})
        assert r.json()["gaze_xy_px"] == people[0]["gaze_xy_px"]
        r = client.post("/api/suggest-gaze", json={"key": key, "head_box_xyxy_px": [5, 5, 5, 9]})
        assert r.status_code == 400 and "the head box is 0.0 x 4.0 px" in r.json()["error"]
        assert client.get("/api/suggest", params={"key": "x.png"}).status_code == 404
        # accepting a suggestion is one journalled action
        p = people[0]
        r = client.post("/api/action", json={"tab": "t", "op": "person", "image": key, "source": "suggested",
                                             "head_box_xyxy_px": p["head_box_xyxy_px"], "gaze_xy_px": p["gaze_xy_px"],
                                             "inout": 1})
        assert r.status_code == 200 and r.json()["image"]["persons"][0]["source"] == "suggested"
        last = json.loads((session.root / "journal.jsonl").read_text().splitlines()[-1])
        assert last["op"] == "person" and last["gaze_xy_px"] == p["gaze_xy_px"]
    finally:
        session.close()
    bare = LabelSession(images, tmp_path / "bare")
    try:
        r = TestClient(build_app(bare)).get("/api/suggest", params={"key": bare.order[0]})
        assert r.status_code == 404 and "start gaze label with --checkpoint" in r.json()["error"]
    finally:
        bare.close()


def test_uncertain_order_puts_the_largest_flip_disagreement_first(trained, tmp_path):
    checkpoint, images, heads_csv = trained
    settings = LabelSettings(images=images, out=tmp_path / "labels", checkpoint=checkpoint, heads_csv=heads_csv,
                             order="uncertain", device="cpu")
    session, suggester = open_session(settings)
    try:
        scores = [suggester.uncertainty(k) for k in session.order]
        assert all(s is not None and s >= 0 for s in scores)
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
        assert sorted(session.order) == sorted(p.name for p in images.iterdir())
    finally:
        session.close()
    random = LabelSettings(images=images, out=tmp_path / "r", order="random", seed=4)
    first, _ = open_session(random)
    again_settings = LabelSettings(images=images, out=tmp_path / "r2", order="random", seed=4)
    first.close()
    again, _ = open_session(again_settings)
    again.close()
    assert first.order == again.order and sorted(first.order) == sorted(again.order)


def test_accepting_every_suggestion_exports_a_dataset_train_student_reads(trained, tmp_path):
    checkpoint, images, heads_csv = trained
    settings = LabelSettings(images=images, out=tmp_path / "labels", checkpoint=checkpoint, heads_csv=heads_csv,
                             device="cpu")
    session, suggester = open_session(settings)
    try:
        client = TestClient(build_app(session, suggester, {"seed": 1}))
        n = 0
        for key in session.order:
            for p in client.get("/api/suggest", params={"key": key}).json()["persons"]:
                inout = 1 if p["inout"] is None or p["inout"] >= 0.5 else 0
                r = client.post("/api/action", json={"tab": "t", "op": "person", "image": key, "inout": inout,
                                                     "head_box_xyxy_px": p["head_box_xyxy_px"],
                                                     "gaze_xy_px": p["gaze_xy_px"] if inout else None})
                assert r.status_code == 200, r.text
                n += 1
            assert client.post("/api/action", json={"tab": "t", "op": "done", "image": key}).status_code == 200
        summary = client.post("/api/export", json={"tab": "t"}).json()
        assert summary["images"] == 6 and summary["train_persons"] + summary["test_persons"] == n
    finally:
        session.close()
    dataset = tmp_path / "labels" / "dataset"
    code, _, err = run_cli("train-student", "--data", dataset, "--ratio", "1.0", *TINY, "--batch-size", "2",
                           "--project", tmp_path, "--name", "s")
    assert code == 0, err
    metrics = json.loads((tmp_path / "train-student" / "s" / "test_metrics.json").read_text())
    assert metrics["n"] == summary["test_persons"] and 0 <= metrics["auc"] <= 1
