"""The `cnn` backend of `gaze gradcam`: the convolutional GazeWorld VQA (core/vqa/cnn.py) with
classic Grad-CAM on its last convolutional feature map for the answer's logit.

It answers with one word (an answer class), so the key noun is the answer itself (step 0), and
it has one Grad-CAM layer (the last conv map, index 0; --layers is not used). Images arrive
prompted (green box) and are resized here to the model's square input, as for the other
backends; the CAM grid is image-size / 8 (16x16 at 128 px). No transformers needed.
"""

from __future__ import annotations

import numpy as np

from gazecli.core.gradcam.vqa_backend import ModelError


class CNNBackend:
    name = "cnn"
    num_layers = 1
    equal_questions = False

    def __init__(self, model, meta: dict, source: str, device):
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.meta = meta
        self.source = source
        self.device = device
        self.image_size = int(model.cfg.image_size)
        self.grid = (model.cfg.grid, model.cfg.grid)
        self.answers = list(model.cfg.answers)  # the model's own answer list (its config): what its outputs mean
        self.eos_ids: set[int] = set()
        self.special_ids: set[int] = set()
        self.grad_scale = 1.0

    def resolve_layers(self, layers: list[int]) -> list[int]:
        """One Grad-CAM layer (the last conv map): whatever --layers asks, layer 0."""
        return [0]

    def square(self, images):
        from gazecli.core.gradcam.prompt import resize_square

        return [resize_square(np.asarray(im), self.image_size) for im in images]

    def annotate(self, images, questions, layers) -> dict:
        """Answers and Grad-CAMs of a batch: {"answer", "key_noun", "step", "tokens", "cams"}."""
        import torch

        from gazecli.core.vqa.cnn import encode_questions

        pixels = torch.from_numpy(np.stack(self.square(images))).permute(0, 3, 1, 2).contiguous().to(self.device)
        q_ids, q_len = encode_questions(list(questions))
        chosen, prob, cams = self.model.gradcam(pixels, q_ids.to(self.device), q_len)
        texts = [self.answers[int(i)] for i in chosen.cpu()]
        cams = cams.float().cpu().numpy().astype(np.float32)
        return {"answer": texts, "key_noun": texts, "step": [0] * len(texts),
                "tokens": [[int(i)] for i in chosen.cpu()], "cams": {l: cams for l in layers}}


def load_cnn_backend(source: str, device) -> CNNBackend:
    import torch

    from gazecli.core.engine.device import resolve_device
    from gazecli.core.errors import GazeError
    from gazecli.core.vqa.cnn import load_folder

    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    try:
        model, meta = load_folder(source)
    except GazeError as e:
        raise ModelError(f"--vqa-model {source}: {e}") from None
    return CNNBackend(model, meta, source, dev)
