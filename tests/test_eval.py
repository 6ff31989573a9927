"""`gaze data baseline` + `gaze eval --predictions`: joins, errors, and the literal numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.predictions import Predictions, load_predictions, save_predictions
from tests import reference
from tests.helpers import run_cli

pytest.importorskip("sklearn.metrics")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "gw"
    synthesize_gazeworld(root, 30, 12, seed=2, size=96)
    return root


def predictions_for(table, seed=0) -> Predictions:
    rng = np.random.default_rng(seed)
    return Predictions(table.path.astype(str), table.eye_xy_norm.copy(),
                       rng.random((len(table), 64, 64)).astype(np.float32))


def test_eval_equals_the_literal_computation(world, tmp_path):
    test = read_gazefollow(world, "test")
    preds = predictions_for(test)
    order = np.random.default_rng(1).permutation(len(test))
    shuffled = preds.subset(order)
    shuffled.eye = shuffled.eye + 4e-5  # within the join tolerance
    save_predictions(tmp_path / "p.npz", shuffled)
    code, out, err = run_cli("eval", "--predictions", tmp_path / "p.npz", "--data", world, "-o", tmp_path / "m.json")
    assert code == 0, err
    result = json.loads((tmp_path / "m.json").read_text())
    refs = [reference.gazefollow_person(h, 96, 96, g) for h, g in zip(preds.heatmap, test.gaze_xy_norm)]
    for key in ("auc", "avg_l2", "min_l2"):
        assert result[key] == pytest.approx(np.mean([r[key] for r in refs]), abs=1e-9)
    assert result["n"] == len(test) and result["protocol"]["auc_resolution"] == "native"
    assert "auc" in out and "native" in out
    code, _, _ = run_cli("eval", "--predictions", tmp_path / "p.npz", "--data", world, "-o", tmp_path / "h.json",
                         "--auc-resolution", "heatmap")
    heat = json.loads((tmp_path / "h.json").read_text())
    ref = np.mean([reference.gazefollow_heatmap_auc(h, g) for h, g in zip(preds.heatmap, test.gaze_xy_norm)])
    assert heat["auc"] == pytest.approx(ref, abs=1e-9) and heat["protocol"]["auc_resolution"] == "heatmap"


def test_baseline_command_and_prior(world, tmp_path):
    code, _, err = run_cli("data", "baseline", world, "--out", tmp_path / "c.npz")
    assert code == 0, err
    center = load_predictions(tmp_path / "c.npz")
    assert center.heatmap.shape[1:] == (64, 64)
    assert np.unravel_index(center.heatmap[0].argmax(), (64, 64)) == (32, 32)
    code, _, err = run_cli("data", "baseline", world, "--kind", "prior", "--out", tmp_path / "p.npz")
    assert code == 0, err
    code, _, err = run_cli("eval", "--predictions", tmp_path / "c.npz", "--data", world, "-o", tmp_path / "c.json")
    assert code == 0, err
    result = json.loads((tmp_path / "c.json").read_text())
    assert 0.4 < result["auc"] < 0.8 and 0.1 < result["avg_l2"] < 0.5


@pytest.mark.parametrize("damage,message", [
    ("drop", "persons of the test split have no prediction (first: "),
    ("extra", "is not a person of the test split"),
    ("duplicate", "duplicates person"),
    ("moved", "is not a person of the test split"),
])
def test_join_errors(world, tmp_path, damage, message):
    test = read_gazefollow(world, "test")
    preds = predictions_for(test)
    if damage == "drop":
        preds = preds.subset(np.arange(1, len(test)))
    elif damage == "extra":
        preds = Predictions(np.append(preds.path, "test2/00000000/99999999.png"), np.vstack([preds.eye, [[0.5, 0.5]]]),
                            np.concatenate([preds.heatmap, preds.heatmap[:1]]))
    elif damage == "duplicate":
        preds = preds.subset(np.r_[np.arange(len(test)), 0])
    elif damage == "moved":
        preds.eye[3] += 2e-4  # beyond the 1e-4 tolerance
    save_predictions(tmp_path / "bad.npz", preds)
    code, _, err = run_cli("eval", "--predictions", tmp_path / "bad.npz", "--data", world)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: bad.npz: ") and message in err


def test_bad_prediction_files(world, tmp_path):
    test = read_gazefollow(world, "test")
    np.savez(tmp_path / "nokey.npz", path=test.path.astype(str), eye=test.eye_xy_norm)
    np.savez(tmp_path / "pickled.npz", path=test.path, eye=test.eye_xy_norm,
             heatmap=np.zeros((len(test), 8, 8)))  # an object array: would need unpickling
    (tmp_path / "junk.npz").write_bytes(b"junk")
    np.savez(tmp_path / "nan.npz", path=test.path.astype(str), eye=test.eye_xy_norm,
             heatmap=np.full((len(test), 8, 8), np.nan))
    expected = {"nokey.npz": "prediction file lacks heatmap", "pickled.npz": "not a readable .npz prediction file",
                "junk.npz": "not a readable .npz prediction file", "nan.npz": "'heatmap' holds NaN"}
    for name, message in expected.items():
        code, _, err = run_cli("eval", "--predictions", tmp_path / name, "--data", world)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (name, err)
