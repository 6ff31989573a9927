"""Tiny random-init VQA models with offline tokenizers, saved with `save_pretrained` so the
real from-folder loading path runs (helpers for the Grad-CAM tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

# A word-piece vocabulary in which "racket" is two tokens ("rack", "##et") and "cellphone"
# three ("cell", "##pho", "##ne"): multi-token words for the key-noun mapping.
WORDS = ("what is the person in green bounding box looking at ? tennis rack man red his phone nothing a ball cup "
         "book plant lamp clock wall table window camera of on cell . , answer with single word or phrase").split()
PIECES = ["##et", "##pho", "##ne", "##s"]
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def bert_vocab() -> dict[str, int]:
    return {w: i for i, w in enumerate([*BERT_SPECIAL, *WORDS, *PIECES])}


def bert_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=bert_vocab())


def save_tiny_blip(folder: Path, image_size: int = 64, patch: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """BlipForQuestionAnswering, hidden 32, `layers` text and vision layers, 64 px, 16 px patches
    (a 4x4 grid), vision initializer_range 0.02 (BLIP's 1e-10 default makes CAMs flat)."""
    import torch
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    vocab = bert_vocab()
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config=dict(vocab_size=len(vocab) + 1, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, bos_token_id=len(vocab),
                         pad_token_id=vocab["[PAD]"], sep_token_id=vocab["[SEP]"]),
        vision_config=dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                           image_size=image_size, patch_size=patch, initializer_range=0.02),
        projection_dim=32)
    model = BlipForQuestionAnswering(config).eval()
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
                              tokenizer=bert_tokenizer())
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


LLAVA_TEMPLATE = ("{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
                  "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %} "
                  "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def llama_style_tokenizer():
    """A fast word-piece tokenizer with sentencepiece-style '▁' word starts (offsets include
    the leading space, as Llama's), special tokens <pad> <s> </s> <unk> <image>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
    pieces = ["▁" + w for w in [*WORDS, "user", "assistant", "USER", "ASSISTANT"]] + ["et", "pho", "ne", "s", ":",
                                                                                   "?", ".", "▁"]
    vocab = {w: i for i, w in enumerate([*specials, *pieces])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", continuing_subword_prefix=""))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return fast


def save_tiny_llava(folder: Path, image_size: int = 32, patch: int = 8, layers: int = 3, seed: int = 0) -> Path:
    """LlavaForConditionalGeneration: CLIP vision (hidden 32, 32 px, 8 px patches: a 4x4 grid)
    + Llama (hidden 32, `layers` layers), eager attention, with a chat template."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok = llama_style_tokenizer()
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=patch)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config).eval()
    # a random model says EOS first; make it answer a few real words, through its own generation config
    model.generation_config.min_new_tokens = 3
    model.generation_config.suppress_tokens = [tok.convert_tokens_to_ids(t) for t in
                                               ("<pad>", "<s>", "<unk>", "<image>")]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size}),
        tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


QWEN_SPECIAL = ["<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"]
QWEN_TEMPLATE = ("{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|> {% else %}{{ c['text'] }}"
                 "{% endif %}{% endfor %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def save_tiny_qwen2_vl(folder: Path, patch: int = 8, layers: int = 3, seed: int = 0) -> Path:
    """Qwen2VLForConditionalGeneration (vision depth 2, hidden 32; text hidden 32, `layers`
    layers, M-RoPE), 8 px patches merged 2x2: a 64 px image is a 4x4 grid of image tokens."""
    import torch
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    tok = llama_style_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>", *QWEN_SPECIAL]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    torch.manual_seed(seed)
    config = Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, patch_size=patch, spatial_merge_size=2,
                           temporal_patch_size=2),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.min_new_tokens = 3
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.suppress_tokens = [tok.convert_tokens_to_ids(t) for t in
                                               ("<pad>", "<s>", "<unk>", "<image>", *QWEN_SPECIAL)]
    kw = dict(patch_size=patch, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**kw), video_processor=Qwen2VLVideoProcessor(**kw),
                                 tokenizer=tok, chat_template=QWEN_TEMPLATE)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
