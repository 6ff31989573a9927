"""The vectorised metrics equal a literal per-person sklearn + skimage computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gazecli.core import metrics
from tests import reference

sklearn = pytest.importorskip("sklearn.metrics")
skimage_transform = pytest.importorskip("skimage.transform")


def random_case(rng, kind: int, h: int = 64, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:  # continuous noise
        return rng.random((h, w))
    if kind == 1:  # a model-like blob with a little noise
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 4.0**2)) + 0.01 * rng.random((h, w))
    if kind == 2:  # few levels: many exact ties
        return np.round(rng.random((h, w)) * 3) / 3
    if kind == 3:  # ReLU-like: large exactly-zero regions
        return np.maximum(rng.normal(size=(h, w)), 0)
    if kind == 4:  # constant map
        return np.full((h, w), 0.37)
    if kind == 5:  # saturated plateau at the maximum
        m = rng.random((h, w))
        m[: h // 2] = 1.0
        return m
    raise ValueError(kind)


def points_case(rng, n: int, pad: int) -> np.ndarray:
    pts = rng.random((n, 2))
    pts[rng.random(n) < 0.2] = rng.choice([0.0, 1.0], size=2)  # points on the border, x or y = 1.0
    return np.concatenate([pts, np.full((pad, 2), np.nan)])


def test_native_auc_and_distances_equal_the_literal_computation():
    rng = np.random.default_rng(0)
    heatmaps, sizes, points, refs = [], [], [], []
    for trial in range(48):
        kind = trial % 6
        H, W = int(rng.integers(64, 420)), int(rng.integers(64, 420))  # non-square
        if trial % 8 == 7:  # smaller than the heatmap along an axis: skimage anti-aliases
            H = int(rng.integers(20, 64))
        hm = random_case(rng, kind)
        pts = points_case(rng, int(rng.integers(1, 11)), 3)
        heatmaps.append(hm)
        sizes.append((H, W))
        points.append(pts[:13])
        refs.append(reference.gazefollow_person(hm, H, W, pts))
    n_pad = max(len(p) for p in points)
    pts = np.full((len(points), n_pad, 2), np.nan)
    for i, p in enumerate(points):
        pts[i, : len(p)] = p
    out = metrics.gazefollow_metrics(torch.tensor(np.stack(heatmaps)), torch.tensor(sizes), torch.tensor(pts))
    for key in ("auc", "avg_l2", "min_l2"):
        ours = out[key].numpy()
        ref = np.array([r[key] for r in refs])
        assert np.abs(ours - ref).max() <= 1e-4, key
    # upsampling is bit-identical to skimage: equal values give exact ties, hence a tiny error
    assert np.abs(out["auc"].numpy() - np.array([r["auc"] for r in refs])).max() < 1e-9


def test_constant_map_has_auc_one_half_and_batches_do_not_interact():
    rng = np.random.default_rng(1)
    hm = np.stack([np.full((64, 64), 2.0), random_case(rng, 1)])
    pts = np.full((2, 4, 2), np.nan)
    pts[:, :3] = rng.random((2, 3, 2))
    both = metrics.native_auc(torch.tensor(hm), torch.tensor([[300, 200], [150, 500]]), torch.tensor(pts))
    one = metrics.native_auc(torch.tensor(hm[1:]), torch.tensor([[150, 500]]), torch.tensor(pts[1:]))
    assert both[0].item() == pytest.approx(0.5, abs=1e-12)
    assert both[1].item() == one[0].item()


def test_upsampling_is_bit_identical_to_skimage():
    rng = np.random.default_rng(2)
    for (H, W) in [(64, 64), (65, 500), (480, 640), (333, 97)]:
        hm = rng.random((64, 64))
        ours = metrics.upsample_like_skimage(torch.tensor(hm), H, W).numpy()
        ref = skimage_transform.resize(hm, (H, W), order=1)
        assert np.array_equal(ours, ref)


def test_heatmap_grid_auc_equals_the_literal_computation():
    rng = np.random.default_rng(3)
    hms = np.stack([random_case(rng, k % 6) for k in range(12)])
    pts = np.stack([points_case(rng, 5, 2) for _ in range(12)])
    ours = metrics.gazefollow_metrics(torch.tensor(hms), torch.zeros(12, 2), torch.tensor(pts), "heatmap")["auc"]
    ref = [reference.gazefollow_heatmap_auc(h, p) for h, p in zip(hms, pts)]
    assert np.abs(ours.numpy() - np.array(ref)).max() < 1e-9


def test_rank_auc_and_average_precision_handle_ties_like_sklearn():
    rng = np.random.default_rng(4)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        scores = np.round(rng.random(n) * rng.integers(1, 6)) / 5  # heavy ties
        labels = rng.random(n) < 0.3
        labels[0], labels[1] = True, False
        auc = metrics.rank_auc(torch.tensor(scores)[None], torch.tensor(labels)[None])[0].item()
        assert auc == pytest.approx(sklearn.roc_auc_score(labels, scores), abs=1e-12)
        ap = metrics.average_precision(torch.tensor(labels), torch.tensor(scores))
        assert ap == pytest.approx(sklearn.average_precision_score(labels, scores), abs=1e-12)


def test_argmax_takes_the_first_maximum_and_no_half_pixel_offset():
    hm = torch.zeros(1, 64, 64)
    hm[0, 10, 20] = 1.0
    hm[0, 40, 5] = 1.0  # a later tie
    assert metrics.argmax_points(hm).tolist() == [[20 / 64, 10 / 64]]


def test_vat_metrics_equal_chongs_recipe():
    rng = np.random.default_rng(5)
    hms = np.stack([random_case(rng, k % 6) for k in range(16)])
    gaze = rng.random((16, 2))
    gaze[0] = [0.01, 0.99]  # the window clipped at the border
    gaze[1] = [1.0, 0.5]
    meter = metrics.VATMeter()
    inout = np.ones(16)
    inout[-3:] = 0
    scores = rng.random(16)
    meter.update(torch.tensor(hms), torch.tensor(gaze), torch.tensor(inout), torch.tensor(scores))
    result = meter.compute()
    refs = [reference.vat_frame(h, g) for h, g in zip(hms[:-3], gaze[:-3])]
    assert result["auc"] == pytest.approx(np.mean([r["auc"] for r in refs]), abs=1e-12)
    assert result["l2"] == pytest.approx(np.mean([r["l2"] for r in refs]), abs=1e-12)
    assert result["ap"] == pytest.approx(sklearn.average_precision_score(inout, scores), abs=1e-12)
    assert result["n"] == 13 and result["n_frames"] == 16


def test_meter_reports_the_protocol_and_nan_for_persons_without_annotations():
    meter = metrics.GazeFollowMeter("native")
    pts = torch.full((1, 2, 2), float("nan"))
    meter.update(torch.rand(1, 64, 64), torch.tensor([[100, 100]]), pts)
    per = meter.per_person()
    assert math.isnan(per["auc"][0]) and math.isnan(per["avg_l2"][0])
    result = meter.compute()
    assert result["protocol"]["auc_resolution"] == "native" and result["n"] == 1
