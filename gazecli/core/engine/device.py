"""Device selection: `auto` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from gazecli.core.errors import SettingsError


def _where() -> str:
    """--device, GAZE_DEVICE or `file.toml: device`: where the running command's value came from."""
    from gazecli.core.settings.option_source import option_name

    return option_name("device")


def resolve_device(name: str = "auto"):
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"{_where()} {name}: CUDA is not available on this machine (use cpu)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise SettingsError(f"{_where()} {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingsError(f"{_where()} mps: Apple MPS is not available on this machine")
    return torch.device(name)
