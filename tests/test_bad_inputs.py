"""A corpus of bad inputs (docs/reliability.md): every one ends in exactly one `error:` line with
exit code 1 (data) or 2 (settings), never a traceback, and leaves nothing behind where a write
should not have happened. Every bad input is built here, in tmp_path; the CLI runs in-process.

Add a case whenever a new bad input is found: one `@case(CLASS)` function returning a `Bad`.
"""

from __future__ import annotations

import errno
import json
import pickle
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from tests.helpers import gf_test_row, gf_train_row, make_gazefollow, run_cli, write_image

IMAGES, ANNOTATIONS, PREDICTIONS, CHECKPOINTS, STORES, PICKLES, SETTINGS, OUTPUTS, VQA = (
    "images", "annotations", "prediction files", "checkpoints", "Grad-CAM stores", "authors' pickles",
    "settings (flags, GAZE_*, TOML, CSV)", "file system (outputs)", "VQA folders")


@dataclass
class Bad:
    args: list
    code: int = 1
    says: str | tuple = ()  # text(s) the error line must contain
    env: dict = field(default_factory=dict)
    not_written: list = field(default_factory=list)  # paths that must not exist afterwards
    unchanged: list = field(default_factory=list)  # files whose bytes must stay as they were
    patches: list = field(default_factory=list)  # (object, attribute, replacement) for this run only


CASES: list[tuple[str, str, Callable]] = []


def case(kind: str):
    def register(build):
        CASES.append((kind, build.__name__, build))
        return build
    return register


# --------------------------------------------------------------------------------------------
# builders


def png_header(width: int, height: int) -> bytes:
    """A PNG of only its signature, IHDR and IEND: its header claims width x height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def gf(tmp: Path, train_rows=None, test_rows=None) -> Path:
    return make_gazefollow(tmp / "gf", train_rows=train_rows, test_rows=test_rows)


def gf_bad_train_row(tmp: Path, **row) -> Path:
    rows = [gf_train_row("train/0/a.png", 0), gf_train_row("train/0/b.png", 2, **row)]
    return gf(tmp, train_rows=rows)


W, H = 80, 60


def vat(tmp: Path, rows=None, frame_sizes=None) -> Path:
    """A VideoAttentionTarget root: one clip of 4 frames, one track (train and test alike)."""
    root = tmp / "vat"
    sizes = frame_sizes or [(W, H)] * 4
    for f, (w, h) in enumerate(sizes):
        write_image(root / "images" / "Show" / "1" / f"{f:05d}.jpg", w, h, seed=f)
    rows = rows or [f"{f:05d}.jpg,10,10,30,34,{40 + f},{30 - f}" for f in range(4)]
    for split in ("train", "test"):
        track = root / "annotations" / split / "Show" / "1" / "s00.txt"
        track.parent.mkdir(parents=True, exist_ok=True)
        track.write_text("\n".join(rows) + "\n")
    return root


def prediction_file(tmp: Path, root: Path, **arrays) -> Path:
    from gazecli.core.data.gazefollow import read_gazefollow

    table = read_gazefollow(root, "test")
    values = {"path": table.path.astype(str), "eye": table.eye_xy_norm,
              "heatmap": np.random.default_rng(0).random((len(table), 8, 8)).astype(np.float32)}
    values.update(arrays)
    values = {k: v for k, v in values.items() if v is not None}
    file = tmp / "pred.npz"
    np.savez(file, **values)
    return file


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained student (one epoch on a 16-image GazeWorld) and its world."""
    from gazecli.core.data.gazeworld import synthesize_gazeworld

    base = tmp_path_factory.mktemp("bad_inputs")
    world = base / "gw"
    synthesize_gazeworld(world, 16, 4, seed=1, size=64)
    code, _, err = run_cli("train-student", "--data", world, "--ratio", "1.0", "--epochs", "1", "--input-size", "64",
                           "--face-size", "16", "--heatmap-size", "16", "--sigma", "1.0", "--batch-size", "8",
                           "--device", "cpu", "--project", base / "runs", "--name", "tiny")
    assert code == 0, err
    return {"world": world, "run": base / "runs" / "train-student" / "tiny"}


def mutate_checkpoint(tmp: Path, run: Path, tensors=None, header=None) -> Path:
    """A copy of the run's best weights with tensors and/or the header replaced."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    source = run / "weights" / "best.safetensors"
    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata())
    state = load_file(str(source))
    if tensors is not None:
        state = tensors(state)
    if header is not None:
        meta = header(meta)
    file = tmp / "mutated.safetensors"
    save_file(state, str(file), metadata=meta)
    return file


def eval_checkpoint(trained, tmp: Path, file: Path, says) -> Bad:
    out = tmp / "e.json"
    return Bad(["eval", "--checkpoint", file, "--data", trained["world"], "--device", "cpu", "-o", out], 1, says,
               not_written=[out, out.with_suffix(".npz")])


def small_store(tmp: Path) -> tuple[Path, Path]:
    """A merged one-layer Grad-CAM store of make_gazefollow's train persons: (store, split folder)."""
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.gradcam.store import write_maps

    root = gf(tmp)
    table = read_gazefollow(root, "train")
    maps = np.random.default_rng(0).random((len(table), 4, 4)).astype(np.float32) * 1e-6
    write_maps(tmp / "store", "train", table, maps, model="corpus")
    return tmp / "store", tmp / "store" / "train"


def merge(store: Path, split: Path, says) -> Bad:
    return Bad(["gradcam", "--merge", "--out", store], 1, says, unchanged=[split / "index.json"])


def layer_file(split: Path) -> Path:
    return next(split.glob("layer*.npy"))


def edit_index(split: Path, change) -> None:
    index = json.loads((split / "index.json").read_text())
    change(index)
    (split / "index.json").write_text(json.dumps(index))


def authors_pickle(tmp: Path, entry_for) -> Bad:
    """An authors'-format pickle for make_gazefollow's train persons, each entry from `entry_for`."""
    from gazecli.core.data.gazefollow import read_gazefollow

    root = gf(tmp)
    table = read_gazefollow(root, "train")
    data: dict = {}
    for path, ex, _ in table.keys():
        data.setdefault(Path(path).name, {})[ex] = entry_for(ex)
    file = tmp / "gradcams_train_person_pos_all.pkl"
    file.write_bytes(pickle.dumps(data, protocol=4))
    out = tmp / "imported"
    return Bad(["gradcam", "--import-pickle", file, "--data", root, "--split", "train", "--out", out], 1,
               not_written=[out / "train" / "index.json"])


def maps3():
    rng = np.random.default_rng(0)
    return {f"{l}th_layer": rng.random((30, 30)).astype(np.float32) for l in (9, 10, 11)}


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def erofs(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")


# --------------------------------------------------------------------------------------------
# images: decompression bombs, broken files; checked from the header before decoding


@case(IMAGES)
def bomb_png_in_data_check(tmp):
    root = gf(tmp)
    (root / "train/0/a.png").write_bytes(png_header(200_000, 200_000))
    return Bad(["data", "check", root], 1, ("a.png", "200000x200000", "above the limit of 100000000"))


@case(IMAGES)
def bomb_png_in_data_check_without_decoding(tmp):
    root = gf(tmp)
    (root / "test2/0/c.png").write_bytes(png_header(200_000, 200_000))
    return Bad(["data", "check", root, "--no-decode"], 1, ("c.png", "above the limit"))


@case(IMAGES)
def bomb_png_in_eval_image_sizes(tmp):
    root = gf(tmp)
    pred = prediction_file(tmp, root)
    (root / "test2/0/d.png").write_bytes(png_header(100_000, 50_000))
    return Bad(["eval", "--predictions", pred, "--data", root, "-o", tmp / "m.json"], 1, ("d.png", "above the limit"),
               not_written=[tmp / "m.json"])


@case(IMAGES)
def bomb_png_as_videoatt_frame(tmp):
    root = vat(tmp)
    (root / "images/Show/1/00000.jpg").write_bytes(png_header(300_000, 300_000))
    return Bad(["data", "check", root], 1, ("00000.jpg", "above the limit"))


@case(IMAGES)
def bomb_png_in_predict(tmp, trained):
    image = tmp / "bomb.png"
    image.write_bytes(png_header(200_000, 200_000))
    return Bad(["predict", image, "--checkpoint", trained["run"], "--head", "1,1,5,5", "--device", "cpu",
                "--project", tmp / "p"], 1, ("bomb.png", "above the limit"),
               not_written=[tmp / "p" / "predict" / "run" / "predictions.jsonl"])


@case(IMAGES)
def pixel_limit_flag_refuses_ordinary_images(tmp):
    return Bad(["data", "check", gf(tmp), "--max-image-pixels", "100"], 1, ("96x64 = 6144 pixels", "limit of 100"))


@case(IMAGES)
def pixel_limit_env_not_a_number(tmp):
    return Bad(["data", "check", gf(tmp)], 2, "GAZE_MAX_IMAGE_PIXELS", env={"GAZE_MAX_IMAGE_PIXELS": "lots"})


@case(IMAGES)
def empty_image_file(tmp):
    root = gf(tmp)
    (root / "train/0/b.png").write_bytes(b"")
    return Bad(["data", "check", root], 1, ("b.png", "cannot decode"))


@case(IMAGES)
def text_file_named_png(tmp):
    root = gf(tmp)
    (root / "train/0/b.png").write_text("hello")
    return Bad(["data", "check", root], 1, ("b.png", "cannot decode"))


@case(IMAGES)
def image_path_is_a_folder(tmp):
    root = gf(tmp)
    (root / "train/0/b.png").unlink()
    (root / "train/0/b.png").mkdir()
    return Bad(["data", "check", root], 1, ("b.png", "image not found"))


@case(IMAGES)
def symlink_out_of_the_root(tmp):
    root = gf(tmp)
    outside = write_image(tmp / "elsewhere" / "x.png")
    (root / "train/0/a.png").unlink()
    (root / "train/0/a.png").symlink_to(outside)
    return Bad(["data", "check", root], 1, ("a.png", "leaves the dataset root", "--follow-symlinks"))


@case(IMAGES)
def symlink_out_of_the_root_while_predicting_a_split(tmp, trained):
    from gazecli.core.data.gazefollow import read_gazefollow

    world = tmp / "gw"
    shutil.copytree(trained["world"], world)
    victim = world / read_gazefollow(world, "test").path[0]
    outside = tmp / "elsewhere.png"
    shutil.copy(victim, outside)
    victim.unlink()
    victim.symlink_to(outside)
    out = tmp / "e.json"
    return Bad(["eval", "--checkpoint", trained["run"], "--data", world, "--device", "cpu", "-o", out], 1,
               (victim.name, "leaves the dataset root", "GAZE_FOLLOW_SYMLINKS=1"),
               not_written=[out, out.with_suffix(".npz")])


@case(IMAGES)
def follow_symlinks_env_garbled(tmp):
    return Bad(["data", "check", gf(tmp)], 2, "GAZE_FOLLOW_SYMLINKS", env={"GAZE_FOLLOW_SYMLINKS": "perhaps"})


# --------------------------------------------------------------------------------------------
# annotations: GazeFollow rows and VideoAttentionTarget tracks


@case(ANNOTATIONS)
def annotations_not_utf8(tmp):
    root = gf(tmp)
    (root / "train_annotations_release_persondet.txt").write_bytes(b"train/0/a.png,\xff\xfe,broken\n")
    return Bad(["data", "check", root], 1, ("train_annotations_release_persondet.txt", "not a text annotation file"))


@case(ANNOTATIONS)
def annotations_binary(tmp):
    root = gf(tmp)
    (root / "test_annotations_release_persondet.txt").write_bytes(b"\x00\x01\x02" * 10)
    return Bad(["data", "check", root], 1, "binary content")


@case(ANNOTATIONS)
def annotations_empty(tmp):
    root = gf(tmp)
    (root / "test_annotations_release_persondet.txt").write_text("\n\n")
    return Bad(["data", "check", root], 1, "empty annotation file")


@case(ANNOTATIONS)
def annotations_wrong_column_count(tmp):
    root = gf(tmp, train_rows=["train/0/a.png,1,2,3"])
    return Bad(["data", "check", root], 1, ":1: expected 16 or 21 columns")


@case(ANNOTATIONS)
def eye_not_a_number(tmp):
    root = gf_bad_train_row(tmp, eye=("abc", 0.3))
    return Bad(["data", "check", root], 1, (":2: column eye_x: not a number", "--skip-invalid"))


@case(ANNOTATIONS)
def head_box_nan(tmp):
    root = gf_bad_train_row(tmp, head=("nan", 10, 30, 22))
    return Bad(["data", "check", root], 1, ":2: column bbox_x_min: nan is not a finite number")


@case(ANNOTATIONS)
def gaze_infinite(tmp):
    root = gf_bad_train_row(tmp, gaze=("inf", 0.5))
    return Bad(["data", "check", root], 1, "not a finite number")


@case(ANNOTATIONS)
def eye_outside_unit_square(tmp):
    root = gf_bad_train_row(tmp, eye=(1.5, 0.3))
    return Bad(["data", "check", root], 1, ":2: eye (1.5, 0.3) outside [0, 1]")


@case(ANNOTATIONS)
def gaze_outside_unit_square(tmp):
    root = gf_bad_train_row(tmp, gaze=(2.0, 0.5))
    return Bad(["data", "check", root], 1, "gaze (2, 0.5) outside [0, 1]")


@case(ANNOTATIONS)
def in_frame_row_with_the_out_of_frame_sentinel(tmp):
    root = gf_bad_train_row(tmp, gaze=(-1, -1), inout=1)
    return Bad(["data", "check", root], 1, "gaze (-1, -1) outside [0, 1]")


@case(ANNOTATIONS)
def gaze_of_a_test_row_negative(tmp):
    rows = [gf_test_row("test2/0/c.png", 0), gf_test_row("test2/0/d.png", 1, gaze=(-0.2, 0.5))]
    return Bad(["data", "check", gf(tmp, test_rows=rows)], 1, "test_annotations_release_persondet.txt:2: gaze")


@case(ANNOTATIONS)
def head_box_empty(tmp):
    root = gf_bad_train_row(tmp, head=(20, 10, 20, 22))
    return Bad(["data", "check", root], 1, "zero or negative area")


@case(ANNOTATIONS)
def head_box_outside_the_image(tmp):
    root = gf_bad_train_row(tmp, head=(400, 10, 420, 22))
    return Bad(["data", "check", root], 1, ("train_annotations_release_persondet.txt:2: head box",
                                              "outside the 96x64 image"))


@case(ANNOTATIONS)
def image_path_absolute(tmp):
    root = gf(tmp, train_rows=[gf_train_row("/etc/passwd", 0)])
    return Bad(["data", "check", root], 1, "is empty, absolute or outside the dataset root")


@case(ANNOTATIONS)
def image_path_climbs_out(tmp):
    root = gf(tmp, train_rows=[gf_train_row("../../x.png", 0)])
    return Bad(["data", "check", root], 1, "outside the dataset root")


@case(ANNOTATIONS)
def inout_two(tmp):
    root = gf_bad_train_row(tmp, inout=2)
    return Bad(["data", "check", root], 1, "column inout: expected -1, 0 or 1, found 2")


@case(ANNOTATIONS)
def bad_rows_write_no_split_files(tmp):
    root = gf_bad_train_row(tmp, eye=(0.3, 7))
    return Bad(["data", "split", root, "--ratio", "0.5", "--out", tmp / "split"], 1, "outside [0, 1]",
               not_written=[tmp / "split"])


@case(ANNOTATIONS)
def bad_rows_write_no_metrics(tmp):
    rows = [gf_test_row("test2/0/c.png", 0), gf_test_row("test2/0/d.png", 1, eye=(-3, 0.5))]
    root = gf(tmp, test_rows=rows)
    pred = tmp / "p.npz"
    np.savez(pred, path=np.array(["test2/0/c.png"]), eye=np.array([[0.5, 0.4]]), heatmap=np.zeros((1, 4, 4)))
    return Bad(["eval", "--predictions", pred, "--data", root, "-o", tmp / "m.json"], 1, "eye (-3, 0.5)",
               not_written=[tmp / "m.json"])


@case(ANNOTATIONS)
def videoatt_gaze_far_outside_the_frame(tmp):
    rows = ["00000.jpg,10,10,30,34,40,30", "00001.jpg,10,10,30,34,5000,-7000"]
    return Bad(["data", "check", vat(tmp, rows)], 1, ("s00.txt:2: gaze (5000, -7000)", "outside the frame (80x60"))


@case(ANNOTATIONS)
def videoatt_head_box_outside_the_frame(tmp):
    rows = ["00000.jpg,10,10,30,34,40,30", "00001.jpg,100,10,130,34,40,30"]
    return Bad(["data", "check", vat(tmp, rows)], 1, ("s00.txt:2: head box", "outside the 80x60 image"))


@case(ANNOTATIONS)
def videoatt_frame_of_another_size(tmp):
    root = vat(tmp, frame_sizes=[(W, H), (W, H), (W + 20, H), (W, H)])
    return Bad(["data", "check", root], 1, ("00002.jpg is 100x60", "another size than its clip's first frame"))


@case(ANNOTATIONS)
def videoatt_not_a_number(tmp):
    return Bad(["data", "check", vat(tmp, ["00000.jpg,10,10,30,34,40,30", "00001.jpg,ten,10,30,34,40,30"])], 1,
               "s00.txt:2: non-numeric value")


@case(ANNOTATIONS)
def videoatt_wrong_columns(tmp):
    return Bad(["data", "check", vat(tmp, ["00000.jpg,10,10,30,34"])], 1, "expected 7, 11 or 12 columns")


@case(ANNOTATIONS)
def videoatt_frame_name_climbs_out(tmp):
    return Bad(["data", "check", vat(tmp, ["00000.jpg,10,10,30,34,40,30", "../../x.jpg,10,10,30,34,40,30"])], 1,
               "not a plain file name")


@case(ANNOTATIONS)
def videoatt_nan_head_box(tmp):
    return Bad(["data", "check", vat(tmp, ["00000.jpg,nan,10,30,34,40,30"])], 1, "non-finite value")


# --------------------------------------------------------------------------------------------
# prediction files (gaze eval --predictions)


def eval_predictions(tmp, root, pred, says, code=1) -> Bad:
    return Bad(["eval", "--predictions", pred, "--data", root, "-o", tmp / "m.json"], code, says,
               not_written=[tmp / "m.json"])


@case(PREDICTIONS)
def eye_array_of_strings(tmp):
    root = gf(tmp)
    pred = prediction_file(tmp, root, eye=np.array([["a", "b"], ["c", "d"]]))
    return eval_predictions(tmp, root, pred, "'eye' must be numbers of shape (2, 2), found strings")


@case(PREDICTIONS)
def heatmap_of_strings(tmp):
    root = gf(tmp)
    return eval_predictions(tmp, root, prediction_file(tmp, root, heatmap=np.array([[["x"]], [["y"]]])),
                            "'heatmap' must be numbers")


@case(PREDICTIONS)
def empty_heatmaps(tmp):
    root = gf(tmp)
    return eval_predictions(tmp, root, prediction_file(tmp, root, heatmap=np.zeros((2, 0, 0), np.float32)),
                            "'heatmap' maps are empty (0x0)")


@case(PREDICTIONS)
def inout_of_strings(tmp):
    root = gf(tmp)
    return eval_predictions(tmp, root, prediction_file(tmp, root, inout=np.array(["in", "out"])),
                            "'inout' must be numbers of shape (2,), found strings")


@case(PREDICTIONS)
def npy_renamed_npz(tmp):
    root = gf(tmp)
    pred = tmp / "pred.npz"
    with open(pred, "wb") as f:
        np.save(f, np.zeros((2, 8, 8)))
    return eval_predictions(tmp, root, pred, "not a readable .npz prediction file (a single .npy array)")


@case(PREDICTIONS)
def text_file_renamed_npz(tmp):
    root = gf(tmp)
    pred = tmp / "pred.npz"
    pred.write_text("path,eye,heatmap\n")
    bad = eval_predictions(tmp, root, pred, "not a readable .npz prediction file (a text file)")
    bad.says = (bad.says, )
    return bad


@case(PREDICTIONS)
def object_array(tmp):
    root = gf(tmp)
    pred = tmp / "pred.npz"
    np.savez(pred, path=np.array(["a", "b"], dtype=object), eye=np.zeros((2, 2)), heatmap=np.zeros((2, 4, 4)))
    return eval_predictions(tmp, root, pred, "holds an object array")


@case(PREDICTIONS)
def missing_heatmap(tmp):
    root = gf(tmp)
    return eval_predictions(tmp, root, prediction_file(tmp, root, heatmap=None), "lacks heatmap")


@case(PREDICTIONS)
def eye_of_wrong_shape(tmp):
    root = gf(tmp)
    return eval_predictions(tmp, root, prediction_file(tmp, root, eye=np.zeros((2, 3))), "'eye' must have shape (2, 2)")


@case(PREDICTIONS)
def nan_inout_names_the_person(tmp):
    root = gf(tmp)
    return eval_predictions(tmp, root, prediction_file(tmp, root, inout=np.array([0.5, np.nan])),
                            ("'inout' holds NaN or infinite values", "person 1, test2/0/d.png"))


@case(PREDICTIONS)
def infinite_heatmap_names_the_person(tmp):
    root = gf(tmp)
    heat = np.ones((2, 8, 8), np.float32)
    heat[0, 3, 3] = np.inf
    return eval_predictions(tmp, root, prediction_file(tmp, root, heatmap=heat), ("'heatmap'", "person 0"))


@case(PREDICTIONS)
def videoatt_all_nan_inout_is_not_ap_one(tmp):
    from gazecli.core.data.videoatt import read_videoatt

    root = vat(tmp)
    table = read_videoatt(root, "test")
    pred = tmp / "pred.npz"
    np.savez(pred, path=table.path.astype(str), eye=table.eye_xy_norm, heatmap=np.ones((len(table), 8, 8)),
             inout=np.full(len(table), np.nan))
    return eval_predictions(tmp, root, pred, "'inout' holds NaN or infinite values for 4 persons")


@case(PREDICTIONS)
def zip_without_arrays(tmp):
    import zipfile

    root = gf(tmp)
    pred = tmp / "pred.npz"
    with zipfile.ZipFile(pred, "w") as z:
        z.writestr("notes.txt", "hello")
    return eval_predictions(tmp, root, pred, "lacks path, eye, heatmap")


@case(PREDICTIONS)
def truncated_npz(tmp):
    root = gf(tmp)
    pred = prediction_file(tmp, root)
    pred.write_bytes(pred.read_bytes()[:200])
    return eval_predictions(tmp, root, pred, "not a readable .npz prediction file (damaged")


@case(PREDICTIONS)
def prediction_file_missing(tmp):
    return eval_predictions(tmp, gf(tmp), tmp / "none.npz", "--predictions: file not found", code=2)


# --------------------------------------------------------------------------------------------
# checkpoints (gaze eval --checkpoint, gaze predict)


@case(CHECKPOINTS)
def tensor_of_the_wrong_shape(tmp, trained):
    def change(state):
        key = next(k for k, v in state.items() if v.ndim == 4)
        state[key] = state[key][:, :1].contiguous()
        return state
    file = mutate_checkpoint(tmp, trained["run"], tensors=change)
    return eval_checkpoint(trained, tmp, file, ("mutated.safetensors", "of another shape"))


@case(CHECKPOINTS)
def tensor_missing(tmp, trained):
    file = mutate_checkpoint(tmp, trained["run"], tensors=lambda s: dict(list(s.items())[1:]))
    return eval_checkpoint(trained, tmp, file, "1 missing")


@case(CHECKPOINTS)
def tensor_extra(tmp, trained):
    import torch

    file = mutate_checkpoint(tmp, trained["run"], tensors=lambda s: {**s, "bogus.weight": torch.zeros(3)})
    return eval_checkpoint(trained, tmp, file, "1 unexpected (first: bogus.weight)")


@case(CHECKPOINTS)
def header_json_malformed(tmp, trained):
    file = mutate_checkpoint(tmp, trained["run"], header=lambda m: {**m, "gazecli": "{not json"})
    return eval_checkpoint(trained, tmp, file, "'gazecli' header is not valid JSON")


@case(CHECKPOINTS)
def header_without_meta(tmp, trained):
    file = mutate_checkpoint(tmp, trained["run"], header=lambda m: {**m, "gazecli": json.dumps({"state": None})})
    return eval_checkpoint(trained, tmp, file, "has no 'meta' object")


@case(CHECKPOINTS)
def meta_model_of_the_wrong_type(tmp, trained):
    def change(m):
        blob = json.loads(m["gazecli"])
        blob["meta"]["model"] = "vat"
        return {**m, "gazecli": json.dumps(blob)}
    file = mutate_checkpoint(tmp, trained["run"], header=change)
    return eval_checkpoint(trained, tmp, file, "checkpoint meta 'model' must be a JSON object")


@case(CHECKPOINTS)
def meta_sample_with_an_unknown_key(tmp, trained):
    def change(m):
        blob = json.loads(m["gazecli"])
        blob["meta"]["sample"]["bogus"] = 1
        return {**m, "gazecli": json.dumps(blob)}
    file = mutate_checkpoint(tmp, trained["run"], header=change)
    return eval_checkpoint(trained, tmp, file, "sample settings")


@case(CHECKPOINTS)
def model_config_of_the_wrong_type(tmp, trained):
    def change(m):
        blob = json.loads(m["gazecli"])
        blob["meta"]["model"]["config"] = {"backbone": 7}
        return {**m, "gazecli": json.dumps(blob)}
    file = mutate_checkpoint(tmp, trained["run"], header=change)
    return eval_checkpoint(trained, tmp, file, "mutated.safetensors")


@case(CHECKPOINTS)
def weights_with_nan(tmp, trained):
    def change(state):
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")
        return state
    file = mutate_checkpoint(tmp, trained["run"], tensors=change)
    return eval_checkpoint(trained, tmp, file, "weight tensors hold NaN or infinite values")


@case(CHECKPOINTS)
def checkpoint_is_text(tmp, trained):
    file = tmp / "model.safetensors"
    file.write_text("weights")
    return eval_checkpoint(trained, tmp, file, "not a readable safetensors checkpoint")


@case(CHECKPOINTS)
def checkpoint_truncated(tmp, trained):
    file = tmp / "model.safetensors"
    data = (trained["run"] / "weights" / "best.safetensors").read_bytes()
    file.write_bytes(data[: len(data) // 2])
    return eval_checkpoint(trained, tmp, file, "not a readable safetensors checkpoint")


@case(CHECKPOINTS)
def run_folder_without_weights(tmp, trained):
    (tmp / "run").mkdir()
    return eval_checkpoint(trained, tmp, tmp / "run", "no weights/best.safetensors")


@case(CHECKPOINTS)
def nan_weights_in_predict(tmp, trained):
    def change(state):
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = state[key].clone().fill_(float("inf"))
        return state
    file = mutate_checkpoint(tmp, trained["run"], tensors=change)
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", file, "--head", "10,10,20,20", "--device", "cpu", "--project",
                tmp / "p"], 1, "NaN or infinite", not_written=[tmp / "p"])


# --------------------------------------------------------------------------------------------
# Grad-CAM stores (gaze gradcam --merge opens and verifies the merged part)


@case(STORES)
def store_layer_truncated(tmp):
    store, split = small_store(tmp)
    f = layer_file(split)
    f.write_bytes(f.read_bytes()[:100])
    return merge(store, split, (f.name, "damaged Grad-CAM store", "rerun the same gaze gradcam command"))


@case(STORES)
def store_layer_missing(tmp):
    store, split = small_store(tmp)
    f = layer_file(split)
    f.unlink()
    return merge(store, split, (f.name, "the layer file is missing"))


@case(STORES)
def store_layer_of_objects(tmp):
    store, split = small_store(tmp)
    f = layer_file(split)
    np.save(f, np.array([None, 1], dtype=object), allow_pickle=True)
    return merge(store, split, (f.name, "unreadable layer file"))


@case(STORES)
def store_layer_swapped_bytes(tmp):
    store, split = small_store(tmp)
    f = layer_file(split)
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    return merge(store, split, (f.name, "checksum differs"))


@case(STORES)
def store_chunk_not_a_zip(tmp):
    store, split = small_store(tmp)
    (split / "chunks").mkdir(exist_ok=True)
    (split / "chunks" / "x-0.npz").write_text("not a zip")
    return merge(store, split, ("x-0.npz", "damaged store chunk"))


@case(STORES)
def store_index_shorter_than_its_arrays(tmp):
    store, split = small_store(tmp)
    edit_index(split, lambda i: i.update(count=i["count"] - 1))
    return merge(store, split, ("index.json", "does not hold"))


@case(STORES)
def store_grid_differs_from_the_index(tmp):
    store, split = small_store(tmp)
    edit_index(split, lambda i: i.update(grid=[5, 5]))
    return merge(store, split, ("index.json", "grid [5, 5] differs"))


@case(STORES)
def store_index_path_leaves_the_store(tmp):
    store, split = small_store(tmp)
    edit_index(split, lambda i: i["arrays"].update({"0": "../../../../etc/passwd"}))
    return merge(store, split, ("index.json", "not a plain file name inside the store"))


@case(STORES)
def store_index_not_json(tmp):
    store, split = small_store(tmp)
    (split / "index.json").write_text("{")
    return merge(store, split, ("index.json", "unreadable"))


@case(STORES)
def store_recipe_not_an_object(tmp):
    store, split = small_store(tmp)
    (store / "gradcam.json").write_text("[1, 2]")
    return merge(store, split, "not a gazecli Grad-CAM store")


# --------------------------------------------------------------------------------------------
# the authors' pickles (gaze gradcam --import-pickle)


@case(PICKLES)
def pickle_eye_key_not_a_number(tmp):
    bad = authors_pickle(tmp, lambda ex: {"answer": "ball", **maps3()})
    data = pickle.loads(Path(bad.args[2]).read_bytes())
    first = next(iter(data))
    data[first]["abc"] = {"answer": "x", **maps3()}
    Path(bad.args[2]).write_bytes(pickle.dumps(data))
    bad.says = "the eye_x key must be a number, found 'abc'"
    return bad


@case(PICKLES)
def pickle_map_of_mixed_values(tmp):
    bad = authors_pickle(tmp, lambda ex: {"answer": "ball", **maps3(), "10th_layer": [1.5, "x"]})
    bad.says = "expected a 2-D numeric map"
    return bad


@case(PICKLES)
def pickle_map_with_nan(tmp):
    bad = authors_pickle(tmp, lambda ex: {"answer": "ball", **maps3(), "9th_layer": np.full((30, 30), np.nan)})
    bad.says = "the map holds NaN or infinite values"
    return bad


@case(PICKLES)
def pickle_tokens_not_numbers(tmp):
    bad = authors_pickle(tmp, lambda ex: {"answer": "ball", "tokens": ["a", "b"], **maps3()})
    bad.says = "'tokens' must be whole numbers"
    return bad


@case(PICKLES)
def pickle_not_a_dict(tmp):
    bad = authors_pickle(tmp, lambda ex: {})
    Path(bad.args[2]).write_bytes(pickle.dumps([1, 2, 3]))
    bad.says = "expected a dict keyed by image name, found list"
    return bad


@case(PICKLES)
def pickle_that_runs_code(tmp):
    class RunsCode:
        def __reduce__(self):
            import os
            return (os.system, ("true",))
    bad = authors_pickle(tmp, lambda ex: {})
    Path(bad.args[2]).write_bytes(pickle.dumps({"a.png": {0.5: RunsCode()}}))
    bad.says = "refused to load"
    return bad


# --------------------------------------------------------------------------------------------
# settings: each error names the real source of the value


@case(SETTINGS)
def toml_bool_for_a_number(tmp):
    config = tmp / "split.toml"
    config.write_text("ratio = 0.5\nseed = true\n")
    return Bad(["data", "split", gf(tmp), "--config", config, "--out", tmp / "s"], 2,
               "split.toml: seed: expected a number, found true", not_written=[tmp / "s"])


@case(SETTINGS)
def env_bool_for_a_number(tmp):
    return Bad(["data", "split", gf(tmp), "--ratio", "0.5", "--out", tmp / "s"], 2, "GAZE_SEED",
               env={"GAZE_SEED": "true"}, not_written=[tmp / "s"])


@case(SETTINGS)
def device_from_env_is_named_as_env(tmp, trained):
    out = tmp / "e.json"
    return Bad(["eval", "--checkpoint", trained["run"], "--data", trained["world"], "-o", out], 2,
               "GAZE_DEVICE cuda:99", env={"GAZE_DEVICE": "cuda:99"}, not_written=[out])


@case(SETTINGS)
def device_from_toml_is_named_as_toml(tmp, trained):
    config = tmp / "eval.toml"
    config.write_text('device = "cuda:99"\n')
    out = tmp / "e.json"
    return Bad(["eval", "--checkpoint", trained["run"], "--data", trained["world"], "-o", out, "--config", config],
               2, "eval.toml: device cuda:99", not_written=[out])


@case(SETTINGS)
def device_from_flag_is_named_as_flag(tmp, trained):
    return Bad(["eval", "--checkpoint", trained["run"], "--data", trained["world"], "--device", "cuda:99"], 2,
               "--device cuda:99")


@case(SETTINGS)
def heads_csv_not_utf8(tmp, trained):
    csv = tmp / "heads.csv"
    csv.write_bytes(b"photo.png,1,1,\xff\xfe,5\n")
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", trained["run"], "--heads-csv", csv, "--device", "cpu",
                "--project", tmp / "p"], 1, ("heads.csv", "not a text"), not_written=[tmp / "p"])


@case(SETTINGS)
def heads_csv_nan_box_names_the_csv(tmp, trained):
    csv = tmp / "heads.csv"
    csv.write_text("file,x,y,w,h\nphoto.png,nan,1,10,10\n")
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", trained["run"], "--heads-csv", csv, "--device", "cpu",
                "--project", tmp / "p"], 1, "heads.csv:2: head 'nan,1,10,10': x, y, w and h must be finite",
               not_written=[tmp / "p" / "predict" / "run" / "predictions.jsonl"])


@case(SETTINGS)
def heads_csv_box_outside_names_the_csv(tmp, trained):
    csv = tmp / "heads.csv"
    csv.write_text("photo.png,500,500,10,10\n")
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", trained["run"], "--heads-csv", csv, "--device", "cpu",
                "--project", tmp / "p"], 1, "heads.csv:1: head '500,500,10,10': the box lies outside the 96x64",
               not_written=[tmp / "p" / "predict" / "run" / "predictions.jsonl"])


@case(SETTINGS)
def head_flag_nan(tmp, trained):
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", trained["run"], "--head", "nan,nan,10,10", "--device", "cpu",
                "--project", tmp / "p"], 2, "--head 'nan,nan,10,10': x, y, w and h must be finite",
               not_written=[tmp / "p" / "predict" / "run" / "predictions.jsonl"])


@case(SETTINGS)
def env_list_option_not_json(tmp, trained):
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", trained["run"], "--device", "cpu", "--project", tmp / "p"], 2,
               "GAZE_HEAD: cannot parse '10,10,20,20': a list option takes a JSON list",
               env={"GAZE_HEAD": "10,10,20,20"}, not_written=[tmp / "p"])


@case(SETTINGS)
def env_list_option_broken_json(tmp):
    return Bad(["data", "train-vqa", "--data", gf(tmp), "--print-config"], 2, "GAZE_QUESTIONS: cannot parse '[1'",
               env={"GAZE_QUESTIONS": "[1"})


@case(SETTINGS)
def toml_not_utf8(tmp):
    config = tmp / "c.toml"
    config.write_bytes(b"ratio = \xff\n")
    return Bad(["data", "split", gf(tmp), "--config", config], 2, "not valid TOML")


# --------------------------------------------------------------------------------------------
# the file system refuses an output: one line naming the path, nothing half-written left


@case(OUTPUTS)
def eval_output_under_a_file(tmp):
    root = gf(tmp)
    blocker = tmp / "blocker"
    blocker.write_text("x")
    return Bad(["eval", "--predictions", prediction_file(tmp, root), "--data", root, "-o", blocker / "m.json"], 1,
               str(blocker), unchanged=[blocker])


@case(OUTPUTS)
def baseline_output_under_a_file(tmp):
    root = gf(tmp)
    blocker = tmp / "blocker"
    blocker.write_text("x")
    return Bad(["data", "baseline", root, "-o", blocker / "b.npz"], 1, str(blocker), unchanged=[blocker])


@case(OUTPUTS)
def baseline_disk_full(tmp):
    out = tmp / "b.npz"
    return Bad(["data", "baseline", gf(tmp), "-o", out], 1, (str(out), "No space left on device (ENOSPC)"),
               not_written=[out], patches=[(np, "savez_compressed", enospc)])


@case(OUTPUTS)
def baseline_read_only(tmp):
    out = tmp / "b.npz"
    return Bad(["data", "baseline", gf(tmp), "-o", out], 1, (str(out), "Read-only file system (EROFS)"),
               not_written=[out], patches=[(np, "savez_compressed", erofs)])


@case(OUTPUTS)
def eval_metrics_disk_full(tmp):
    import gazecli.core.io as evaluate  # where eval's metrics JSON is written (gazecli.core.io.write_json)

    root = gf(tmp)
    out = tmp / "m.json"

    class FullJson:
        @staticmethod
        def dumps(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
    return Bad(["eval", "--predictions", prediction_file(tmp, root), "--data", root, "-o", out], 1,
               (str(out), "ENOSPC"), not_written=[out], patches=[(evaluate, "json", FullJson)])


@case(OUTPUTS)
def checkpoint_disk_full(tmp, trained):
    import safetensors.torch

    def full(*a, **k):
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    project = tmp / "runs"
    return Bad(["train-student", "--data", trained["world"], "--ratio", "1.0", "--epochs", "1", "--input-size", "64",
                "--face-size", "16", "--heatmap-size", "16", "--batch-size", "8", "--device", "cpu",
                "--project", project, "--name", "full"], 1, ("weights/best.safetensors", "No space left on device"),
               not_written=[project / "train-student" / "full" / "weights" / n
                            for n in ("best.safetensors", "best.json", "last.safetensors", "last.json")],
               patches=[(safetensors.torch, "save_file", full)])


@case(OUTPUTS)
def run_folder_csv_disk_full(tmp, trained):
    from pathlib import Path as RealPath

    real = RealPath.write_text

    def full(self, text, *a, **k):
        if self.name.endswith(".csv.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *a, **k)
    project = tmp / "runs"
    return Bad(["train-student", "--data", trained["world"], "--ratio", "1.0", "--epochs", "1", "--input-size", "64",
                "--face-size", "16", "--heatmap-size", "16", "--batch-size", "8", "--device", "cpu",
                "--project", project, "--name", "full"], 1, ("steps.csv", "No space left on device (ENOSPC)"),
               not_written=[project / "train-student" / "full" / "steps.csv"], patches=[(RealPath, "write_text", full)])


@case(OUTPUTS)
def predict_project_is_a_file(tmp, trained):
    blocker = tmp / "blocker"
    blocker.write_text("x")
    image = write_image(tmp / "photo.png")
    return Bad(["predict", image, "--checkpoint", trained["run"], "--head", "10,10,20,20", "--device", "cpu",
                "--project", blocker], 1, str(blocker), unchanged=[blocker])


@case(OUTPUTS)
def split_output_is_a_file(tmp):
    blocker = tmp / "blocker"
    blocker.write_text("x")
    return Bad(["data", "split", gf(tmp), "--ratio", "0.5", "--out", blocker], 1, str(blocker), unchanged=[blocker])


# --------------------------------------------------------------------------------------------
# VQA model folders (gaze gradcam --vqa-model DIR)


@case(VQA)
def vqa_weights_refused_by_weights_only(tmp):
    pytest.importorskip("transformers")
    import gazecli

    folder = tmp / "vqa"
    shutil.copytree(Path(gazecli.__file__).parent / "assets" / "gazeworld_vqa", folder)
    (folder / "model.safetensors").unlink()

    class RunsCode:
        def __reduce__(self):
            import os
            return (os.system, ("true",))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": RunsCode()}))
    root = gf(tmp)
    out = tmp / "store"
    return Bad(["gradcam", "--data", root, "--vqa-model", folder, "--out", out, "--device", "cpu"], 1,
               ("cannot load the model weights",), not_written=[out / "train" / "index.json"])


@case(ANNOTATIONS)
def question_answer_file_with_a_broken_line(tmp):
    pytest.importorskip("transformers")
    from gazecli.core.data.gazeworld import synthesize_gazeworld

    world = tmp / "gw"
    synthesize_gazeworld(world, 2, 1, seed=0, size=64)
    qa = world / "gazeworld_train_qa.jsonl"
    qa.write_text(qa.read_text() + "{broken\n")
    n = len(qa.read_text().splitlines())
    project = tmp / "runs"
    return Bad(["data", "train-vqa", "--data", world, "--project", project, "--epochs", "1"], 1,
               f"gazeworld_train_qa.jsonl:{n}: question-answer file line is not valid JSON",
               not_written=[project / "train-vqa" / "run" / "weights"])


# --------------------------------------------------------------------------------------------
# the test


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.is_dir() else set()


@pytest.mark.parametrize("kind,name,build", CASES, ids=[f"{c[0].split()[0]}-{c[1]}" for c in CASES])
def test_bad_input_is_one_line(kind, name, build, tmp_path, monkeypatch, request):
    import inspect

    extra = {"trained": request.getfixturevalue("trained")} if "trained" in inspect.signature(build).parameters else {}
    bad = build(tmp_path, **extra)
    before = {p: p.read_bytes() for p in bad.unchanged}
    for obj, attr, value in bad.patches:
        monkeypatch.setattr(obj, attr, value)
    code, out, err = run_cli(*bad.args, env=bad.env)
    monkeypatch.undo()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not any(line.startswith("error") for line in out.splitlines()), out
    assert code == bad.code, lines[0]
    for text in (bad.says,) if isinstance(bad.says, str) else bad.says:
        assert text in lines[0], lines[0]
    assert "np.float" not in lines[0]
    for path in bad.not_written:
        assert not Path(path).exists(), f"{path} was written"
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
    leftovers = [f for f in _files(tmp_path) if ".tmp" in Path(f).name]
    assert not leftovers, leftovers


def test_corpus_size_per_class():
    counts: dict[str, int] = {}
    for kind, _, _ in CASES:
        counts[kind] = counts.get(kind, 0) + 1
    assert sum(counts.values()) >= 60 and len(counts) == 9, counts


# --------------------------------------------------------------------------------------------
# --skip-invalid counts skipped rows by reason; duplicates are a warning with their count


def test_skip_invalid_counts_each_skipped_row_by_reason(tmp_path):
    rows = [gf_train_row("train/0/a.png", 0), gf_train_row("train/0/a.png", 1, eye=(1.5, 0.3)),
            gf_train_row("train/0/b.png", 2, head=(400, 10, 420, 22)), gf_train_row("train/0/b.png", 3, eye=("x", 0.2)),
            gf_train_row("train/0/b.png", 4, eye=(0.6, 0.6), gaze=(0.1, 7))]
    root = gf(tmp_path, train_rows=rows)
    from gazecli.core.data.check import check_dataset

    summary = check_dataset(root, skip_invalid=True)
    assert summary["skipped_by_reason"] == {"normalised point outside [0, 1]": 2, "head box outside the image": 1,
                                            "non-numeric value": 1}
    code, out, err = run_cli("data", "check", root, "--skip-invalid")
    assert code == 0, err
    text = " ".join(out.split())
    assert "skipped 4 invalid rows: normalised point outside [0, 1] 2, " in text
    assert "head box outside the image 1" in text and "non-numeric value 1" in text


def test_duplicates_are_a_warning_with_their_count(tmp_path):
    rows = [gf_train_row("train/0/a.png", 0), gf_train_row("train/0/a.png", 1), gf_train_row("train/0/a.png", 2),
            gf_train_row("train/0/b.png", 3, eye=(0.2, 0.5))]
    root = gf(tmp_path, train_rows=rows)
    code, out, err = run_cli("data", "check", root)
    assert code == 0, err
    text = " ".join(out.split())
    assert "warning: 2 train rows repeat an earlier row's person (image and eye) (first: " \
           "train_annotations_release_persondet.txt:2)" in text and text.endswith("ok")


def test_symlinks_out_of_the_root_are_followed_only_when_asked(tmp_path):
    root = gf(tmp_path)
    outside = write_image(tmp_path / "elsewhere" / "x.png")
    (root / "train/0/a.png").unlink()
    (root / "train/0/a.png").symlink_to(outside)
    assert run_cli("data", "check", root)[0] == 1
    code, out, err = run_cli("data", "check", root, "--follow-symlinks")
    assert code == 0 and out.strip().endswith("ok"), err
    inside = root / "train/0/link.png"  # a link that stays inside the root is fine
    inside.symlink_to(root / "train/0/b.png")
    from gazecli.core.validate import inside_root
    assert inside_root(root, "train/0/link.png", follow_symlinks=False) == inside


def test_pixel_limit_can_be_raised(tmp_path):
    root = gf(tmp_path)
    assert run_cli("data", "check", root, "--max-image-pixels", "100")[0] == 1
    assert run_cli("data", "check", root, "--max-image-pixels", "6144")[0] == 0
    assert run_cli("data", "check", root, env={"GAZE_MAX_IMAGE_PIXELS": "6143"})[0] == 1


def test_videoatt_ap_refuses_nan_scores():
    import torch

    from gazecli.core.metrics import average_precision

    with pytest.raises(ValueError):
        average_precision(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([float("nan")] * 3))
    assert average_precision(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.9, 0.1, 0.8])) == 1.0
    assert average_precision(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.5, 0.5, 0.5])) == pytest.approx(2 / 3)


def test_an_error_from_a_dataloader_worker_is_still_one_line(tmp_path):
    """torch re-raises a worker's exception as its type with the worker's traceback as the message."""
    import torch

    from gazecli.core.data.dataset import GazeDataset
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.transforms import SampleConfig
    from gazecli.core.errors import DataError

    root = gf(tmp_path)
    (root / "train/0/a.png").write_text("not an image")
    dataset = GazeDataset(read_gazefollow(root, "train"), SampleConfig(input_size=32, face_size=16, heatmap_size=8))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1)
    with pytest.raises(DataError) as caught:
        next(iter(loader))
    assert str(caught.value) == f"{root / 'train/0/a.png'}: cannot decode image"
