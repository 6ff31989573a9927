"""What a Grad-CAM store holds, apart from its files: maps as float16 with a power-of-two exponent
per person, a column-oriented batch of results (`Records`, one chunk file each), and `StoreMaps`,
the data layer's view of one stored layer (docs/formats.md, "Grad-CAM store")."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gazecli.core.errors import GazeError

FP16_TOP_EXPONENT = 14  # a map's maximum is stored in [2**14, 2**15): full float16 precision, far from overflow

Key = tuple[str, float, float]  # (image path, eye x, eye y), as PersonTable.keys()


class StoreError(GazeError):
    """A store that cannot be used as asked (another recipe, missing layer, damaged file)."""


# --------------------------------------------------------------------------------------------
# records: a column-oriented batch of results


def fp16_exponent(cam: np.ndarray) -> int:
    """The power of two that brings the map's maximum into [2**14, 2**15)."""
    peak = float(np.max(np.abs(cam))) if cam.size else 0.0
    if not np.isfinite(peak) or peak == 0.0:
        return 0
    return int(np.floor(np.log2(peak))) - FP16_TOP_EXPONENT


def to_fp16(cam: np.ndarray) -> tuple[np.ndarray, int]:
    """(float16 map, exponent) with map * 2**exponent == cam up to float16 rounding."""
    e = fp16_exponent(cam)
    return np.ldexp(np.asarray(cam, dtype=np.float32), -e).astype(np.float16), e


@dataclass
class Records:
    """Results for some persons. `maps[layer]` is (N, gh, gw) float16 and `exponent[layer]`
    (N,) int: the raw map is `maps[layer][i] * 2**exponent[layer][i]`."""

    path: list[str]
    eye_xy: np.ndarray  # (N, 2) float64, normalised
    maps: dict[int, np.ndarray]
    exponent: dict[int, np.ndarray]
    answer: list[str]
    key_noun: list[str]
    step: np.ndarray  # (N,) int64; -1 when unknown (imported)
    tokens: list[list[int]]  # answer token ids (EOS last when the decoder stopped)
    drew_box: np.ndarray  # (N,) bool: the body box was drawn and the box question asked

    def __len__(self) -> int:
        return len(self.path)

    def keys(self) -> list[Key]:
        return [(p, float(x), float(y)) for p, (x, y) in zip(self.path, self.eye_xy)]

    @classmethod
    def from_raw(cls, path, eye_xy, raw_maps: dict[int, np.ndarray], answer, key_noun, step, tokens,
                 drew_box) -> "Records":
        """From float32 raw maps {layer: (N, gh, gw)}: converted to float16 + exponents."""
        maps, exps = {}, {}
        for layer, cams in raw_maps.items():
            pairs = [to_fp16(c) for c in np.asarray(cams, dtype=np.float32)]
            shape = np.asarray(cams).shape
            maps[layer] = np.stack([p[0] for p in pairs]) if pairs else np.zeros(shape, np.float16)
            exps[layer] = np.array([p[1] for p in pairs], dtype=np.int32)
        return cls(list(path), np.asarray(eye_xy, dtype=np.float64).reshape(-1, 2), maps, exps, list(answer),
                   list(key_noun), np.asarray(step, dtype=np.int64), [list(map(int, t)) for t in tokens],
                   np.asarray(drew_box, dtype=bool))

    def raw(self, layer: int) -> np.ndarray:  # (N, gh, gw) float32
        return np.ldexp(self.maps[layer].astype(np.float32), self.exponent[layer][:, None, None])

    def to_npz(self) -> dict[str, np.ndarray]:
        lengths = np.array([len(t) for t in self.tokens], dtype=np.int64)
        flat = np.array([v for t in self.tokens for v in t], dtype=np.int64)
        arrays = {
            "path": np.array(self.path, dtype=str), "eye_xy": self.eye_xy,
            "answer": np.array(self.answer, dtype=str), "key_noun": np.array(self.key_noun, dtype=str),
            "step": self.step, "tokens_flat": flat, "tokens_len": lengths, "drew_box": self.drew_box,
            "layers": np.array(sorted(self.maps), dtype=np.int64),
        }
        for layer in self.maps:
            arrays[f"map_{layer}"] = self.maps[layer]
            arrays[f"exp_{layer}"] = self.exponent[layer]
        return arrays

    @classmethod
    def from_npz(cls, data) -> "Records":
        lengths = data["tokens_len"]
        flat = data["tokens_flat"].tolist()
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        tokens = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        layers = [int(v) for v in data["layers"]]
        return cls([str(p) for p in data["path"]], data["eye_xy"], {l: data[f"map_{l}"] for l in layers},
                   {l: data[f"exp_{l}"] for l in layers}, [str(a) for a in data["answer"]],
                   [str(k) for k in data["key_noun"]], data["step"], tokens, data["drew_box"])


def read_chunk(path: Path) -> Records:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Records.from_npz({k: data[k] for k in data.files})
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError, zipfile.BadZipFile) as e:
        raise StoreError(f"{path}: damaged store chunk ({e.__class__.__name__}); delete it and rerun to recompute "
                         f"its persons") from None


class StoreMaps:
    """`MapSource` for GazeDataset: `get(row)` -> the person's Grad-CAM (float32, the model's
    patch grid over the whole image) or None when the store lacks that person.

    `get` returns the raw map times a power of two that puts its maximum in [0.5, 1): exactly
    proportional to the raw map, so the data layer's min-max normalisation gives the same
    result, but clear of its absolute epsilon (raw Grad-CAMs are often below 1e-8 and would
    otherwise count as constant). `raw(row)` gives the raw values. The array is memory-mapped
    lazily, in each DataLoader worker separately."""

    def __init__(self, array_path: Path, exponent: np.ndarray, rows: np.ndarray, layer: int):
        self.array_path = Path(array_path)
        self.exponent = np.asarray(exponent, dtype=np.int32)
        self.rows = np.asarray(rows, dtype=np.int64)  # table row -> store position, -1 when missing
        self.layer = layer
        self._array = None

    @property
    def found(self) -> np.ndarray:  # (N,) bool over the table's rows
        return self.rows >= 0

    def _mapped(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r", allow_pickle=False)
        return self._array

    def get(self, index: int) -> np.ndarray | None:
        pos = int(self.rows[int(index)])
        if pos < 0:
            return None
        return np.ldexp(np.asarray(self._mapped()[pos], dtype=np.float32), -(FP16_TOP_EXPONENT + 1))

    def raw(self, index: int) -> np.ndarray | None:
        pos = int(self.rows[int(index)])
        if pos < 0:
            return None
        return np.ldexp(np.asarray(self._mapped()[pos], dtype=np.float32), int(self.exponent[pos]))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_array"] = None  # workers map the file themselves (a memmap would pickle its data)
        return state
