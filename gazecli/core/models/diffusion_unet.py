"""The conditional heatmap denoiser of the diffusion annotation prior (docs/design.md, "Diffusion prior").

`DenoiserUNet`: a guided-diffusion-style UNet over a (B,1,64,64) heatmap in [0,1] that predicts the
clean heatmap x0 (in [0,1] space). The condition is not cross-attended: a pyramid of feature maps
(`ConditionPyramid`, one per UNet level, with the level's channel count) is *added* inside every
residual block, next to the timestep embedding.

`GazeDiffusionModel(encoder, pyramid, unet)` joins a scene+head encoder (any module with
`forward(scene, head_channel, face) -> (B, C_cond, h, w)` and an `out_channels` attribute, e.g. the
VAT trunk) to the two. `condition()` is computed once per batch and reused by every sampler step.

Every size comes from `DenoiserConfig`; the defaults are the paper's (UNet 22.08 M parameters,
pyramid 0.85 M at C_cond = 2048). `attention="legacy"` with `checkpointing=True` reproduces the
official attention (for benchmarking; the parameters and outputs are the same).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gazecli.core.models.configs import DenoiserConfig


# ---------------------------------------------------------------------------------------- pieces
class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32 and cast back (stable under autocast)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def _zeroed(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of the raw timestep values (no rescaling), (B,) -> (B, dim):
    [cos(t*f_0..f_{h-1}), sin(t*f_0..f_{h-1})] with f_i = max_period^(-i/h), h = dim//2."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))); h += Linear(SiLU(temb)) + ctx; h = zero_conv(dropout(SiLU(GN(h))));
    out = skip(x) + h (skip: identity or a 1x1 conv when the channel count changes)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(groups, in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.out_layers = nn.Sequential(GroupNorm32(groups, out_ch), nn.SiLU(), nn.Dropout(dropout),
                                        _zeroed(nn.Conv2d(out_ch, out_ch, 3, padding=1)))
        self.skip_connection = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[..., None, None]
        if ctx is not None:
            h = h + ctx.type(h.dtype)
        return self.skip_connection(x) + self.out_layers(h)


def _attention_sdpa(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    # qkv: (B, 3*heads*C, T), laid out per head as [q, k, v] (the legacy order, so weights agree)
    b, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(b, heads, 3 * ch, length).transpose(-1, -2).split(ch, dim=-1)  # (B, H, T, C) each
    out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(C) = (C^-1/4)^2
    return out.transpose(-1, -2).reshape(b, heads * ch, length)


def _attention_legacy(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    # the official QKVAttentionLegacy: heads split before q/k/v, q and k each scaled by C^-1/4,
    # explicit matmuls, softmax in fp32
    b, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)  # (B*H, C, T) each
    scale = 1.0 / math.sqrt(math.sqrt(ch))
    weight = torch.matmul((q * scale).transpose(1, 2), k * scale)  # (B*H, T_q, T_k)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    out = torch.matmul(v, weight.transpose(1, 2))  # (B*H, C, T_q)
    return out.reshape(b, heads * ch, length)


class AttentionBlock(nn.Module):
    """Spatial self-attention: GN, 1x1 qkv, multi-head attention, zero-init 1x1 projection, residual."""

    def __init__(self, channels: int, num_heads: int, groups: int, kind: str = "sdpa", checkpointing: bool = False):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention channels {channels} not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.kind = kind
        self.checkpointing = checkpointing
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = _zeroed(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)  # (B, C, H*W)
        qkv = self.qkv(self.norm(flat))
        attend = _attention_sdpa if self.kind == "sdpa" else _attention_legacy
        h = self.proj_out(attend(qkv, self.num_heads))
        return (flat + h).reshape(b, c, *spatial)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Stage(nn.ModuleList):
    """A sequence of layers at one level; ResBlocks also get the time embedding and the context."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: Optional[torch.Tensor]) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb, ctx) if isinstance(layer, ResBlock) else layer(x)
        return x


# ---------------------------------------------------------------------------------------- UNet
class DenoiserUNet(nn.Module):
    """x0-predicting UNet (docs/design.md, "Diffusion prior"): forward(x_t (B,1,H,W) in [0,1], t (B,) raw timesteps,
    context [ctx0..ctx_{L-1}] or None) -> x0_hat (B,1,H,W) in [0,1] space (no output activation).

    Layout (paper sizes): conv_in 1->64 | per level: num_res_blocks x (RB [+Attn]), then Down except
    at the last level | middle RB, Attn, RB | decoder levels L-1..0: (num_res_blocks+1) x (skip-concat,
    RB [+Attn]), Upsample after the last RB of every level but 0 | GN, SiLU, zero conv 64->1.
    ResBlocks at level l add ctx[l]; conv_in, Down and Up get no context.
    """

    def __init__(self, config: Optional[DenoiserConfig] = None):
        super().__init__()
        cfg = self.config = config or DenoiserConfig()
        mc, groups, emb_dim = cfg.model_channels, cfg.norm_groups, cfg.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attention(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, cfg.num_heads, groups, cfg.attention, cfg.checkpointing)

        n_levels = len(cfg.channel_mult)
        self.input_blocks = nn.ModuleList([_Stage([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        self._input_levels = [0]
        skip_channels = [mc]
        ch = mc
        for level, size in enumerate(cfg.level_sizes):
            out_ch = cfg.level_channels[level]
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, out_ch, emb_dim, cfg.dropout, groups)]
                ch = out_ch
                if size in cfg.attention_resolutions:
                    layers.append(attention(ch))
                self.input_blocks.append(_Stage(layers))
                self._input_levels.append(level)
                skip_channels.append(ch)
            if level != n_levels - 1:
                self.input_blocks.append(_Stage([Downsample(ch)]))
                self._input_levels.append(level)
                skip_channels.append(ch)

        self.middle_block = _Stage([ResBlock(ch, ch, emb_dim, cfg.dropout, groups), attention(ch),
                                    ResBlock(ch, ch, emb_dim, cfg.dropout, groups)])

        self.output_blocks = nn.ModuleList()
        self._output_levels: list[int] = []
        for level in reversed(range(n_levels)):
            out_ch = cfg.level_channels[level]
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), out_ch, emb_dim, cfg.dropout, groups)]
                ch = out_ch
                if cfg.level_sizes[level] in cfg.attention_resolutions:
                    layers.append(attention(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(_Stage(layers))
                self._output_levels.append(level)

        self.out = nn.Sequential(GroupNorm32(groups, ch), nn.SiLU(), _zeroed(nn.Conv2d(ch, cfg.out_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t, context: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels, self.config.max_period))
        ctx = list(context) if context is not None else [None] * len(self.config.channel_mult)
        skips = []
        h = x
        for block, level in zip(self.input_blocks, self._input_levels):
            h = block(h, emb, ctx[level])
            skips.append(h)
        h = self.middle_block(h, emb, ctx[-1])
        for block, level in zip(self.output_blocks, self._output_levels):
            h = block(torch.cat([h, skips.pop()], dim=1), emb, ctx[level])
        return self.out(h)


# ---------------------------------------------------------------------------------------- condition
class ConditionPyramid(nn.Module):
    """Encoder features (B, C_cond, h, w) -> [ctx0, ..., ctx_{L-1}], ctx_l (B, level_channels[l],
    level_sizes[l]^2): 1x1 conv C_cond->top (no bias) + BN + ReLU, nearest resize to the smallest
    level (7x7 -> 8x8 = ctx3), then ConvTranspose(k2, s2) + BN + ReLU per level up to the image size."""

    def __init__(self, config: Optional[DenoiserConfig] = None):
        super().__init__()
        cfg = config or DenoiserConfig()
        chans = cfg.level_channels
        self.base_size = cfg.level_sizes[-1]
        self.compress = nn.Sequential(nn.Conv2d(cfg.cond_channels, chans[-1], 1, bias=False),
                                      nn.BatchNorm2d(chans[-1]), nn.ReLU(inplace=True))
        # ups[i] maps level i+1 -> level i
        self.ups = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2), nn.BatchNorm2d(chans[i]),
                          nn.ReLU(inplace=True))
            for i in range(len(chans) - 1)
        ])

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        h = F.interpolate(self.compress(features), size=(self.base_size, self.base_size), mode="nearest")
        pyramid = [h]
        for up in reversed(self.ups):
            h = up(h)
            pyramid.append(h)
        return pyramid[::-1]  # [ctx0 (largest), ..., ctx_{L-1} (smallest)]


class GazeDiffusionModel(nn.Module):
    """Encoder + conditioning pyramid + denoiser (docs/design.md, "Diffusion prior"; the official `GF_Diffusion_Model_new`)."""

    def __init__(self, encoder: nn.Module, pyramid: ConditionPyramid, unet: DenoiserUNet):
        super().__init__()
        self.encoder = encoder
        self.pyramid = pyramid
        self.unet = unet

    @classmethod
    def build(cls, encoder: nn.Module, config: Optional[DenoiserConfig] = None) -> "GazeDiffusionModel":
        """Pyramid and UNet from `config`, with C_cond taken from `encoder.out_channels`."""
        cfg = dataclasses.replace(config or DenoiserConfig(), cond_channels=int(encoder.out_channels))
        return cls(encoder, ConditionPyramid(cfg), DenoiserUNet(cfg))

    def condition(self, scene: torch.Tensor, head_channel: torch.Tensor, face: torch.Tensor) -> list[torch.Tensor]:
        """The context pyramid for a batch; compute once and reuse for every sampler step."""
        return self.pyramid(self.encoder(scene, head_channel, face))

    def denoise(self, x_t_unit: torch.Tensor, t, condition: Sequence[torch.Tensor]) -> torch.Tensor:
        """Predicted x0 (B,1,H,W) in [0,1] space from x_t in [0,1] and the raw timestep t."""
        return self.unet(x_t_unit, t, condition)

    def forward(self, x_t_unit: torch.Tensor, t, scene: torch.Tensor, head_channel: torch.Tensor,
                face: torch.Tensor) -> torch.Tensor:
        """Training path in one call (so DDP sees a single forward): denoise(x_t, t, condition(...))."""
        return self.denoise(x_t_unit, t, self.condition(scene, head_channel, face))
