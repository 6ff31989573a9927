"""The torch Dataset: augmentations move the image, the labels and attached maps together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gazecli.core.data.dataset import ArrayMaps, GazeDataset
from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.data.heatmaps import gaussian_heatmaps
from gazecli.core.data.transforms import Augment, SampleConfig, expand_box, transform_map

CFG = SampleConfig(input_size=96, face_size=32, heatmap_size=48, sigma=2.0, augment=True, crop_prob=0.7)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "gw"
    synthesize_gazeworld(root, 40, 6, seed=5, size=128)
    return root


def gaze_maps(table, grid: int = 30) -> ArrayMaps:
    """Per person: a sharp blob at the true gaze point on a 30x30 grid over the whole image."""
    maps = {}
    for i in range(len(table)):
        if table.inout[i] == 1:
            maps[i] = gaussian_heatmaps(table.gaze_xy_norm[i, :1], grid, grid, sigma=0.8)[0]
    return ArrayMaps(maps)


def peak(t: torch.Tensor) -> np.ndarray:
    h, w = t.shape[-2:]
    r, c = divmod(int(t.reshape(-1).argmax()), w)
    return np.array([(c + 0.5) / w, (r + 0.5) / h])


def test_crop_flip_move_labels_and_maps_together(world):
    table = read_gazefollow(world, "train")
    ds = GazeDataset(table, CFG, maps={"gradcam": gaze_maps(table)}, seed=0)
    checked = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(table)):
            if table.inout[i] != 1:
                continue
            s = ds[i]
            g = s["gaze_xy_norm"].numpy()
            assert ((0 <= g) & (g <= 1)).all()  # the crop keeps the gaze point
            h = s["head_box_xyxy_norm"].numpy()
            assert h[0] < h[2] and h[1] < h[3]
            # the target's peak, the attached map's peak and the gaze point agree
            assert np.abs(peak(s["heatmap"]) - g).max() < 2.5 / 48
            assert s["gradcam_valid"] and np.abs(peak(s["gradcam"]) - g).max() < 0.06
            # the head channel covers the head box
            mask = s["head_channel"][0]
            cy, cx = int((h[1] + h[3]) / 2 * 96), int((h[0] + h[2]) / 2 * 96)
            assert mask[min(cy, 95), min(cx, 95)] == 1 and 0 < mask.mean() < 0.5
            checked += 1
    assert checked > 100


def test_flip_and_crop_are_applied(world):
    table = read_gazefollow(world, "train")
    i = int(np.flatnonzero(table.inout == 1)[0])
    ds = GazeDataset(table, SampleConfig(input_size=96, face_size=32, heatmap_size=48), seed=0)
    image = ds.load(i)
    plain = ds.render(i, image, Augment(), reveal=True)
    flipped = ds.render(i, image, Augment(flip=True), reveal=True)
    g, gf = plain["gaze_xy_norm"].numpy(), flipped["gaze_xy_norm"].numpy()
    assert gf[0] == pytest.approx(1 - g[0], abs=1e-6) and gf[1] == pytest.approx(g[1], abs=1e-6)
    assert torch.allclose(flipped["scene"], plain["scene"].flip(-1), atol=1e-5)
    crop = (10.0, 20.0, 100.0, 90.0)
    cropped = ds.render(i, image, Augment(crop=crop), reveal=True)
    expected = (table.gaze_xy_norm[i, 0] * 128 - crop[:2]) / crop[2:]
    assert cropped["gaze_xy_norm"].numpy() == pytest.approx(expected, abs=1e-5)


def test_unlabelled_persons_do_not_expose_labels(world):
    table = read_gazefollow(world, "train")
    labelled = np.zeros(len(table), dtype=bool)
    labelled[::2] = True
    ds = GazeDataset(table, CFG, labelled=labelled, seed=0)
    s = ds[1]
    assert s["inout"].item() == -1 and torch.isnan(s["gaze_xy_norm"]).all() and s["heatmap"].abs().sum() == 0
    assert not s["labelled"]
    exposed = GazeDataset(table, CFG, labelled=labelled, seed=0, expose_unlabelled_labels=True)[1]
    assert exposed["inout"].item() == float(table.inout[1])


def test_samples_depend_only_on_seed_epoch_index(world):
    table = read_gazefollow(world, "train")
    a, b = GazeDataset(table, CFG, seed=3), GazeDataset(table, CFG, seed=3)
    for i in (0, 5, 9):
        assert torch.equal(a[i]["scene"], b[i]["scene"])
    b.set_epoch(1)
    assert any(not torch.equal(a[i]["scene"], b[i]["scene"]) for i in range(10))
    batch = next(iter(torch.utils.data.DataLoader(a, batch_size=4)))
    assert batch["scene"].shape == (4, 3, 96, 96) and batch["heatmap"].shape == (4, 1, 48, 48)


def test_test_samples_carry_all_annotators(world):
    table = read_gazefollow(world, "test")
    ds = GazeDataset(table, SampleConfig(input_size=96, face_size=32, heatmap_size=48))
    s = ds[0]
    pts = s["gaze_points_norm"].numpy()
    assert np.isfinite(pts).all(axis=1).sum() == 10
    assert s["gaze_xy_norm"].numpy() == pytest.approx(np.nanmean(pts, axis=0), abs=1e-6)
    assert s["image_size_hw"].tolist() == [128, 128]


def test_transform_map_edge_cases():
    m, valid = transform_map(np.full((30, 30), 2.0), (0, 0, 1, 1), False, 16)
    assert not valid and m.sum() == 0
    m, valid = transform_map(np.array([[np.nan, 1], [0, 0]]), (0, 0, 1, 1), False, 16)
    assert not valid
    grid = np.zeros((10, 10))
    grid[2, 7] = 1.0
    m, valid = transform_map(grid, (0, 0, 1, 1), False, 10)
    assert valid and np.unravel_index(m.argmax(), m.shape) == (2, 7)
    m, _ = transform_map(grid, (0, 0, 1, 1), True, 10)
    assert np.unravel_index(m.argmax(), m.shape) == (2, 2)
    m, _ = transform_map(grid, (0.5, 0.0, 1.0, 0.5), False, 10)  # the top-right quarter, magnified x2
    assert np.unravel_index(m.argmax(), m.shape) in {(4, 4), (4, 5), (5, 4), (5, 5)}


def test_expand_box_is_sequential():
    assert expand_box(np.array([10, 10, 20, 30]), 0.1).tolist() == pytest.approx([9.0, 8.0, 21.1, 32.2])
