"""VAT / VAT-GC: the paper's parameter counts, shapes at other sizes, initial weights by name."""

from __future__ import annotations

import pytest
import torch

from gazecli.core.errors import DataError
from gazecli.core.models import build_model
from gazecli.core.models.init import initialise, read_state_dict
from gazecli.core.models.vat import VATConfig, VATModel, count_parameters


def test_paper_parameter_counts():
    assert round(count_parameters(VATModel(VATConfig())) / 1e6, 2) == 61.45
    assert round(count_parameters(VATModel(VATConfig(gradcam=True))) / 1e6, 2) == 61.46
    # the attention MLP: 784 head cells + 1024 face features (+ 256 pooled Grad-CAM cells) -> 49
    assert VATModel(VATConfig()).attn.in_features == 1808
    assert VATModel(VATConfig(gradcam=True)).attn.in_features == 2064


@pytest.mark.parametrize("config,heat", [
    (VATConfig(backbone="resnet18", input_size=224, face_size=224, heatmap_size=64), 64),
    (VATConfig(backbone="tiny", input_size=128, face_size=32, heatmap_size=32, gradcam=True), 32),
    (VATConfig(backbone="tiny", input_size=64, face_size=16, heatmap_size=16, inout=False), 16),
])
def test_shapes_at_other_sizes(config, heat):
    model = VATModel(config).eval()
    s, f = config.input_size, config.face_size
    out = model(torch.randn(2, 3, s, s), torch.zeros(2, 1, s, s), torch.randn(2, 3, f, f),
                torch.rand(2, 1, heat, heat) if config.gradcam else None)
    assert out["heatmap"].shape == (2, 1, heat, heat)
    assert (out["inout"] is None) == (not config.inout)
    assert torch.allclose(out["attention"].flatten(1).sum(1), torch.ones(2))  # a softmax over the grid


def test_initial_weights_load_by_name_and_report(tmp_path):
    source = build_model("vat", {"backbone": "resnet18"})
    state = {"module." + k: v + 1 for k, v in source.state_dict().items()}  # Chong et al.'s nesting
    state["module.deconv1.weight"] = torch.zeros(3, 3)  # a tensor of another shape
    state["module.unknown"] = torch.zeros(2)
    torch.save({"model": state}, tmp_path / "init.pt")
    target = build_model("vat", {"backbone": "resnet18"})
    report = initialise(target, str(tmp_path / "init.pt"), "resnet18")
    assert report.shape_mismatch == ["deconv1.weight"] and report.not_in_model == ["unknown"]
    assert "deconv1.weight" in report.not_in_file and len(report.loaded) == len(source.state_dict()) - 1
    assert torch.equal(target.conv1_scene.weight, source.conv1_scene.weight + 1)
    assert "loaded" in report.summary()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_files_are_never_unpickled(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": Boom()}, f)
    with pytest.raises(DataError, match="cannot read weights safely"):
        read_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
