"""Seeded image-level label splits, the authors' split files, and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.data.splits import load_split, make_split, split_file
from gazecli.core.errors import DataError
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("split") / "gw"
    synthesize_gazeworld(root, 300, 1, seed=1, size=64)
    return root


def test_image_level_seeded_split(world):
    table = read_gazefollow(world, "train")
    s = make_split(table, 0.1, seed=0, val_fraction=0.2)
    labelled_all = s.labelled | s.val
    assert not (labelled_all & s.unlabelled).any() and (labelled_all | s.unlabelled).all()
    assert not (s.labelled & s.val).any()
    # all persons of an image are on one side
    for mask in (s.labelled, s.val, s.unlabelled):
        assert not set(table.path[mask]) & set(table.path[~mask])
    target = round(0.1 * len(table))
    assert target <= labelled_all.sum() < target + 3  # overshoots by less than one image
    c = s.counts(table)
    assert c["val_images"] == round(0.2 * (c["labelled_images"] + c["val_images"]))
    again = make_split(table, 0.1, seed=0, val_fraction=0.2)
    assert (again.labelled == s.labelled).all() and (again.val == s.val).all()
    other = make_split(table, 0.1, seed=1, val_fraction=0.2)
    assert (other.labelled != s.labelled).any()


def test_cli_split_writes_the_authors_format_and_loads_back(world, tmp_path):
    out = tmp_path / "splits"
    code, stdout, err = run_cli("data", "split", world, "--ratio", "0.2", "--seed", "4", "--out", out)
    assert code == 0, err
    table = read_gazefollow(world, "train")
    made = make_split(table, 0.2, seed=4, val_fraction=0.1)
    for part, mask in (("use", made.labelled), ("left", made.unlabelled), ("val", made.val)):
        lines = split_file(out, 0.2, part).read_text().splitlines()
        assert lines == list(table.raw[mask])  # verbatim train rows, 21 columns
    loaded = load_split(table, out, 0.2)
    assert (loaded.labelled == made.labelled).all() and (loaded.val == made.val).all()
    assert (loaded.unlabelled == made.unlabelled).all() and loaded.n_in_neither == 0
    code, _, err = run_cli("data", "split", world, "--ratio", "0.2", "--seed", "4", "--out", out)
    assert code == 1 and "split file exists (use --force to overwrite)" in err
    assert run_cli("data", "split", world, "--ratio", "0.2", "--seed", "4", "--out", out, "--force")[0] == 0


def test_authors_row_level_files_without_val(world, tmp_path):
    table = read_gazefollow(world, "train")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(table))
    n_use = round(0.1 * len(table))
    folder = tmp_path / "weak_supervision"
    folder.mkdir()
    split_file(folder, 0.1, "use").write_text("\n".join(table.raw[order[:n_use]]) + "\n")
    split_file(folder, 0.1, "left").write_text("\n".join(table.raw[order[n_use:-5]]) + "\n")  # 5 rows in neither
    s = load_split(table, folder, 0.1, val_fraction=0.1, seed=0)
    assert s.n_in_neither == 5
    assert (s.labelled | s.val).sum() == n_use + 5  # rows in no file count as labelled (official)
    assert s.val.sum() > 0 and not set(table.path[s.val]) & set(table.path[s.labelled])
    with pytest.raises(DataError, match="split file not found"):
        load_split(table, folder, 0.2)


def test_check_reports_splits(world, tmp_path):
    assert run_cli("data", "split", world, "--ratio", "0.1")[0] == 0
    code, out, _ = run_cli("data", "check", world, "--no-decode")
    assert code == 0 and "label split weak_supervision/seed0 ratio 0.1" in out
