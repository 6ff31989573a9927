"""Importing the authors' Grad-CAM pickles: plain data converts into the store; a pickle that
would run code is refused with one line, before anything runs."""

from __future__ import annotations

import os
import pickle
import posixpath

import numpy as np
import pytest
import torch

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.gradcam.authors import load_authors_pickle
from gazecli.core.gradcam.store import GradcamStore
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gwi") / "gw"
    synthesize_gazeworld(root, 6, 1, seed=11, size=64)
    return root


def authors_dict(table, rng) -> tuple[dict, dict]:
    """What the official script pickles: data[basename][eye_x] -> {answer, tokens, 9th/10th/11th_layer},
    keys as pandas gives them (numpy.float64, here 1 ulp-ish off), tensors and arrays mixed.
    The last person is left out; one entry matches no person."""
    data, expected = {}, {}
    for i, (path, ex, ey) in enumerate(table.keys()[:-1]):
        maps = {l: (rng.random((30, 30)) * 1e-6).astype(np.float32) for l in (9, 10, 11)}
        entry = {"answer": f"ball {i}", "tokens": torch.LongTensor([5, 6 + i, 2]),
                 "9th_layer": maps[9], "10th_layer": torch.from_numpy(maps[10]), "11th_layer": maps[11]}
        data.setdefault(posixpath.basename(path), {})[np.float64(ex) + 1e-12] = entry
        expected[(path, ex, ey)] = (maps, entry["answer"], [5, 6 + i, 2])
    data["not_in_the_table.jpg"] = {np.float64(0.5): dict(next(iter(next(iter(data.values())).values())))}
    return data, expected


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_import_converts_the_authors_pickle(world, tmp_path, protocol):
    table = read_gazefollow(world, "train")
    data, expected = authors_dict(table, np.random.default_rng(protocol))
    file = tmp_path / "gradcams_train_person_pos_all.pkl"
    file.write_bytes(pickle.dumps(data, protocol=protocol))
    out = tmp_path / "store"
    code, stdout, err = run_cli("gradcam", "--import-pickle", file, "--data", world, "--out", out)
    assert code == 0, err
    assert f"wrote {len(table) - 1} train persons" in stdout and "entries matching no person" in stdout
    split = GradcamStore(out).split("train")
    assert split.layers == [9, 10, 11] and split.default_layer() == 10 and len(split) == len(table) - 1
    pos = split.positions()
    for key, (maps, answer, tokens) in expected.items():
        i = pos[key]
        for layer in (9, 10, 11):
            np.testing.assert_allclose(split.raw(layer, i), maps[layer], rtol=1e-3, atol=0)
        assert split.column("answer")[i] == answer and split.column("tokens")[i] == tokens
        assert split.column("step")[i] == -1
    source = GradcamStore(out).for_table(table)  # layer 10, the one the paper trains with
    assert source.layer == 10 and source.found.tolist() == [True] * (len(table) - 1) + [False]
    assert source.get(len(table) - 1) is None


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused(world, tmp_path):
    marker = tmp_path / "pwned"
    table = read_gazefollow(world, "train")
    data, _ = authors_dict(table, np.random.default_rng(0))
    first = next(iter(data))
    data[first][np.float64(0.123)] = {"answer": RunsCode(marker)}  # buried among plain entries
    file = tmp_path / "evil.pkl"
    file.write_bytes(pickle.dumps(data, protocol=4))
    assert pickle.loads(file.read_bytes()) is not None and marker.exists()  # it really runs code ...
    marker.unlink()
    code, out, err = run_cli("gradcam", "--import-pickle", file, "--data", world, "--out", tmp_path / "store")
    assert code == 1 and not marker.exists()  # ... but not here
    assert err.strip() == (f"error: evil.pkl: refused to load: the pickle references {os.system.__module__}.system, "
                           "which is not plain data (a pickle can run code; only containers, strings, numbers and "
                           "numpy/torch arrays are accepted)")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("payload", [
    lambda m: pickle.dumps({"a.jpg": {0.5: {"x": eval}}}),
    lambda m: b"\x80\x04\x95" + b"\x00" * 8 + b"csubprocess\nPopen\n.",
    # code hidden inside a "torch storage": torch.load(weights_only=True) refuses it
    lambda m: pickle.dumps({"a.jpg": {0.5: {"10th_layer": _FakeStorage(pickle.dumps(RunsCode(m)))}}}),
    lambda m: b"not a pickle at all",
    lambda m: pickle.dumps([1, 2, 3]),
])
def test_refusals_are_one_line(tmp_path, payload):
    marker = tmp_path / "pwned"
    file = tmp_path / "bad.pkl"
    file.write_bytes(payload(marker))
    with pytest.raises(Exception) as info:
        load_authors_pickle(file)
    from gazecli.core.errors import GazeError

    assert isinstance(info.value, GazeError) and "\n" not in str(info.value) and str(info.value).startswith("bad.pkl")
    assert not marker.exists()


class _FakeStorage:
    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.data,)
