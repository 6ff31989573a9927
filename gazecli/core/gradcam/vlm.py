"""The generative VLM backend (LLaVA, PaliGemma, Qwen2-VL, Idefics3 / SmolVLM): Grad-CAM from the
decoder's attention to the image tokens."""

from __future__ import annotations

import inspect
import re

import numpy as np

from gazecli.core.gradcam.cam import TokenAttention
from gazecli.core.gradcam.vqa_backend import Encoded, ModelError, VQABackend, _capture, beam_options

QWEN_TYPES = ("qwen2_vl", "qwen2_5_vl")
QWEN_DEFAULT_SIZE = 448  # Qwen2-VL takes any size; 448 px gives a 16x16 grid of merged patches


# --------------------------------------------------------------------------------------------
# decoder-only VLMs


_ATTN_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn$")


def decoder_attention_modules(model) -> list:
    """The language model's self-attention modules, by layer (vision towers excluded)."""
    found = {}
    for name, module in model.named_modules():
        if "vision" in name or "visual" in name:
            continue
        m = _ATTN_NAME.search(name)
        if m:
            found.setdefault(int(m.group(1)), module)
    if not found or sorted(found) != list(range(len(found))):
        raise ModelError(f"cannot find the language model's attention layers in {type(model).__name__}")
    return [found[i] for i in range(len(found))]


class VLMBackend(VQABackend):
    name = "vlm"

    def __init__(self, model, processor, *args, **kwargs):
        super().__init__(model, processor, *args, **kwargs)
        cfg = model.config
        self.model_type = cfg.model_type
        self.attn_modules = decoder_attention_modules(model)
        self.num_layers = len(self.attn_modules)
        image_token_id = getattr(cfg, "image_token_id", None)
        if image_token_id is None:
            image_token_id = getattr(cfg, "image_token_index", None)
        if image_token_id is None:
            raise ModelError(f"--vqa-model {self.source}: its config names no image token")
        self.image_token_id = int(image_token_id)
        tok = self.tokenizer
        tok.padding_side = "left"  # the last position is the one that generates, in every row
        gen = getattr(model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        eos = eos if eos is not None else tok.eos_token_id
        self.eos_ids = {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None}
        pad = tok.pad_token_id if tok.pad_token_id is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.pad_id = int(pad)
        self.special_ids |= self.eos_ids | {self.pad_id, self.image_token_id}
        self.image_token = getattr(processor, "image_token", None) or tok.convert_ids_to_tokens(self.image_token_id)
        forward = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in forward
        self.grid = self._probe_grid()

    def prompt(self, question: str) -> str:
        text = f"{question} {self.answer_hint}".strip() if self.answer_hint else question
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return f"{self.image_token}\n{text}\n"

    def _processor_kwargs(self) -> dict:
        kwargs: dict = {}
        if self.model_type in ("idefics3", "smolvlm"):
            kwargs["do_image_splitting"] = False  # one grid over the whole image
        if self.model_type in QWEN_TYPES:  # pixel-count bounds that keep the square image at its size
            kwargs["size"] = {"shortest_edge": self.image_size ** 2 // 2, "longest_edge": self.image_size ** 2 * 2}
        return kwargs

    def native_image_size(self) -> int:
        if self.model.config.model_type in QWEN_TYPES:  # dynamic resolution: pick a multiple of patch x merge
            ip = self.processor.image_processor
            unit = int(getattr(ip, "patch_size", 14)) * int(getattr(ip, "merge_size", 2))
            return unit * max(1, QWEN_DEFAULT_SIZE // unit)
        return super().native_image_size()

    def encode(self, images, questions) -> Encoded:
        import torch

        prompts = [self.prompt(q) for q in questions]
        images = self.square(images)
        imgs = [[im] for im in images] if self.model_type in ("idefics3", "smolvlm") else list(images)
        inputs = self.processor(images=imgs, text=prompts, return_tensors="pt", padding=True, **self._processor_kwargs())
        data = {}
        for k, v in inputs.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                if v.is_floating_point():
                    v = v.to(self.dtype)
            data[k] = v
        return Encoded(data, len(images))

    def _probe_grid(self) -> tuple[int, int]:
        blank = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        batch = self.encode([blank], ["?"])
        return self._grid_of(batch, 0)

    def _grid_of(self, batch: Encoded, b: int) -> tuple[int, int]:
        n = int((batch.data["input_ids"][b] == self.image_token_id).sum())
        thw = batch.data.get("image_grid_thw")
        if thw is not None:
            merge = int(getattr(self.processor.image_processor, "merge_size", 2))
            _, h, w = (int(v) for v in thw[b])
            grid = (h // merge, w // merge)
        else:
            side = int(round(n ** 0.5))
            grid = (side, side)
        if grid[0] * grid[1] != n or n == 0:
            raise ModelError(f"--vqa-model {self.source}: {n} image tokens do not form one patch grid over the "
                             f"image (multi-tile image layouts are not supported)")
        return grid

    def answer(self, batch, num_beams=1, max_new_tokens=10, length_penalty=1.0, early_stopping=False):
        import torch

        prompt_len = batch.data["input_ids"].shape[1]
        with torch.no_grad():
            out = self.model.generate(**batch.data, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=self.pad_id,
                                      **beam_options(num_beams, length_penalty, early_stopping))
        return [self._cut_answer(row[prompt_len:].tolist(), self.eos_ids, self.pad_id) for row in out]

    def token_attention(self, batch, answers, steps, layers):
        import torch

        ids = batch.data["input_ids"]
        mask = batch.data["attention_mask"].bool()
        per_token = [k for k, v in batch.data.items()
                     if isinstance(v, torch.Tensor) and v.shape == ids.shape and k not in ("input_ids", "attention_mask")]
        seqs, extras, targets = [], {k: [] for k in per_token}, []
        for b, (ans, s) in enumerate(zip(answers, steps)):
            prefix = torch.tensor(ans[:s], dtype=ids.dtype, device=ids.device)
            seqs.append(torch.cat([ids[b][mask[b]], prefix]))
            for k in per_token:
                extras[k].append(torch.cat([batch.data[k][b][mask[b]], torch.zeros_like(prefix)]))
            targets.append(ans[s] if s < len(ans) else min(self.eos_ids))
        length = max(len(s) for s in seqs)

        def left_pad(rows, value):
            out = torch.full((len(rows), length), value, dtype=rows[0].dtype, device=ids.device)
            for b, r in enumerate(rows):
                out[b, length - len(r):] = r
            return out

        inputs = {k: v for k, v in batch.data.items() if k not in per_token and k not in ("input_ids", "attention_mask")}
        inputs["input_ids"] = left_pad(seqs, self.pad_id)
        inputs["attention_mask"] = left_pad([torch.ones_like(s) for s in seqs], 0)
        for k in per_token:
            inputs[k] = left_pad(extras[k], 0)
        if self._logits_to_keep:
            inputs["logits_to_keep"] = 1
        captured: dict = {}
        handles = _capture({l: self.attn_modules[l] for l in layers}, captured, grad_input_layer=min(layers))
        try:
            with torch.enable_grad():
                logits = self.model(**inputs, return_dict=True).logits[:, -1].float()  # (B, V)
                rows = torch.arange(len(seqs), device=ids.device)
                prob = logits.softmax(-1)[rows, torch.tensor(targets, device=ids.device)]
        finally:
            for h in handles:
                h.remove()
        image_keys = inputs["input_ids"] == self.image_token_id  # (B, T)
        counts = image_keys.sum(1)
        expected = self.grid[0] * self.grid[1]
        if not bool((counts == expected).all()):
            raise ModelError(f"--vqa-model {self.source}: expected {expected} image tokens per prompt, "
                             f"found {counts.tolist()}")
        weights = torch.ones((len(seqs), 1))
        return TokenAttention(prob, captured, slice(-1, None), weights, image_keys, self.grid)
