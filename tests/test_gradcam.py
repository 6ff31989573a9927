"""gaze gradcam: key-noun steps, the Grad-CAM formula against an independent autograd
reference (BLIP and LLaVA), batching, the resumable and mergeable store, and the store
feeding GazeDataset. Tiny random-init models, saved and loaded from folders; no downloads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.gradcam.keynoun import key_noun_step, rule_noun_run, token_char_spans
from gazecli.core.gradcam.prompt import BOX_QUESTION, PLAIN_QUESTION, draw_prompt
from gazecli.core.gradcam.records import Records, to_fp16
from gazecli.core.gradcam.store import GradcamStore
from gazecli.core.settings import GradcamSettings, load_settings
from tests.helpers import run_cli
from tests.tiny_vqa import (bert_tokenizer, llama_style_tokenizer, save_tiny_blip, save_tiny_llava,
                                     save_tiny_qwen2_vl)

transformers = pytest.importorskip("transformers")


# --------------------------------------------------------------------------------------------
# key noun


@pytest.mark.parametrize("answer,noun", [
    ("tennis racket", "racket"), ("the man in red", "man"), ("his phone", "phone"), ("nothing", None),
    ("a red ball on the table", "ball"), ("the man's phone", "phone"), ("looking at the camera", "camera"),
    ("2", None), ("two books", "books"),
])
def test_rule_finds_the_last_word_of_the_first_noun_run(answer, noun):
    span = rule_noun_run(answer)
    assert (answer[span[0]:span[1]] if span else None) == noun


def _ids(tok, words: list[str]) -> list[int]:
    return tok.convert_tokens_to_ids(words)


@pytest.mark.parametrize("pieces,step,word", [
    (["tennis", "rack", "##et", "[SEP]"], 2, "racket"),  # a two-token word: its last token
    (["the", "man", "in", "red", "[SEP]"], 1, "man"),
    (["his", "phone", "[SEP]"], 1, "phone"),
    (["nothing", "[SEP]"], 0, ""),  # no noun: the last answer token before EOS
    (["a", "cell", "##pho", "##ne", "on", "the", "table", "[SEP]"], 3, "cellphone"),  # three tokens
    (["the", "rack", "##et"], 2, "racket"),  # no EOS (max length reached)
    (["[SEP]"], 0, ""),  # empty answer: the EOS itself
])
def test_key_noun_step_maps_the_word_to_its_last_token(pieces, step, word):
    tok = bert_tokenizer()
    ids = _ids(tok, pieces)
    special = set(tok.all_special_ids)
    text, spans = token_char_spans(tok, ids, special)
    n_content = len(ids) - (ids[-1] == tok.sep_token_id)
    kn = key_noun_step(text, spans, n_content, "rule")
    assert (kn.step, kn.word) == (step, word)


def test_key_noun_step_with_sentencepiece_offsets_and_without_offsets():
    tok = llama_style_tokenizer()
    ids = _ids(tok, ["▁the", "▁tennis", "▁rack", "et", "</s>"])
    text, spans = token_char_spans(tok, ids, set(tok.all_special_ids))
    assert text == "the tennis racket"
    assert key_noun_step(text, spans, 4, "rule").step == 3

    class NoOffsets:  # a slow tokenizer: the decoded-prefix fallback
        def __init__(self, inner):
            self.inner = inner

        def decode(self, *a, **k):
            return self.inner.decode(*a, **k)

        def __call__(self, *a, **k):
            raise NotImplementedError

    bert = bert_tokenizer()
    ids = _ids(bert, ["a", "cell", "##pho", "##ne", "on", "the", "table", "[SEP]"])
    text, spans = token_char_spans(NoOffsets(bert), ids, set(bert.all_special_ids))
    assert text == "a cellphone on the table" and spans[1:4] == [(1, 6), (6, 9), (9, 11)]
    assert key_noun_step(text, spans, 7, "rule").step == 3


def test_prompt_draws_a_green_box_only_when_there_is_a_body_box():
    image = np.zeros((40, 50, 3), dtype=np.uint8)
    drawn, q, box = draw_prompt(image, np.array([5.0, 6.0, 30.0, 35.0]))
    assert box and q == BOX_QUESTION
    assert (drawn[6, 5:31] == (0, 255, 0)).all() and (drawn[20, 20] == 0).all() and (image == 0).all()
    for missing in (np.full(4, np.nan), np.array([-1.0, -1, -1, -1])):
        same, q, box = draw_prompt(image, missing)
        assert not box and q == PLAIN_QUESTION and same is image
    _, q, box = draw_prompt(image, np.array([5.0, 6.0, 30.0, 35.0]), draw_box=False)
    assert not box and q == PLAIN_QUESTION


def test_fp16_exponent_keeps_tiny_raw_values():
    rng = np.random.default_rng(0)
    raw = (rng.random((3, 5, 5)) * 1e-10).astype(np.float32)
    raw[1] = 0.0
    rec = Records.from_raw(["a", "b", "c"], np.zeros((3, 2)), {7: raw}, ["x"] * 3, [""] * 3, [0] * 3, [[1]] * 3,
                           [True] * 3)
    assert rec.maps[7].dtype == np.float16
    back = rec.raw(7)
    assert np.allclose(back, raw, rtol=1e-3, atol=0) and (back[1] == 0).all()
    assert raw.max() < 6e-8 and rec.maps[7].max() >= 2 ** 14  # plain float16 would flush these to zero
    assert to_fp16(np.float32([[3.0]]))[1] == -13


# --------------------------------------------------------------------------------------------
# tiny models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("vqa")
    return {"blip": save_tiny_blip(base / "blip"), "llava": save_tiny_llava(base / "llava"),
            "qwen2_vl": save_tiny_qwen2_vl(base / "qwen2_vl")}


@pytest.fixture(scope="module")
def backends(models):
    from gazecli.core.gradcam.backends import load_backend

    hint = GradcamSettings.model_fields["answer_hint"].default  # used by the vlm backend only
    sizes = {"qwen2_vl": 64}  # Qwen2-VL takes any size: keep it tiny
    return {name: load_backend(str(path), device="cpu", answer_hint=hint, image_size=sizes.get(name))
            for name, path in models.items()}


def _images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


_PLAIN: dict = {}


def _plain_model(model_dir, cls_name: str, **kwargs):
    """The model loaded the ordinary way (parameters requiring grad), once per folder."""
    if model_dir not in _PLAIN:
        import transformers as tf

        _PLAIN[model_dir] = (getattr(tf, cls_name).from_pretrained(model_dir, **kwargs).eval(),
                             tf.AutoProcessor.from_pretrained(model_dir))
    return _PLAIN[model_dir]


def _reference_blip(model_dir, image, question, answer, step, layer) -> np.ndarray:
    """Grad-CAM the plain way: output_attentions, retain_grad, backward, one sample."""
    import torch

    model, proc = _plain_model(model_dir, "BlipForQuestionAnswering")
    inputs = proc(images=[image], text=[question], return_tensors="pt")
    image_embeds = model.vision_model(pixel_values=inputs["pixel_values"])[0]
    enc = model.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                             encoder_hidden_states=image_embeds, output_attentions=True, return_dict=True)
    a = enc.cross_attentions[layer]  # (1, H, Tq, 1 + gh*gw)
    a.retain_grad()
    dec = torch.tensor([[model.decoder_start_token_id, *answer[:step]]])
    logits = model.text_decoder(input_ids=dec, encoder_hidden_states=enc.last_hidden_state, return_dict=True).logits
    logits[0, -1].softmax(-1)[answer[step]].backward()
    cam = (a.grad * a).clamp(min=0).mean(1)[0].mean(0)[1:]  # heads, then question tokens; drop [CLS] key
    side = int(round(cam.numel() ** 0.5))
    return cam.reshape(side, side).detach().numpy()


def _reference_vlm(model_dir, image, prompt_question, answer, step, layer, **processor_kwargs) -> np.ndarray:
    import torch

    model, proc = _plain_model(model_dir, "AutoModelForImageTextToText", attn_implementation="eager")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt_question}]}]
    prompt = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = dict(proc(images=[image], text=[prompt], return_tensors="pt", **processor_kwargs))
    prefix = torch.tensor([answer[:step]], dtype=torch.long)
    ids = torch.cat([inputs.pop("input_ids"), prefix], dim=1)
    inputs.pop("attention_mask")
    if "mm_token_type_ids" in inputs:  # Qwen2-VL: answer tokens are text (type 0)
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(prefix)], dim=1)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, return_dict=True, **inputs)
    a = out.attentions[layer]  # (1, H, T, T)
    a.retain_grad()
    out.logits[0, -1].softmax(-1)[answer[step]].backward()
    row = (a.grad * a).clamp(min=0).mean(1)[0, -1]  # the position that predicts the key noun
    keys = ids[0] == model.config.image_token_id
    cam = row[keys]
    side = int(round(cam.numel() ** 0.5))
    return cam.reshape(side, side).detach().numpy()


def test_blip_backend_matches_plain_autograd_and_batches(backends, models):
    from gazecli.core.stages.gradcam import annotate_batch

    be = backends["blip"]
    assert (be.num_layers, be.grid, be.image_size) == (2, (4, 4), 64)
    images = _images(3, 64)
    questions = [BOX_QUESTION, PLAIN_QUESTION, BOX_QUESTION]
    out = annotate_batch(be, images, questions, [0, 1], 1, 6, "rule")
    assert set(out["cams"]) == {0, 1} and out["cams"][1].shape == (3, 4, 4) and out["cams"][1].dtype == np.float32
    for b in range(3):
        assert 0 <= out["step"][b] < len(out["tokens"][b])
        ref = _reference_blip(models["blip"], images[b], questions[b], out["tokens"][b], out["step"][b], 1)
        assert ref.max() > 0
        np.testing.assert_allclose(out["cams"][1][b], ref, rtol=1e-4, atol=1e-6 * ref.max())
        single = annotate_batch(be, images[b:b + 1], questions[b:b + 1], [0, 1], 1, 6, "rule")
        assert single["tokens"][0] == out["tokens"][b] and single["step"][0] == out["step"][b]
        np.testing.assert_allclose(single["cams"][0][0], out["cams"][0][b], rtol=1e-4, atol=1e-6 * ref.max())
    beams = annotate_batch(be, images, questions, [1], 3, 6, "rule")
    assert beams["cams"][1].shape == (3, 4, 4) and all(len(t) >= 1 for t in beams["tokens"])


def test_vlm_backend_matches_plain_autograd_and_batches(backends, models):
    from gazecli.core.stages.gradcam import annotate_batch

    be = backends["llava"]
    assert (be.name, be.num_layers, be.grid, be.image_size) == ("vlm", 3, (4, 4), 32)
    images = _images(3, 32, seed=1)
    questions = [BOX_QUESTION, PLAIN_QUESTION, BOX_QUESTION]
    out = annotate_batch(be, images, questions, [1, 2], 1, 6, "rule")
    assert out["cams"][1].shape == (3, 4, 4)
    assert any(s > 0 for s in out["step"])  # teacher forcing with an answer prefix is exercised
    for b in range(3):
        assert be.answer_hint and be.answer_hint in be.prompt(questions[b])
        ref = _reference_vlm(models["llava"], images[b], f"{questions[b]} {be.answer_hint}", out["tokens"][b],
                             out["step"][b], 1)
        assert ref.max() > 0
        np.testing.assert_allclose(out["cams"][1][b], ref, rtol=1e-4, atol=1e-6 * ref.max())
        single = annotate_batch(be, images[b:b + 1], questions[b:b + 1], [1, 2], 1, 6, "rule")
        assert single["tokens"][0] == out["tokens"][b]
        np.testing.assert_allclose(single["cams"][2][0], out["cams"][2][b], rtol=1e-4, atol=1e-6 * ref.max())


def test_qwen2_vl_grid_mrope_and_batches(backends, models):
    """Qwen2-VL: the grid comes from image_grid_thw, M-RoPE positions and mm_token_type_ids
    are rebuilt for the teacher-forced prompts."""
    from gazecli.core.stages.gradcam import annotate_batch

    be = backends["qwen2_vl"]
    assert (be.name, be.num_layers, be.grid, be.image_size) == ("vlm", 3, (4, 4), 64)
    images = _images(2, 64, seed=2)
    questions = [BOX_QUESTION, PLAIN_QUESTION]
    out = annotate_batch(be, images, questions, [1], 1, 5, "rule")
    size = {"shortest_edge": 64 * 64 // 2, "longest_edge": 64 * 64 * 2}
    for b in range(2):
        ref = _reference_vlm(models["qwen2_vl"], images[b], f"{questions[b]} {be.answer_hint}", out["tokens"][b],
                             out["step"][b], 1, size=size)
        assert ref.max() > 0
        np.testing.assert_allclose(out["cams"][1][b], ref, rtol=1e-4, atol=1e-6 * ref.max())
        single = annotate_batch(be, images[b:b + 1], questions[b:b + 1], [1], 1, 5, "rule")
        assert single["tokens"][0] == out["tokens"][b]
        np.testing.assert_allclose(single["cams"][1][0], out["cams"][1][b], rtol=1e-4, atol=1e-6 * ref.max())


@pytest.mark.parametrize("name", ["blip", "llava", "qwen2_vl"])
def test_cam_changes_when_the_image_changes(backends, name):
    import torch

    be = backends[name]
    a, b = _images(2, be.image_size, seed=7)
    enc = be.encode([a, a], [BOX_QUESTION] * 2)
    answers = be.answer(enc)
    from gazecli.core.gradcam.cam import gradcam_from_attention

    def cam(image):
        e = be.encode([image], [BOX_QUESTION])
        return gradcam_from_attention(be.token_attention(e, answers[:1], [0], [be.num_layers - 2]),
                                      [be.num_layers - 2])[be.num_layers - 2][0]

    same1, same2, other = cam(a), cam(a.copy()), cam(b)
    assert np.array_equal(same1, same2)
    assert np.abs(other - same1).max() > 0.05 * np.abs(same1).max()
    assert torch.is_grad_enabled()


# --------------------------------------------------------------------------------------------
# the pipeline and the store


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gw") / "gw"
    synthesize_gazeworld(root, 8, 2, seed=3, size=64)
    return root


def settings(world, model, out, **kw) -> GradcamSettings:
    values = dict(data=world, vqa_model=str(model), out=out, batch_size=2, chunk_size=4, device="cpu")
    values.update(kw)
    return load_settings(GradcamSettings, values)


def store_files(out: Path, split: str = "train") -> dict[str, bytes]:
    """Every file of the merged split (the content-hashed array names included)."""
    folder = out / split
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def full_run(world, models, backends, tmp_path_factory):
    from gazecli.core.stages.gradcam import run_gradcam

    out = tmp_path_factory.mktemp("full") / "store"
    summary = run_gradcam(settings(world, models["blip"], out, layers=[0, -1]), backend=backends["blip"])
    return out, summary


def test_uninterrupted_run_stores_every_person(full_run, world):
    out, summary = full_run
    table = read_gazefollow(world, "train")
    assert summary["computed"] == summary["persons"] == len(table) == 11
    assert summary["merged"] == 11 and summary["chunks"] == 3
    assert not list((out / "train" / "chunks").glob("*"))  # merged chunks are gone
    split = GradcamStore(out).split("train")
    assert split.layers == [0, 1] and split.default_layer() == 0  # -2 of two layers
    idx = split.index()
    assert idx["count"] == 11 and idx["grid"] == [4, 4]
    keys = split.keys()
    assert keys == sorted(keys) and set(keys) == set(table.keys())
    arr = split.array(1)
    assert isinstance(arr, np.memmap) and arr.shape == (11, 4, 4) and arr.dtype == np.float16
    p = idx["persons"]
    assert all(len(t) >= 1 for t in p["tokens"]) and all(0 <= s < len(t) for s, t in zip(p["step"], p["tokens"]))
    assert all(p["drew_box"]) and all(isinstance(a, str) for a in p["answer"])
    assert all(split.raw(1, i).max() > 0 for i in range(11))
    meta = json.loads((out / "gradcam.json").read_text())
    assert meta["backend"] == "blip" and meta["layers"] == [0, 1] and meta["question"] == BOX_QUESTION


class Killed(Exception):
    pass


def test_resume_after_a_kill_equals_the_uninterrupted_store(full_run, world, models, backends, tmp_path):
    from gazecli.core.stages.gradcam import run_gradcam

    out = tmp_path / "store"
    s = settings(world, models["blip"], out, layers=[0, -1])

    def kill_after(n_persons):
        def progress(done, total):
            if done >= n_persons:
                raise Killed
        return progress

    with pytest.raises(Killed):  # dies after 6 persons: one chunk of 4 written, 2 persons lost
        run_gradcam(s, progress=kill_after(6), backend=backends["blip"])
    assert len(list((out / "train" / "chunks").glob("*.npz"))) == 1 and not (out / "train" / "index.json").exists()

    real_replace = os.replace
    calls = {"n": 0}

    def dies_while_renaming(src, dst):  # a kill between writing a chunk and renaming it
        calls["n"] += 1
        if calls["n"] == 1:
            raise Killed
        return real_replace(src, dst)

    os.replace = dies_while_renaming
    try:
        with pytest.raises(Killed):
            run_gradcam(s, backend=backends["blip"])
    finally:
        os.replace = real_replace
    assert len(list((out / "train" / "chunks").glob("*.tmp-*"))) == 1  # the half-done file is not a chunk

    import gazecli.core.gradcam.store as store_module

    real_write = store_module.write_json_atomic

    def dies_while_committing(path, data):  # a kill after the merged arrays are written, before the index
        raise Killed

    store_module.write_json_atomic = dies_while_committing
    try:
        with pytest.raises(Killed):
            run_gradcam(s, backend=backends["blip"])
    finally:
        store_module.write_json_atomic = real_write
    assert not (out / "train" / "index.json").exists() and len(list((out / "train" / "chunks").glob("*.npz"))) == 3

    summary = run_gradcam(s, backend=backends["blip"])
    assert summary["already_stored"] == 11 and summary["computed"] == 0 and summary["merged"] == 11
    assert store_files(out) == store_files(full_run[0])  # byte for byte
    assert not list((out / "train" / "chunks").iterdir())
    again = run_gradcam(s, backend=backends["blip"])  # nothing left to do
    assert again["computed"] == 0 and store_files(out) == store_files(full_run[0])


def test_shards_by_hand_and_merge_equal_a_single_run(full_run, world, models, backends, tmp_path):
    from gazecli.core.stages.gradcam import run_gradcam

    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    s0 = run_gradcam(settings(world, models["blip"], a, layers=[0, -1], shard="0/2"), backend=backends["blip"])
    s1 = run_gradcam(settings(world, models["blip"], b, layers=[0, -1], shard="1/2", batch_size=3),
                     backend=backends["blip"])
    assert (s0["computed"], s1["computed"]) == (6, 5) and s0["merged"] is None and s1["merged"] is None
    code, out, err = run_cli("gradcam", "--merge", "--out", a, "--merge-from", b)
    assert code == 0, err
    assert "merged 11 train persons" in out
    ref, got = GradcamStore(full_run[0]).split("train"), GradcamStore(a).split("train")
    assert got.keys() == ref.keys()
    for col in ("answer", "key_noun", "step", "tokens", "drew_box"):
        assert got.column(col) == ref.column(col)
    for layer in (0, 1):  # other batch compositions: equal up to float rounding
        np.testing.assert_allclose(got.records().raw(layer), ref.records().raw(layer), rtol=2e-3, atol=0)


def test_store_batching_statement(full_run, world, models, backends, tmp_path):
    """README ("What the store depends on"): persons, order and text columns do not depend on
    --batch-size or --chunk-size; the same --batch-size gives byte-identical files; maps from
    another batch size agree up to float rounding (2e-3 relative here)."""
    from gazecli.core.stages.gradcam import run_gradcam

    same = tmp_path / "same"
    run_gradcam(settings(world, models["blip"], same, layers=[0, -1], chunk_size=3), backend=backends["blip"])
    assert store_files(same) == store_files(full_run[0])  # batch 2, other chunks: the same bytes
    other = tmp_path / "other"
    run_gradcam(settings(world, models["blip"], other, layers=[0, -1], batch_size=5), backend=backends["blip"])
    ref, got = GradcamStore(full_run[0]).split("train"), GradcamStore(other).split("train")
    assert got.keys() == ref.keys()
    for col in ("answer", "key_noun", "step", "tokens", "drew_box"):
        assert got.column(col) == ref.column(col)
    for layer in (0, 1):
        np.testing.assert_allclose(got.records().raw(layer), ref.records().raw(layer), rtol=2e-3, atol=0)


def test_torchrun_ranks_take_disjoint_shards_and_rank0_merges(full_run, world, models, backends, tmp_path):
    from gazecli.core.engine.distributed import DistInfo
    from gazecli.core.stages.gradcam import run_gradcam

    out = tmp_path / "ddp"
    s = settings(world, models["blip"], out, layers=[0, -1])
    r1 = run_gradcam(s, dist=DistInfo(rank=1, world_size=2, local_rank=1), backend=backends["blip"])
    assert r1["computed"] == 5 and r1["merged"] is None and not r1["is_main"]
    r0 = run_gradcam(s, dist=DistInfo(rank=0, world_size=2, local_rank=0), backend=backends["blip"])
    assert r0["computed"] == 6 and r0["merged"] == 11
    assert store_files(out) == store_files(full_run[0])


@pytest.mark.slow
def test_torchrun_two_processes_merge_the_same_store(full_run, world, models, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "gazecli", "gradcam",
           "--data", str(world), "--vqa-model", str(models["blip"]), "--out", str(out), "--batch-size", "2",
           "--chunk-size", "4", "--layers", "0,-1", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 11 train persons" in done.stdout
    ref, got = GradcamStore(full_run[0]).split("train"), GradcamStore(out).split("train")
    assert got.keys() == ref.keys() and got.column("answer") == ref.column("answer")
    np.testing.assert_allclose(got.records().raw(1), ref.records().raw(1), rtol=2e-3, atol=0)


def test_a_store_refuses_another_recipe(full_run, world, models, backends):
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.gradcam.records import StoreError

    with pytest.raises(StoreError, match="question"):
        run_gradcam(settings(world, models["blip"], full_run[0], layers=[0, -1], question="Where?"),
                    backend=backends["blip"])


def test_the_store_feeds_gaze_dataset(full_run, world, tmp_path):
    from gazecli.core.data.dataset import GazeDataset
    from gazecli.core.data.heatmaps import gaussian_heatmaps
    from gazecli.core.data.transforms import SampleConfig, transform_map

    table = read_gazefollow(world, "train")
    split = GradcamStore(full_run[0]).split("train")
    maps = split.for_table(table)
    assert maps.layer == 0 and maps.found.all()
    pos = split.positions()
    for i, key in enumerate(table.keys()):
        raw = split.raw(0, pos[key])
        np.testing.assert_array_equal(maps.raw(i), raw)
        got = maps.get(i)  # the raw map times a power of two, its maximum in [0.5, 1)
        assert 0.5 <= got.max() < 1 and raw.max() < 1e-6
        scale = got.max() / raw.max()
        assert np.log2(scale) == round(np.log2(scale)) and np.allclose(got, raw * scale, rtol=1e-6, atol=0)

    cfg = SampleConfig(input_size=32, face_size=16, heatmap_size=16)
    plain = GazeDataset(table, cfg, maps={"gradcam": maps})
    maps1 = split.for_table(table, layer=1)
    flipped = GazeDataset(table, SampleConfig(input_size=32, face_size=16, heatmap_size=16, augment=True,
                                              jitter_prob=0, crop_prob=0, flip_prob=1, colour_prob=0),
                          maps={"gradcam": maps1})
    for i in range(len(table)):
        s = plain[i]
        assert bool(s["gradcam_valid"])
        expected, _ = transform_map(maps.get(i), (0, 0, 1, 1), False, 16)
        np.testing.assert_allclose(s["gradcam"][0].numpy(), expected, atol=1e-6)
        f = flipped[i]
        expected, valid = transform_map(maps1.get(i), (0, 0, 1, 1), True, 16)
        assert valid and bool(f["gradcam_valid"])
        np.testing.assert_allclose(f["gradcam"][0].numpy(), expected, atol=1e-6)

    # crops and flips move a stored map with the image: a blob stored at each gaze point stays on it
    store = GradcamStore(tmp_path / "blobs")
    store.ensure_meta({"backend": "test", "layers": [5], "grid": [64, 64], "default_layer": 5})
    keys = table.keys()
    raw = np.stack([gaussian_heatmaps(table.gaze_xy_norm[i, :1], 64, 64, sigma=1.0)[0] * 1e-7
                    for i in range(6)])  # rows 0..5 only: the rest are missing
    n = 6
    store.split("train").write_chunk(Records.from_raw([k[0] for k in keys[:n]], [k[1:] for k in keys[:n]],
                                                      {5: raw}, [""] * n, [""] * n, [0] * n, [[1]] * n, [True] * n),
                                     "t")
    store.split("train").merge()
    blobs = store.for_table(table)
    aug = GazeDataset(table, SampleConfig(input_size=32, face_size=16, heatmap_size=32, augment=True, crop_prob=1.0),
                      maps={"gradcam": blobs})
    for epoch in range(3):
        aug.set_epoch(epoch)
        for i in range(len(table)):
            s = aug[i]
            assert bool(s["gradcam_valid"]) == (i < n)
            if i >= n:
                assert float(s["gradcam"].abs().sum()) == 0.0
                continue
            g = s["gaze_xy_norm"].numpy()
            r, c = divmod(int(s["gradcam"].reshape(-1).argmax()), 32)
            assert np.abs(np.array([(c + 0.5) / 32, (r + 0.5) / 32]) - g).max() < 0.07


def test_gradcam_command_end_to_end(world, models, tmp_path):
    out = tmp_path / "cli"
    code, stdout, err = run_cli("gradcam", "--data", world, "--split", "test", "--vqa-model", models["llava"],
                                "--out", out, "--batch-size", "2", "--layers", "-1,1", "--visualize", "2",
                                "--device", "cpu", "--limit", "3")
    assert code == 0, err
    assert f"{out}/test/index.json" in stdout.replace("\n", "") and "persons/s" in stdout
    pngs = sorted((out / "visualizations" / "test").glob("*.png"))
    assert len(pngs) == 2
    import cv2

    png = cv2.imread(str(pngs[0]))
    assert png.shape[0] > 384 and png.shape[1] >= 384  # enlarged image + caption
    split = GradcamStore(out).split("test")
    assert split.layers == [1, 2] and len(split) == 3
    code, stdout, err = run_cli("gradcam", "--data", world, "--split", "test", "--vqa-model", models["llava"],
                                "--out", out, "--layers", "-1,1", "--device", "cpu", "--limit", "3")
    assert code == 0 and "3 already stored, 0 computed" in stdout


@pytest.mark.parametrize("case,expected", [
    ("missing", "error: --vqa-model {p}: model folder not found"),
    ("no-config", "error: --vqa-model {p}: not a transformers model folder (no config.json)"),
    ("bert", "error: model type 'bert' is not a supported VQA model"),
    ("captioner", "error: this BLIP model is a BlipForConditionalGeneration, not a VQA model"),
    ("gazeworld", "error: --vqa-model gazeworld: the named model's folder {p} is missing"),
    ("backend", "error: --backend vlm: {p} is a blip model, which the blip backend runs"),
])
def test_model_errors_are_one_line(world, models, tmp_path, case, expected, monkeypatch):
    path = tmp_path / case
    extra = []
    if case == "no-config":
        path.mkdir()
    elif case == "bert":
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif case == "captioner":
        path.mkdir()
        cfg = json.loads((models["blip"] / "config.json").read_text())
        cfg["architectures"] = ["BlipForConditionalGeneration"]
        (path / "config.json").write_text(json.dumps(cfg))
    elif case == "gazeworld":  # a named model whose folder is gone (an incomplete install)
        from gazecli.core.gradcam import backends

        monkeypatch.setitem(backends.NAMED_MODELS, "gazeworld", lambda: path)
        code, out, err = run_cli("gradcam", "--data", world, "--vqa-model", "gazeworld", "--out", tmp_path / "o")
        assert code != 0 and err.strip() == expected.format(p=path)
        return
    elif case == "backend":
        path, extra = models["blip"], ["--backend", "vlm"]
    code, out, err = run_cli("gradcam", "--data", world, "--vqa-model", path, "--out", tmp_path / "o", *extra)
    assert code != 0 and "Traceback" not in err
    assert err.strip().startswith(expected.format(p=path)) and len(err.strip().splitlines()) == 1


def test_missing_transformers_names_the_extra(world, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    code, out, err = run_cli("gradcam", "--data", world, "--vqa-model", tmp_path, "--out", tmp_path / "o")
    assert code == 1 and err.strip() == ("error: the VQA Grad-CAM backends need transformers: "
                                         "pip install 'gazecli[vqa]'")


def test_options_are_validated(world, tmp_path):
    code, out, err = run_cli("gradcam", "--data", world, "--vqa-model", "x", "--out", tmp_path, "--shard", "2/2")
    assert code == 2 and err.strip().startswith("error: --shard: expected i/n with 0 <= i < n")
    code, out, err = run_cli("gradcam", "--vqa-model", "x", "--out", tmp_path)
    assert code == 2 and err.strip() == "error: --data is required (the dataset root to annotate)"
    code, out, err = run_cli("gradcam", "--data", world, "--vqa-model", "x", "--out", tmp_path, "--layers", "-2,9",
                             "--print-config")
    assert code == 0 and "layers = [-2, 9]" in out
