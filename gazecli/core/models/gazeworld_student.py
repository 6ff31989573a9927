"""A small student for GazeWorld (`gw-student`): learns the gaze cue in minutes of CPU.

Same contract as VAT (`forward(scene, head_channel, face[, gradcam]) -> {"heatmap", "inout",
"attention"}`), so teachers, `gaze eval`, `gaze predict` and the diffusion prior (its condition
encoder, `GazeWorldEncoder`) use it like VAT. What makes it learn where the tiny VAT does not
(measured in docs/gazeworld.md):

* the face crop goes through its own small CNN to one vector, which is tiled over the scene grid;
* at the fusion the grid also gets each cell's offset from the head centre (x - hx, y - hy) and the
  head mask, so "look along this direction from here" is a local rule a 3x3 conv can learn;
* residual blocks after the fusion, a decoder that upsamples once with a skip from the finer
  scene features, and logits (trained with a spatial-softmax cross-entropy, `--loss kl`).

`GazeWorldConfig.widths` are the scene stages (each halves the side): with the default 12/24/48 a
64 px scene fuses at 8x8 and decodes at 16x16, a 128 px one at 16x16 / 32x32; the logits are
resized to `heatmap_size`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gazecli.core.models.backbones import ResidualBlock
from gazecli.core.models.vat import head_offsets


@dataclass(frozen=True)
class GazeWorldConfig:
    input_size: int = 128  # scene and head-channel side
    face_size: int = 32
    heatmap_size: int = 32
    widths: tuple[int, ...] = (12, 24, 48)  # scene stages, each at half the previous side
    face_widths: tuple[int, ...] = (16, 32, 64)  # face stages, then a global average pool
    fusion_width: int = 64
    fusion_blocks: int = 2
    decoder_width: int = 32
    decoder_levels: int = 1  # x2 upsamplings, each with a skip from the scene stage of that side
    cone: int = 16  # gaze-cone channels: K face-predicted directions projected on each cell's direction from the head
    inout: bool = False  # build the in/out head

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "face_widths", tuple(int(w) for w in self.face_widths))
        if len(self.widths) < 2:
            raise ValueError("widths: at least two scene stages (the decoder's skip comes from the second-to-last)")
        if not 1 <= self.decoder_levels < len(self.widths):
            raise ValueError("decoder_levels must be between 1 and len(widths) - 1")
        if self.input_size % 2 ** len(self.widths):
            raise ValueError(f"input_size must be a multiple of {2 ** len(self.widths)} for {len(self.widths)} stages")

    @property
    def grid(self) -> int:  # side of the fused feature grid
        return self.input_size // 2 ** len(self.widths)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> "GazeWorldConfig":
        """From a checkpoint's config ("model" names the prior's encoder kind); another key is an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known - {"model"})
        if unknown:
            raise ValueError(f"not a gw-student config (unknown keys {', '.join(map(str, unknown))})")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in known})


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    """Stride-2 3x3 conv, BN, ReLU, one residual block."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), ResidualBlock(c_out))


class GazeWorldEncoder(nn.Module):
    """(scene, head_channel, face[, gradcam]) -> fused features (B, fusion_width, g, g) and the
    finer skip features; `forward` returns the fused features alone (the diffusion prior's
    condition encoder: `out_channels` = fusion_width)."""

    def __init__(self, config: GazeWorldConfig):
        super().__init__()
        self.config = config
        stages, c = [], 4  # RGB + head channel
        for w in config.widths:
            stages.append(_stage(c, w))
            c = w
        self.scene_stages = nn.ModuleList(stages)
        face, c = [], 3
        for w in config.face_widths:
            face.append(_stage(c, w))
            c = w
        self.face_net = nn.Sequential(*face)
        fuse_in = config.widths[-1] + config.face_widths[-1] + 3  # scene, face vector, offsets (2), head mask
        if config.cone:
            self.cone = nn.Linear(config.face_widths[-1], 2 * config.cone)
            fuse_in += 2 * config.cone
        self.fuse = nn.Sequential(nn.Conv2d(fuse_in, config.fusion_width, 1, bias=False),
                                  nn.BatchNorm2d(config.fusion_width), nn.ReLU(inplace=True),
                                  *[ResidualBlock(config.fusion_width) for _ in range(config.fusion_blocks)])
        self.out_channels = config.fusion_width

    def features(self, scene, head_channel, face):
        x = torch.cat([scene, head_channel], 1)
        skips = []
        for stage in self.scene_stages:
            x = stage(x)
            skips.append(x)
        g = x.shape[-1]
        face_vec = F.adaptive_avg_pool2d(self.face_net(face), 1)  # (B, Cf, 1, 1)
        head = F.adaptive_avg_pool2d(head_channel, g)
        offsets = head_offsets(head)
        parts = [x, face_vec.expand(-1, -1, g, g), offsets, head]
        if self.config.cone:
            parts += gaze_cone(self.cone(face_vec.flatten(1)), offsets)
        fused = self.fuse(torch.cat(parts, 1))
        return fused, skips[:-1]

    def forward(self, scene, head_channel, face, gradcam=None):
        return self.features(scene, head_channel, face)[0]


def gaze_cone(coefficients: torch.Tensor, offsets: torch.Tensor) -> list[torch.Tensor]:
    """(B, 2K) face-predicted (a_k, b_k), (B, 2, g, g) offsets from the head -> [(B, K, g, g) a_k ux + b_k uy
    with (ux, uy) the unit direction to each cell (a cone around each predicted direction), (B, K, g, g)
    a_k dx + b_k dy (how far along it)]: the product of direction and position that a gaze ray needs,
    which concatenation alone leaves the convolutions to approximate."""
    k = coefficients.shape[1] // 2
    a, b = coefficients[:, :k, None, None], coefficients[:, k:, None, None]
    dx, dy = offsets[:, :1], offsets[:, 1:]
    r = torch.sqrt(dx * dx + dy * dy + 1e-4)
    return [a * (dx / r) + b * (dy / r), a * dx + b * dy]


class GazeWorldStudent(GazeWorldEncoder):
    """The student: encoder, a x2 decoder with a skip, heatmap logits (B, 1, heatmap_size^2) and an
    optional in/out logit (B,) from the pooled fused features."""

    def __init__(self, config: GazeWorldConfig):
        super().__init__(config)
        c, levels = config.fusion_width, []
        for i in range(config.decoder_levels):
            skip = config.widths[-2 - i]
            levels.append(nn.Sequential(nn.Conv2d(c + skip, config.decoder_width, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(config.decoder_width), nn.ReLU(inplace=True)))
            c = config.decoder_width
        self.decode = nn.ModuleList(levels)
        self.logits = nn.Conv2d(config.decoder_width, 1, 1)
        if config.inout:
            self.fc_inout = nn.Linear(config.fusion_width, 1)

    def forward(self, scene, head_channel, face, gradcam=None) -> dict:
        fused, skips = self.features(scene, head_channel, face)
        x = fused
        for level, skip in zip(self.decode, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = level(torch.cat([x, skip], 1))
        heatmap = self.logits(x)
        size = self.config.heatmap_size
        if heatmap.shape[-1] != size:
            heatmap = F.interpolate(heatmap, size=(size, size), mode="bilinear", align_corners=False)
        inout = self.fc_inout(fused.mean(dim=(2, 3)))[:, 0] if self.config.inout else None
        return {"heatmap": heatmap, "inout": inout, "attention": None}


def student_config(settings, inout: bool | None = None) -> dict:
    """The checkpoint config of a `gw-student` from train-student settings (sizes, in/out head)."""
    config = GazeWorldConfig.from_dict({"input_size": settings.input_size, "face_size": settings.face_size,
                                        "heatmap_size": settings.heatmap_size,
                                        "inout": settings.inout_weight > 0 if inout is None else inout})
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.to_dict().items()}


def encoder_config(settings) -> dict:
    """The diffusion prior's `{"encoder": ...}` config for the GazeWorld student's trunk."""
    return {**student_config(settings, inout=False), "model": "gw-student"}
