"""The GazeWorld VQA model: transformers' `BlipForQuestionAnswering` at a tiny size, with an
offline tokenizer made from GazeWorld's vocabulary.

Nothing here is specific to training: the model is plain BLIP, saved as a `from_pretrained`
folder (config.json, model.safetensors, the BertTokenizer's vocab.txt and the BLIP image
processor's settings), so `gaze gradcam` loads it through its normal BLIP backend.

Answer scoring mirrors that backend: vision model -> question encoder (whose cross-attention
attends to the image patches) -> answer decoder (which attends to the question states),
teacher-forced with [DEC] answer [SEP]. `GazeWorldVQA.forward` runs the vision model once per
image and the text parts for several questions per image.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from gazecli.core.data.gazeworld_qa import QA_VERSION, vocabulary_words

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DECODER_START = "[DEC]"  # BLIP's answer-decoder start token (its bos)
PROVENANCE_NAME = "gazeworld_vqa.json"  # beside the model files: how it was trained and what it scored
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # BlipImageProcessor's defaults
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def gazeworld_vocab() -> dict[str, int]:
    """Token -> id: BERT's specials, every GazeWorld question and answer word, then [DEC]."""
    tokens = [*SPECIAL_TOKENS, *vocabulary_words(), DECODER_START]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer():
    """A lower-casing word-level BertTokenizer over `gazeworld_vocab()` (no download)."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=gazeworld_vocab(), do_lower_case=True, bos_token=DECODER_START)


def build_processor(image_size: int):
    from transformers import BlipImageProcessor, BlipProcessor

    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size},
                                         image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    return BlipProcessor(image_processor=image_processor, tokenizer=build_tokenizer())


@dataclass(frozen=True)
class VQAConfig:
    """The sizes of the BLIP model (vision and text share the width)."""

    image_size: int = 128
    patch_size: int = 16
    hidden_size: int = 96
    vision_layers: int = 3
    text_layers: int = 2  # the question encoder and the answer decoder each have this many
    heads: int = 4
    mlp_ratio: int = 4
    max_question_tokens: int = 32

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of the patch size {self.patch_size}")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden size {self.hidden_size} is not a multiple of the {self.heads} heads")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


def blip_config(cfg: VQAConfig):
    from transformers import BlipConfig

    vocab = gazeworld_vocab()
    h = cfg.hidden_size
    return BlipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=h, num_hidden_layers=cfg.text_layers,
                         num_attention_heads=cfg.heads, intermediate_size=cfg.mlp_ratio * h,
                         max_position_embeddings=cfg.max_question_tokens, bos_token_id=vocab[DECODER_START],
                         pad_token_id=vocab["[PAD]"], sep_token_id=vocab["[SEP]"], hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0),
        vision_config=dict(hidden_size=h, num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.heads,
                           intermediate_size=cfg.mlp_ratio * h, image_size=cfg.image_size, patch_size=cfg.patch_size,
                           initializer_range=0.02,  # BLIP's vision default (1e-10) starts with no gradient
                           attention_dropout=0.0),
        projection_dim=h)


def build_blip(cfg: VQAConfig, cross_attention_init: float = 1.0):
    """A freshly initialised BlipForQuestionAnswering (seed torch first for reproducible weights).

    cross_attention_init: factor on the initial weights of the question encoder's cross-attention
    (query, key, value, output). BLIP's own init (1) makes that attention uniform over the 65
    image tokens and the image a faint average the decoder learns to ignore; larger weights make
    it content-dependent from the first step. Measured (colour/count questions, large-object
    scenes, 300-500 steps): 5 with lr 2e-3 stays at the language prior; 1-2 with lr 5e-4-1e-3
    leaves it after 200-300 steps; the shipped model used 2 with lr 1e-3."""
    import torch
    from transformers import BlipForQuestionAnswering

    blip = BlipForQuestionAnswering(blip_config(cfg))
    if cross_attention_init != 1.0:
        with torch.no_grad():
            for name, p in blip.text_encoder.named_parameters():
                if ".crossattention." in name and name.endswith("weight") and p.ndim == 2:
                    p.mul_(cross_attention_init)
    return blip


class GazeWorldVQA(nn.Module):
    """BLIP VQA for training on the shared engine.

    Its state dict leaves out the decoder's tied copies of the word embeddings (safetensors
    stores no shared tensors); loading restores them through the tie.
    """

    def __init__(self, blip):
        super().__init__()
        self.blip = blip
        self.pad_id = int(blip.config.text_config.pad_token_id)
        self.sep_id = int(blip.config.text_config.sep_token_id)
        self.bos_id = int(blip.decoder_start_token_id)
        seen: dict[int, str] = {}
        aliases = []
        for name, tensor in super().state_dict(keep_vars=True).items():
            key = id(tensor)
            if key in seen:
                aliases.append(name)
            else:
                seen[key] = name
        self.aliases = tuple(aliases)

    def state_dict(self, *args, **kwargs):
        out = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        for name in self.aliases:
            out.pop(prefix + name, None)
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if k not in self.aliases]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"GazeWorldVQA: missing keys {missing}, unexpected keys {result.unexpected_keys}")
        return result

    def image_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.blip.vision_model(pixel_values=pixel_values)[0]  # (B, 1 + g*g, D)

    def question_states(self, image_embeds: torch.Tensor, question_ids: torch.Tensor,
                        question_mask: torch.Tensor) -> torch.Tensor:
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        return self.blip.text_encoder(input_ids=question_ids, attention_mask=question_mask,
                                      encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
                                      return_dict=True).last_hidden_state  # (N, Tq, D)

    def answer_logits(self, question_states, question_mask, decoder_ids, decoder_mask) -> torch.Tensor:
        return self.blip.text_decoder(input_ids=decoder_ids, attention_mask=decoder_mask,
                                      encoder_hidden_states=question_states, encoder_attention_mask=question_mask,
                                      return_dict=True).logits  # (N, Ta, V): position t predicts token t + 1

    def forward(self, pixel_values, image_index, question_ids, question_mask, decoder_ids, decoder_mask):
        """Logits of teacher-forced answers. pixel_values (B, 3, S, S) normalised; image_index
        (N,) the image of each of the N questions; question_ids/mask (N, Tq); decoder_ids/mask
        (N, Ta) = [DEC] answer [SEP] padding."""
        image_embeds = self.image_states(pixel_values)[image_index]  # (N, 1 + g*g, D)
        q = self.question_states(image_embeds, question_ids, question_mask)
        return self.answer_logits(q, question_mask, decoder_ids, decoder_mask)

    @torch.no_grad()
    def greedy_answers(self, pixel_values, image_index, question_ids, question_mask,
                       max_tokens: int = 4) -> list[list[int]]:
        """Greedy answers (token ids without [DEC] and [SEP]), as BLIP's `generate` gives them."""
        image_embeds = self.image_states(pixel_values)[image_index]
        q = self.question_states(image_embeds, question_ids, question_mask)
        n = q.shape[0]
        dec = torch.full((n, 1), self.bos_id, dtype=torch.long, device=q.device)
        done = torch.zeros(n, dtype=torch.bool, device=q.device)
        for _ in range(max_tokens):
            logits = self.answer_logits(q, question_mask, dec, torch.ones_like(dec))[:, -1]
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            dec = torch.cat([dec, nxt[:, None]], dim=1)
            done |= nxt == self.sep_id
            if bool(done.all()):
                break
        out = []
        for row in dec[:, 1:].tolist():
            ids = []
            for t in row:
                if t in (self.sep_id, self.pad_id):
                    break
                ids.append(int(t))
            out.append(ids)
        return out


def normalise_pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) uint8 RGB -> float, as BlipImageProcessor does (x / 255 - mean) / std."""
    mean = torch.tensor(CLIP_MEAN, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images_uint8.device).view(1, 3, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


def gradient_norms(model: GazeWorldVQA) -> dict[str, float]:
    """L2 norm of the current gradients of the vision tower, question encoder and answer decoder."""
    out = {}
    for part in ("vision_model", "text_encoder", "text_decoder"):
        sq = 0.0
        for p in getattr(model.blip, part).parameters():
            if p.grad is not None:
                sq += float(p.grad.detach().float().pow(2).sum())
        out[part] = sq ** 0.5
    return out


def export_folder(model: GazeWorldVQA, cfg: VQAConfig, folder: Path, provenance: dict) -> list[Path]:
    """Write a `from_pretrained` folder: model (safetensors), config, tokenizer, image processor,
    and `gazeworld_vqa.json` (how it was made, what it scored)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.blip.save_pretrained(folder)
    build_processor(cfg.image_size).save_pretrained(folder)
    info = {"qa_version": QA_VERSION, "config": asdict(cfg), **provenance}
    (folder / PROVENANCE_NAME).write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return sorted(p for p in folder.iterdir() if p.is_file())


def load_folder(folder: Path, device="cpu") -> tuple[GazeWorldVQA, object]:
    """(model in eval mode, processor) from an exported folder, offline."""
    from transformers import BlipForQuestionAnswering, BlipProcessor

    blip = BlipForQuestionAnswering.from_pretrained(str(folder))
    processor = BlipProcessor.from_pretrained(str(folder))
    return GazeWorldVQA(blip).eval().to(device), processor


def config_of(folder: Path) -> VQAConfig:
    info = json.loads((Path(folder) / PROVENANCE_NAME).read_text(encoding="utf-8"))
    return VQAConfig(**info["config"])


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))

