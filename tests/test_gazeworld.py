"""GazeWorld writes a small world that the GazeFollow reader reads back, reproducibly."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gazecli.core.data.gazefollow import parse_rows, read_gazefollow
from gazecli.core.data.gazeworld import (
    ANNOTATION_NAMES, CLASSES, DIFFICULTIES, META_NAME, SIDECAR_NAMES, GazeWorldConfig, render_scene,
    synthesize_gazeworld,
)
from gazecli.core.errors import DataError, SettingsError

N_TRAIN, N_TEST, ANNOTATORS, SIZE = 80, 16, 7, 128


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("gw") / "world"
    summary = synthesize_gazeworld(out, N_TRAIN, N_TEST, seed=3, test_annotators=ANNOTATORS)
    return out, summary


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def some_files(root: Path) -> list[str]:
    return [*ANNOTATION_NAMES.values(), *SIDECAR_NAMES.values(), META_NAME,
            "train/00000000/00000000.png", "train/00000000/00000017.png", "test2/00000000/00000005.png"]


def sidecar(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / SIDECAR_NAMES[split]).read_text().splitlines()]


def test_files_read_back_with_the_right_columns_and_counts(world):
    out, summary = world
    for split, n_columns in (("train", 21), ("test", 20)):
        rows, errors, n = parse_rows(out / ANNOTATION_NAMES[split], split)
        assert n == n_columns and not errors
    train, test = read_gazefollow(out, "train"), read_gazefollow(out, "test")
    assert len(train) == summary["n_train_persons"] >= N_TRAIN
    assert len(test) == summary["n_test_persons"] >= N_TEST
    assert int((train.inout == 1).sum()) == summary["n_train_in_frame"]
    assert int((train.inout == 0).sum()) == summary["n_train_out_of_frame"]
    assert len(train.image_paths()) == N_TRAIN and len(test.image_paths()) == N_TEST
    assert len(list((out / "train").rglob("*.png"))) == N_TRAIN
    assert len(list((out / "test2").rglob("*.png"))) == N_TEST
    assert all((out / p).is_file() for p in [*train.image_paths(), *test.image_paths()])
    assert sum(1 for _ in (out / ANNOTATION_NAMES["test"]).open()) == summary["n_test_rows"]
    meta = json.loads((out / META_NAME).read_text())
    assert meta["classes"] == list(CLASSES) and meta["difficulty"] == "normal" and meta["seed"] == 3
    assert not list(out.rglob("*.tmp"))


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    out, _ = world
    again = tmp_path / "again"
    synthesize_gazeworld(again, N_TRAIN, N_TEST, seed=3, test_annotators=ANNOTATORS)
    assert [sha(out / f) for f in some_files(out)] == [sha(again / f) for f in some_files(again)]
    other = tmp_path / "other"
    synthesize_gazeworld(other, N_TRAIN, N_TEST, seed=4, test_annotators=ANNOTATORS)
    for f in some_files(out):
        assert sha(out / f) != sha(other / f), f


def test_images_do_not_depend_on_generation_order(tmp_path):
    out = tmp_path / "w"
    synthesize_gazeworld(out, 3, 2, seed=3)
    scene = render_scene(3, "train", 2, SIZE, DIFFICULTIES["normal"])
    import cv2

    assert np.array_equal(cv2.imread(str(out / "train/00000000/00000002.png")), scene.image)
    assert not np.array_equal(scene.image, render_scene(3, "test", 2, SIZE, DIFFICULTIES["normal"]).image)


def test_out_of_frame_only_in_train(world):
    out, _ = world
    train, test = read_gazefollow(out, "train"), read_gazefollow(out, "test")
    outside = train.inout == 0
    assert outside.any() and (~outside).any()
    assert np.isnan(train.gaze_xy_norm[outside]).all()
    for line in train.raw[outside]:
        cells = line.split(",")
        assert cells[8:10] == ["-1", "-1"] and cells[14] == "0"
    assert (test.inout == 1).all()
    assert all(p["inout"] == 1 for r in sidecar(out, "test") for p in r["persons"])
    classes = {p["target_class"] for r in sidecar(out, "train") for p in r["persons"] if p["inout"] == 0}
    assert classes == {"outside"}


def test_every_test_person_has_all_annotators(world):
    out, _ = world
    test = read_gazefollow(out, "test")
    assert (test.n_annotators == ANNOTATORS).all()


def test_sidecar_matches_annotation_rows(world):
    out, _ = world
    for split in ("train", "test"):
        table = read_gazefollow(out, split)
        records = sidecar(out, split)
        assert [r["path"] for r in records] == list(table.image_paths())
        persons = [(r, p) for r in records for p in r["persons"]]
        assert len(persons) == len(table)
        for i, (r, p) in enumerate(persons):
            assert table.path[i] == r["path"]
            assert tuple(table.eye_xy_norm[i]) == tuple(p["eye_xy_norm"])
            assert tuple(table.head_box_xyxy_px[i]) == tuple(p["head_box_xyxy_px"])
            assert (p["body_box_xyxy_px"] is None) == (not table.has_body[i])
            if p["target"] is None:
                continue
            obj = r["objects"][p["target"]]
            assert obj["cls"] == p["target_class"]
            x1, y1, x2, y2 = np.array(obj["box_xyxy_px"]) / r["size"]
            gx, gy = table.mean_gaze_xy_norm[i]
            assert x1 <= gx <= x2 and y1 <= gy <= y2, (split, i)


def test_boxes_inside_image_and_targets_away_from_heads(world):
    out, _ = world
    for split in ("train", "test"):
        table = read_gazefollow(out, split)
        h = table.head_box_xyxy_px
        assert (h >= 0).all() and (h <= SIZE).all() and (h[:, 2:] > h[:, :2]).all()
        assert ((table.eye_xy_norm > 0) & (table.eye_xy_norm < 1)).all()
        eye_px = table.eye_xy_norm * SIZE
        assert ((eye_px >= h[:, :2]) & (eye_px <= h[:, 2:])).all()
    records = sidecar(out, "train")
    twins = 0
    for r in records:
        subject = r["persons"][0]
        if subject["target"] is not None:
            box = np.array(r["objects"][subject["target"]]["box_xyxy_px"])
            head = np.array(subject["head_box_xyxy_px"])
            radius = (head[2] - head[0]) / 2.2
            centre_dist = np.hypot(*((box[:2] + box[2:]) / 2 - (head[:2] + head[2:]) / 2))
            assert centre_dist > 2.2 * radius + 3  # 2.2 r + 6 px from the head, less box jitter
            twins += sum(o["cls"] == subject["target_class"] for o in r["objects"]) > 1
    assert 0.3 < twins / len(records) < 0.95


def test_background_is_never_green(world):
    hits = total = 0
    for index in range(12):
        scene = render_scene(3, "train", index, SIZE, DIFFICULTIES["hard"])
        far = np.ones((SIZE, SIZE), dtype=bool)
        boxes = [o["box_xyxy_px"] for o in scene.objects] + [p["person_box_xyxy_px"] for p in scene.persons]
        boxes += [p["head_box_xyxy_px"] for p in scene.persons]
        for x1, y1, x2, y2 in boxes:
            far[max(0, int(y1) - 3):int(y2) + 4, max(0, int(x1) - 3):int(x2) + 4] = False
        b, g, r = (scene.image[..., c].astype(int)[far] for c in range(3))
        hits += int(((g > r + 40) & (g > b + 40)).sum())
        total += int(far.sum())
    assert total > 0 and hits / total < 0.005


def test_hair_is_behind_and_eyes_are_dark():
    """The gaze cue: hair (dark) on the back half of the head, skin in front, dark eyes."""
    checked = 0
    for index in range(40):
        scene = render_scene(5, "train", index, SIZE, DIFFICULTIES["easy"])
        img = scene.image.astype(float).mean(axis=2)
        for p in scene.persons:
            c, d, r = np.array(p["head_centre_xy_px"]), np.array(p["gaze_dir"]), p["head_radius_px"]
            n = np.array([-d[1], d[0]])

            def lum(pt):
                x, y = int(pt[0]), int(pt[1])
                return img[y - 1:y + 2, x - 1:x + 2].mean()

            assert lum(c - 0.6 * r * d) + 25 < lum(c + 0.2 * r * d)
            for side in (-1, 1):
                assert lum(c + 0.5 * r * d + side * 0.38 * r * n) < lum(c + 0.2 * r * d)
            assert np.allclose(p["eye_xy_px"], c + 0.5 * r * d)
            checked += 1
    assert checked >= 40


def test_refuses_a_non_empty_folder_unless_forced(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        synthesize_gazeworld(tmp_path, 2, 1)
    summary = synthesize_gazeworld(tmp_path, 2, 1, force=True, image_format="jpg", difficulty="hard")
    assert (tmp_path / "keep.txt").is_file()
    assert summary["files_written"] == 3 + 5
    assert len(read_gazefollow(tmp_path, "train").image_paths()) == 2
    assert str(read_gazefollow(tmp_path, "test").path[0]).endswith(".jpg")
    again = synthesize_gazeworld(tmp_path, 1, 1, force=True)  # a previous GazeWorld is replaced
    assert again["n_train_images"] == 1 and len(list((tmp_path / "train").rglob("*.*"))) == 1


def test_bad_options_are_settings_errors(tmp_path):
    with pytest.raises(SettingsError):
        synthesize_gazeworld(tmp_path / "a", 2, 1, difficulty="impossible")
    with pytest.raises(SettingsError):
        synthesize_gazeworld(tmp_path / "b", 2, 1, image_format="gif")
    with pytest.raises(SettingsError):
        GazeWorldConfig(twin_probability=1.5)
    with pytest.raises(SettingsError):
        GazeWorldConfig(n_objects=(5, 3))


def test_module_does_not_import_torch():
    code = "import sys, gazecli.core.data.gazeworld; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
