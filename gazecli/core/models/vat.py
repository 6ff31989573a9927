"""The VAT spatial model of Chong et al. (CVPR 2020, no ConvLSTM) and VAT-GC (docs/design.md, "Student").

Scene pathway on RGB + head channel, head pathway on the face crop, a head-conditioned
softmax attention over the scene feature grid, then a 1x1 encoder and a deconvolution decoder
to the heatmap, plus an optional in/out head. VAT-GC also pools a Grad-CAM map into the
attention MLP, whose input is [head channel pooled | Grad-CAM pooled | face feature] in the
official order. With ResNet-50 pathways at 224 px: 61.45 M parameters (VAT-GC 61.46 M).

`VATEncoder` is the trunk alone (the attended scene feature concatenated with the face
feature, 2048 x 7 x 7 at paper size); the diffusion prior uses it as its condition. Tensor names
are Chong et al.'s, so their initial weights load by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gazecli.core.models.backbones import (
    TinyPathway,
    add_resnet_pathway,
    feature_channels,
    feature_stride,
    init_weights,
    run_resnet_pathway,
)

BACKBONES = ("resnet50", "resnet18", "tiny")


@dataclass(frozen=True)
class VATConfig:
    backbone: str = "resnet50"
    input_size: int = 224  # scene and head-channel side
    face_size: int = 224
    heatmap_size: int = 64
    gradcam: bool = False  # VAT-GC: the Grad-CAM map steers the attention
    inout: bool = True  # build the in/out head
    coords: bool = False  # two more scene channels: each pixel's offset from the head centre (CoordConv; the
    # GazeWorld preset uses it so the tiny model can map a gaze direction to a place in a few minutes of CPU)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}")
        if self.input_size % feature_stride(self.backbone):
            raise ValueError(f"input_size must be a multiple of {feature_stride(self.backbone)} for {self.backbone}")

    @property
    def grid(self) -> int:  # side of the scene feature grid
        return self.input_size // feature_stride(self.backbone)

    @property
    def head_grid(self) -> int:  # side of the head channel after 3 max-pools
        n = self.input_size
        for _ in range(3):
            n = (n + 1) // 2
        return n

    @property
    def gradcam_grid(self) -> int:  # side of the Grad-CAM map after 2 max-pools
        n = self.heatmap_size
        for _ in range(2):
            n = (n + 1) // 2
        return n

    def to_dict(self) -> dict:
        return asdict(self)


def head_offsets(head_channel: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) head mask -> (B, 2, S, S): x and y of every pixel minus the head centre, in
    units of the image side (the centre of an empty mask is the image centre)."""
    b, _, h, w = head_channel.shape
    xs = (torch.arange(w, device=head_channel.device, dtype=head_channel.dtype) + 0.5) / w
    ys = (torch.arange(h, device=head_channel.device, dtype=head_channel.dtype) + 0.5) / h
    mass = head_channel.sum(dim=(1, 2, 3))
    safe = mass.clamp(min=1e-6)
    cx = torch.where(mass > 0, (head_channel[:, 0] * xs[None, None, :]).sum(dim=(1, 2)) / safe, torch.full_like(mass, 0.5))
    cy = torch.where(mass > 0, (head_channel[:, 0] * ys[None, :, None]).sum(dim=(1, 2)) / safe, torch.full_like(mass, 0.5))
    return torch.stack([(xs[None, None, :] - cx[:, None, None]).expand(b, h, w),
                        (ys[None, :, None] - cy[:, None, None]).expand(b, h, w)], 1)


class VATEncoder(nn.Module):
    """(scene, head_channel, face[, gradcam]) -> (B, 2 C, g, g) features and (B, 1, g, g) attention."""

    def __init__(self, config: VATConfig):
        super().__init__()
        self.config = config
        c = feature_channels(config.backbone)
        self.feature_channels = c
        self.out_channels = 2 * c
        if config.backbone == "tiny":
            self.scene_net = TinyPathway(4 + 2 * config.coords)
            self.face_net = TinyPathway(3)
        else:
            add_resnet_pathway(self, "scene", config.backbone, 4 + 2 * config.coords)
            add_resnet_pathway(self, "face", config.backbone, 3)
        attn_in = config.head_grid**2 + c + (config.gradcam_grid**2 if config.gradcam else 0)
        self.attn = nn.Linear(attn_in, config.grid**2)

    def pathway(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.config.backbone == "tiny":
            return getattr(self, f"{name}_net")(x)
        return run_resnet_pathway(self, name, x)

    def forward(self, scene, head_channel, face, gradcam=None):
        cfg = self.config
        head = head_channel
        for _ in range(3):
            head = F.max_pool2d(head, 3, 2, 1)
        face_feat = self.pathway("face", face)  # (B, C, gf, gf)
        face_vec = F.adaptive_avg_pool2d(face_feat, 1).flatten(1)  # (B, C)
        parts = [head.flatten(1), face_vec]
        if cfg.gradcam:  # the official order: [head | Grad-CAM | face] (docs/compat.md)
            if gradcam is None:
                raise ValueError("VAT-GC needs the Grad-CAM map")
            g = gradcam
            for _ in range(2):
                g = F.max_pool2d(g, 3, 2, 1)
            parts.insert(1, g.flatten(1))
        attn = torch.softmax(self.attn(torch.cat(parts, 1)), dim=1).view(-1, 1, cfg.grid, cfg.grid)
        scene_in = [scene, head_channel] + ([head_offsets(head_channel)] if cfg.coords else [])
        scene_feat = self.pathway("scene", torch.cat(scene_in, 1))  # (B, C, g, g)
        if face_feat.shape[-1] != cfg.grid:  # a face crop smaller than the scene: match the grid
            face_feat = F.interpolate(face_feat, size=(cfg.grid, cfg.grid), mode="bilinear", align_corners=False)
        return torch.cat([scene_feat * attn, face_feat], 1), attn


class VATConditionEncoder(VATEncoder):
    """The trunk as the diffusion prior's condition encoder: forward returns the features alone
    (B, 2 C, g, g), as `GazeDiffusionModel` expects; Chong et al.'s initialisation, same tensor names."""

    def __init__(self, config: VATConfig):
        super().__init__(config)
        init_weights(self)

    def forward(self, scene, head_channel, face, gradcam=None):
        return super().forward(scene, head_channel, face, gradcam)[0]


class VATModel(VATEncoder):
    """ModelSpatial: heatmap (B, 1, h, w) and in/out logit (B,) (None without the head)."""

    def __init__(self, config: VATConfig):
        super().__init__(config)
        c = self.feature_channels
        self.compress_conv1 = nn.Conv2d(2 * c, c, 1, bias=False)
        self.compress_bn1 = nn.BatchNorm2d(c)
        self.compress_conv2 = nn.Conv2d(c, c // 2, 1, bias=False)
        self.compress_bn2 = nn.BatchNorm2d(c // 2)
        if config.inout:
            self.compress_conv1_inout = nn.Conv2d(2 * c, c // 2, 1, bias=False)
            self.compress_bn1_inout = nn.BatchNorm2d(c // 2)
            self.compress_conv2_inout = nn.Conv2d(c // 2, 1, 1, bias=False)
            self.compress_bn2_inout = nn.BatchNorm2d(1)
            self.fc_inout = nn.Linear(config.grid**2, 1)
        self.deconv1 = nn.ConvTranspose2d(c // 2, c // 4, 3, stride=2)
        self.deconv_bn1 = nn.BatchNorm2d(c // 4)
        self.deconv2 = nn.ConvTranspose2d(c // 4, c // 8, 3, stride=2)
        self.deconv_bn2 = nn.BatchNorm2d(c // 8)
        self.deconv3 = nn.ConvTranspose2d(c // 8, 1, 4, stride=2)
        self.deconv_bn3 = nn.BatchNorm2d(1)
        self.conv4 = nn.Conv2d(1, 1, 1)
        init_weights(self)

    def forward(self, scene, head_channel, face, gradcam=None) -> dict:
        features, attn = super().forward(scene, head_channel, face, gradcam)
        x = F.relu(self.compress_bn1(self.compress_conv1(features)))
        x = F.relu(self.compress_bn2(self.compress_conv2(x)))
        x = F.relu(self.deconv_bn1(self.deconv1(x)))
        x = F.relu(self.deconv_bn2(self.deconv2(x)))
        x = F.relu(self.deconv_bn3(self.deconv3(x)))
        heatmap = self.conv4(x)
        size = self.config.heatmap_size
        if heatmap.shape[-1] != size:
            heatmap = F.interpolate(heatmap, size=(size, size), mode="bilinear", align_corners=False)
        inout = None
        if self.config.inout:
            y = F.relu(self.compress_bn1_inout(self.compress_conv1_inout(features)))
            y = F.relu(self.compress_bn2_inout(self.compress_conv2_inout(y)))
            inout = self.fc_inout(y.flatten(1))[:, 0]
        return {"heatmap": heatmap, "inout": inout, "attention": attn}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def student_forward(model, batch: dict) -> dict:
    """The student's outputs for a batch: {"heatmap": (B,1,h,w), "inout": (B,) logits or None}."""
    return model(batch["scene"], batch["head_channel"], batch["face"], batch.get("gradcam"))
