"""Head detection: the face-to-head rule, MTCNN on a real face, the cascade as the fallback."""

from __future__ import annotations

import pytest

from gazecli.core.errors import SettingsError
from gazecli.core.predict import heads


def test_face_box_grows_into_a_head_box_by_the_documented_rule():
    # a 100 x 120 face: +25 px each side, +48 px above, +24 px below; clipped to the image
    assert heads.face_to_head_xyxy([100, 100, 200, 220], 640, 480) == [75.0, 52.0, 225.0, 244.0]
    assert heads.face_to_head_xyxy([10, 20, 110, 140], 640, 150) == [0.0, 0.0, 135.0, 150.0]


def test_auto_falls_back_to_the_cascade_without_facenet(monkeypatch):
    monkeypatch.setattr(heads, "mtcnn_available", lambda: False)
    detector = heads.HeadDetector("auto")
    assert detector.name == "cascade" and detector.description == "OpenCV's face cascades"
    with pytest.raises(SettingsError, match=r"--detector mtcnn needs facenet-pytorch: pip install 'gazecli\[detect\]'"):
        heads.HeadDetector("mtcnn")
    with pytest.raises(SettingsError, match="one of auto, mtcnn, cascade"):
        heads.HeadDetector("yolo")


@pytest.mark.parametrize("name", ["mtcnn", "cascade"])
def test_detectors_find_the_astronaut(name):
    skimage_data = pytest.importorskip("skimage.data")
    if name == "mtcnn":
        pytest.importorskip("facenet_pytorch")
    boxes = heads.HeadDetector(name)(skimage_data.astronaut())
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0]
    # her face, drawn by hand, is (178, 75)-(268, 185): the head box holds its sides and the hair above,
    # and reaches down to the chin (185) or nearly (the cascade's face box stops higher)
    assert x1 < 178 and y1 < 75 and x2 > 268 and y2 > 175 and x2 - x1 < 170 and y2 - y1 < 210
    assert all(type(v) is float for v in boxes[0])
