"""Grad-CAM on text-to-image attention (docs/design.md, "Grad-CAM").

For the answer token w at the key-noun step, y = p(w | image, question, answer prefix) under
teacher forcing (a probability, not a log-probability). For each requested layer with
attention probabilities A (B, heads, queries, keys) and G = dy/dA:

    CAM = mean over heads of ReLU(G * A), at the query row(s), over the image keys,

reshaped to the model's patch grid (row-major: row = image y). The ReLU is applied per head
(and per query row) before the means. Nothing is normalised: raw values are returned.

Query rows: the decoder-only (`vlm`) backends use the one position that predicts w, as the
official code uses the last decoder row. BLIP's answer decoder reads the image only through
its question encoder, whose question tokens cross-attend to the patches; there every question
token's row counts and the rows are averaged (ReLU first), so the map explains w through all
of the question's views of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TokenAttention:
    """What a backend returns for a batch under teacher forcing.

    prob: (B,) probability of each sample's target token, with its autograd graph.
    attentions: {layer: (B, H, Tq, Tk)} attention probabilities in that graph.
    query_rows: which rows of Tq count (a slice); query_weights (B, len(rows)) average them
        (zero for padding rows).
    image_keys: (B, Tk) bool, True at the image-patch keys, gh * gw per sample, row-major.
    grid: (gh, gw).
    """

    prob: "torch.Tensor"  # noqa: F821
    attentions: dict
    query_rows: slice
    query_weights: "torch.Tensor"  # noqa: F821
    image_keys: "torch.Tensor"  # noqa: F821
    grid: tuple[int, int]


def gradcam_from_attention(ta: TokenAttention, layers: list[int], grad_scale: float = 1.0) -> dict[int, np.ndarray]:
    """{layer: (B, gh, gw) float32 raw Grad-CAM}. Each sample's y depends on its own inputs
    only, so one backward pass of sum(y) gives every sample's gradients. `grad_scale`
    multiplies y before the backward pass (float16 models: keeps small gradients from
    underflowing) and is divided out again."""
    import torch

    tensors = [ta.attentions[l] for l in layers]
    grads = torch.autograd.grad(ta.prob.sum() * grad_scale, tensors, allow_unused=True)
    b = ta.prob.shape[0]
    gh, gw = ta.grid
    out = {}
    for layer, a, g in zip(layers, tensors, grads):
        if g is None:  # this layer does not influence y
            out[layer] = np.zeros((b, gh, gw), dtype=np.float32)
            continue
        a = a[:, :, ta.query_rows].detach().float()
        g = g[:, :, ta.query_rows].float() / grad_scale
        relevance = (g * a).clamp_min(0).mean(dim=1)  # (B, Tq', Tk): ReLU per head, then the head mean
        relevance = (relevance * ta.query_weights[:, :, None].to(relevance)).sum(dim=1)  # (B, Tk)
        cams = relevance[ta.image_keys.to(relevance.device)].reshape(b, gh, gw)
        out[layer] = cams.cpu().numpy().astype(np.float32)
    return out
