"""Fidelity to the official code: VAT-GC's attention input order, exact Grad-CAM resampling, and
the --compat Grad-CAM crop and out-of-frame zeroing (docs/compat.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gazecli.core.models.vat import VATConfig, VATModel


def test_vat_gc_attention_reads_head_gradcam_face_in_the_official_order():
    torch.manual_seed(0)
    config = VATConfig(backbone="tiny", input_size=64, face_size=32, heatmap_size=32, gradcam=True)
    model = VATModel(config).eval()
    seen = {}
    model.attn.register_forward_hook(lambda mod, inputs, out: seen.update(x=inputs[0].detach()))
    scene, face = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 32, 32)
    head = torch.zeros(2, 1, 64, 64)
    head[0, :, 5:20, 30:40] = 1
    head[1, :, 40:60, 2:9] = 1
    gradcam = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        model(scene, head, face, gradcam)
        pooled_head = F.max_pool2d(F.max_pool2d(F.max_pool2d(head, 3, 2, 1), 3, 2, 1), 3, 2, 1).flatten(1)
        pooled_cam = F.max_pool2d(F.max_pool2d(gradcam, 3, 2, 1), 3, 2, 1).flatten(1)
        face_vec = model.pathway("face", face).mean(dim=(2, 3))
    x = seen["x"]
    n_head, n_cam = config.head_grid**2, config.gradcam_grid**2
    assert (n_head, n_cam) == (64, 64) and x.shape[1] == n_head + n_cam + face_vec.shape[1]
    assert torch.equal(x[:, :n_head], pooled_head)
    assert torch.equal(x[:, n_head:n_head + n_cam], pooled_cam)
    torch.testing.assert_close(x[:, n_head + n_cam:], face_vec, rtol=0, atol=1e-6)
    assert not torch.allclose(pooled_cam, face_vec[:, :n_cam])  # the segments really differ


@pytest.mark.parametrize("shape,size", [((30, 30), 64), ((17, 23), 64), ((30, 30), 16), ((5, 7), 48)])
def test_uncropped_map_resample_equals_interpolate_plus_minmax(shape, size):
    from gazecli.core.data.transforms import transform_map

    rng = np.random.default_rng(1)
    for _ in range(5):
        raw = (rng.random(shape) ** 3 * 1e-6).astype(np.float32)  # raw Grad-CAMs are tiny and skewed
        ours, valid = transform_map(raw, (0.0, 0.0, 1.0, 1.0), False, size)
        ref = F.interpolate(torch.from_numpy(raw)[None, None].double(), size=(size, size), mode="bilinear",
                            align_corners=False)[0, 0]
        ref = ((ref - ref.min()) / (ref.max() - ref.min())).numpy()
        assert valid and np.abs(ours - ref).max() < 1e-4
        flipped, _ = transform_map(raw, (0.0, 0.0, 1.0, 1.0), True, size)
        assert np.abs(flipped - ref[:, ::-1]).max() < 1e-4  # resize and flip commute


def test_the_old_fixed_point_warp_was_off_by_more_than_the_tolerance():
    """cv2.warpAffine's 1/32-px coordinates: why the resampling was replaced (docs/compat.md)."""
    import cv2

    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        raw = rng.random((30, 30)).astype(np.float32)
        s = 30 / 64
        affine = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]])
        old = cv2.warpAffine(raw, affine, (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        ref = F.interpolate(torch.from_numpy(raw)[None, None], size=64, mode="bilinear", align_corners=False)[0, 0]
        worst = max(worst, float((torch.from_numpy(old) - ref).abs().max() / (ref.max() - ref.min())))
    assert worst > 1e-3


def test_resample_of_a_crop_window_samples_the_continuous_window():
    from gazecli.core.data.resample import resample_bilinear

    ramp = np.tile(np.arange(30, dtype=np.float64), (30, 1))  # value = column index: bilinear reproduces it
    out = resample_bilinear(ramp, (0.2, 0.0, 0.7, 1.0), 64)
    expected = 0.2 * 30 + (np.arange(64) + 0.5) * (0.5 * 30 / 64) - 0.5  # cell-centre coordinates in the window
    np.testing.assert_allclose(out[10], expected, atol=1e-12)


def test_official_grid_crop_truncates_to_whole_cells():
    from gazecli.core.data.resample import official_grid_crop

    raw = np.arange(900, dtype=np.float32).reshape(30, 30)
    # image 300 x 200 px, crop x0=47, y0=31, w=150.5, h=120 -> grid x 4.7..19.75 -> 4..19, y 4.65..22.65 -> 4..22
    out = official_grid_crop(raw, (47.0, 31.0, 150.5, 120.0), 300, 200)
    np.testing.assert_array_equal(out, raw[4:22, 4:19])
    # a crop narrower than one cell: empty -> None (the official code then cancels the whole crop)
    assert official_grid_crop(raw, (91.0, 0.0, 5.0, 200.0), 300, 200) is None  # x 9.1..9.6
    # a crop ending past the image is capped at the grid
    assert official_grid_crop(raw, (150.0, 0.0, 400.0, 200.0), 300, 200).shape == (30, 15)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from gazecli.core.data.gazeworld import synthesize_gazeworld

    root = tmp_path_factory.mktemp("fid") / "gw"
    synthesize_gazeworld(root, 30, 6, seed=2, size=128)
    return root


def test_compat_zeroes_out_of_frame_gradcams_by_the_ground_truth_flag(world):
    from gazecli.core.data.dataset import ArrayMaps, GazeDataset
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.transforms import SampleConfig

    table = read_gazefollow(world, "train")
    rng = np.random.default_rng(0)
    maps = ArrayMaps({i: rng.random((30, 30)).astype(np.float32) for i in range(len(table))})
    out_rows = np.flatnonzero(table.inout != 1)
    in_rows = np.flatnonzero(table.inout == 1)
    labelled = np.arange(len(table)) % 2 == 0
    labelled[out_rows] = np.arange(len(out_rows)) % 2 == 0  # out-of-frame persons labelled and unlabelled
    cfg = SampleConfig(input_size=64, face_size=32, heatmap_size=32)
    plain = GazeDataset(table, cfg, labelled=labelled, maps={"gradcam": maps})
    compat = GazeDataset(table, SampleConfig(**{**cfg.__dict__, "gradcam_compat": True}), labelled=labelled,
                         maps={"gradcam": maps})
    assert len(out_rows) and (~labelled[out_rows]).any() and labelled[out_rows].any()
    for i in out_rows:
        a, b = plain[i], compat[i]
        assert a["gradcam"].abs().sum() > 0  # the default never reads the hidden flag
        assert b["gradcam"].abs().sum() == 0 and b["inout"] == (0 if labelled[i] else -1)  # the flag stays hidden
    for i in in_rows[:5]:
        torch.testing.assert_close(plain[i]["gradcam"], compat[i]["gradcam"], rtol=0, atol=0)


def test_compat_crops_labelled_gradcams_on_the_integer_grid(world):
    from gazecli.core.data.dataset import ArrayMaps, GazeDataset
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.resample import official_grid_crop
    from gazecli.core.data.transforms import SampleConfig, transform_map

    table = read_gazefollow(world, "train")
    rng = np.random.default_rng(1)
    maps = ArrayMaps({i: rng.random((30, 30)).astype(np.float32) for i in range(len(table))})
    cfg = SampleConfig(input_size=64, face_size=32, heatmap_size=32, augment=True, crop_prob=1.0, flip_prob=0.0,
                       jitter_prob=0.0, colour_prob=0.0, gradcam_compat=True)
    ds = GazeDataset(table, cfg, maps={"gradcam": maps}, seed=4)
    checked = 0
    for i in np.flatnonzero(table.inout == 1)[:12]:
        image = ds.load(i)
        aug = ds.draw(i, image, ds.rng(i))
        crop = official_grid_crop(maps.get(i), aug.crop, image.shape[1], image.shape[0])
        if crop is None:
            continue
        expected, _ = transform_map(crop, (0.0, 0.0, 1.0, 1.0), False, 32)
        got = ds[i]["gradcam"][0].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
        continuous, _ = transform_map(maps.get(i), (aug.crop[0] / image.shape[1], aug.crop[1] / image.shape[0],
                                                    (aug.crop[0] + aug.crop[2]) / image.shape[1],
                                                    (aug.crop[1] + aug.crop[3]) / image.shape[0]), False, 32)
        checked += int(np.abs(continuous - got).max() > 1e-3)  # the default's continuous crop differs
    assert checked >= 5
