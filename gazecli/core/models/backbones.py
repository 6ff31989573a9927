"""Backbones for the VAT pathways: a ResNet trunk (ResNet-50 / ResNet-18 stages plus Chong et
al.'s extra `layer5`) and a tiny CNN for CPU tests and GazeWorld.

A pathway maps an image (B, C_in, S, S) to features (B, C_feat, S/stride, S/stride). Tensor
names follow Chong et al.'s ModelSpatial (`conv1_scene`, `layer3_face`, ...), so their
`initial_weights_for_spatial_training.pt` and torchvision's ImageNet weights load by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


RESNETS = {
    # block, layers (4 ResNet stages + Chong's layer5), layer5 planes
    "resnet50": (Bottleneck, (3, 4, 6, 3, 2), 256),
    "resnet18": (BasicBlock, (2, 2, 2, 2, 2), 256),
}


def feature_channels(backbone: str) -> int:
    if backbone == "tiny":
        return TINY_CHANNELS[-1]
    block, _, planes5 = RESNETS[backbone]
    return planes5 * block.expansion


def feature_stride(backbone: str) -> int:
    return 16 if backbone == "tiny" else 32


def add_resnet_pathway(module: nn.Module, suffix: str, backbone: str, in_channels: int) -> None:
    """Create conv1_<s>, bn1_<s>, layer1_<s> .. layer5_<s> as attributes of `module`."""
    block, layers, planes5 = RESNETS[backbone]
    setattr(module, f"conv1_{suffix}", nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False))
    setattr(module, f"bn1_{suffix}", nn.BatchNorm2d(64))
    inplanes = 64
    for i, (planes, n, stride) in enumerate(zip((64, 128, 256, 512, planes5), layers, (1, 2, 2, 2, 1)), start=1):
        downsample = None
        if stride != 1 or inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(inplanes, planes, stride, downsample)]
        inplanes = planes * block.expansion
        blocks += [block(inplanes, planes) for _ in range(1, n)]
        setattr(module, f"layer{i}_{suffix}", nn.Sequential(*blocks))


def run_resnet_pathway(module: nn.Module, suffix: str, x: torch.Tensor) -> torch.Tensor:
    x = getattr(module, f"conv1_{suffix}")(x)
    x = torch.relu(getattr(module, f"bn1_{suffix}")(x))
    x = nn.functional.max_pool2d(x, 3, 2, 1)
    for i in range(1, 6):
        x = getattr(module, f"layer{i}_{suffix}")(x)
    return x


TINY_CHANNELS = (16, 32, 64, 96)


class TinyPathway(nn.Module):
    """A small residual CNN, stride 16: (B, C_in, S, S) -> (B, 96, S/16, S/16)."""

    def __init__(self, in_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_prev = in_channels
        for c in TINY_CHANNELS:
            layers += [nn.Conv2d(c_prev, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       ResidualBlock(c)]
            c_prev = c
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class ResidualBlock(nn.Module):
    """Two 3x3 conv + BN with an identity shortcut, channels kept (the tiny pathway's and the
    GazeWorld student's block)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


def init_weights(module: nn.Module) -> None:
    """Chong et al.'s initialisation: conv / deconv ~ N(0, sqrt(2 / (k*k*C_out))), BN 1 / 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
