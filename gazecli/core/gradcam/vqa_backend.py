"""The interface every VQA backend implements (encode, answer, attention capture) and the
error a model a user points at can cause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gazecli.core.errors import GazeError, SettingsError
from gazecli.core.gradcam.cam import TokenAttention


class ModelError(GazeError):
    """A VQA model that cannot be found, loaded or used."""


# --------------------------------------------------------------------------------------------
# the interface


def beam_options(num_beams: int, length_penalty: float, early_stopping: bool) -> dict:
    """generate() keywords of a beam search (none for greedy decoding, where they mean nothing)."""
    if num_beams <= 1:
        return {}
    return {"length_penalty": float(length_penalty), "early_stopping": bool(early_stopping)}


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

    def answer(self, batch: Encoded, num_beams: int = 1, max_new_tokens: int = 10, length_penalty: float = 1.0,
               early_stopping: bool = False) -> list[list[int]]:
        """Answer token ids per sample, EOS last when the decoder stopped (no BOS, no padding).
        Beam search (num_beams > 1) scores a hypothesis by its summed log-probability divided by
        length ** length_penalty (0: unnormalised, as the official run); early_stopping: stop once
        num_beams hypotheses are finished."""
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
