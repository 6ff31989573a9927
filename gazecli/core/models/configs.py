"""Model size configs that the settings validate against: plain dataclasses, no torch (so
`gaze --help` and settings validation stay light)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DenoiserConfig:
    """Sizes of the denoiser and its conditioning pyramid.

    attention_resolutions: spatial sizes (feature-map side in pixels) that get self-attention; the
        paper's "downsample rates {4, 8}" at image 64 are 16 and 8.
    cond_channels: C_cond of the encoder output (2048 for the VAT trunk).
    The pyramid's channels are the UNet level channels, model_channels * channel_mult[level]
    (64, 128, 192, 256 in the paper), because each context map is added to a block's output.
    norm_groups: GroupNorm groups (32); every channel count must be divisible by it.
    attention: "sdpa" (torch's fused scaled_dot_product_attention) or "legacy" (the official explicit
        matmuls with q and k both scaled by ch^-1/4 and an fp32 softmax). Same weights, same output.
    checkpointing: gradient checkpointing of the attention blocks (the official code always does it).
    """

    image_size: int = 64
    in_channels: int = 1
    out_channels: int = 1
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    num_heads: int = 4
    dropout: float = 0.0
    cond_channels: int = 2048
    norm_groups: int = 32
    max_period: float = 10000.0
    attention: str = "sdpa"
    checkpointing: bool = False

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        if self.attention not in ("sdpa", "legacy"):
            raise ValueError(f"attention must be 'sdpa' or 'legacy', got {self.attention!r}")
        if self.image_size % (2 ** (len(self.channel_mult) - 1)):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.channel_mult) - 1}")
        for ch in self.level_channels:
            if ch % self.norm_groups:
                raise ValueError(f"channel count {ch} is not divisible by norm_groups={self.norm_groups}")

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channels of each UNet level = channels of each context map (ctx0 .. ctx_{L-1})."""
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Spatial side of each level (64, 32, 16, 8 in the paper)."""
        return tuple(self.image_size // 2**i for i in range(len(self.channel_mult)))

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels
