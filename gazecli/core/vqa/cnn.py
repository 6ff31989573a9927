"""A convolutional GazeWorld VQA ("late fusion", docs/design.md, "Grad-CAM") with classic Grad-CAM.

The image (RGB plus CoordConv x/y channels) goes through a question-independent trunk: a stem to
1/8 resolution (`stem_kind` "patchify": a 4x4 stride-4 conv then a 2x2 stride-2 conv; "strided":
three stride-2 3x3 convs), residual 3x3 blocks with dilations 1,2,4,8,..., and a 1x1 conv to
`cam_channels` channels: the Grad-CAM layer A, a 16x16 map for a 128 px input. The question (word
ids of the GazeWorld vocabulary, a GRU) guides two attention poolings over A plus a global max pool:

- hop 1: softmax over the cells of <W1 q, K>, giving z1 and the attended position p1;
- hop 2: softmax over the cells of <W2 q + U z1, K>; with `relative_hop`, plus
  c(q, z1) . phi(cell - p1), where phi holds generic relative-position features (dx, dy, the unit
  direction, the distance): a second look conditioned on where the first one looked.

The keys K are A, plus a learned embedding of each cell's position with `key_positions`. The
shipped weights use neither option (the prototype's design; README, "The convolutional VQA").
The three pooled vectors are fused with the question as ReLU(W z + W' q) * (1 + W'' q), then
two linear layers give a logit per answer (`ANSWERS`: every GazeWorld answer, one class each).

Grad-CAM (Selvaraju et al., the VQA setting): for the chosen answer's logit y,
CAM = ReLU(sum_c mean_xy(dy/dA_c) A_c) on the 16x16 map. Supervision is answer text only.

Files: `config.json` (model_type `gazeworld-cnn-vqa`, the config and provenance) and
`model.safetensors`; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gazecli.core.data.gazeworld_qa import (CLASS_NAMES, GAZE_DIRECTIONS, NOTHING, NUMBERS, OUTSIDE, PERSON, REGIONS,
    vocabulary_words)
from gazecli.core.io import write_file, write_json

MODEL_TYPE = "gazeworld-cnn-vqa"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def answer_list() -> list[str]:
    """Every answer a GazeWorld question can have, in a fixed order (one output class each)."""
    out: list[str] = []
    for a in [*CLASS_NAMES, PERSON, NOTHING, OUTSIDE, *NUMBERS, *REGIONS.values(), *GAZE_DIRECTIONS]:
        if a not in out:
            out.append(a)
    return out


ANSWERS = tuple(answer_list())
WORDS = ("[PAD]", "[UNK]", *vocabulary_words())


def tokenize(question: str) -> list[int]:
    index = {w: i for i, w in enumerate(WORDS)}
    return [index.get(w, 1) for w in question.lower().replace("?", " ? ").split()]


def encode_questions(questions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, T) padded word ids and (Q,) lengths."""
    ids = [tokenize(q) or [1] for q in questions]
    width = max(len(i) for i in ids)
    out = torch.zeros((len(ids), width), dtype=torch.long)
    for k, row in enumerate(ids):
        out[k, :len(row)] = torch.tensor(row)
    return out, torch.tensor([len(r) for r in ids], dtype=torch.long)


@dataclass
class CNNVQAConfig:
    image_size: int = 128
    stem: tuple[int, int] = (32, 64)  # widths of the first two stride-2 convs (the third keeps `width`)
    stem_kind: str = "strided"  # strided: three stride-2 3x3 convs; patchify: 4x4 stride 4, then 2x2 stride 2
    width: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    cam_channels: int = 128
    word_dim: int = 64
    question_dim: int = 128
    fuse_dim: int = 384
    hidden_dim: int = 192
    relative_hop: bool = True  # hop 2 sees positions relative to hop 1 (False: two independent poolings)
    key_positions: bool = True  # the attention keys carry the cell's absolute position (False: features only)
    answers: list[str] = field(default_factory=lambda: list(ANSWERS))
    words: list[str] = field(default_factory=lambda: list(WORDS))

    @property
    def grid(self) -> int:
        return self.image_size // 8


class _Block(nn.Module):
    def __init__(self, c: int, d: int):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=d, dilation=d, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=d, dilation=d, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


def _conv_bn(cin, cout, stride, kernel=3, padding=1):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


def _coords(b: int, h: int, w: int, device, dtype) -> torch.Tensor:
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    return torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])[None].expand(b, 2, h, w)


class _Grouped:
    """Questions grouped by the image they ask about: `apply(x, m)` is x[k] @ m[image_index[k]]
    for every question k, computed as one batched product over (image, slot) pairs."""

    def __init__(self, image_index: torch.Tensor, slot: torch.Tensor, b: int, width: int):
        self.image_index, self.slot, self.b, self.width = image_index, slot, b, width

    def apply(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        padded = x.new_zeros((self.b, self.width, x.shape[1])).index_put((self.image_index, self.slot), x)
        return torch.bmm(padded, m)[self.image_index, self.slot]


def _by_image(image_index: torch.Tensor, b: int) -> _Grouped:
    """Each question's slot among its image's questions (any order of `image_index`)."""
    counts = torch.bincount(image_index, minlength=b)
    order = torch.argsort(image_index, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(image_index)
    slot[order] = torch.arange(len(image_index), device=image_index.device) - starts[image_index[order]]
    return _Grouped(image_index, slot, b, int(counts.max()) if len(image_index) else 0)


class CNNVQA(nn.Module):
    def __init__(self, cfg: CNNVQAConfig):
        super().__init__()
        self.cfg = cfg
        s1, s2 = cfg.stem
        if cfg.stem_kind == "patchify":
            self.stem = nn.Sequential(_conv_bn(5, cfg.width, 4, kernel=4, padding=0),
                                      _conv_bn(cfg.width, cfg.width, 2, kernel=2, padding=0))
        elif cfg.stem_kind == "strided":
            self.stem = nn.Sequential(_conv_bn(5, s1, 2), _conv_bn(s1, s2, 2), _conv_bn(s2, cfg.width, 2))
        else:
            raise ValueError(f"unknown stem_kind {cfg.stem_kind!r} (strided or patchify)")
        self.blocks = nn.Sequential(*[_Block(cfg.width, d) for d in cfg.dilations])
        self.cam = nn.Conv2d(cfg.width, cfg.cam_channels, 1)  # the Grad-CAM layer (after its ReLU)
        c, q = cfg.cam_channels, cfg.question_dim
        self.embed = nn.Embedding(len(cfg.words), cfg.word_dim, padding_idx=0)
        self.gru = nn.GRU(cfg.word_dim, q, batch_first=True)
        self.query1 = nn.Linear(q, c)
        self.query2 = nn.Linear(q, c)
        self.query2_z = nn.Linear(c, c, bias=False)
        if cfg.key_positions:
            self.key_pos = nn.Conv2d(2, c, 1)  # absolute position into the keys (CoordConv at the pooling)
        if cfg.relative_hop:
            self.rel = nn.Sequential(nn.Linear(q + c, 64), nn.ReLU(), nn.Linear(64, 6))
        self.fuse_z = nn.Linear(3 * c, cfg.fuse_dim)
        self.fuse_q = nn.Linear(q, cfg.fuse_dim)
        self.gate_q = nn.Linear(q, cfg.fuse_dim)
        self.head = nn.Sequential(nn.Linear(cfg.fuse_dim, cfg.hidden_dim), nn.ReLU(), nn.Linear(cfg.hidden_dim, len(cfg.answers)))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 RGB -> A (B, C, S/8, S/8), the Grad-CAM layer."""
        x = (images.float() / 255.0 - self.mean) / self.std
        b, _, h, w = x.shape
        x = torch.cat([x, _coords(b, h, w, x.device, x.dtype) * 2 - 1], 1)
        return F.relu(self.cam(self.blocks(self.stem(x))))

    def question(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        return self.gru(packed)[1][0]  # (Q, q)

    def answer_logits(self, a: torch.Tensor, image_index: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """a: (B, C, H, W) features; image_index: (Q,) which image each question asks about; q: (Q, q).

        The attention runs per image on the questions grouped by their image (`_by_image`): one
        (K, C) x (C, HW) product per image instead of a (C, HW) copy of the features per question,
        the same numbers in a fraction of the time and memory (tests/test_vqa_cnn.py)."""
        b, c, h, w = a.shape
        group = _by_image(image_index, b)
        pos = _coords(1, h, w, a.device, a.dtype).reshape(2, h * w)  # (2, HW)
        values = a.flatten(2)  # (B, C, HW)
        keys = values + self.key_pos(_coords(b, h, w, a.device, a.dtype)).flatten(2) if self.cfg.key_positions else values
        scale = c ** -0.5
        att1 = (group.apply(self.query1(q), keys) * scale).softmax(-1)  # (Q, HW)
        z1 = group.apply(att1, values.transpose(1, 2))  # (Q, C)
        logit2 = group.apply(self.query2(q) + self.query2_z(z1), keys) * scale
        if self.cfg.relative_hop:
            p1 = att1 @ pos.T  # (Q, 2): where hop 1 looked
            rel = pos[None] - p1[:, :, None]  # (Q, 2, HW)
            dist = rel.norm(dim=1, keepdim=True)
            phi = torch.cat([rel, rel / (dist + 0.02), dist, dist * dist], 1)  # (Q, 6, HW)
            coef = self.rel(torch.cat([q, z1], 1))  # (Q, 6)
            logit2 = logit2 + torch.einsum("qk,qkn->qn", coef, phi)
        z2 = group.apply(logit2.softmax(-1), values.transpose(1, 2))
        zmax = values.amax(-1)[image_index]
        z = torch.cat([z1, z2, zmax], 1)
        h_ = F.relu(self.fuse_z(z) + self.fuse_q(q)) * (1 + self.gate_q(q))
        return self.head(h_)

    def forward(self, images, image_index, q_ids, q_len):
        return self.answer_logits(self.features(images), image_index, self.question(q_ids, q_len))

    def gradcam(self, images: torch.Tensor, q_ids, q_len, answer: torch.Tensor | None = None):
        """(answers (B,), probabilities (B,), CAMs (B, H, W) raw >= 0): one question per image;
        `answer` None: the model's own answer (argmax)."""
        with torch.enable_grad():
            a = self.features(images).detach().requires_grad_(True)
            logits = self.answer_logits(a, torch.arange(len(images), device=a.device), self.question(q_ids, q_len))
            chosen = logits.argmax(-1) if answer is None else answer
            y = logits.gather(1, chosen[:, None]).sum()
            (g,) = torch.autograd.grad(y, a)
        weights = g.mean(dim=(2, 3), keepdim=True)
        cams = F.relu((weights * a.detach()).sum(1))
        return chosen.detach(), logits.detach().softmax(-1).gather(1, chosen[:, None])[:, 0], cams.detach()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_folder(model: CNNVQA, folder: Path, provenance: dict | None = None) -> list[Path]:
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def write_to(tmp: Path) -> None:
        save_file(state, str(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates its file private; weights are data

    write_file(folder / WEIGHTS_NAME, write_to)
    cfg = asdict(model.cfg)
    meta = {"model_type": MODEL_TYPE, "config": cfg, "parameters": count_parameters(model), **(provenance or {})}
    write_json(folder / CONFIG_NAME, meta)
    return [folder / WEIGHTS_NAME, folder / CONFIG_NAME]


def is_cnn_folder(folder) -> bool:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False


def config_from_dict(d: dict) -> CNNVQAConfig:
    d = dict(d)
    for k in ("stem", "dilations"):
        if k in d:
            d[k] = tuple(d[k])
    return CNNVQAConfig(**d)


def load_folder(folder: Path) -> tuple[CNNVQA, dict]:
    from safetensors.torch import load_file

    from gazecli.core.errors import DataError

    folder = Path(folder)
    try:
        meta = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        model = CNNVQA(config_from_dict(meta["config"]))
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise DataError(f"{folder}: not a loadable convolutional GazeWorld VQA ({e.__class__.__name__}: "
                        f"{' '.join(str(e).split())[:200]})") from None
    return model.eval(), meta
