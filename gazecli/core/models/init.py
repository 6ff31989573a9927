"""Initial weights for the VAT pathways (`--init random|imagenet|PATH`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from gazecli.core.errors import DataError


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    not_in_model: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)} tensors, skipped {len(self.shape_mismatch)} of another "
                f"shape and {len(self.not_in_model)} unknown to the model; {len(self.not_in_file)} model tensors "
                f"kept their initialisation")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a run folder, .safetensors or a torch file (loaded with weights_only=True: no code runs).
    Chong et al.'s files nest it under 'model' (GCDR's under 'state_dict'); 'module.' is stripped."""
    path = Path(path)
    if path.is_dir():  # a run folder (e.g. from gaze import-weights): its best (else last) weights
        from gazecli.core.engine.checkpoint import load_checkpoint, resolve_checkpoint

        return load_checkpoint(resolve_checkpoint(path))[0]
    if not path.is_file():
        raise DataError(f"{path}: initial weights not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling refusal or corrupt file
            raise DataError(f"{path.name}: cannot read weights safely ({e.__class__.__name__}: "
                            f"{str(e).splitlines()[0][:160]})") from None
        for key in ("model", "state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise DataError(f"{path.name}: not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Copy every tensor whose name and shape match; report the rest (the official behaviour,
    but said out loud)."""
    report = LoadReport(source)
    own = module.state_dict()
    usable = {}
    for name, tensor in state.items():
        if name not in own:
            report.not_in_model.append(name)
        elif own[name].shape != tensor.shape:
            report.shape_mismatch.append(name)
        else:
            usable[name] = tensor
    module.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.not_in_file = sorted(set(own) - set(usable))
    return report


def imagenet_state_for_pathways(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights renamed onto both pathways (downloads on first use). The
    scene pathway's 4th input channel (the head channel) starts at zero."""
    import torchvision

    if backbone == "resnet50":
        net = torchvision.models.resnet50(weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V1)
    elif backbone == "resnet18":
        net = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    else:
        raise DataError(f"--init imagenet needs a ResNet backbone, not {backbone!r}")
    out = {}
    for name, tensor in net.state_dict().items():
        head, _, rest = name.partition(".")
        if head == "fc":
            continue
        for suffix in ("scene", "face"):
            new = f"{head}_{suffix}.{rest}"  # conv1 -> conv1_scene, layer3.0.conv2 -> layer3_scene.0.conv2
            value = tensor
            if head == "conv1" and suffix == "scene":
                value = torch.cat([tensor, torch.zeros_like(tensor[:, :1])], 1)
            out[new] = value
    return out


def initialise(module: nn.Module, init: str, backbone: str) -> LoadReport | None:
    """Apply `--init`: 'random' (nothing to load), 'imagenet', or a weights file."""
    if init == "random":
        return None
    if init == "imagenet":
        return load_matching(module, imagenet_state_for_pathways(backbone), "ImageNet (torchvision)")
    return load_matching(module, read_state_dict(Path(init)), Path(init).name)
