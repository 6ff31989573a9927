"""GazeFollow readers: both column layouts, test grouping, and a one-line error for every bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.errors import DataError
from tests.helpers import make_gazefollow, run_cli, gf_test_row, gf_train_row, write_image


@pytest.mark.parametrize("extended", [True, False])
def test_reads_original_and_extended_layouts(tmp_path, extended):
    root = make_gazefollow(tmp_path / "gf", extended=extended)
    train = read_gazefollow(root, "train")
    assert len(train) == 3 and train.n_dropped_invalid_inout == 1
    assert train.inout.tolist() == [1, 0, 1]
    assert np.isnan(train.gaze_xy_norm[1]).all()  # out of frame: no gaze point
    assert train.gaze_xy_norm[0, 0].tolist() == [0.7, 0.6]
    assert train.head_box_xyxy_px[0].tolist() == [20, 10, 30, 22]
    assert train.has_body.tolist() == ([True] * 3 if extended else [False] * 3)
    test = read_gazefollow(root, "test")
    assert len(test) == 2
    assert test.n_annotators.tolist() == [3, 2]
    assert test.mean_gaze_xy_norm[0] == pytest.approx([(0.2 + 0.25 + 0.22) / 3, (0.7 + 0.72 + 0.68) / 3])
    assert test.source[1] == f"test_annotations_release{'_persondet' if extended else ''}.txt:4"


def test_negative_body_box_means_no_body(tmp_path):
    rows = [gf_train_row(body=(-1, -1, -1, -1)), gf_train_row("train/0/b.png", 1, body=(5, 5, 50, 60))]
    root = make_gazefollow(tmp_path / "gf", train_rows=rows)
    train = read_gazefollow(root, "train")
    assert train.has_body.tolist() == [False, True]
    assert all(math.isnan(v) for v in train.body_box_xyxy_px[0])


BAD_ROWS = {
    "columns": (gf_train_row().rsplit(",", 1)[0], "expected 21 columns, found 20"),
    "text": (gf_train_row().replace("0.7", "abc", 1), "column gaze_x: not a number: 'abc'"),
    "nan": (gf_train_row().replace("0.7", "nan", 1), "column gaze_x: nan is not a finite number"),
    "zero_area": (gf_train_row(head=(20, 10, 20, 22)), "head box (20, 10, 20, 22) has zero or negative area"),
    "inverted": (gf_train_row(head=(30, 10, 20, 22)), "head box (30, 10, 20, 22) has zero or negative area"),
    "escape": (gf_train_row(path="../secret.png"), "image path '../secret.png' is empty, absolute or outside"),
    "absolute": (gf_train_row(path="/etc/passwd"), "image path '/etc/passwd' is empty, absolute or outside"),
    "inout": (gf_train_row(inout=2), "column inout: expected -1, 0 or 1, found 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_each_malformed_row_is_one_line_naming_file_and_line(tmp_path, case):
    row, message = BAD_ROWS[case]
    rows = [gf_train_row(), gf_train_row("train/0/b.png", 1), row]
    root = make_gazefollow(tmp_path / "gf", train_rows=rows)
    code, out, err = run_cli("data", "check", root)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: train_annotations_release_persondet.txt:3: ")
    assert message in lines[0]
    assert "Traceback" not in err + out
    # --skip-invalid: counted and reported, the rest is checked
    code, out, err = run_cli("data", "check", root, "--skip-invalid")
    assert code == 0, err
    assert "skipped 1 invalid rows" in out


def test_the_issue_example_message(tmp_path):
    rows = [gf_train_row(), gf_train_row("train/0/b.png", 1), gf_train_row().rsplit(",", 1)[0]]
    root = make_gazefollow(tmp_path / "gf", train_rows=rows)
    (root / "train_annotations_release_persondet.txt").rename(root / "train_annotations_release.txt")
    with pytest.raises(DataError, match=r"^train_annotations_release.txt:3: expected 21 columns, found 20"):
        read_gazefollow(root, "train")


def test_first_row_with_unknown_column_count(tmp_path):
    root = make_gazefollow(tmp_path / "gf", train_rows=["a,b,c"])
    with pytest.raises(DataError, match=r"train_annotations_release_persondet.txt:1: expected 16 or 21 columns"):
        read_gazefollow(root, "train")


@pytest.mark.parametrize("content,message", [
    (b"", "empty annotation file"),
    (b"\n\n  \n", "empty annotation file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text annotation file (binary content)"),
    (b"\xff\xfe\xfa bad utf8", "not a text annotation file"),
])
def test_empty_or_binary_annotation_files(tmp_path, content, message):
    root = make_gazefollow(tmp_path / "gf")
    (root / "test_annotations_release_persondet.txt").write_bytes(content)
    code, _, err = run_cli("data", "check", root)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"test_annotations_release_persondet.txt: {message}" in err


def test_missing_and_undecodable_images(tmp_path):
    root = make_gazefollow(tmp_path / "gf")
    (root / "train/0/b.png").unlink()
    (root / "test2/0/d.png").write_bytes(b"not an image")
    code, _, err = run_cli("data", "check", root)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "2 of 4 images missing or undecodable (first: " in err and "b.png: image not found" in err
    code, _, err = run_cli("data", "check", root, "--no-decode")
    assert code == 1 and "2 of 4 images missing" in err  # the header of d.png is garbage too


def test_no_decode_reads_headers_only(tmp_path):
    root = make_gazefollow(tmp_path / "gf")
    data = (root / "test2/0/d.png").read_bytes()
    (root / "test2/0/d.png").write_bytes(data[: len(data) // 3])  # a valid header, truncated pixels
    assert run_cli("data", "check", root, "--no-decode")[0] == 0
    code, _, err = run_cli("data", "check", root)
    assert code == 1 and "1 of 4 images missing or undecodable" in err and "d.png: cannot decode image" in err


def test_check_summary_of_a_good_dataset(tmp_path):
    root = make_gazefollow(tmp_path / "gf")
    write_image(root / "unused.png")
    code, out, err = run_cli("data", "check", root)
    assert code == 0, err
    assert "images: 4 decoded, width 96-96" in out
    assert "2 / 2.5 / 3" in out and "(min/mean/max)" in out
    assert "ok" in out


def test_missing_root_is_a_settings_error(tmp_path):
    code, _, err = run_cli("data", "check", tmp_path / "nope")
    assert code == 2
    assert err.strip() == f"error: ROOT: folder not found: {tmp_path / 'nope'} (got '{tmp_path / 'nope'}')"


def test_not_a_dataset(tmp_path):
    (tmp_path / "x").mkdir()
    code, _, err = run_cli("data", "check", tmp_path / "x")
    assert code == 1 and "not a GazeFollow root" in err


def test_test_rows_without_inout_column(tmp_path):
    rows = [gf_test_row(), gf_test_row(idx=1, gaze=(0.3, 0.3))]
    root = make_gazefollow(tmp_path / "gf", test_rows=rows)
    test = read_gazefollow(root, "test")
    assert len(test) == 1 and test.n_annotators.tolist() == [2]
