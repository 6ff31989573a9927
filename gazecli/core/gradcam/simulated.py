"""SIMULATED VQAs for GazeWorld: an ABLATION for the VQA-quality sweep, never the method.

A simulated VQA reads the answer from the world's sidecar (the class each person looks at) and
is right with probability p; a wrong answer is another class present in the image (uniform),
or the true one when the image holds no other class. p = "guess" answers the gaze-free guess
instead: the most frequent class present (ties broken at random), which needs no gaze at all.
Its "Grad-CAM" is class-level: a Gaussian blob on every instance of the answered class, as the
CAM of a VQA that names a class and grounds all of its instances (docs/design.md, "Grad-CAM").
Persons looking out of frame or at no object get the guess too (the student's loss masks them).

`--vqa-model SIMULATED-ablation:p=0.75,seed=0` (or `p=guess`) selects it in `gaze gradcam` (and
so in `gaze demo --sweep`); its store's recipe names it. Draws are seeded by (seed, person key),
so a store does not depend on batching.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError, SettingsError

PREFIX = "SIMULATED-ablation:"
GUESS = "guess"


def simulated_name(p: float | str, seed: int = 0) -> str:
    value = GUESS if p == GUESS else f"{float(p):g}"
    return f"{PREFIX}p={value},seed={seed}"


def is_simulated(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def parse_simulated(name: str) -> tuple[float | str, int]:
    """(p or "guess", seed) from a simulated model name."""
    fields = dict(part.split("=", 1) for part in name[len(PREFIX):].split(",") if "=" in part)
    try:
        p = fields.get("p", "1")
        p = GUESS if p == GUESS else float(p)
        seed = int(fields.get("seed", "0"))
    except ValueError:
        raise SettingsError(f"--vqa-model {name}: expected {PREFIX}p=<0..1 or guess>,seed=<int>") from None
    if p != GUESS and not 0.0 <= p <= 1.0:
        raise SettingsError(f"--vqa-model {name}: p must lie in [0, 1] or be 'guess'")
    return p, seed


def modal_classes(record: dict) -> list[str]:
    counts = Counter(o["cls"] for o in record["objects"])
    if not counts:
        return []
    top = max(counts.values())
    return sorted(c for c, n in counts.items() if n == top)


def simulated_answer(record: dict, person: dict, p: float | str, rng: np.random.Generator) -> str:
    """The simulated VQA's answer for one person (a class present in the image, or "nothing")."""
    present = sorted({o["cls"] for o in record["objects"]})
    if not present:
        return "nothing"
    truth = person.get("target_class")
    modal = modal_classes(record)
    if p == GUESS or truth not in present:
        return modal[int(rng.integers(len(modal)))]
    if rng.random() < p:
        return truth
    others = [c for c in present if c != truth]
    return others[int(rng.integers(len(others)))] if others else truth


def class_blobs(record: dict, cls: str, grid: int, sigma_cells: float = 0.6) -> np.ndarray:
    """(grid, grid): a Gaussian on every object of `cls` (its centre; sigma in cells)."""
    centres = (np.arange(grid) + 0.5) / grid
    out = np.zeros((grid, grid), dtype=np.float32)
    size = float(record["size"])
    s = sigma_cells / grid
    for o in record["objects"]:
        if o["cls"] != cls:
            continue
        x1, y1, x2, y2 = o["box_xyxy_px"]
        cx, cy = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size
        out += np.exp(-((centres[None, :] - cx) ** 2 + (centres[:, None] - cy) ** 2) / (2 * s * s))
    return out


class SimulatedVQA:
    """Backend-like object for `run_gradcam` (`annotate_persons` instead of images)."""

    name = "simulated"
    num_layers = 1

    def __init__(self, model_name: str, root: Path, split: str, grid: int = 16, image_size: int = 128):
        self.source = model_name
        self.p, self.seed = parse_simulated(model_name)
        self.grid = (grid, grid)
        self.image_size = image_size
        sidecar = Path(root) / f"gazeworld_{'test' if split == 'test' else 'train'}.jsonl"
        if not sidecar.is_file():
            raise DataError(f"{root}: no {sidecar.name}; a simulated VQA needs a GazeWorld sidecar")
        self.by_key: dict = {}
        for line in sidecar.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            for person in record["persons"]:
                key = (record["path"], round(person["eye_xy_norm"][0], 6), round(person["eye_xy_norm"][1], 6))
                self.by_key[key] = (record, person)

    def resolve_layers(self, layers) -> list[int]:
        return [0]

    def annotate_persons(self, keys, layers) -> dict:
        answers, cams = [], []
        for path, x, y in keys:
            found = self.by_key.get((str(path), round(float(x), 6), round(float(y), 6)))
            if found is None:
                raise DataError(f"simulated VQA: no sidecar record of {path} eye ({x:.6f}, {y:.6f})")
            record, person = found
            rng = np.random.default_rng([self.seed, zlib.crc32(str(path).encode()), int(round(float(x) * 1e6)),
                                         int(round(float(y) * 1e6))])
            answer = simulated_answer(record, person, self.p, rng)
            answers.append(answer)
            cams.append(class_blobs(record, answer, self.grid[0]))
        cams_ = np.stack(cams) if cams else np.zeros((0, *self.grid), np.float32)
        return {"answer": answers, "key_noun": answers, "step": [0] * len(answers),
                "tokens": [[0] for _ in answers], "cams": {l: cams_ for l in layers}}
