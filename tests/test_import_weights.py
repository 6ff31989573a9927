"""gaze import-weights: synthetic checkpoints in the authors' layouts (their key names, nesting and
wrappers; random tensors) round-trip to the same outputs, and bad files fail on one line."""

from __future__ import annotations

import argparse
import io
import zipfile

import pytest
import torch

from gazecli.core.errors import DataError
from gazecli.core.gradcam.authors import UnsafePickleError
from gazecli.core.models import build_model
from gazecli.core.models.import_weights import import_weights
from tests.helpers import run_cli

VAT_SMALL = {"backbone": "resnet18", "input_size": 224, "face_size": 224, "heatmap_size": 64, "inout": True,
             "coords": False}
DIFF_SMALL = {"encoder": {**VAT_SMALL, "inout": False},
              "denoiser": {"image_size": 64, "model_channels": 32, "channel_mult": [1, 2, 3, 4], "num_res_blocks": 1,
                           "attention_resolutions": [16, 8], "num_heads": 4, "norm_groups": 32},
              "scheduler": {"num_train_timesteps": 500, "beta_start": 1e-4, "beta_end": 0.02, "scale": 2.0,
                            "clamp": True}}


def randomised(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every tensor random (BatchNorm statistics too, so a mis-mapped buffer changes the output)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if v.dtype == torch.long:
            state[k] = torch.randint(0, 100, v.shape, generator=g)
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=g) * 0.05
    model.load_state_dict(state)
    return state


def official_diffusion_key(ours: str) -> str:
    """Our names -> GF_Diffusion_Model_new's (written independently of the importer's table)."""
    fixed = {"pyramid.compress.0": "compress_conv1", "pyramid.compress.1": "compress_bn1",
             "pyramid.ups.0.0": "upsample_0", "pyramid.ups.0.1": "upsample0_bn",
             "pyramid.ups.1.0": "upsample_1", "pyramid.ups.1.1": "upsample1_bn",
             "pyramid.ups.2.0": "upsample_2", "pyramid.ups.2.1": "upsample2_bn"}
    for a, b in fixed.items():
        if ours.startswith(a + "."):
            return b + ours[len(a):]
    if ours.startswith("encoder."):
        return "feat_extractor." + ours[len("encoder."):]
    assert ours.startswith("unet.")
    return "diffusion_model." + ours[len("unet."):]


def vat_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    head = torch.zeros(2, 1, 224, 224)
    head[0, :, 30:70, 100:140] = 1
    head[1, :, 120:160, 10:50] = 1
    return (torch.randn(2, 3, 224, 224, generator=g), head, torch.randn(2, 3, 224, 224, generator=g),
            torch.rand(2, 1, 64, 64, generator=g))


def test_vat_gc_with_a_namespace_round_trips(tmp_path):
    """GCDR's layout: {'state_dict', 'lr', 'train_step'}, here with 'module.' prefixes and an argparse
    Namespace, which the weights-only loader refuses: the restricted unpickler reads it."""
    source = build_model("vat-gc", VAT_SMALL).eval()
    state = randomised(source, 1)
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "lr": 2.5e-4, "train_step": 7,
                "args": argparse.Namespace(lr=2.5e-4, model="baseline_gradcam")}, tmp_path / "vatgc.pt")
    with pytest.raises(Exception):
        torch.load(tmp_path / "vatgc.pt", weights_only=True)  # the case the restricted path exists for
    result = import_weights(tmp_path / "vatgc.pt", "vat-gc", tmp_path / "run", config=VAT_SMALL)
    assert result["tensors"] == len(state)

    from gazecli.core.models.registry import load_trained

    imported, meta = load_trained(tmp_path / "run")[:2]  # what gaze eval / predict --checkpoint do
    assert meta["model"]["name"] == "vat-gc" and meta["imported"]["kind"] == "vat-gc"
    with torch.no_grad():
        a, b = source(*vat_inputs()), imported(*vat_inputs())
    assert torch.equal(a["heatmap"], b["heatmap"]) and torch.equal(a["inout"], b["inout"])


def test_chong_vat_round_trips_and_serves_as_init(tmp_path):
    """Chong et al.'s layout: {'model': state_dict} (weights-only readable)."""
    from gazecli.core.models.init import initialise
    from gazecli.core.models.registry import load_trained

    source = build_model("vat", VAT_SMALL).eval()
    state = randomised(source, 2)
    torch.save({"model": state}, tmp_path / "chong.pt")
    import_weights(tmp_path / "chong.pt", "vat", tmp_path / "run", config=VAT_SMALL)
    imported = load_trained(tmp_path / "run").model
    inputs = vat_inputs(1)[:3]
    with torch.no_grad():
        assert torch.equal(source(*inputs)["heatmap"], imported(*inputs)["heatmap"])
    fresh = build_model("vat", VAT_SMALL)
    report = initialise(fresh, str(tmp_path / "run"), "resnet18")  # --init RUN_FOLDER
    assert not report.not_in_file and not report.shape_mismatch
    assert torch.equal(fresh.deconv1.weight, source.deconv1.weight)


def test_gcdr_diffusion_teacher_round_trips(tmp_path):
    from gazecli.core.diffusion.prior import load_prior

    source = build_model("diffusion", DIFF_SMALL).eval()
    state = randomised(source, 3)
    official = {official_diffusion_key(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": official, "lr": 5e-5, "train_step": 3}, tmp_path / "diff.pt")
    result = import_weights(tmp_path / "diff.pt", "diffusion", tmp_path / "run", config=DIFF_SMALL)
    assert result["filled"] and all(k.endswith("num_batches_tracked") for k in result["filled"])
    prior, meta = load_prior(tmp_path / "run")  # what --teacher-checkpoint does
    net, scheduler = prior.network, prior.scheduler
    assert scheduler.num_train_timesteps == 500 and meta["sample"]["heatmap_size"] == 64
    scene, head, face, _ = vat_inputs(2)
    x = torch.rand(2, 1, 64, 64)
    t = torch.tensor([3.0, 250.0])
    with torch.no_grad():
        assert torch.equal(source(x, t, scene, head, face), net(x, t, scene, head, face))


def test_bad_keys_and_shapes_fail_on_one_line(tmp_path):
    source = build_model("vat", VAT_SMALL)
    state = dict(source.state_dict())
    state["extra_head.weight"] = torch.zeros(3)
    del state["deconv1.weight"]
    state["attn.weight"] = torch.zeros(49, 7)
    torch.save({"model": state}, tmp_path / "bad.pt")
    with pytest.raises(DataError) as e:
        import_weights(tmp_path / "bad.pt", "vat", tmp_path / "run", config=VAT_SMALL)
    message = str(e.value)
    assert "\n" not in message
    assert "extra_head.weight" in message and "deconv1.weight" in message and "attn.weight (49, 7)" in message
    assert not (tmp_path / "run").exists()
    # a VAT file given as VAT-GC: the attention input differs by the 256 Grad-CAM cells (784 + 256 vs 784 + 256 + 256 at resnet18)
    torch.save({"model": dict(source.state_dict())}, tmp_path / "vat.pt")
    with pytest.raises(DataError, match=r"attn.weight \(49, 1040\) \(expected \(49, 1296\)\)"):
        import_weights(tmp_path / "vat.pt", "vat-gc", tmp_path / "run2", config=VAT_SMALL)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_code_in_a_checkpoint_never_runs(tmp_path):
    """A zip archive whose data.pkl names os.system: the weights-only loader refuses, and so does ours."""
    class Boom:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(2)}}, buf)
    buf.seek(0)
    import pickle

    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(tmp_path / "evil.pt", "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("data.pkl"):
                data = pickle.dumps({"x": Boom(), "state_dict": {}}, protocol=2)
            dst.writestr(name, data)
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        import_weights(tmp_path / "evil.pt", "vat", tmp_path / "run", config=VAT_SMALL)
    assert not (tmp_path / "pwned").exists()


def test_cli_reports_a_bad_file_on_one_red_line(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, out, err = run_cli("import-weights", str(tmp_path / "junk.pt"), "--kind", "vat", "--out", str(tmp_path / "r"))
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "junk.pt" in err
    code, _, err = run_cli("import-weights", str(tmp_path / "junk.pt"), "--kind", "resnet", "--out", str(tmp_path / "r"))
    assert code == 2 and "--kind" in err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vat", "vat-gc", "diffusion"])
def test_paper_size_files_import_with_the_default_config(tmp_path, kind):
    from gazecli.core.models.import_weights import paper_config

    source = build_model(kind, paper_config(kind))
    state = source.state_dict()
    if kind == "diffusion":
        state = {official_diffusion_key(k): v for k, v in state.items()}
    torch.save({"state_dict": state, "lr": 1e-4, "train_step": 1}, tmp_path / "w.pt")
    result = import_weights(tmp_path / "w.pt", kind, tmp_path / "run")
    assert round(result["parameters"] / 1e6, 2) == {"vat": 61.45, "vat-gc": 61.46, "diffusion": 79.23}[kind]
