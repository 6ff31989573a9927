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
- `cnn`: the convolutional GazeWorld VQA (`vqa.cnn`, `gaze data train-vqa --arch cnn`), with
  classic Grad-CAM on its last conv map (`cnn_backend.py`; no transformers needed).

Images are resized to the model's square input by the caller (`prompt.resize_square`), so
the grid covers the whole image. Models load from a local folder, a Hugging Face id, or a
named model (`NAMED_MODELS`). transformers is imported only here, inside functions.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Callable


from gazecli.core.errors import GazeError, SettingsError
from gazecli.core.gradcam.cam import TokenAttention
from gazecli.core.gradcam.vlm import VLMBackend
from gazecli.core.gradcam.vqa_backend import Encoded, ModelError, VQABackend, _capture, beam_options

VLM_MODEL_TYPES = ("llava", "paligemma", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm")
INSTALL_HINT = "pip install 'gazecli[vqa]'"


def _gazeworld_vqa_folder() -> Path:
    """The GazeWorld BLIP VQA shipped inside the package (`gaze data train-vqa`)."""
    return Path(__file__).resolve().parents[2] / "assets" / "gazeworld_vqa"


def _gazeworld_cnn_folder() -> Path:
    """The convolutional GazeWorld VQA shipped inside the package (`gaze data train-vqa --arch cnn`)."""
    return Path(__file__).resolve().parents[2] / "assets" / "gazeworld_cnn_vqa"


# `--vqa-model gazeworld`: the shipped GazeWorld VQA whose pseudo-labels are best on the demo's
# world (measured: README, "GazeWorld VQA"); the other stays available by its own name.
GAZEWORLD_DEFAULT = "gazeworld-cnn"
# Named local models: `--vqa-model NAME` resolves through this dict to a model folder.
NAMED_MODELS: dict[str, Callable[[], Path]] = {"gazeworld-blip": _gazeworld_vqa_folder,
                                               "gazeworld-cnn": _gazeworld_cnn_folder}
NAMED_MODELS["gazeworld"] = NAMED_MODELS[GAZEWORLD_DEFAULT]
PLANNED_NAMED_MODELS: dict[str, str] = {}  # names reserved for models a later gazecli ships: NAME -> why not yet


# --------------------------------------------------------------------------------------------
# loading


def require_transformers():
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise GazeError(f"the VQA Grad-CAM backends need transformers: {INSTALL_HINT}") from None
    return transformers


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def weights_fingerprint(name: str) -> str | None:
    """A short fingerprint of a local VQA's weights (named models included): each weights file's
    name, size and the SHA-256 of its first and last MiB, so a cached result made with other weights
    is told apart without reading gigabytes. None for hub ids, simulated VQAs and missing folders."""
    import hashlib

    try:
        folder = Path(resolve_model_source(name))
    except ModelError:  # not a local folder (a simulated VQA, a missing one): no fingerprint
        return None
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.suffix not in (".safetensors", ".bin", ".pt", ".pth") or not f.is_file():
            continue
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(1 << 20)
            fh.seek(max(0, size - (1 << 20)))
            tail = fh.read(1 << 20)
        h.update(f"{f.name}:{size}:".encode() + hashlib.sha256(head).digest() + hashlib.sha256(tail).digest())
    return h.hexdigest()[:16]


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


def _cnn_source(model: str, backend: str) -> str | None:
    """The folder of the convolutional GazeWorld VQA that `model` names, else None (the other
    backends report their own errors); `--backend cnn` refuses anything else."""
    from gazecli.core.vqa.cnn import is_cnn_folder

    try:
        source = resolve_model_source(model)
    except ModelError:
        if backend == "cnn":
            raise
        return None
    if is_cnn_folder(source):
        return source
    if backend == "cnn":
        raise ModelError(f"--backend cnn: {source} is not a convolutional GazeWorld VQA folder "
                         f"(gaze data train-vqa --arch cnn)")
    return None


def load_backend(model: str, backend: str = "auto", device: str | Any = "auto", precision: str = "auto",
                 image_size: int | None = None, answer_hint: str = "") -> "VQABackend":
    """Load a VQA model and wrap it in its backend. Errors a user can cause are ModelError lines."""
    cnn_source = _cnn_source(model, backend)
    if cnn_source is not None:  # the convolutional GazeWorld VQA (gradcam/cnn_backend.py): no transformers
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
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as e:
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
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        # a .bin that torch's weights-only loader refuses, truncated or mis-shaped weights
        raise _load_error(source, "model weights", e) from None
    net.eval().to(dev)
    for p in net.parameters():  # gradients are taken w.r.t. attention maps only
        p.requires_grad_(False)
    cls = BlipBackend if kind == "blip" else VLMBackend
    return cls(net, processor, source, dev, dtype, image_size=image_size, answer_hint=answer_hint)


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

    def answer(self, batch, num_beams=1, max_new_tokens=10, length_penalty=1.0, early_stopping=False):
        import torch

        with torch.no_grad():
            q = self._question_states(batch, batch.data["image_embeds"])
            bos = torch.full((batch.size, 1), self.bos_id, dtype=torch.long, device=self.device)
            out = self.model.text_decoder.generate(
                input_ids=bos, encoder_hidden_states=q, encoder_attention_mask=batch.data["attention_mask"],
                eos_token_id=self.eos_id, pad_token_id=self.pad_id, num_beams=num_beams,
                max_new_tokens=max_new_tokens, do_sample=False, **beam_options(num_beams, length_penalty, early_stopping))
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
