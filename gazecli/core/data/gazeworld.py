"""GazeWorld: a procedural gaze-following world written in the extended GazeFollow layout
(docs/formats.md, "GazeWorld"), so every reader, split, metric and stage runs on it unchanged.

A scene is a muted textured room with 3-6 objects of six classes (each its own shape and
colour) and one or two persons drawn as a body and a head. The gaze cue is on the head:
hair on the back half, two dark eyes and a darker nose towards the gaze direction. The
subject looks at one object (sometimes with a same-class twin elsewhere) or, in some train
scenes, out of the frame; a second person may look at another object or at a random point.

Coordinates are continuous: pixel i spans [i, i+1), so a normalised point is `x_px / size`
and boxes are `*_box_xyxy_px` in [0, size]. Colours in `Scene.objects` and the sidecars are
RGB 0-255; `Scene.image` is BGR (OpenCV).

Every image draws its randomness from `np.random.default_rng([seed, split_code, index])`,
so an image does not depend on generation order or on the other images: the same seed gives
byte-identical files, a different seed a different world. numpy + OpenCV only (no torch).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from gazecli.core.data.gazefollow import ANNOTATION_FILES
from gazecli.core.data.gazeworld_qa import CLASS_NAMES, QA_NAMES, qa_record
from gazecli.core.errors import DataError, SettingsError
from gazecli.core.io import write_bytes, write_json, write_text

GENERATOR_VERSION = "gazeworld-1"
CLASSES = CLASS_NAMES
OUTSIDE = "outside"  # target_class of an out-of-frame gaze
NO_OBJECT = "none"  # target_class of an in-frame gaze at a random point (second persons only)
SPLIT_CODES = {"train": 0, "test": 1}
IMAGE_FOLDERS = {"train": "train", "test": "test2"}  # GazeFollow's test images live in test2/
ANNOTATION_NAMES = {split: names[0] for split, names in ANNOTATION_FILES.items()}  # the persondet files
SIDECAR_NAMES = {"train": "gazeworld_train.jsonl", "test": "gazeworld_test.jsonl"}
META_NAME = "gazeworld.json"
IMAGES_PER_FOLDER = 1000
REFERENCE_SIZE = 128  # every pixel size below is at 128 px and scales with size / 128
IMAGE_FORMATS = {"png": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]),
                 "jpg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])}
_ANNOTATOR_STREAM = 1  # 4th seed word of the test-annotator generator (the scene uses 3 words)


@dataclass(frozen=True)
class GazeWorldConfig:
    """Every difficulty knob. Pixel sizes are at 128 px and scale with size / 128."""

    n_objects: tuple[int, int] = (3, 6)  # objects per scene, inclusive
    object_half_size_px: tuple[float, float] = (4.5, 8.5)
    head_radius_px: tuple[float, float] = (4.5, 10.0)
    twin_probability: float = 0.5  # the target's class is given a same-class twin
    second_person_probability: float = 0.4
    second_person_object_probability: float = 0.75  # else it looks at a random in-frame point
    out_of_frame_probability: float = 0.10  # train subjects only; test is all in frame
    occlusion_probability: float = 0.15  # per distractor: may overlap objects or persons
    target_min_distance_radii: float = 2.2  # the target is at least this many head radii ...
    target_min_distance_px: float = 6.0  # ... plus this many px from the subject's head centre
    colour_jitter: float = 0.08  # per channel, fraction of 255
    background_noise: float = 0.08  # amplitude of the low-frequency luminance noise
    stripe_probability: float = 0.3
    pixel_noise: float = 0.03  # sigma of the per-pixel noise, fraction of 255
    gaze_jitter: float = 0.2  # train gaze point: sigma in target half-sizes around its centre
    annotator_jitter: float = 0.015  # test annotators: sigma as a fraction of the image size
    annotator_box_fraction: float = 0.7  # test annotators: uniform inside the box shrunk to this
    head_box_enlarge: float = 0.10  # head box = head circle's box enlarged by this (each side, in r)
    head_box_jitter: float = 0.04  # sigma of each head-box side, in head radii
    no_body_probability: float = 0.05  # persons written with body box -1 ("no body detected")

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                if len(value) != 2 or not (0 <= value[0] <= value[1]):
                    raise SettingsError(f"GazeWorld {f.name}: expected (low, high) with 0 <= low <= high, got {value}")
            elif f.name.endswith("_probability") or f.name == "annotator_box_fraction":
                if not 0.0 <= value <= 1.0:
                    raise SettingsError(f"GazeWorld {f.name}: expected a value in [0, 1], got {value}")
            elif value < 0:
                raise SettingsError(f"GazeWorld {f.name}: expected a non-negative value, got {value}")
        if not all(isinstance(v, int) for v in self.n_objects) or self.n_objects[0] < 1:
            raise SettingsError(f"GazeWorld n_objects: expected whole numbers, at least 1, got {self.n_objects}")
        if self.head_radius_px[0] <= 0 or self.object_half_size_px[0] <= 0:
            raise SettingsError("GazeWorld head_radius_px and object_half_size_px must be positive")


DIFFICULTIES: dict[str, GazeWorldConfig] = {
    "easy": GazeWorldConfig(
        n_objects=(2, 4), object_half_size_px=(6.0, 9.0), head_radius_px=(8.0, 12.0),
        twin_probability=0.0, second_person_probability=0.0, out_of_frame_probability=0.0,
        occlusion_probability=0.0, background_noise=0.05, stripe_probability=0.2, pixel_noise=0.02,
    ),
    "normal": GazeWorldConfig(),
    "hard": GazeWorldConfig(
        n_objects=(4, 8), object_half_size_px=(4.0, 7.5), head_radius_px=(4.0, 7.5),
        twin_probability=0.8, second_person_probability=0.5, out_of_frame_probability=0.10,
        occlusion_probability=0.25, background_noise=0.12, stripe_probability=0.5, pixel_noise=0.05,
    ),
}

# --- appearance ---------------------------------------------------------------------------

# object extents in half-sizes around the centre (x1, y1, x2, y2): the object's box
_EXTENTS = {
    "ball": (-0.95, -0.95, 0.95, 0.95),
    "cup": (-0.75, -0.80, 0.98, 0.85),
    "book": (-0.72, -0.95, 0.72, 0.95),
    "plant": (-0.95, -0.95, 0.95, 0.95),
    "lamp": (-0.78, -0.95, 0.78, 0.95),
    "clock": (-0.95, -0.95, 0.95, 0.95),
}
_OBJECT_RGB = {  # main colour of each class, before jitter
    "ball": (205, 40, 35),
    "cup": (40, 85, 200),
    "book": (135, 80, 40),
    "plant": (105, 130, 35),
    "lamp": (235, 200, 45),
    "clock": (240, 240, 232),
}
_SKIN_RGB = ((241, 194, 160), (226, 174, 134), (200, 144, 104), (170, 118, 82), (135, 92, 64))
_HAIR_RGB = ((22, 18, 16), (48, 32, 22), (82, 52, 28), (112, 74, 38))
_EYE_RGB = (14, 12, 12)

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel anti-aliased drawing
_ONE = 1 << _SHIFT


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    objects: list[dict]  # cls, box_xyxy_px, colour (RGB), occluded
    persons: list[dict]  # subject first; see render_scene
    size: int
    seed: int
    split: str
    index: int


# --- layout -------------------------------------------------------------------------------


def _overlaps(a, b, gap: float = 0.0) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _inside(p, box) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-9 else np.array([1.0, 0.0])


def _not_green(rgb: np.ndarray) -> np.ndarray:
    """Make G at most max(R, B): pure green is reserved for the VQA prompt box."""
    rgb = np.array(rgb, dtype=np.float64)
    hi = max(rgb[0], rgb[2])
    if rgb[1] > hi:
        j = 0 if rgb[0] >= rgb[2] else 2
        rgb[1], rgb[j] = rgb[j], rgb[1]
    return rgb


def _sample_person(rng, size: int, k: float, cfg: GazeWorldConfig, taken: list) -> dict | None:
    for _ in range(40):
        r = rng.uniform(*cfg.head_radius_px) * k
        if 2 * r + 2 * k >= size:
            return None
        cx = rng.uniform(r + k, size - r - k)
        cy = rng.uniform(r + k, max(r + k, size - 2.0 * r))
        w = rng.uniform(1.6, 2.4) * r
        h = rng.uniform(2.5, 4.0) * r
        bx = cx + rng.uniform(-0.15, 0.15) * r
        top = cy + 0.75 * r
        head = (cx - 1.06 * r, cy - 1.06 * r, cx + 1.06 * r, cy + 1.06 * r)  # with the hair
        body = (bx - w / 2, top, bx + w / 2, top + h)
        if any(_overlaps(box, t, 2 * k) for t in taken for box in (head, body)):
            continue
        skin = np.array(_SKIN_RGB[rng.integers(len(_SKIN_RGB))], dtype=np.float64)
        skin = np.clip(skin + rng.uniform(-10, 10, 3), 0, 255)
        dark = [h_ for h_ in _HAIR_RGB if _luma(h_) < 0.6 * _luma(skin)] or [_HAIR_RGB[0]]
        hair = np.array(dark[rng.integers(len(dark))], dtype=np.float64)
        clothes = _not_green(rng.uniform(25, 230, 3))
        return {
            "centre": np.array([cx, cy]), "r": r, "head": head, "body": body,
            "ellipse_body": bool(rng.random() < 0.5), "skin": skin, "hair": hair, "clothes": clothes,
        }
    return None


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _place_object(rng, cls: str, size: int, k: float, cfg, avoid: list, gap: float,
                  far_from=None, centre_free: list | None = None, near=None):
    """Sample a box for one object; None when no free place is found.

    `near`: a box the object must straddle (its centre within 0.8 half-sizes of that box).
    """
    ex = _EXTENTS[cls]
    for _ in range(60):
        s = rng.uniform(*cfg.object_half_size_px) * k
        lo_x, hi_x = k - ex[0] * s, size - k - ex[2] * s
        lo_y, hi_y = k - ex[1] * s, size - k - ex[3] * s
        if near is not None:
            lo_x, hi_x = max(lo_x, near[0] - 0.8 * s), min(hi_x, near[2] + 0.8 * s)
            lo_y, hi_y = max(lo_y, near[1] - 0.8 * s), min(hi_y, near[3] + 0.8 * s)
        if hi_x <= lo_x or hi_y <= lo_y:
            continue
        c = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        box = (c[0] + ex[0] * s, c[1] + ex[1] * s, c[0] + ex[2] * s, c[1] + ex[3] * s)
        if far_from is not None and np.hypot(*(c - far_from[0])) < far_from[1]:
            continue
        if any(_overlaps(box, a, gap) for a in avoid):
            continue
        if centre_free is not None and any(_inside(c, a) for a in centre_free):
            continue
        return c, s, box
    return None


def _ray_clearance(origin, d, objects) -> float:
    """Smallest distance between the ray origin + t d (t >= 0) and an object's disc."""
    best = math.inf
    for o in objects:
        v = o["centre"] - origin
        t = max(0.0, float(v @ d))
        dist = float(np.hypot(*(v - t * d))) - o["s"] * 1.35
        best = min(best, dist)
    return best


def _sample_layout(rng, split: str, size: int, k: float, cfg: GazeWorldConfig):
    subject = _sample_person(rng, size, k, cfg, [])
    if subject is None:
        return None
    persons = [subject]
    if rng.random() < cfg.second_person_probability:
        other = _sample_person(rng, size, k, cfg, [subject["head"], subject["body"]])
        if other is not None:
            persons.append(other)
    person_boxes = [b for p in persons for b in (p["head"], p["body"])]
    out_of_frame = split == "train" and rng.random() < cfg.out_of_frame_probability

    n = int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))
    if out_of_frame:
        classes = [CLASSES[i] for i in rng.integers(len(CLASSES), size=n)]
    else:
        target_cls = CLASSES[rng.integers(len(CLASSES))]
        classes = [target_cls]
        if n > 1 and rng.random() < cfg.twin_probability:
            classes.append(target_cls)
        classes += [CLASSES[i] for i in rng.integers(len(CLASSES), size=n - len(classes))]

    a, b = cfg.target_min_distance_radii, cfg.target_min_distance_px
    objects: list[dict] = []
    for i, cls in enumerate(classes):
        is_target = i == 0 and not out_of_frame
        occludable = not is_target and rng.random() < cfg.occlusion_probability
        placed_boxes = [o["box"] for o in objects]
        if occludable:  # tucked behind a person or another object, never the target; centre stays free
            has_target = bool(objects) and not out_of_frame
            avoid = [objects[0]["box"]] if has_target else []
            partners = person_boxes + [o["box"] for j, o in enumerate(objects) if not (has_target and j == 0)]
            found = _place_object(rng, cls, size, k, cfg, avoid, k,
                                  centre_free=person_boxes + placed_boxes,
                                  near=partners[rng.integers(len(partners))])
        else:
            far = (subject["centre"], a * subject["r"] + b * k) if is_target else None
            avoid = person_boxes + [o["box"] for o in objects if not o["occludable"]]
            found = _place_object(rng, cls, size, k, cfg, avoid, 2 * k, far_from=far,
                                  centre_free=placed_boxes)
        if found is None:
            if is_target:
                return None  # no room for the target: draw a fresh layout
            continue
        c, s, box = found
        colour = np.clip(np.array(_OBJECT_RGB[cls], dtype=np.float64)
                         + rng.uniform(-cfg.colour_jitter, cfg.colour_jitter, 3) * 255, 0, 255)
        objects.append({"cls": cls, "centre": c, "s": s, "box": box, "colour": colour,
                        "occludable": occludable})
    for i, o in enumerate(objects):
        o["occluded"] = any(_overlaps(o["box"], p) for p in person_boxes) or any(
            _overlaps(o["box"], q["box"]) for j, q in enumerate(objects) if j != i)

    # the subject's gaze
    if out_of_frame:
        best = None
        eye0 = subject["centre"]
        for _ in range(16):
            ang = rng.uniform(0, 2 * math.pi)
            d = np.array([math.cos(ang), math.sin(ang)])
            clear = _ray_clearance(eye0 + 0.5 * subject["r"] * d, d, objects)
            if best is None or clear > best[0]:
                best = (clear, d)
            if clear > 2 * k:
                break
        _set_gaze(subject, best[1], None, None, OUTSIDE)
    else:
        t = objects[0]
        d = _unit(t["centre"] - subject["centre"])
        _set_gaze(subject, d, _gaze_point(rng, t, cfg), 0, t["cls"])

    # the second person's gaze: another visible object, or a random in-frame point
    if len(persons) > 1:
        p = persons[1]
        reach = a * p["r"] + b * k
        subject_target = subject["target"]
        candidates = [j for j, o in enumerate(objects) if j != subject_target and not o["occluded"]
                      and np.hypot(*(o["centre"] - p["centre"])) >= reach]
        if candidates and rng.random() < cfg.second_person_object_probability:
            j = candidates[rng.integers(len(candidates))]
            o = objects[j]
            _set_gaze(p, _unit(o["centre"] - p["centre"]), _gaze_point(rng, o, cfg), j, o["cls"])
        else:
            point = None
            for _ in range(40):
                q = rng.uniform(2 * k, size - 2 * k, 2)
                if np.hypot(*(q - p["centre"])) >= reach:
                    point = q
                    break
            if point is None:
                persons.pop()
            else:
                _set_gaze(p, _unit(point - p["centre"]), point, None, NO_OBJECT)
    return persons, objects


def _gaze_point(rng, obj: dict, cfg: GazeWorldConfig) -> np.ndarray:
    box = obj["box"]
    g = obj["centre"] + rng.normal(0.0, cfg.gaze_jitter * obj["s"], 2)
    return np.clip(g, [box[0], box[1]], [box[2], box[3]])


def _set_gaze(person: dict, d, gaze_xy_px, target, target_class: str) -> None:
    person["gaze_dir"] = _unit(d)
    person["eye"] = person["centre"] + 0.5 * person["r"] * person["gaze_dir"]
    person["gaze_xy_px"] = gaze_xy_px
    person["target"] = target
    person["target_class"] = target_class


# --- drawing ------------------------------------------------------------------------------


def _pt(x: float, y: float) -> tuple[int, int]:
    """Continuous coordinates (pixel i spans [i, i+1)) to OpenCV fixed point (pixel centres)."""
    return int(round((x - 0.5) * _ONE)), int(round((y - 0.5) * _ONE))


def _len(v: float) -> int:
    return max(1, int(round(v * _ONE)))


def _bgr(rgb) -> tuple[float, float, float]:
    return float(rgb[2]), float(rgb[1]), float(rgb[0])


def _circle(img, c, r, rgb, thickness: int = -1) -> None:
    cv2.circle(img, _pt(*c), _len(r), _bgr(rgb), thickness, cv2.LINE_AA, _SHIFT)


def _poly(img, points, rgb) -> None:
    pts = np.array([_pt(x, y) for x, y in points], dtype=np.int32)
    cv2.fillConvexPoly(img, pts, _bgr(rgb), cv2.LINE_AA, _SHIFT)


def _rect(img, x1, y1, x2, y2, rgb) -> None:
    _poly(img, [(x1, y1), (x2, y1), (x2, y2), (x1, y2)], rgb)


def _ellipse(img, c, axes, angle_deg, rgb, start=0.0, end=360.0, thickness: int = -1) -> None:
    cv2.ellipse(img, _pt(*c), (_len(axes[0]), _len(axes[1])), float(angle_deg), float(start), float(end),
                _bgr(rgb), thickness, cv2.LINE_AA, _SHIFT)


def _mix(rgb, other, t: float) -> np.ndarray:
    return (1 - t) * np.asarray(rgb, dtype=np.float64) + t * np.asarray(other, dtype=np.float64)


def _draw_object(img, o: dict) -> None:
    cx, cy = o["centre"]
    s = o["s"]
    col = o["colour"]

    def u(x, y):  # unit coordinates of the object to pixels
        return cx + x * s, cy + y * s

    cls = o["cls"]
    if cls == "ball":
        _circle(img, u(0, 0), 0.95 * s, col)
        _circle(img, u(-0.32, -0.32), 0.26 * s, _mix(col, (255, 255, 255), 0.7))
    elif cls == "cup":
        thick = max(1, int(round(0.2 * s)))
        _ellipse(img, u(0.45, 0.02), (0.42 * s, 0.38 * s), 0, _mix(col, (0, 0, 0), 0.15), -90, 90, thick)
        _rect(img, *u(-0.75, -0.8), *u(0.45, 0.85), col)
        _rect(img, *u(-0.75, -0.8), *u(0.45, -0.6), _mix(col, (255, 255, 255), 0.35))
    elif cls == "book":
        _rect(img, *u(-0.72, -0.95), *u(0.72, 0.95), col)
        _rect(img, *u(0.38, -0.82), *u(0.6, 0.82), (236, 226, 198))
    elif cls == "plant":
        _poly(img, [u(-0.55, 0.15), u(0.55, 0.15), u(0.38, 0.95), u(-0.38, 0.95)], (188, 96, 60))
        _ellipse(img, u(0, -0.42), (0.28 * s, 0.53 * s), 0, col)
        _ellipse(img, u(-0.5, -0.22), (0.45 * s, 0.2 * s), 35, _mix(col, (0, 0, 0), 0.12))
        _ellipse(img, u(0.5, -0.22), (0.45 * s, 0.2 * s), -35, _mix(col, (0, 0, 0), 0.12))
    elif cls == "lamp":
        grey = (128, 128, 132)
        _rect(img, *u(-0.09, -0.3), *u(0.09, 0.85), grey)
        _rect(img, *u(-0.45, 0.78), *u(0.45, 0.95), _mix(grey, (0, 0, 0), 0.3))
        _poly(img, [u(0, -0.95), u(0.78, -0.2), u(-0.78, -0.2)], col)
    elif cls == "clock":
        _circle(img, u(0, 0), 0.95 * s, (22, 22, 22))
        _circle(img, u(0, 0), 0.76 * s, col)
        thick = max(1, int(round(0.12 * s)))
        black = _bgr((20, 20, 20))
        cv2.line(img, _pt(*u(0, 0)), _pt(*u(0, -0.6)), black, thick, cv2.LINE_AA, _SHIFT)
        cv2.line(img, _pt(*u(0, 0)), _pt(*u(0.45, 0.12)), black, thick, cv2.LINE_AA, _SHIFT)
    else:  # pragma: no cover - CLASSES and this switch are one list
        raise ValueError(cls)


def _draw_person(img, p: dict) -> None:
    x1, y1, x2, y2 = p["body"]
    if p["ellipse_body"]:
        _ellipse(img, ((x1 + x2) / 2, (y1 + y2) / 2), ((x2 - x1) / 2, (y2 - y1) / 2), 0, p["clothes"])
    else:
        _rect(img, x1, y1, x2, y2, p["clothes"])
    c, r, d = p["centre"], p["r"], p["gaze_dir"]
    n = np.array([-d[1], d[0]])
    _circle(img, c, r, p["skin"])
    # hair: the back half of the head, opposite the gaze direction
    angle = math.degrees(math.atan2(d[1], d[0]))
    _ellipse(img, c, (1.06 * r, 1.06 * r), angle, p["hair"], 90, 270)
    eye_r = max(0.6, 0.16 * r)
    for side in (-1.0, 1.0):
        _circle(img, c + 0.5 * r * d + side * 0.38 * r * n, eye_r, _EYE_RGB)
    _circle(img, c + 0.85 * r * d, max(0.55, 0.14 * r), _mix(p["skin"], (0, 0, 0), 0.4))


def _background(rng, size: int, k: float, cfg: GazeWorldConfig) -> np.ndarray:
    """Muted wall and floor with low-frequency luminance noise: (H, W, 3) float32 RGB in [0, 1]."""
    wall = _not_green(rng.uniform(0.45, 0.82) + rng.uniform(-0.07, 0.07, 3))
    floor = _not_green(rng.uniform(0.28, 0.62) + rng.uniform(-0.07, 0.07, 3))
    horizon = int(round(rng.uniform(0.35, 0.72) * size))
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:horizon] = wall
    img[horizon:] = floor
    lum = np.zeros((size, size), dtype=np.float32)
    for cells, weight in ((4, 1.0), (16, 0.5)):
        grid = rng.normal(0.0, cfg.background_noise * weight, (cells, cells)).astype(np.float32)
        lum += cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.stripe_probability:
        period = rng.uniform(6.0, 20.0) * k
        phase = rng.uniform(0, 2 * math.pi)
        x = np.arange(size, dtype=np.float32)
        stripes = 0.05 * np.sign(np.sin(2 * math.pi * x / period + phase)).astype(np.float32)
        if rng.random() < 0.5:
            lum[:horizon] += stripes[None, :]  # wallpaper
        else:
            lum[horizon:] += stripes[horizon:, None]  # floor planks
    img *= (1.0 + lum)[..., None]
    return img


def render_scene(seed: int, split: str, index: int, size: int = REFERENCE_SIZE,
                 config: GazeWorldConfig | None = None) -> Scene:
    """Draw one scene; the same (seed, split, index, size, config) always gives the same scene.

    Each person dict: eye_xy_px (midpoint of the two drawn eyes), head_box_xyxy_px (the head
    circle's box enlarged ~10 % with jitter, clipped), body_box_xyxy_px (head + body, clipped;
    None when "not detected"), person_box_xyxy_px (head + body, clipped, always set), inout,
    target (object index or None), target_class (a class, "outside" or "none"), gaze_xy_px
    (None when out of frame), gaze_dir (unit vector), head_radius_px, head_centre_xy_px.
    """
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
    cfg = config if config is not None else DIFFICULTIES["normal"]
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    k = size / REFERENCE_SIZE
    for _ in range(200):
        layout = _sample_layout(rng, split, size, k, cfg)
        if layout is not None:
            break
    else:
        raise RuntimeError(f"GazeWorld: no layout fits a {size} px image with this config")
    persons, objects = layout

    background = _background(rng, size, k, cfg)
    img = np.ascontiguousarray(np.clip(background[..., ::-1] * 255.0, 0, 255).astype(np.uint8))
    for o in sorted(objects, key=lambda o: not o["occludable"]):  # occludable ones underneath
        _draw_object(img, o)
    for p in persons:
        _draw_person(img, p)
    if cfg.pixel_noise > 0:
        noise = rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(cfg.pixel_noise * 255.0)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)

    out_persons = []
    for p in persons:
        r, (cx, cy) = p["r"], p["centre"]
        side = r * (1.0 + cfg.head_box_enlarge) + rng.normal(0.0, cfg.head_box_jitter * r, 4)
        head = _clip_box((cx - side[0], cy - side[1], cx + side[2], cy + side[3]), size)
        bx1, by1, bx2, by2 = p["body"]
        person_box = _clip_box((min(cx - r, bx1), min(cy - r, by1), max(cx + r, bx2), max(cy + r, by2)), size)
        detected = rng.random() >= cfg.no_body_probability
        out_persons.append({
            "eye_xy_px": (float(p["eye"][0]), float(p["eye"][1])),
            "head_box_xyxy_px": head,
            "body_box_xyxy_px": person_box if detected else None,
            "person_box_xyxy_px": person_box,
            "inout": 0 if p["target_class"] == OUTSIDE else 1,
            "target": p["target"],
            "target_class": p["target_class"],
            "gaze_xy_px": None if p["gaze_xy_px"] is None else (float(p["gaze_xy_px"][0]), float(p["gaze_xy_px"][1])),
            "gaze_dir": (float(p["gaze_dir"][0]), float(p["gaze_dir"][1])),
            "head_radius_px": float(r),
            "head_centre_xy_px": (float(cx), float(cy)),
        })
    out_objects = [{
        "cls": o["cls"],
        "box_xyxy_px": tuple(float(v) for v in o["box"]),
        "colour": tuple(int(round(v)) for v in o["colour"]),
        "occluded": bool(o["occluded"]),
    } for o in objects]
    return Scene(image=img, objects=out_objects, persons=out_persons, size=size, seed=seed,
                 split=split, index=index)


def _clip_box(box, size: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(min(max(v, 0.0), size)) for v in box)
    return x1, y1, x2, y2


def annotator_points(scene: Scene, n: int, config: GazeWorldConfig | None = None) -> list[np.ndarray]:
    """Simulated test annotators: per person an (n, 2) array of normalised gaze points.

    With a target: uniform inside the target box shrunk to `annotator_box_fraction`, plus
    Gaussian jitter of `annotator_jitter` x image size, clipped to [0, 1]. Without one (a random
    in-frame point): that point plus the same jitter.
    """
    cfg = config if config is not None else DIFFICULTIES["normal"]
    rng = np.random.default_rng([scene.seed, SPLIT_CODES[scene.split], scene.index, _ANNOTATOR_STREAM])
    out = []
    for p in scene.persons:
        if p["target"] is not None:
            x1, y1, x2, y2 = scene.objects[p["target"]]["box_xyxy_px"]
            c = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            half = np.array([(x2 - x1) / 2, (y2 - y1) / 2]) * cfg.annotator_box_fraction
            pts = c + rng.uniform(-1.0, 1.0, (n, 2)) * half
        elif p["gaze_xy_px"] is not None:
            pts = np.tile(np.asarray(p["gaze_xy_px"]), (n, 1))
        else:
            raise ValueError("test persons are always in frame")
        pts = pts + rng.normal(0.0, cfg.annotator_jitter * scene.size, (n, 2))
        out.append(np.clip(pts / scene.size, 0.0, 1.0))
    return out


# --- writing ------------------------------------------------------------------------------


def _f6(v: float) -> str:
    return f"{v:.6f}"


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _r6(v: float) -> float:
    return float(f"{v:.6f}")


def _r2(v: float) -> float:
    return float(f"{v:.2f}")


def image_path(split: str, index: int, ext: str = ".png") -> str:
    """`train/00000003/00003993.png`: 1000 images per sub-folder, index-numbered."""
    return f"{IMAGE_FOLDERS[split]}/{index // IMAGES_PER_FOLDER:08d}/{index:08d}{ext}"


def _person_columns(scene: Scene, p: dict, rel: str, idx: int, gaze_norm) -> list[str]:
    size = scene.size
    bx1, by1, bx2, by2 = p["person_box_xyxy_px"]
    ex, ey = p["eye_xy_px"]
    gaze = ["-1", "-1"] if gaze_norm is None else [_f6(gaze_norm[0]), _f6(gaze_norm[1])]
    return [rel, str(idx),
            _f6(bx1 / size), _f6(by1 / size), _f6((bx2 - bx1) / size), _f6((by2 - by1) / size),
            _f6(ex / size), _f6(ey / size), *gaze, *(_f2(v) for v in p["head_box_xyxy_px"])]


def _tail_columns(scene: Scene, p: dict) -> list[str]:
    body = p["body_box_xyxy_px"]
    origin = f"gazeworld/{scene.seed}/{scene.split}/{scene.index}"
    return ["gazeworld", origin, *(["-1"] * 4 if body is None else [_f2(v) for v in body])]


def _sidecar_record(scene: Scene, rel: str, gaze_points: list[list]) -> dict:
    size = scene.size
    persons = []
    for p, pts in zip(scene.persons, gaze_points):
        body = p["body_box_xyxy_px"]
        persons.append({
            "eye_xy_norm": [_r6(p["eye_xy_px"][0] / size), _r6(p["eye_xy_px"][1] / size)],
            "head_box_xyxy_px": [_r2(v) for v in p["head_box_xyxy_px"]],
            "body_box_xyxy_px": None if body is None else [_r2(v) for v in body],
            "inout": p["inout"],
            "target": p["target"],
            "target_class": p["target_class"],
            "gaze_xy_norm": [[_r6(x), _r6(y)] for x, y in pts],  # as written: 1 (train), n (test), 0 (outside)
            "gaze_dir": [_r6(v) for v in p["gaze_dir"]],
        })
    objects = [{"cls": o["cls"], "box_xyxy_px": [_r2(v) for v in o["box_xyxy_px"]],
                "colour": list(o["colour"]), "occluded": o["occluded"]} for o in scene.objects]
    return {"path": rel, "size": size, "objects": objects, "persons": persons}


def _resolve_difficulty(difficulty) -> tuple[str, GazeWorldConfig]:
    if isinstance(difficulty, GazeWorldConfig):
        for name, cfg in DIFFICULTIES.items():
            if cfg == difficulty:
                return name, cfg
        return "custom", difficulty
    if difficulty not in DIFFICULTIES:
        raise SettingsError(f"unknown GazeWorld difficulty {difficulty!r} (choose {', '.join(DIFFICULTIES)})")
    return difficulty, DIFFICULTIES[difficulty]


def _prepare_folder(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DataError(f"{out}: folder is not empty; refusing to write GazeWorld into it (use --force)")
        if (out / META_NAME).is_file():  # a previous GazeWorld: remove its outputs, nothing else
            for folder in IMAGE_FOLDERS.values():
                shutil.rmtree(out / folder, ignore_errors=True)
            for name in (*ANNOTATION_NAMES.values(), *SIDECAR_NAMES.values(), *QA_NAMES.values(), META_NAME):
                (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def synthesize_gazeworld(out: Path, n_train: int, n_test: int, seed: int = 0, size: int = REFERENCE_SIZE,
                         difficulty: str | GazeWorldConfig = "normal", image_format: str = "png",
                         test_annotators: int = 10, progress: Callable[[int, int], None] | None = None,
                         force: bool = False) -> dict:
    """Write a GazeWorld dataset under `out` in the extended GazeFollow layout.

    Images go to train/ and test2/; the annotation files and the sidecars are written under
    temporary names and renamed once every image is on disk, `gazeworld.json` last, so an
    interrupted run never leaves a half-written annotation file. Single process.
    Returns a summary: image, person, in/out-of-frame and row counts, seconds, images/s and the
    number of files written.
    """
    t0 = time.perf_counter()
    name, cfg = _resolve_difficulty(difficulty)
    if image_format not in IMAGE_FORMATS:
        raise SettingsError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise SettingsError(f"GazeWorld needs at least one image (n_train={n_train}, n_test={n_test})")
    if test_annotators < 1:
        raise SettingsError(f"test_annotators must be at least 1, got {test_annotators}")
    if size < 32:
        raise SettingsError(f"GazeWorld image size must be at least 32 px, got {size}")
    if seed < 0:
        raise SettingsError(f"GazeWorld seed must be non-negative, got {seed}")
    out = Path(out)
    _prepare_folder(out, force)
    ext, params = IMAGE_FORMATS[image_format]

    rows = {"train": [], "test": []}
    records = {"train": [], "test": []}
    qa_lines = {"train": [], "test": []}  # the question-answer sidecars (text only; gazecli.core.vqa)
    n_qa = 0
    counts = {"train_persons": 0, "train_in_frame": 0, "train_out_of_frame": 0, "test_persons": 0,
              "test_rows": 0, "train_objects": 0, "test_objects": 0}
    total = n_train + n_test
    done = 0
    made_dirs: set[Path] = set()
    for split, n in (("train", n_train), ("test", n_test)):
        for index in range(n):
            scene = render_scene(seed, split, index, size, cfg)
            rel = image_path(split, index, ext)
            file = out / rel
            if file.parent not in made_dirs:
                file.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(file.parent)
            ok, buf = cv2.imencode(ext, scene.image, params)
            if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
                raise RuntimeError(f"OpenCV could not encode {rel}")
            write_bytes(file, buf.tobytes())

            if split == "train":
                points = []
                for p in scene.persons:
                    g = None if p["gaze_xy_px"] is None else (p["gaze_xy_px"][0] / size, p["gaze_xy_px"][1] / size)
                    cols = _person_columns(scene, p, rel, len(rows["train"]), g)
                    rows["train"].append(",".join([*cols, str(p["inout"]), *_tail_columns(scene, p)]))
                    points.append([] if g is None else [g])
                    counts["train_in_frame" if p["inout"] else "train_out_of_frame"] += 1
            else:
                points = []
                for p, pts in zip(scene.persons, annotator_points(scene, test_annotators, cfg)):
                    for g in pts:
                        cols = _person_columns(scene, p, rel, len(rows["test"]), g)
                        rows["test"].append(",".join([*cols, *_tail_columns(scene, p)]))
                    points.append([tuple(g) for g in pts])
                counts["test_rows"] = len(rows["test"])
            counts[f"{split}_persons"] += len(scene.persons)
            counts[f"{split}_objects"] += len(scene.objects)
            line = json.dumps(_sidecar_record(scene, rel, points), separators=(",", ":"))
            records[split].append(line)
            qa = qa_record(json.loads(line))  # from the record exactly as written
            n_qa += len(qa["qa"])
            qa_lines[split].append(json.dumps(qa, separators=(",", ":")))
            done += 1
            if progress is not None:
                progress(done, total)

    written, qa_written = [], []
    for split in [s for s, n in (("train", n_train), ("test", n_test)) if n > 0]:  # no empty files
        for fname, lines in ((ANNOTATION_NAMES[split], rows[split]), (SIDECAR_NAMES[split], records[split]),
                             (QA_NAMES[split], qa_lines[split])):
            text = "".join(line + "\n" for line in lines)
            (qa_written if fname == QA_NAMES[split] else written).append((out / fname, text))
    for final, text in [*written, *qa_written]:
        write_text(final, text)
    meta = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "difficulty": name,
        "config": asdict(cfg),
        "classes": list(CLASSES),
        "image_format": image_format,
        "test_annotators": test_annotators,
        "counts": {"train_images": n_train, "test_images": n_test, **counts},
    }
    write_json(out / META_NAME, meta)
    seconds = time.perf_counter() - t0
    return {
        "root": str(out),
        "difficulty": name,
        "n_train_images": n_train,
        "n_test_images": n_test,
        "n_train_persons": counts["train_persons"],
        "n_test_persons": counts["test_persons"],
        "n_train_in_frame": counts["train_in_frame"],
        "n_train_out_of_frame": counts["train_out_of_frame"],
        "n_test_rows": counts["test_rows"],
        "seconds": seconds,
        "images_per_s": total / seconds if seconds > 0 else float("inf"),
        "files_written": total + len(written) + 1,  # the GazeFollow-layout dataset: images, annotations, sidecars, meta
        "qa_files": [str(final) for final, _ in qa_written],  # besides: the question-answer sidecars
        "n_qa_pairs": n_qa,
    }
