"""`gaze label`: the journal, the session's checks, every refused request, resume and export."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("starlette", reason="gaze label needs the 'label' extra (starlette, uvicorn, httpx)")
pytest.importorskip("httpx", reason="the API tests use Starlette's TestClient (httpx)")

from starlette.testclient import TestClient  # noqa: E402

from gazecli.core.data.check import check_dataset  # noqa: E402
from gazecli.core.data.gazefollow import read_gazefollow  # noqa: E402
from gazecli.core.errors import DataError  # noqa: E402
from gazecli.core.label.export import body_box_from_head, export_dataset  # noqa: E402
from gazecli.core.label.journal import JOURNAL_NAME, Journal  # noqa: E402
from gazecli.core.label.server import build_app  # noqa: E402
from gazecli.core.label.session import LabelSession  # noqa: E402
from gazecli.core.label.uncertainty import flip_disagreement, uncertain_order  # noqa: E402
from tests.helpers import run_cli, write_image  # noqa: E402

SIZES = {"a.png": (96, 64), "b.png": (80, 60), "c.png": (64, 64), "sub/d.jpg": (100, 50)}


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    for i, (name, (w, h)) in enumerate(SIZES.items()):
        write_image(folder / name, width=w, height=h, seed=i)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def session(images, tmp_path):
    s = LabelSession(images, tmp_path / "labels")
    yield s
    s.close()


@pytest.fixture()
def client(session):
    return TestClient(build_app(session))


def post(client, op, image, tab="tab1", **extra):
    return client.post("/api/action", json={"tab": tab, "op": op, "image": image, **extra})


def journal_bytes(session) -> bytes:
    path = session.root / JOURNAL_NAME
    return path.read_bytes() if path.is_file() else b""


def label_all(client):
    """a: two persons; b: one person looking outside; c: one person; d: skipped."""
    assert post(client, "head", "a.png", head_box_xyxy_px=[10, 5, 30, 25]).status_code == 200
    assert post(client, "gaze", "a.png", gaze_xy_px=[80, 40]).status_code == 200
    assert post(client, "head", "a.png", head_box_xyxy_px=[50, 10, 66, 28]).status_code == 200
    assert post(client, "gaze", "a.png", gaze_xy_px=[12, 60]).status_code == 200
    assert post(client, "done", "a.png").status_code == 200
    assert post(client, "head", "b.png", head_box_xyxy_px=[5, 5, 20, 22]).status_code == 200
    assert post(client, "outside", "b.png").status_code == 200
    assert post(client, "done", "b.png").status_code == 200
    assert post(client, "person", "c.png", head_box_xyxy_px=[30, 2, 44, 16], gaze_xy_px=[8, 50], inout=1,
                source="suggested").status_code == 200
    assert post(client, "done", "c.png").status_code == 200
    assert post(client, "skip", "sub/d.jpg").status_code == 200


# ------------------------------------------------------------------ the journal

def test_journal_drops_a_torn_last_line_and_appends_after_it(tmp_path):
    j = Journal(tmp_path)
    j.append({"op": "head", "n": 1})
    j.append({"op": "gaze", "n": 2})
    with open(j.path, "ab") as f:
        f.write(b'{"op":"done","ima')  # the server was killed in the middle of a write
    again = Journal(tmp_path)
    assert [e["n"] for e in again.events] == [1, 2]
    assert again.torn_bytes == len(b'{"op":"done","ima')
    again.append({"op": "skip", "n": 3})
    assert [json.loads(line)["n"] for line in j.path.read_text().splitlines()] == [1, 2, 3]


def test_journal_refuses_a_damaged_line_in_the_middle(tmp_path):
    (tmp_path / JOURNAL_NAME).write_text('{"op":"head"}\nnot json\n{"op":"gaze"}\n')
    with pytest.raises(DataError, match=r"journal.jsonl:2: unreadable journal line"):
        Journal(tmp_path)


# ------------------------------------------------------------------ bad requests: a message, nothing written

@pytest.mark.parametrize("action, status, message", [
    ({"op": "head", "image": "nope.png", "head_box_xyxy_px": [1, 1, 5, 5]}, 404, 'unknown image "nope.png"'),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [10, 10, 10, 30]}, 400, "the head box is 0.0 x 20.0 px"),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [10, 30, 20, 30]}, 400, "the head box is 10.0 x 0.0 px"),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [30, 10, 10, 20]}, 400, "the head box is 0.0 x 10.0 px"),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [10, 10, 97, 20]}, 400,
     "corner (97.0, 20.0) lies outside the 96x64 image a.png"),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [-1, 10, 9, 20]}, 400, "lies outside the 96x64 image"),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [1, 2, 3]}, 400, "must be [x1, y1, x2, y2]"),
    ({"op": "head", "image": "a.png", "head_box_xyxy_px": [1, 2, "x", 9]}, 400, 'must be a number, got "x"'),
    ({"op": "gaze", "image": "a.png", "gaze_xy_px": [5, 5]}, 400, "draw a head box first"),
    ({"op": "outside", "image": "a.png"}, 400, "draw a head box first"),
    ({"op": "undo", "image": "a.png"}, 400, "nothing to undo on a.png"),
    ({"op": "done", "image": "a.png"}, 400, "no person labelled on this image"),
    ({"op": "erase", "image": "a.png"}, 400, 'unknown action "erase"'),
    ({"op": "person", "image": "c.png", "head_box_xyxy_px": [1, 1, 9, 9], "gaze_xy_px": [70, 3], "inout": 1}, 400,
     "the gaze point (70.0, 3.0) lies outside the 64x64 image c.png"),
    ({"op": "person", "image": "c.png", "head_box_xyxy_px": [1, 1, 9, 9], "inout": 2}, 400, "needs inout 1"),
])
def test_a_bad_action_is_refused_with_a_message_and_not_written(client, session, action, status, message):
    before = journal_bytes(session)
    r = client.post("/api/action", json={"tab": "tab1", **action})
    assert r.status_code == status
    assert message in r.json()["error"]
    assert journal_bytes(session) == before
    assert all(not s.persons for s in session.images.values())


def test_gaze_outside_the_image_and_a_second_head_while_one_waits_are_refused(client, session):
    assert post(client, "head", "a.png", head_box_xyxy_px=[10, 5, 30, 25]).status_code == 200
    before = journal_bytes(session)
    r = post(client, "gaze", "a.png", gaze_xy_px=[50, 64.5])
    assert r.status_code == 400 and "(50.0, 64.5) lies outside the 96x64 image a.png" in r.json()["error"]
    r = post(client, "head", "a.png", head_box_xyxy_px=[40, 5, 60, 25])
    assert r.status_code == 400 and "give the gaze of the person" in r.json()["error"]
    r = post(client, "done", "a.png")
    assert r.status_code == 400 and "has no gaze yet" in r.json()["error"]
    assert journal_bytes(session) == before
    assert post(client, "gaze", "a.png", gaze_xy_px=[96, 64]).status_code == 200  # the far corner is inside


def test_unknown_image_and_bodies_that_are_not_json(client, session):
    assert client.get("/api/image", params={"key": "../secret.png"}).status_code == 404
    r = client.get("/api/labels", params={"key": "nope.png"})
    assert r.status_code == 404 and 'unknown image "nope.png"' in r.json()["error"]
    r = client.post("/api/action", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = client.post("/api/action", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    assert journal_bytes(session) == b""
    assert client.get("/api/image", params={"key": "sub/d.jpg"}).content == (session.images_dir / "sub/d.jpg").read_bytes()


def test_a_second_tab_is_refused_until_the_first_one_is_gone(client, session):
    assert client.post("/api/claim", json={"tab": "first"}).status_code == 200
    assert post(client, "head", "a.png", tab="first", head_box_xyxy_px=[10, 5, 30, 25]).status_code == 200
    before = journal_bytes(session)
    r = client.post("/api/claim", json={"tab": "second"})
    assert r.status_code == 409 and "another browser tab" in r.json()["error"]
    r = post(client, "gaze", "a.png", tab="second", gaze_xy_px=[5, 5])
    assert r.status_code == 409 and "another browser tab" in r.json()["error"]
    r = client.post("/api/export", json={"tab": "second"})
    assert r.status_code == 409
    assert journal_bytes(session) == before and session.images["a.png"].persons[0].inout is None
    session.tab_seen -= session.TAB_LEASE_S + 1  # the first tab was closed: its heartbeats stopped
    assert post(client, "gaze", "a.png", tab="second", gaze_xy_px=[5, 5]).status_code == 200
    assert post(client, "undo", "a.png", tab="first").status_code == 409


def test_one_server_per_labels_folder(images, session):
    with pytest.raises(DataError, match="another gaze label server is using this folder"):
        LabelSession(images, session.root)


def test_a_labels_folder_keeps_its_images_folder(images, tmp_path, session):
    other = tmp_path / "other"
    write_image(other / "x.png")
    session.close()
    with pytest.raises(DataError, match="labels the images of"):
        LabelSession(other, session.root)


# ------------------------------------------------------------------ state, undo, resume

def test_undo_takes_back_the_last_click_and_reopens_a_finished_image(client, session):
    post(client, "head", "a.png", head_box_xyxy_px=[10, 5, 30, 25])
    post(client, "gaze", "a.png", gaze_xy_px=[80, 40])
    post(client, "done", "a.png")
    assert session.images["a.png"].status == "done"
    r = post(client, "undo", "a.png")
    assert r.json()["image"]["status"] == "open"
    assert r.json()["image"]["persons"] == [{"head_box_xyxy_px": [10, 5, 30, 25], "gaze_xy_px": None, "inout": None,
                                             "source": "drawn"}]
    post(client, "undo", "a.png")
    assert session.images["a.png"].persons == [] and session.images["a.png"].status == "todo"


def test_a_restart_replays_the_journal_and_resumes_where_it_stopped(images, client, session):
    post(client, "head", "a.png", head_box_xyxy_px=[10, 5, 30, 25])
    post(client, "gaze", "a.png", gaze_xy_px=[80, 40])
    post(client, "done", "a.png")
    post(client, "head", "b.png", head_box_xyxy_px=[5, 5, 20, 22])  # killed here: b is half done
    state = {k: v.to_json() for k, v in session.images.items()}
    progress = session.progress()
    session.close()
    again = LabelSession(images, session.root)
    try:
        assert {k: v.to_json() for k, v in again.images.items()} == state
        assert again.progress() == progress == {"images": 4, "done": 1, "skipped": 0, "persons": 1, "persons_outside": 0}
        assert again.order[again.resume_index()] == "b.png"
        c = TestClient(build_app(again))
        assert c.get("/api/state").json()["cursor"] == again.order.index("b.png")
        assert post(c, "outside", "b.png", tab="new").status_code == 200  # the half-labelled person is finished
        assert post(c, "done", "b.png", tab="new").status_code == 200
        assert again.order[again.resume_index()] == "c.png"  # the next image not done
    finally:
        again.close()


# ------------------------------------------------------------------ export

def test_export_writes_a_dataset_that_gaze_data_check_passes(client, session):
    label_all(client)
    r = client.post("/api/export", json={"tab": "tab1"})
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["images"] == 3 and summary["test_images"] == 1 and summary["train_images"] == 2
    assert summary["skipped_images"] == 1 and summary["outside_persons"] == 1
    root = session.root / "dataset"
    checked = check_dataset(root)
    assert checked["images"]["bad"] == 0 and checked["images"]["count"] == 3
    train, test = read_gazefollow(root, "train"), read_gazefollow(root, "test")
    assert len(train) + len(test) == 4
    sources = dict(line.split(",") for line in (root / "label_sources.csv").read_text().splitlines()[1:])
    assert sorted(sources.values()) == ["a.png", "b.png", "c.png"]
    # the test image is one whose persons all look inside the frame (b.png looks outside)
    assert sources[test.path[0]] in ("a.png", "c.png")
    b_rows = [i for i, p in enumerate(train.path) if sources[p] == "b.png"]
    assert len(b_rows) == 1 and train.inout[b_rows[0]] == 0 and np.isnan(train.gaze_xy_norm[b_rows[0]]).all()
    # pixels -> normalised, per image size; eye = head-box centre; body box from the head box
    both = {("train", i): (train, i) for i in range(len(train))} | {("test", i): (test, i) for i in range(len(test))}
    a_people = sorted((t.head_box_xyxy_px[i].tolist(), t.gaze_xy_norm[i, 0].tolist(), t.eye_xy_norm[i].tolist(),
                       t.body_box_xyxy_px[i].tolist()) for t, i in both.values() if sources[t.path[i]] == "a.png")
    assert a_people[0][0] == [10, 5, 30, 25]
    assert a_people[0][1] == pytest.approx([80 / 96, 40 / 64], abs=1e-6)
    assert a_people[0][2] == pytest.approx([20 / 96, 15 / 64], abs=1e-6)
    assert a_people[0][3] == pytest.approx(body_box_from_head([10, 5, 30, 25], 96, 64), abs=0.01)
    assert a_people[1][0] == [50, 10, 66, 28] and a_people[1][1] == pytest.approx([12 / 96, 60 / 64], abs=1e-6)
    assert body_box_from_head([10, 5, 30, 25], 96, 64) == [0.0, 5, 45.0, 64.0]


def test_export_is_seeded_and_refuses_too_few_finished_images(client, session, tmp_path):
    post(client, "person", "a.png", head_box_xyxy_px=[1, 1, 9, 9], gaze_xy_px=[50, 3], inout=1)
    post(client, "done", "a.png")
    with pytest.raises(DataError, match="at least 3 finished images .* found 1"):
        export_dataset(session)
    r = client.post("/api/export", json={"tab": "tab1"})
    assert r.status_code == 400 and "at least 3 finished images" in r.json()["error"]
    assert not (session.root / "dataset").exists()
    for key in ("b.png", "c.png", "sub/d.jpg"):
        post(client, "person", key, head_box_xyxy_px=[1, 1, 9, 9], gaze_xy_px=[30, 30], inout=1)
        post(client, "done", key)
    tests = set()
    for seed in range(6):
        export_dataset(session, seed=seed, out=tmp_path / f"e{seed}")
        first = (tmp_path / f"e{seed}" / "label_sources.csv").read_text()
        export_dataset(session, seed=seed, out=tmp_path / f"e{seed}")
        assert (tmp_path / f"e{seed}" / "label_sources.csv").read_text() == first
        tests.add(next(line for line in first.splitlines() if line.startswith("test2/")))
    assert len(tests) > 1  # the seed chooses the test image


def test_cli_export_and_settings_errors(client, session, images):
    label_all(client)
    session.close()
    code, out, err = run_cli("label", "--out", session.root, "--export", "--seed", "3")
    assert code == 0, err
    assert "3 (2 / 1)" in out and (session.root / "dataset" / "train_annotations_release_persondet.txt").is_file()
    code, out, err = run_cli("data", "check", session.root / "dataset")
    assert code == 0 and "ok" in out
    code, _, err = run_cli("label", images, "--out", session.root, "--order", "uncertain")
    assert code == 2 and "--order uncertain needs --checkpoint" in err
    code, _, err = run_cli("label", "--out", session.root / "new")
    assert code == 2 and "give the IMAGES folder" in err


# ------------------------------------------------------------------ uncertainty

def test_flip_disagreement_is_zero_for_a_mirror_consistent_model_and_the_gap_otherwise():
    rgb = np.zeros((50, 100, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 20, 20], [60, 5, 80, 25]], dtype=float)

    def looks_right_of_head(image, b):  # always "to the right": its mirror image looks the other way
        return np.stack([(b[:, 2] + 10) / image.shape[1], b[:, 1] / image.shape[0]], axis=1)

    def fixed_point(image, b):
        return np.tile([0.2, 0.5], (len(b), 1))

    def head_centre(image, b):  # mirror-consistent
        return np.stack([(b[:, 0] + b[:, 2]) / 2 / image.shape[1], (b[:, 1] + b[:, 3]) / 2 / image.shape[0]], axis=1)

    assert flip_disagreement(head_centre, rgb, boxes) == pytest.approx([0, 0])
    assert flip_disagreement(fixed_point, rgb, boxes) == pytest.approx([0.6, 0.6])
    # plain: x = x2 + 10; mirrored box [100 - x2, ., 100 - x1, .] -> point 100 - x1 + 10 -> back: x1 - 10;
    # the gap is (width + 20) / 100
    assert flip_disagreement(looks_right_of_head, rgb, boxes) == pytest.approx([0.3, 0.4])
    assert uncertain_order(["a", "b", "c", "d"], {"a": 0.1, "b": None, "c": 0.5, "d": 0.1}) == ["c", "a", "d", "b"]


def test_label_help_imports_neither_the_web_stack_nor_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom gazecli.cli import main\n"
            "for args in (['--help'], ['label', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
            "print('HEAVY', [m for m in ('torch', 'starlette', 'uvicorn', 'numpy') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "--checkpoint" in out and "--export" in out


def test_a_labelled_image_that_disappeared_is_named(images, client, session):
    post(client, "head", "b.png", head_box_xyxy_px=[5, 5, 20, 22])
    session.close()
    (images / "b.png").unlink()
    with pytest.raises(DataError, match=r"journal.jsonl:1: b.png was labelled but is no longer in"):
        LabelSession(images, session.root)
