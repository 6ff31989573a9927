"""gaze gradcam --compat: the official decoding (beam 100, unnormalised scores, 200 tokens) and
key-noun mapping (the word index as the token step), on a tiny random-init BLIP (docs/compat.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gazecli.core.data.gazeworld import synthesize_gazeworld
from gazecli.core.gradcam.keynoun import key_noun_step, token_char_spans, word_index_step
from gazecli.core.settings import GradcamSettings, load_settings
from tests.tiny_vqa import bert_tokenizer, save_tiny_blip

QUESTION = "What is the person in the green bounding box looking at?"


def test_word_index_mapping_misaligns_multi_piece_words_as_the_official_code():
    tok = bert_tokenizer()
    ids = tok.convert_tokens_to_ids(["tennis", "rack", "##et", "[SEP]"])  # "tennis racket" + EOS
    text, spans = token_char_spans(tok, ids, {tok.sep_token_id})
    assert text == "tennis racket"
    assert key_noun_step(text, spans, 3, "rule").step == 2  # default: the last piece of "racket"
    official = word_index_step(text, len(ids), 3, "rule")
    assert (official.step, official.word) == (1, "racket")  # word 1 -> token 1, "rack"
    assert word_index_step("nothing", 2, 1, "rule").step == 0  # no noun: the last token before EOS
    assert word_index_step("a big red ball", 3, 2, "rule").step == 1  # word 3 is past the tokens: fallback


def test_compat_decoding_defaults_and_flags_that_win(tmp_path):
    from gazecli.core.stages.gradcam import decoding_of

    base = dict(data=tmp_path, vqa_model="x", out=tmp_path / "o")
    plain = decoding_of(load_settings(GradcamSettings, base))
    assert plain == {"num_beams": 1, "length_penalty": 1.0, "max_answer_tokens": 10, "early_stopping": False,
                     "key_noun_mapping": "char-span"}
    compat = decoding_of(load_settings(GradcamSettings, {**base, "compat": True}))
    assert compat == {"num_beams": 100, "length_penalty": 0.0, "max_answer_tokens": 200, "early_stopping": True,
                      "key_noun_mapping": "word-index"}
    given = decoding_of(load_settings(GradcamSettings, {**base, "compat": True, "num_beams": 5, "length_penalty": 0.5}))
    assert (given["num_beams"], given["length_penalty"], given["max_answer_tokens"]) == (5, 0.5, 200)


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    from gazecli.core.gradcam.backends import load_backend

    folder = save_tiny_blip(tmp_path_factory.mktemp("blip") / "blip")
    return folder, load_backend(str(folder), device="cpu")


def test_beam_search_answers_equal_blip_generate_with_the_same_options(blip):
    import torch
    from transformers import AutoProcessor, BlipForQuestionAnswering

    folder, backend = blip
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    model = BlipForQuestionAnswering.from_pretrained(folder).eval()
    proc = AutoProcessor.from_pretrained(folder)
    encoded = backend.encode(images, [QUESTION] * 2)
    for penalty in (0.0, 1.0):
        ours = backend.answer(encoded, num_beams=6, max_new_tokens=12, length_penalty=penalty, early_stopping=True)
        for b in range(2):
            inputs = proc(images=[images[b]], text=[QUESTION], return_tensors="pt")
            with torch.no_grad():
                ref = model.generate(**inputs, num_beams=6, max_new_tokens=12, length_penalty=penalty,
                                     early_stopping=True)[0].tolist()
            ref = [t for t in ref[1:] if t != backend.pad_id]  # drop BOS and padding
            assert ours[b] == ref[: len(ours[b])] and len(ours[b]) >= 1


def test_compat_run_records_its_decoding_and_maps_by_word_index(blip, tmp_path):
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.gradcam.store import GradcamStore

    folder, backend = blip
    world = tmp_path / "gw"
    synthesize_gazeworld(world, 3, 1, seed=1, size=64)
    s = load_settings(GradcamSettings, dict(data=world, vqa_model=str(folder), out=tmp_path / "store", batch_size=2,
                                            device="cpu", limit=2, compat=True, max_answer_tokens=8, key_noun="rule"))
    run_gradcam(s, backend=backend)
    recipe = json.loads((tmp_path / "store" / "gradcam.json").read_text())
    assert (recipe["num_beams"], recipe["length_penalty"], recipe["max_answer_tokens"]) == (100, 0.0, 8)
    assert recipe["key_noun_mapping"] == "word-index" and recipe["key_noun"] == "rule"
    records = GradcamStore(tmp_path / "store").split("train").records()
    for text, tokens, step in zip(records.answer, records.tokens, records.step):
        n_content = len(tokens) - (1 if tokens and tokens[-1] in backend.eos_ids else 0)
        assert step == word_index_step(text, len(tokens), n_content, "rule").step
