"""The convolutional GazeWorld VQA (--arch cnn / --backend cnn) and the simulated-VQA ablation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.data import gazeworld_qa as Q
from gazecli.core.vqa.data import read_qa


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gw_cnn") / "world"
    synthesize_gazeworld(root, 16, 8, seed=9)
    return root


def test_every_gazeworld_answer_is_one_output_class(world):
    from gazecli.core.vqa.cnn import ANSWERS, WORDS, tokenize

    answers = {p["answer"] for r in read_qa(world, "train") for p in r["qa"]}
    assert answers <= set(ANSWERS)
    assert len(set(ANSWERS)) == len(ANSWERS)
    questions = {p["question"] for r in read_qa(world, "train") for p in r["qa"]}
    assert all(1 not in tokenize(q) for q in questions)  # no unknown word
    assert tokenize("What is the person in the green bounding box looking at?")[-1] == WORDS.index("?")


@pytest.mark.parametrize("stem_kind", ["strided", "patchify"])
def test_gradcam_is_classic_gradcam_on_the_last_conv_map_and_folders_round_trip(tmp_path, stem_kind):
    import torch

    from gazecli.core.vqa.cnn import CNNVQA, CNNVQAConfig, encode_questions, load_folder, save_folder

    torch.manual_seed(0)
    model = CNNVQA(CNNVQAConfig(stem_kind=stem_kind)).eval()
    images = torch.randint(0, 255, (2, 3, 128, 128), dtype=torch.uint8)
    q_ids, q_len = encode_questions(["What is the red object?", Q.GAZE_BOX_QUESTION])
    answer, prob, cams = model.gradcam(images, q_ids, q_len)
    assert cams.shape == (2, 16, 16) and (cams >= 0).all() and ((0 < prob) & (prob <= 1)).all()
    # by hand: ReLU(sum_c mean(dy/dA_c) A_c) for sample 0's logit
    a = model.features(images[:1]).detach().requires_grad_(True)
    logits = model.answer_logits(a, torch.zeros(1, dtype=torch.long), model.question(q_ids[:1], q_len[:1]))
    (g,) = torch.autograd.grad(logits[0, answer[0]], a)
    manual = torch.relu((g.mean((2, 3), keepdim=True) * a.detach()).sum(1))[0]
    assert torch.allclose(cams[0], manual, atol=1e-6 * float(manual.abs().max() + 1))
    files = save_folder(model, tmp_path / "m", {"note": "test"})
    assert all(f.is_file() for f in files)
    again, meta = load_folder(tmp_path / "m")
    assert meta["model_type"] == "gazeworld-cnn-vqa" and meta["note"] == "test"
    assert meta["config"]["stem_kind"] == stem_kind
    with torch.no_grad():
        assert torch.equal(again(images, torch.arange(2), q_ids, q_len), model(images, torch.arange(2), q_ids, q_len))


@pytest.mark.parametrize("relative_hop,key_positions", [(True, True), (False, False)])
def test_grouped_attention_equals_one_pooling_per_question(relative_hop, key_positions):
    """The attention is computed per image over the questions grouped by image; it must give what
    pooling each question's own copy of its image's features gives, values and gradients, for
    questions in any order and images asked different numbers of questions (or none)."""
    import torch

    from gazecli.core.vqa.cnn import CNNVQA, CNNVQAConfig, _coords

    torch.manual_seed(1)
    model = CNNVQA(CNNVQAConfig(relative_hop=relative_hop, key_positions=key_positions))
    a = torch.rand(4, 128, 16, 16, requires_grad=True)
    q = torch.randn(9, 128)
    index = torch.tensor([2, 0, 2, 3, 0, 2, 2, 3, 0])  # image 1 gets no question

    def reference(a):
        b, c, h, w = a.shape
        pos = _coords(1, h, w, a.device, a.dtype).reshape(2, h * w)
        keys = a.flatten(2) + (model.key_pos(_coords(b, h, w, a.device, a.dtype)).flatten(2) if key_positions else 0)
        values, keys = a.flatten(2)[index], keys[index]
        att1 = torch.einsum("qc,qcn->qn", model.query1(q), keys).mul(c ** -0.5).softmax(-1)
        z1 = torch.einsum("qn,qcn->qc", att1, values)
        logit2 = torch.einsum("qc,qcn->qn", model.query2(q) + model.query2_z(z1), keys) * c ** -0.5
        if relative_hop:
            rel = pos[None] - (att1 @ pos.T)[:, :, None]
            dist = rel.norm(dim=1, keepdim=True)
            phi = torch.cat([rel, rel / (dist + 0.02), dist, dist * dist], 1)
            logit2 = logit2 + torch.einsum("qk,qkn->qn", model.rel(torch.cat([q, z1], 1)), phi)
        z = torch.cat([z1, torch.einsum("qn,qcn->qc", logit2.softmax(-1), values), a.flatten(2).amax(-1)[index]], 1)
        return model.head(torch.relu(model.fuse_z(z) + model.fuse_q(q)) * (1 + model.gate_q(q)))

    got, want = model.answer_logits(a, index, q), reference(a)
    assert torch.allclose(got, want, atol=1e-5)
    (g_got,) = torch.autograd.grad(got.square().sum(), a)
    (g_want,) = torch.autograd.grad(want.square().sum(), a)
    assert torch.allclose(g_got, g_want, atol=1e-6)
    assert g_got[1].abs().max() == 0  # the image nobody asked about gets no gradient
    assert not hasattr(model, "key_pos") or key_positions


def test_train_vqa_cnn_exports_a_folder_gradcam_runs_on(world, tmp_path):
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.gradcam.store import GradcamStore
    from gazecli.core.settings import GradcamSettings, TrainVQASettings, load_settings
    from gazecli.core.stages.train_vqa import train_vqa
    from gazecli.core.vqa.cnn import ANSWERS, is_cnn_folder

    s = load_settings(TrainVQASettings, dict(data=world, arch="cnn", epochs=1, batch_size=4, questions_per_view=4,
                                             device="cpu", threads=1, project=tmp_path / "runs", name="cnn",
                                             eval_limit=20))
    out = train_vqa(s)  # --arch cnn: the convolutional VQA
    assert is_cnn_folder(out["model_dir"]) and "gaze_acc" in out["test_metrics"]
    meta = json.loads((out["model_dir"] / "config.json").read_text())
    assert meta["supervision"].startswith("answer text only") and meta["steps"] > 0
    assert {k: meta["config"][k] for k in ("stem_kind", "relative_hop", "key_positions")} == \
        {"stem_kind": s.stem, "relative_hop": s.relative_hop, "key_positions": s.key_positions}
    store = tmp_path / "store"
    g = load_settings(GradcamSettings, dict(data=world, split="test", vqa_model=str(out["model_dir"]), out=store,
                                            device="cpu", batch_size=4))
    summary = run_gradcam(g)
    split = GradcamStore(store).split("test")
    assert summary["backend"] == "cnn" and tuple(summary["grid"]) == (16, 16) and summary["computed"] == len(split) > 0
    assert set(split.index()["persons"]["answer"]) <= set(ANSWERS)
    maps = np.stack([split.raw(split.default_layer(), i) for i in range(len(split))])
    assert (maps >= 0).all() and maps.shape[1:] == (16, 16)


def test_train_vqa_cnn_init_starts_from_the_given_weights_and_their_config(world, tmp_path):
    import torch

    from gazecli.core.errors import SettingsError
    from gazecli.core.gradcam.backends import resolve_model_source
    from gazecli.core.settings import TrainVQASettings, load_settings
    from gazecli.core.stages.train_vqa import train_vqa
    from gazecli.core.vqa.cnn import load_folder

    shipped, shipped_meta = load_folder(Path(resolve_model_source("gazeworld-cnn")))
    base = dict(data=world, arch="cnn", epochs=1, batch_size=8, questions_per_view=2, device="cpu", threads=1,
                project=tmp_path / "runs", eval_limit=5, warmup_steps=0)
    # the flags ask for another trunk: --init's config wins, and a rate of 1e-9 leaves its weights in place
    s = load_settings(TrainVQASettings, dict(base, init="gazeworld-cnn", stem="strided", key_positions=True,
                                             lr=1e-9, name="init"))
    out = train_vqa(s)
    tuned, meta = load_folder(out["model_dir"])
    assert meta["config"] == shipped_meta["config"]
    assert meta["init"]["from"] == "gazeworld-cnn" and meta["init"]["steps"] == shipped_meta["steps"]
    want = dict(shipped.named_parameters())
    for name, p in tuned.named_parameters():  # (BatchNorm's running statistics are buffers and do move)
        assert torch.allclose(p, want[name], atol=1e-6), name
    scratch, _ = load_folder(train_vqa(load_settings(TrainVQASettings, dict(base, lr=1e-9, name="scratch")))["model_dir"])
    assert not torch.allclose(dict(scratch.named_parameters())["stem.0.0.weight"], want["stem.0.0.weight"], atol=1e-3)
    assert "init" not in json.loads((tmp_path / "runs/train-vqa/scratch/model/config.json").read_text())

    for init, message in (("gazeworld-blip", "not a convolutional GazeWorld VQA"), (tmp_path / "none", "not found")):
        with pytest.raises(SettingsError, match=message):
            train_vqa(load_settings(TrainVQASettings, dict(base, init=init, name="bad")))
    with pytest.raises(SettingsError, match="--init needs --arch cnn"):
        load_settings(TrainVQASettings, dict(base, arch="blip", init="gazeworld-cnn"))


def test_backend_cnn_refuses_a_folder_that_is_not_one(tmp_path):
    from gazecli.core.gradcam.backends import ModelError, load_backend

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "blip"}))
    with pytest.raises(ModelError, match="not a convolutional GazeWorld VQA"):
        load_backend(str(tmp_path), backend="cnn", device="cpu")


# -------------------------------------------------------------------------- the simulated ablation


def _persons(root: Path, split: str):
    for line in (root / f"gazeworld_{split}.jsonl").read_text().splitlines():
        r = json.loads(line)
        for p in r["persons"]:
            yield r, p


def test_simulated_vqa_answers_with_accuracy_p_and_class_level_blobs(tmp_path):
    from gazecli.core.gradcam.simulated import SimulatedVQA, modal_classes, simulated_name

    root = tmp_path / "w"
    synthesize_gazeworld(root, 300, 0, seed=3)
    people = [(r, p) for r, p in _persons(root, "train") if p["target_class"] in Q.CLASS_NAMES]
    keys = [(r["path"], p["eye_xy_norm"][0], p["eye_xy_norm"][1]) for r, p in people]
    results = {}
    for p in (1.0, 0.5, "guess"):
        vqa = SimulatedVQA(simulated_name(p, seed=1), root, "train")
        out = vqa.annotate_persons(keys, [0])
        results[p] = out
        correct = np.array([a == person["target_class"] for a, (_, person) in zip(out["answer"], people)])
        if p == 1.0:
            assert correct.all()
        elif p == 0.5:  # wrong answers are another class present, unless the image holds only that class
            assert 0.40 < correct.mean() < 0.62, correct.mean()
        else:
            assert all(a in modal_classes(r) for a, (r, _) in zip(out["answer"], people))
    # blobs sit on the answered class: the argmax cell lies on an object of that class
    cams = results[1.0]["cams"][0]
    for cam, answer, (r, _) in zip(cams[:50], results[1.0]["answer"][:50], people[:50]):
        i, j = np.unravel_index(cam.argmax(), cam.shape)
        cx, cy = (j + 0.5) / 16 * r["size"], (i + 0.5) / 16 * r["size"]
        near = min(np.hypot((o["box_xyxy_px"][0] + o["box_xyxy_px"][2]) / 2 - cx,
                            (o["box_xyxy_px"][1] + o["box_xyxy_px"][3]) / 2 - cy)
                   for o in r["objects"] if o["cls"] == answer)
        assert near <= r["size"] / 16
    # seeded per person: the same answers in another order and batching
    vqa = SimulatedVQA(simulated_name(0.5, seed=1), root, "train")
    again = vqa.annotate_persons(keys[::-1], [0])["answer"][::-1]
    assert again == results[0.5]["answer"]


def test_simulated_vqa_names_are_checked():
    from gazecli.core.errors import SettingsError
    from gazecli.core.gradcam.simulated import is_simulated, parse_simulated, simulated_name

    assert parse_simulated(simulated_name(0.75, 2)) == (0.75, 2)
    assert parse_simulated(simulated_name("guess", 0)) == ("guess", 0)
    assert is_simulated(simulated_name(1.0)) and not is_simulated("gazeworld")
    with pytest.raises(SettingsError):
        parse_simulated("SIMULATED-ablation:p=1.5,seed=0")


def test_sweep_summary_table_and_clearing(tmp_path):
    from gazecli.core.stages.demo.sweep import VQA_JOBS, clear_vqa_results, summarise, sweep_markdown, write_sweep

    runs = []
    for seed, l2 in ((0, 0.30), (1, 0.34)):
        for label, p, acc, sl2 in (("shipped", None, 0.6, l2 + 0.02), ("sim 1.0", 1.0, 1.0, l2 - 0.05)):
            runs.append({"seed": seed, "vqa": label, "p": p, "answer_accuracy": acc, "guess_accuracy": 0.58,
                         "students": {"none": {"auc": 0.8, "avg_l2": l2}, "none-2x": {"auc": 0.85, "avg_l2": l2 - 0.02},
                                      "diffusion": {"auc": 0.82, "avg_l2": sl2}},
                         "pseudo": {"Grad-CAM (raw)": {"auc": 0.7, "avg_l2": 0.4},
                                    "diffusion teacher": {"auc": 0.75, "avg_l2": 0.3},
                                    "prior alone (noise teacher)": {"auc": 0.9 + seed / 50, "avg_l2": 0.15 + seed / 50}}})
    summary = summarise(runs, ["shipped", "sim 1.0"], 0.1)
    prior = summary["baselines"]["prior"]  # one value per seed (the prior has no VQA in it)
    assert prior["refined_l2"]["mean"] == pytest.approx(0.16) and prior["refined_l2"]["n"] == 2
    assert "| no VQA: prior alone (noise teacher) as the pseudo-label | - | - | - | 0.910 ± 0.010 | 0.160 ± 0.010 |" \
        in sweep_markdown(summary)
    sim = summary["rows"][1]
    assert sim["student_l2"]["mean"] == pytest.approx(0.27) and sim["student_l2"]["std"] == pytest.approx(0.02)
    assert summary["baselines"]["none"]["avg_l2"]["mean"] == pytest.approx(0.32)
    assert summary["baselines"]["none-2x"]["ratio"] == pytest.approx(0.2)
    md = sweep_markdown(summary)
    assert "0.270 ± 0.020" in md and "ABLATION" in md
    files = write_sweep(tmp_path, summary)
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    # clearing removes what depends on the VQA (the shared store, the seed's VQA students and jobs), keeps the rest
    demo = tmp_path / "demo"
    (demo / "jobs").mkdir(parents=True)
    (demo / "gradcam").mkdir()
    students = demo / "seed3" / "runs" / "train-student"
    (students / "student-none").mkdir(parents=True)
    (students / "student-diffusion").mkdir(parents=True)
    (demo / "seed3" / "pseudo-cache-diffusion").mkdir()
    for name in ("gradcam", *(f"{j}-s3" for j in VQA_JOBS), "student-none-s3", "diffusion-s3", "student-diffusion-s4"):
        (demo / "jobs" / f"{name}.json").write_text("{}")
    clear_vqa_results(demo, 3)
    assert sorted(p.name for p in (demo / "jobs").iterdir()) == ["diffusion-s3.json", "student-diffusion-s4.json",
                                                                 "student-none-s3.json"]
    assert not (demo / "gradcam").exists() and not (students / "student-diffusion").exists()
    assert not (demo / "seed3" / "pseudo-cache-diffusion").exists()
    assert (students / "student-none").is_dir()


def test_sweep_also_names_more_real_vqas(tmp_path):
    from gazecli.core.settings import DemoSettings, load_settings

    s = load_settings(DemoSettings, {"out": tmp_path, "sweep": True, "sweep_also": "gazeworld-blip,/models/x"})
    assert s.sweep_also == ["gazeworld-blip", "/models/x"]


def test_demo_sweep_rejects_bad_accuracies_in_one_line(tmp_path):
    from tests.helpers import run_cli

    code, out, err = run_cli("demo", "--sweep", "--sweep-p", "0.5,1.5", "--out", tmp_path / "o")
    assert code == 2 and "--sweep-p: expected 'guess' or a number in [0, 1], got '1.5'" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_the_shipped_cnn_vqa_is_small_text_trained_and_runs_in_gradcam(world, tmp_path):
    from gazecli.core.gradcam.backends import resolve_model_source
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.gradcam.store import GradcamStore
    from gazecli.core.settings import GradcamSettings, load_settings
    from gazecli.core.vqa.cnn import ANSWERS, is_cnn_folder

    folder = Path(resolve_model_source("gazeworld-cnn"))
    assert folder.name == "gazeworld_cnn_vqa" and is_cnn_folder(folder)
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 5 * 1024 * 1024
    meta = json.loads((folder / "config.json").read_text())
    assert meta["supervision"].startswith("answer text only") and meta["world"]["seed"] != 0  # not the demo's world
    out = tmp_path / "store"
    s = load_settings(GradcamSettings, dict(data=world, split="test", vqa_model="gazeworld-cnn", out=out, device="cpu",
                                            batch_size=8))
    summary = run_gradcam(s)
    split = GradcamStore(out).split("test")
    assert summary["backend"] == "cnn" and summary["computed"] == len(split) > 0
    assert set(split.index()["persons"]["answer"]) <= set(ANSWERS)
    maps = np.stack([split.raw(0, i) for i in range(len(split))])
    assert (maps >= 0).all() and (maps.reshape(len(maps), -1).max(1) > 0).all()
