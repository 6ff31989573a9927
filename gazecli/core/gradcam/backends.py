"""VQA backends behind one interface (transformers models).

A backend answers questions about a batch of images and, for a chosen answer token per
sample, gives that token's probability under teacher forcing together with the attention
probabilities from text to image patches (with their autograd graph) for the requested
layers, and the patch grid. `cam.gradcam_from_attention` turns that into Grad-CAMs.

- `blip`: `BlipForQuestionAnswering` (e.g. Salesforce/blip-vqa-base, -capfilt-large). The
  answer decoder attends to the question encoder, whose cross-attention attends to the image
  patches: the CAM is taken on that cross-attention (layers of the question encoder), the
  gradient of the key-noun token's probability flowing back through the decoder.
- `vlm`: decoder-only vision-language models (LLaVA, PaliGemma, Qwen2-VL / Qwen2.5-VL,
  Idefics3 / SmolVLM), loaded with eager attention; the CAM is taken on the attention from
  the position that generates the key noun to the image-token positions (layers of the
  language model).

Images are resized to the model's square input by the caller (`prompt.resize_square`), so
the grid covers the whole image. Models load from a local folder, a Hugging Face id, or a
named model (`NAMED_MODELS`). transformers is imported only here, inside functions.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gazecli.core.errors import GazeError, SettingsError
from gazecli.core.gradcam.cam import TokenAttention

BACKENDS = ("blip", "vlm", "cnn")
VLM_MODEL_TYPES = ("llava", "paligemma", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm")
QWEN_TYPES = ("qwen2_vl", "qwen2_5_vl")
QWEN_DEFAULT_SIZE = 448  # Qwen2-VL takes any size; 448 px gives a 16x16 grid of merged patches
INSTALL_HINT = "pip install 'gazecli[vqa]'"


def _gazeworld_vqa_folder() -> Path:
    """The GazeWorld BLIP VQA shipped inside the package (`gaze data train-vqa`)."""
    return Path(__file__).resolve().parents[2] / "assets" / "gazeworld_vqa"


def _gazeworld_cnn_folder() -> Path:
    """The convolutional GazeWorld VQA shipped inside the package (`gaze data train-vqa --arch cnn`)."""
    return Path(__file__).resolve().parents[2] / "assets" / "gazeworld_cnn_vqa"


# `--vqa-model gazeworld`: the shipped GazeWorld VQA whose pseudo-labels are best on the demo's
# world (measured: README, "GazeWorld VQA"); the other stays available by its own name.
GAZEWORLD_DEFAULT = "gazeworld-blip"
# Named local models: `--vqa-model NAME` resolves through this dict to a model folder.
NAMED_MODELS: dict[str, Callable[[], Path]] = {"gazeworld-blip": _gazeworld_vqa_folder,
                                               "gazeworld-cnn": _gazeworld_cnn_folder}
NAMED_MODELS["gazeworld"] = NAMED_MODELS[GAZEWORLD_DEFAULT]
PLANNED_NAMED_MODELS: dict[str, str] = {}  # names reserved for models a later gazecli ships: NAME -> why not yet


class ModelError(GazeError):
    """A VQA model that cannot be found, loaded or used."""


# --------------------------------------------------------------------------------------------
# loading


def require_transformers():
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise GazeError(f"the VQA Grad-CAM backends need transformers: {INSTALL_HINT}") from None
    return transformers


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def resolve_model_source(name: str) -> str:
    """A local folder, a named model's folder, or a Hugging Face hub id (checked by loading)."""
    name = str(name).strip()
    if name in NAMED_MODELS:
        folder = Path(NAMED_MODELS[name]())
        if not folder.is_dir():
            raise ModelError(f"--vqa-model {name}: the named model's folder {folder} is missing")
        return str(folder)
    if name in PLANNED_NAMED_MODELS:
        raise ModelError(f"--vqa-model {name}: {PLANNED_NAMED_MODELS[name]}")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"--vqa-model {name}: expected a model folder (config.json, weights, processor), "
                             f"got a file")
        if not (path / "config.json").is_file():
            raise ModelError(f"--vqa-model {name}: not a transformers model folder (no config.json)")
        return str(path)
    if name.startswith((".", "/", "~")) or "\\" in name or not _HUB_ID.fullmatch(name):
        raise ModelError(f"--vqa-model {name}: model folder not found")
    return name  # a hub id: from_pretrained downloads (or reads the local cache)


def _load_error(source: str, what: str, e: Exception) -> ModelError:
    where = "" if Path(source).is_dir() else " (not a local folder; is the Hugging Face hub reachable, or " \
                                            "the model in the local cache?)"
    reason = " ".join(str(e).split())[:300]
    return ModelError(f"--vqa-model {source}: cannot load the {what}{where}: {e.__class__.__name__}: {reason}")


def detect_backend(config) -> str:
    model_type = getattr(config, "model_type", "")
    if model_type == "blip":
        archs = getattr(config, "architectures", None) or []
        if archs and "BlipForQuestionAnswering" not in archs:
            raise ModelError(f"this BLIP model is a {', '.join(archs)}, not a VQA model (BlipForQuestionAnswering, "
                             f"e.g. Salesforce/blip-vqa-base)")
        return "blip"
    if model_type in VLM_MODEL_TYPES:
        return "vlm"
    raise ModelError(f"model type {model_type!r} is not a supported VQA model (supported: blip "
                     f"[BlipForQuestionAnswering]; vlm: {', '.join(VLM_MODEL_TYPES)})")


def resolve_dtype(precision: str, device):
    import torch

    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def load_backend(model: str, backend: str = "auto", device: str | Any = "auto", precision: str = "auto",
                 image_size: int | None = None, answer_hint: str = "") -> "VQABackend":
    """Load a VQA model and wrap it in its backend. Errors a user can cause are ModelError lines."""
    from gazecli.core.vqa.cnn import is_cnn_folder

    name = str(model).strip()
    candidate = NAMED_MODELS[name]() if name in NAMED_MODELS else Path(name).expanduser()
    if backend == "cnn" or is_cnn_folder(candidate):  # the convolutional GazeWorld VQA (gradcam/cnn_backend.py)
        cnn_source = resolve_model_source(model)
        if not is_cnn_folder(cnn_source):
            raise ModelError(f"--backend cnn: {cnn_source} is not a convolutional GazeWorld VQA folder "
                             f"(gaze data train-vqa --arch cnn)")
        from gazecli.core.gradcam.cnn_backend import load_cnn_backend

        return load_cnn_backend(cnn_source, device)
    require_transformers()
    import torch
    from transformers import AutoConfig, AutoProcessor

    from gazecli.core.engine.device import resolve_device

    source = resolve_model_source(model)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    dtype = resolve_dtype(precision, dev)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as e:
        raise _load_error(source, "model configuration", e) from None
    kind = detect_backend(config)
    if backend not in ("auto", kind):
        raise ModelError(f"--backend {backend}: {source} is a {config.model_type} model, which the {kind} "
                         f"backend runs")
    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise _load_error(source, "processor (tokenizer and image processor)", e) from None
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise ModelError(f"--vqa-model {source}: its processor lacks a tokenizer or an image processor")
    try:
        if kind == "blip":
            from transformers import BlipForQuestionAnswering

            net = BlipForQuestionAnswering.from_pretrained(source, dtype=dtype)
        else:
            from transformers import AutoModelForImageTextToText

            net = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype, attn_implementation="eager")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise _load_error(source, "model weights", e) from None
    net.eval().to(dev)
    for p in net.parameters():  # gradients are taken w.r.t. attention maps only
        p.requires_grad_(False)
    cls = BlipBackend if kind == "blip" else VLMBackend
    return cls(net, processor, source, dev, dtype, image_size=image_size, answer_hint=answer_hint)


# --------------------------------------------------------------------------------------------
# the interface


@dataclass
class Encoded:
    """A batch prepared by `VQABackend.encode` (backend-specific tensors)."""

    data: dict
    size: int


class VQABackend:
    name = "?"

    def __init__(self, model, processor, source: str, device, dtype, image_size: int | None = None,
                 answer_hint: str = ""):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.source = source
        self.device = device
        self.dtype = dtype
        self.answer_hint = answer_hint
        self.image_size = int(image_size) if image_size else self.native_image_size()
        tok = self.tokenizer
        self.special_ids = {int(i) for i in (getattr(tok, "all_special_ids", None) or [])}

    # -- properties every backend provides
    num_layers: int
    grid: tuple[int, int]

    def native_image_size(self) -> int:
        ip = self.processor.image_processor
        for attr in ("crop_size", "size"):
            size = getattr(ip, attr, None)
            if isinstance(size, dict):
                for key in ("height", "shortest_edge", "longest_edge"):
                    if size.get(key):
                        return int(size[key])
            elif isinstance(size, int):
                return size
            elif size is not None and getattr(size, "height", None):
                return int(size.height)
        vision = getattr(self.model.config, "vision_config", None)
        if vision is not None and getattr(vision, "image_size", None):
            return int(vision.image_size)
        raise ModelError(f"--vqa-model {self.source}: cannot tell its input image size; pass --image-size")

    def resolve_layers(self, layers: list[int]) -> list[int]:
        """Negative layers count from the end (-2: the second-to-last, as the paper)."""
        out = []
        for layer in layers:
            resolved = layer + self.num_layers if layer < 0 else layer
            if not 0 <= resolved < self.num_layers:
                raise SettingsError(f"--layers {layer}: this model has {self.num_layers} attention layers "
                                    f"(0..{self.num_layers - 1}, or -1..-{self.num_layers})")
            if resolved not in out:
                out.append(resolved)
        return sorted(out)

    def encode(self, images: list[np.ndarray], questions: list[str]) -> Encoded:
        """Prepare a batch: RGB uint8 images (resized here to the square input if they are not
        already) and their questions."""
        raise NotImplementedError

    def square(self, images: list[np.ndarray]) -> list[np.ndarray]:
        from gazecli.core.gradcam.prompt import resize_square

        return [resize_square(np.asarray(im), self.image_size) for im in images]

    def answer(self, batch: Encoded, num_beams: int = 1, max_new_tokens: int = 10) -> list[list[int]]:
        """Answer token ids per sample, EOS last when the decoder stopped (no BOS, no padding)."""
        raise NotImplementedError

    def token_attention(self, batch: Encoded, answers: list[list[int]], steps: list[int],
                        layers: list[int]) -> TokenAttention:
        """Teacher forcing: p(answers[b][steps[b]] | image, question, answers[b][:steps[b]])."""
        raise NotImplementedError

    @property
    def grad_scale(self) -> float:
        import torch

        return 1024.0 if self.dtype == torch.float16 else 1.0

    def _cut_answer(self, ids: list[int], eos_ids: set[int], pad_id: int | None) -> list[int]:
        out = []
        for t in ids:
            out.append(int(t))
            if t in eos_ids:
                break
        while out and pad_id is not None and out[-1] == pad_id and pad_id not in eos_ids:
            out.pop()
        return out


def _capture(modules: dict[int, Any], store: dict, grad_input_layer: int | None = None):
    """Forward hooks keeping each module's attention probabilities (its output[1]); with
    `grad_input_layer`, that module's hidden_states input is made a leaf requiring grad, so
    the autograd graph starts there (the parameters require none)."""
    handles = []

    def keep(layer):
        def hook(module, args, output):
            store[layer] = output[1]
        return hook

    def make_leaf(module, args, kwargs):
        if "hidden_states" in kwargs:
            kwargs["hidden_states"] = kwargs["hidden_states"].detach().requires_grad_(True)
        else:
            args = (args[0].detach().requires_grad_(True), *args[1:])
        return args, kwargs

    for layer, module in modules.items():
        handles.append(module.register_forward_hook(keep(layer)))
    if grad_input_layer is not None:
        handles.append(modules[grad_input_layer].register_forward_pre_hook(make_leaf, with_kwargs=True))
    return handles


# --------------------------------------------------------------------------------------------
# BLIP


class BlipBackend(VQABackend):
    name = "blip"
    # transformers 5's BLIP text attention drops the encoder attention mask in cross-attention
    # (BlipTextAttention passes it as `attention_mask`, which BlipTextSelfAttention replaces by
    # its unset `encoder_attention_mask`), so the answer decoder also attends to the question's
    # padding: batches are made of equal questions, which need no padding.
    equal_questions = True

    def __init__(self, model, processor, *args, **kwargs):
        super().__init__(model, processor, *args, **kwargs)
        cfg = model.config
        self.layers_modules = model.text_encoder.encoder.layer
        self.num_layers = len(self.layers_modules)
        patch = int(cfg.vision_config.patch_size)
        if self.image_size % patch:
            raise SettingsError(f"--image-size {self.image_size}: must be a multiple of the patch size {patch}")
        self.grid = (self.image_size // patch, self.image_size // patch)
        self.bos_id = int(model.decoder_start_token_id)
        self.eos_id = int(cfg.text_config.sep_token_id)
        self.pad_id = int(cfg.text_config.pad_token_id)
        self.eos_ids = {self.eos_id}
        self.special_ids |= {self.bos_id, self.eos_id, self.pad_id}

    def encode(self, images, questions) -> Encoded:
        import torch

        images = self.square(images)
        size = {"height": self.image_size, "width": self.image_size}
        inputs = self.processor(images=list(images), text=list(questions), return_tensors="pt", padding=True,
                                size=size)
        pixel = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.no_grad():
            image_embeds = self.model.vision_model(pixel_values=pixel)[0]  # (B, 1 + gh*gw, D)
        return Encoded({"input_ids": inputs["input_ids"].to(self.device),
                        "attention_mask": inputs["attention_mask"].to(self.device),
                        "image_embeds": image_embeds}, len(images))

    def _question_states(self, batch: Encoded, image_embeds):
        import torch

        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.model.text_encoder(input_ids=batch.data["input_ids"], attention_mask=batch.data["attention_mask"],
                                      encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
                                      return_dict=True)
        return out.last_hidden_state  # (B, Tq, D)

    def answer(self, batch, num_beams=1, max_new_tokens=10):
        import torch

        with torch.no_grad():
            q = self._question_states(batch, batch.data["image_embeds"])
            bos = torch.full((batch.size, 1), self.bos_id, dtype=torch.long, device=self.device)
            out = self.model.text_decoder.generate(
                input_ids=bos, encoder_hidden_states=q, encoder_attention_mask=batch.data["attention_mask"],
                eos_token_id=self.eos_id, pad_token_id=self.pad_id, num_beams=num_beams,
                max_new_tokens=max_new_tokens, do_sample=False)
        return [self._cut_answer(row[1:].tolist(), {self.eos_id}, self.pad_id) for row in out]

    def token_attention(self, batch, answers, steps, layers):
        import torch

        captured: dict = {}
        handles = _capture({l: self.layers_modules[l].crossattention.self for l in layers}, captured)
        try:
            with torch.enable_grad():
                image_embeds = batch.data["image_embeds"].detach().requires_grad_(True)
                q = self._question_states(batch, image_embeds)
                length = max(steps) + 1
                dec = torch.full((batch.size, length), self.pad_id, dtype=torch.long)
                dec_mask = torch.zeros((batch.size, length), dtype=torch.long)
                targets = torch.empty(batch.size, dtype=torch.long)
                for b, (ans, s) in enumerate(zip(answers, steps)):
                    prefix = [self.bos_id, *ans[:s]]
                    dec[b, : len(prefix)] = torch.tensor(prefix)
                    dec_mask[b, : len(prefix)] = 1
                    targets[b] = ans[s] if s < len(ans) else self.eos_id
                dec, dec_mask = dec.to(self.device), dec_mask.to(self.device)
                logits = self.model.text_decoder(input_ids=dec, attention_mask=dec_mask, encoder_hidden_states=q,
                                                 encoder_attention_mask=batch.data["attention_mask"],
                                                 return_dict=True).logits  # (B, T, V)
                rows = torch.arange(batch.size, device=self.device)
                last = logits[rows, torch.tensor(steps, device=self.device)].float()  # position s predicts ans[s]
                prob = last.softmax(-1)[rows, targets.to(self.device)]
        finally:
            for h in handles:
                h.remove()
        mask = batch.data["attention_mask"].float()
        n_keys = 1 + self.grid[0] * self.grid[1]
        image_keys = torch.ones((batch.size, n_keys), dtype=torch.bool)
        image_keys[:, 0] = False  # the vision [CLS] token is not a patch
        return TokenAttention(prob, captured, slice(None), mask / mask.sum(1, keepdim=True), image_keys, self.grid)


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

    def answer(self, batch, num_beams=1, max_new_tokens=10):
        import torch

        prompt_len = batch.data["input_ids"].shape[1]
        with torch.no_grad():
            out = self.model.generate(**batch.data, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=self.pad_id)
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
