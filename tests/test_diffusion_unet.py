"""The conditional denoiser (spec §3.1): sizes, timestep embedding, additive context, attention paths."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gazecli.core.diffusion import HeatmapScheduler, refine_with_diffusion
from gazecli.core.models.diffusion_unet import (
    AttentionBlock,
    ConditionPyramid,
    DenoiserConfig,
    DenoiserUNet,
    GazeDiffusionModel,
    ResBlock,
    timestep_embedding,
)

TINY = DenoiserConfig(image_size=16, model_channels=32, channel_mult=(1, 2), attention_resolutions=(8,),
                      num_heads=4, cond_channels=16)


class StubEncoder(nn.Module):
    """Stands in for the VAT trunk: (scene, head channel, face) -> (B, 16, 7, 7)."""

    out_channels = 16

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(7, self.out_channels, 3, stride=2, padding=1)
        self.calls = 0

    def forward(self, scene, head_channel, face):
        self.calls += 1
        x = self.conv(torch.cat([scene, head_channel, face], dim=1))
        return nn.functional.adaptive_avg_pool2d(x, 7)


def perturb(module: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Make every parameter non-zero (the zero-init layers would otherwise hide the attention)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))
    return module


def inputs(batch: int = 2, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    scene, head, face = (torch.randn(batch, c, size, size, generator=g) for c in (3, 1, 3))
    x_t = torch.rand(batch, 1, size, size, generator=g)
    t = torch.tensor([7.0, 423.0])[:batch]
    return scene, head, face, x_t, t


def test_parameter_counts_at_paper_size():
    unet, pyramid = DenoiserUNet(DenoiserConfig()), ConditionPyramid(DenoiserConfig(cond_channels=2048))
    n_unet = sum(p.numel() for p in unet.parameters())
    n_pyramid = sum(p.numel() for p in pyramid.parameters())
    assert n_unet == 22_078_017 and round(n_unet / 1e6, 2) == 22.08
    assert n_pyramid == 853_632 and round(n_pyramid / 1e6, 2) == 0.85
    # 2 per level in the encoder, 2 in the middle, 3 per level in the decoder
    assert sum(isinstance(m, ResBlock) for m in unet.modules()) == 4 * 2 + 2 + 4 * 3
    # attention at 16x16 and 8x8: 2+2 encoder, 1 middle, 3+3 decoder, 4 heads
    attn = [m for m in unet.modules() if isinstance(m, AttentionBlock)]
    assert len(attn) == 11 and {m.qkv.in_channels for m in attn} == {192, 256} and attn[0].num_heads == 4
    assert unet.time_embed[0].in_features == 64 and unet.time_embed[2].out_features == 256


def test_timestep_embedding_is_cos_then_sin_of_the_raw_t():
    emb = timestep_embedding(torch.tensor([0.0, 10.0]), 8)
    freqs = [1.0, 0.1, 0.01, 0.001]  # 1e4^(-i/4)
    expected = [[1.0] * 4 + [0.0] * 4,
                [math.cos(10 * f) for f in freqs] + [math.sin(10 * f) for f in freqs]]
    torch.testing.assert_close(emb, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_fresh_denoiser_outputs_zero_and_context_pyramid_shapes():
    model = GazeDiffusionModel.build(StubEncoder(), TINY)
    scene, head, face, x_t, t = inputs()
    cond = model.condition(scene, head, face)
    assert [tuple(c.shape) for c in cond] == [(2, 32, 16, 16), (2, 64, 8, 8)]
    out = model.denoise(x_t, t, cond)
    assert out.shape == (2, 1, 16, 16) and torch.count_nonzero(out) == 0  # zero-init output conv
    assert model.pyramid.compress[0].in_channels == 16 and model.pyramid.compress[0].bias is None


def test_context_is_added_in_every_resblock_at_its_level():
    model = perturb(GazeDiffusionModel.build(StubEncoder(), TINY)).eval()
    scene, head, face, x_t, t = inputs()
    seen = []

    def hook(block, args, output):
        x, emb, ctx = args
        seen.append(ctx is not None and ctx.shape == output.shape)

    blocks = [m for m in model.unet.modules() if isinstance(m, ResBlock)]
    handles = [b.register_forward_hook(hook) for b in blocks]
    with torch.no_grad():
        cond = model.condition(scene, head, face)
        base = model.denoise(x_t, t, cond)
    for h in handles:
        h.remove()
    assert len(seen) == len(blocks) == 2 * 2 + 2 + 2 * 3 and all(seen)
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for level in range(len(cond)):  # every level's context changes the prediction
            # (a constant shift would be normalised away by the GroupNorm that follows the addition)
            bumped = [c + (torch.rand(c.shape, generator=g) if i == level else 0.0) for i, c in enumerate(cond)]
            assert (model.denoise(x_t, t, bumped) - base).abs().max() > 1e-4
        assert (model.denoise(x_t, t + 1, cond) - base).abs().max() > 1e-5  # and so does t
        assert model.unet(x_t, t, None).shape == base.shape  # unconditional use works


def test_sdpa_and_legacy_attention_agree_for_the_same_weights():
    import dataclasses

    sdpa = perturb(DenoiserUNet(TINY), seed=1)
    legacy = DenoiserUNet(dataclasses.replace(TINY, attention="legacy", checkpointing=True))
    legacy.load_state_dict(sdpa.state_dict())  # same parameters, same names
    _, _, _, x_t, t = inputs()
    ctx = [torch.randn(2, 32, 16, 16), torch.randn(2, 64, 8, 8)]
    out_a, out_b = sdpa(x_t, t, ctx), legacy(x_t, t, ctx)
    assert out_a.abs().max() > 1e-3
    torch.testing.assert_close(out_a, out_b, rtol=1e-4, atol=1e-5)
    (out_a ** 2).sum().backward()
    (out_b ** 2).sum().backward()  # through the checkpointed attention
    for (name, pa), pb in zip(sdpa.named_parameters(), legacy.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-3, atol=1e-5, msg=name)
    # a paper-size block with a non-zero projection: 4 heads of 48 channels at 16x16
    block_a = perturb(AttentionBlock(192, 4, 32, "sdpa"), seed=2)
    block_b = AttentionBlock(192, 4, 32, "legacy")
    block_b.load_state_dict(block_a.state_dict())
    x = torch.randn(2, 192, 16, 16)
    torch.testing.assert_close(block_a(x), block_b(x), rtol=1e-4, atol=1e-5)


def test_a_few_adam_steps_fit_a_batch_and_train_encoder_and_pyramid():
    torch.manual_seed(0)
    model = GazeDiffusionModel.build(StubEncoder(), TINY)
    scheduler = HeatmapScheduler()
    scene, head, face, _, _ = inputs(4)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    x0 = torch.exp(-((xx - 11) ** 2 + (yy - 5) ** 2) / 8.0).expand(4, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    x_t, t = scheduler.training_inputs(x0, scheduler.sample_training_timesteps(4, g), torch.randn(x0.shape, generator=g))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        optimiser.zero_grad()
        loss = ((model(x_t, t, scene, head, face) - x0) ** 2).mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.encoder.conv.weight.grad.abs().sum() > 0
    assert model.pyramid.compress[0].weight.grad.abs().sum() > 0


def test_refinement_computes_the_condition_once():
    encoder = StubEncoder()
    model = perturb(GazeDiffusionModel.build(encoder, TINY)).eval()
    scene, head, face, _, _ = inputs()
    prior = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        cond = model.condition(scene, head, face)
        out = refine_with_diffusion(lambda x, t: model.denoise(x, t, cond), prior, 250, 2,
                                    generator=torch.Generator().manual_seed(0))
        again = refine_with_diffusion(lambda x, t: model.denoise(x, t, cond), prior, 250, 2,
                                      generator=torch.Generator().manual_seed(0))
    assert encoder.calls == 1 and out.shape == prior.shape and torch.equal(out, again)


def test_config_validation():
    with pytest.raises(ValueError):
        DenoiserConfig(attention="flash")
    with pytest.raises(ValueError):
        DenoiserConfig(image_size=36)  # not divisible by 2^3
    with pytest.raises(ValueError):
        DenoiserConfig(model_channels=48)  # 48 channels do not split into 32 groups
