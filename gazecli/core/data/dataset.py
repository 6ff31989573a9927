"""The torch Dataset every model trains and evaluates on: one sample per person.

A sample is a dict:
- `scene` (3, S, S) float ImageNet-normalised, `face` (3, F, F), `head_channel` (1, S, S);
- `heatmap` (1, h, w) target: the Gaussian at the gaze point (labelled, in frame), at the
  annotators' mean (test persons), else zeros;
- `gaze_xy_norm` (2,) NaN when unknown, `gaze_points_norm` (A, 2) all annotators (NaN pad),
  `inout` 1 / 0, or -1 when the label is hidden (unlabelled persons), `labelled` bool;
- `head_box_xyxy_norm`, `body_box_xyxy_norm` (4,) (NaN when no body box), in the sample's frame;
- `image_size_hw` (2,) of the original image, `index` the person's row in the table;
- for each attached map `name` (e.g. "gradcam"): `name` (1, h, w) and `name_valid` bool.

Unlabelled persons never expose their labels (gaze point, in/out) unless
`expose_unlabelled_labels=True` (the pseudo-label quality report, and `--compat` runs that
reproduce the official code's use of the ground-truth in/out flag).

Randomness comes from `np.random.default_rng([seed, epoch, index])`: a sample depends only on
(seed, epoch, index), never on worker scheduling, so runs and resumed runs are reproducible.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from gazecli.core.data.heatmaps import gaussian_heatmaps
from gazecli.core.data.images import read_image_rgb
from gazecli.core.data.resample import official_grid_crop
from gazecli.core.validate import inside_root
from gazecli.core.data.table import PersonTable
from gazecli.core.data.transforms import (
    Augment,
    SampleConfig,
    colour_jitter,
    crop_with_padding,
    draw_augment,
    expand_box,
    head_channel,
    resize,
    to_chw_normalised,
    transform_map,
)


class MapSource(Protocol):
    """Per-person maps over the whole original image (e.g. a Grad-CAM store)."""

    def get(self, index: int) -> np.ndarray | None: ...


class ArrayMaps:
    """Maps held in memory: {table row: 2-D array}."""

    def __init__(self, maps: Mapping[int, np.ndarray]):
        self.maps = dict(maps)

    def get(self, index: int) -> np.ndarray | None:
        return self.maps.get(int(index))


class GazeDataset(Dataset):
    def __init__(self, table: PersonTable, config: SampleConfig = SampleConfig(), labelled: np.ndarray | None = None,
                 maps: Mapping[str, MapSource] | None = None, seed: int = 0, expose_unlabelled_labels: bool = False):
        self.table = table
        self.config = config
        self.labelled = np.ones(len(table), dtype=bool) if labelled is None else np.asarray(labelled, dtype=bool)
        if self.labelled.shape != (len(table),):
            raise ValueError("labelled must be a mask over the table's persons")
        self.maps = dict(maps or {})
        self.seed = seed
        self.epoch = 0
        self.expose = expose_unlabelled_labels
        self.n_annotators = int(max(1, table.gaze_xy_norm.shape[1]))

    def __len__(self) -> int:
        return len(self.table)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for source in self.maps.values():  # e.g. cached pseudo-labels: one draw per epoch
            if hasattr(source, "set_epoch"):
                source.set_epoch(self.epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def load(self, index: int) -> np.ndarray:
        return read_image_rgb(inside_root(self.table.root, self.table.path[index]))  # no symlink out of the root

    def draw(self, index: int, image: np.ndarray, rng: np.random.Generator) -> Augment:
        """One draw of the augmentations of person `index` on `image` (a two-view dataset draws twice)."""
        height, width = image.shape[:2]
        t = self.table
        labelled = bool(self.labelled[index])
        base_head = expand_box(t.head_box_xyxy_px[index], self.config.head_expand)
        gaze_px = None
        if labelled and t.inout[index] == 1 and t.gaze_xy_norm.shape[1] == 1:
            gaze_px = t.gaze_xy_norm[index, 0] * (width, height)
        return draw_augment(rng, self.config, width, height, base_head, gaze_px, labelled)

    def reveal(self, index: int) -> bool:
        """Whether the sample carries the person's labels."""
        return bool(self.labelled[index]) or self.expose

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        image = self.load(index)
        return self.render(index, image, self.draw(index, image, rng), self.reveal(index))

    def render(self, index: int, image: np.ndarray, aug: Augment, reveal: bool) -> dict:
        """Build the sample for drawn augmentations (a two-view dataset calls this twice)."""
        c = self.config
        t = self.table
        height, width = image.shape[:2]
        compat_cam = self.compat_gradcam(index, aug, width, height)
        if compat_cam is not None and compat_cam[1]:  # the official code cancels a crop whose Grad-CAM grid is empty
            aug = dataclasses.replace(aug, crop=None)
        head = expand_box(t.head_box_xyxy_px[index], c.head_expand)
        if aug.jitter > 0:
            head = expand_box(head, aug.jitter)
        body = t.body_box_xyxy_px[index].copy()
        points = t.gaze_xy_norm[index] * (width, height)  # (A, 2) px, NaN where absent

        # crop: the image and every coordinate move into the crop
        x0, y0, cw, ch = (0, 0, width, height)
        if aug.crop is not None:  # whole pixels, so the image and the coordinates agree exactly
            x0, y0 = int(aug.crop[0]), int(aug.crop[1])
            cw = min(max(1, math.ceil(aug.crop[0] + aug.crop[2]) - x0), width - x0)
            ch = min(max(1, math.ceil(aug.crop[1] + aug.crop[3]) - y0), height - y0)
            image = image[y0:y0 + ch, x0:x0 + cw]
            head = head - (x0, y0, x0, y0)
            body = body - (x0, y0, x0, y0)
            points = points - (x0, y0)
        region = (x0 / width, y0 / height, (x0 + cw) / width, (y0 + ch) / height)
        if aug.flip:
            image = image[:, ::-1]
            head = np.array([cw - head[2], head[1], cw - head[0], head[3]])
            body = np.array([cw - body[2], body[1], cw - body[0], body[3]])
            points = np.stack([cw - points[:, 0], points[:, 1]], axis=1)
        if aug.colour is not None:
            image = colour_jitter(np.ascontiguousarray(image), *aug.colour)
        image = np.ascontiguousarray(image)

        scale = np.array([cw, ch, cw, ch])
        head_norm = head / scale
        gaze_norm = points / (cw, ch)  # (A, 2)
        inside = bool(t.inout[index] == 1)
        mean_gaze = np.nanmean(gaze_norm, axis=0) if inside and np.isfinite(gaze_norm).any() else np.full(2, np.nan)

        sample = {
            "scene": torch.from_numpy(to_chw_normalised(resize(image, c.input_size))),
            "face": torch.from_numpy(to_chw_normalised(resize(crop_with_padding(image, head), c.face_size))),
            "head_channel": torch.from_numpy(head_channel(head_norm, c.input_size))[None],
            "head_box_xyxy_norm": torch.from_numpy(head_norm.astype(np.float32)),
            "body_box_xyxy_norm": torch.from_numpy((body / scale).astype(np.float32)),
            "image_size_hw": torch.tensor([height, width], dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
            "labelled": torch.tensor(bool(self.labelled[index])),
        }
        if reveal:
            heatmap = gaussian_heatmaps(mean_gaze[None], c.heatmap_size, c.heatmap_size, c.sigma, c.compat)[0]
            points_out = np.full((self.n_annotators, 2), np.nan)
            points_out[: len(gaze_norm)] = gaze_norm
            sample.update(
                heatmap=torch.from_numpy(heatmap)[None],
                gaze_xy_norm=torch.from_numpy(mean_gaze.astype(np.float32)),
                gaze_points_norm=torch.from_numpy(points_out.astype(np.float32)),
                inout=torch.tensor(float(inside)),
            )
        else:
            sample.update(
                heatmap=torch.zeros(1, c.heatmap_size, c.heatmap_size),
                gaze_xy_norm=torch.full((2,), float("nan")),
                gaze_points_norm=torch.full((self.n_annotators, 2), float("nan")),
                inout=torch.tensor(-1.0),
            )
        for name, source in self.maps.items():
            raw = source.get(index)
            if name == "gradcam" and compat_cam is not None:  # --compat (docs/compat.md)
                if not inside:  # zeroed by the ground-truth flag, as the official code
                    m, valid = np.zeros((c.heatmap_size, c.heatmap_size), dtype=np.float32), raw is not None
                elif raw is None:
                    m, valid = np.zeros((c.heatmap_size, c.heatmap_size), dtype=np.float32), False
                else:
                    m, valid = transform_map(compat_cam[0], (0.0, 0.0, 1.0, 1.0), aug.flip, c.heatmap_size)
            elif raw is None:
                m, valid = np.zeros((c.heatmap_size, c.heatmap_size), dtype=np.float32), False
            else:
                m, valid = transform_map(raw, region, aug.flip, c.heatmap_size)
            sample[name] = torch.from_numpy(np.ascontiguousarray(m))[None]
            sample[f"{name}_valid"] = torch.tensor(valid)
        return sample

    def compat_gradcam(self, index: int, aug: Augment, width: int, height: int):
        """Under `gradcam_compat`: (the Grad-CAM grid as the official code crops it, whether that
        crop is empty and cancels the image crop); None otherwise. Only labelled, in-frame persons
        are cropped on the grid (unlabelled persons are never cropped)."""
        if not self.config.gradcam_compat or "gradcam" not in self.maps:
            return None
        raw = self.maps["gradcam"].get(index)
        if raw is None or aug.crop is None or self.table.inout[index] != 1:
            return raw, False
        cropped = official_grid_crop(np.asarray(raw, dtype=np.float32), aug.crop, width, height)
        return (raw, True) if cropped is None else (cropped, False)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed numpy/random from torch's per-worker seed."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
