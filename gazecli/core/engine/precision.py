"""Mixed precision: `--precision auto|bf16|fp16|fp32` (AMP on CUDA; the CPU runs fp32)."""

from __future__ import annotations

import contextlib

from gazecli.core.errors import SettingsError



def resolve_precision(precision: str, device) -> str:
    import torch

    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise SettingsError(f"--precision {precision}: mixed precision needs a CUDA device (use fp32 on {device.type})")
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def autocast(device, precision: str):
    """The autocast context for a resolved precision (a no-op for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device, precision: str):
    """A GradScaler for fp16 (bf16 and fp32 need none)."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))
