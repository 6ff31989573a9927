"""Fidelity to the official code: VAT-GC's attention input order, exact Grad-CAM resampling, and
the --compat Grad-CAM crop and out-of-frame zeroing (docs/compat.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gazecli.core.models.vat import VATConfig, VATModel


def test_vat_gc_attention_reads_head_gradcam_face_in_the_official_order():
    torch.manual_seed(0)
    config = VATConfig(backbone="tiny", input_size=64, face_size=32, heatmap_size=32, gradcam=True)
    model = VATModel(config).eval()
    seen = {}
    model.attn.register_forward_hook(lambda mod, inputs, out: seen.update(x=inputs[0].detach()))
    scene, face = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 32, 32)
    head = torch.zeros(2, 1, 64, 64)
    head[0, :, 5:20, 30:40] = 1
    head[1, :, 40:60, 2:9] = 1
    gradcam = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        model(scene, head, face, gradcam)
        pooled_head = F.max_pool2d(F.max_pool2d(F.max_pool2d(head, 3, 2, 1), 3, 2, 1), 3, 2, 1).flatten(1)
        pooled_cam = F.max_pool2d(F.max_pool2d(gradcam, 3, 2, 1), 3, 2, 1).flatten(1)
        face_vec = model.pathway("face", face).mean(dim=(2, 3))
    x = seen["x"]
    n_head, n_cam = config.head_grid**2, config.gradcam_grid**2
    assert (n_head, n_cam) == (64, 64) and x.shape[1] == n_head + n_cam + face_vec.shape[1]
    assert torch.equal(x[:, :n_head], pooled_head)
    assert torch.equal(x[:, n_head:n_head + n_cam], pooled_cam)
    torch.testing.assert_close(x[:, n_head + n_cam:], face_vec, rtol=0, atol=1e-6)
    assert not torch.allclose(pooled_cam, face_vec[:, :n_cam])  # the segments really differ
