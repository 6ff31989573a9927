"""`from gazecli import Predictor`: head boxes only through named conventions, validated alike;
arrays of every common kind; plain floats out; the GazeWorld warning."""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest

from gazecli.core.errors import SettingsError
from tests.helpers import run_cli
from tests.test_predict import trained  # noqa: F401 - the module's tiny trained student


@pytest.fixture(scope="module")
def predictor(trained):  # noqa: F811
    from gazecli import Predictor

    run, world = trained
    return Predictor.from_run(run, device="cpu"), world


@pytest.fixture(scope="module")
def scene(predictor):
    _, world = predictor
    bgr = cv2.imread(str(world / "test2/00000000/00000001.png"))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_the_three_conventions_give_the_same_person(predictor, scene):
    p, _ = predictor
    a = p.predict(scene, heads=["5,6,12,14"])
    b = p.predict(scene, heads_xywh_px=[(5, 6, 12, 14)])
    c = p.predict(scene, heads_xyxy_px=[(5, 6, 17, 20)])
    assert a[0].head_box_xyxy_px == b[0].head_box_xyxy_px == c[0].head_box_xyxy_px == [5.0, 6.0, 17.0, 20.0]
    assert a[0].point_xy_norm == b[0].point_xy_norm == c[0].point_xy_norm
    np.testing.assert_array_equal(a[0].heatmap, c[0].heatmap)


def test_numbers_out_are_plain_python(predictor, scene):
    p, _ = predictor
    person = p.predict(scene, heads_xyxy_px=[np.array([5, 6, 17, 20], dtype=np.float32)])[0]
    for value in [*person.head_box_xyxy_px, *person.point_xy_norm, *person.point_xy_px, *person.eye_xy_norm,
                  *([person.inout] if person.inout is not None else [])]:
        assert type(value) is float
    assert "np.float" not in repr(person) and "heatmap" not in repr(person)
    text = repr(p)
    assert text.startswith("Predictor(model='gw-student'") and "trained_on='gazeworld'" in text and "device='cpu'" in text


@pytest.mark.parametrize("kwargs,message", [
    ({"heads": [(5, 6, 12, 14)]}, "heads[0] (5, 6, 12, 14): expected an 'x,y,w,h' string"),
    ({"heads": ["5,6,12"]}, "heads[0] '5,6,12': expected x,y,w,h in pixels"),
    ({"heads": ["nan,6,12,14"]}, "heads[0] 'nan,6,12,14': x, y, w and h must be finite numbers"),
    ({"heads_xywh_px": [(5, 6, float("nan"), 14)]}, "heads_xywh_px[0]: x, y, w and h must be finite numbers"),
    ({"heads_xyxy_px": [(5, 6, math.inf, 14)]}, "heads_xyxy_px[0]: x1, y1, x2 and y2 must be finite numbers"),
    ({"heads_xywh_px": [(5, 6, 0, 14)]}, "heads_xywh_px[0]: width and height must be positive"),
    ({"heads": ["5,6,12,-3"]}, "width and height must be positive"),
    # the case: an x,y,w,h box handed over as corners is inverted, and said so
    ({"heads_xyxy_px": [(40, 20, 12, 15)]}, "heads_xyxy_px[0]: empty or inverted box"),
    ({"heads_xyxy_px": [(5, 6, 5, 20)]}, "empty or inverted box"),
    ({"heads_xyxy_px": [(70, 70, 90, 90)]}, "the box lies outside the 64x64 image"),
    ({"heads_xywh_px": [(-30, 5, 10, 10)]}, "the box lies outside the 64x64 image"),
    ({"heads": ["100,100,5,5"]}, "the box lies outside the 64x64 image"),
    ({"heads_xyxy_px": [(1, 2, 3)]}, "heads_xyxy_px[0]: expected 4 numbers, got 3"),
    ({"heads_xyxy_px": [("a", 2, 3, 4)]}, "expected 4 numbers"),
    ({"heads": ["1,1,5,5"], "heads_xyxy_px": [(1, 1, 5, 5)]}, "one convention only"),
])
def test_bad_boxes_are_settings_errors(predictor, scene, kwargs, message):
    p, _ = predictor
    with pytest.raises(SettingsError) as e:
        p.predict(scene, **kwargs)
    assert message in str(e.value) and "np.float" not in str(e.value)


def test_boxes_partly_outside_are_clipped(predictor, scene):
    p, _ = predictor
    assert p.predict(scene, heads_xyxy_px=[(-5, 50, 10, 80)])[0].head_box_xyxy_px == [0.0, 50.0, 10.0, 64.0]


@pytest.mark.filterwarnings("ignore:this checkpoint was trained on GazeWorld")  # the grayscale copy is not GazeWorld
def test_array_kinds(predictor, scene):
    p, _ = predictor
    box = {"heads_xyxy_px": [(5, 6, 17, 20)]}
    ref = p.predict(scene, **box)[0]
    bgr = np.ascontiguousarray(scene[..., ::-1])
    assert p.predict(bgr, color="bgr", **box)[0].point_xy_norm == ref.point_xy_norm
    rgba = np.concatenate([scene, np.full(scene.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert p.predict(rgba, **box)[0].point_xy_norm == ref.point_xy_norm
    as_float = scene.astype(np.float32) / 255.0
    np.testing.assert_allclose(p.predict(as_float, **box)[0].heatmap, ref.heatmap, atol=1e-5)
    gray = cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY)
    for g in (gray, gray[..., None]):
        person = p.predict(g, **box)[0]
        assert person.heatmap.shape == ref.heatmap.shape
        np.testing.assert_array_equal(person.heatmap, p.predict(np.stack([gray] * 3, -1), **box)[0].heatmap)


@pytest.mark.parametrize("image,kwargs,message", [
    (np.full((64, 64, 3), 2.0, np.float32), {}, "a float image must lie in [0, 1] (found 2 to 2)"),
    (np.full((64, 64, 3), 300, np.uint16), {}, "expected uint8 (0-255) or float (0-1) values, got dtype uint16"),
    (np.zeros((64, 64, 2), np.uint8), {}, "got shape (64, 64, 2)"),
    (np.zeros((64, 64, 3), np.uint8), {"color": "hsv"}, "color must be 'rgb' or 'bgr'"),
    (np.full((64, 64, 3), np.nan, np.float32), {}, "NaN or infinite"),
])
def test_bad_arrays(predictor, image, kwargs, message):
    p, _ = predictor
    with pytest.raises(SettingsError) as e:
        p.predict(image, heads=["1,1,5,5"], **kwargs)
    assert message in str(e.value)


def test_from_run_and_its_errors(trained, tmp_path):  # noqa: F811
    from gazecli import Predictor
    from gazecli.core.errors import GazeError

    run, _ = trained
    best, last = Predictor.from_run(run, device="cpu"), Predictor.from_run(run, weights="last", device="cpu")
    assert best.meta["path"].endswith("best.safetensors") and last.meta["path"].endswith("last.safetensors")
    with pytest.raises(GazeError, match="not a run folder"):
        Predictor.from_run(tmp_path / "nope")
    with pytest.raises(SettingsError, match="'best' or 'last'"):
        Predictor.from_run(run, weights="middle")


def test_checkpoint_records_what_it_was_trained_on(trained):  # noqa: F811
    import json

    run, _ = trained
    meta = json.loads((run / "weights" / "best.json").read_text())
    assert meta["trained_on"] == {"kind": "gazeworld", "image_size_px": 64}


def test_gazeworld_model_warns_once_on_a_photo(trained, tmp_path):  # noqa: F811
    skimage_data = pytest.importorskip("skimage.data")
    from gazecli import Predictor

    run, world = trained
    p = Predictor(run, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a GazeWorld image: no warning
        p.predict(world / "test2/00000000/00000001.png", heads=["5,6,12,14"])
    with pytest.warns(UserWarning, match="trained on GazeWorld .* and image \\(512x512\\) is not one"):
        p.predict(skimage_data.astronaut(), heads=["180,20,120,150"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per Predictor
        p.predict(skimage_data.coffee(), heads=["180,20,120,150"])
    # the CLI: one yellow line for a folder of two photos
    src = tmp_path / "photos"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.png"), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / "camera.png"), skimage_data.camera())
    code, out, err = run_cli("predict", src, "--checkpoint", run, "--head", "180,20,120,150", "--project", tmp_path,
                             "--device", "cpu")
    assert code == 0, err
    assert out.count("warning: this checkpoint was trained on GazeWorld") == 1
