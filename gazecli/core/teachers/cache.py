"""Cached pseudo-labels (`gaze train-student --pseudo-cache DIR`).

Online, the teacher runs on every batch (a second encoder and the DDIM passes for every
unlabelled person). Cached, it runs once: K refined samples per unlabelled person on the
un-augmented view, stored as one memory-mappable fp16 array (N, K, h, w) plus an index; during
training each person draws one of its K samples per epoch and the dataset crops and flips it
with the image like any per-person map. The cache is written in chunks renamed into place (a
kill loses at most one chunk; a rerun resumes), each chunk's noise is seeded by (seed, chunk),
and under torchrun every rank fills its own chunks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from gazecli.core.engine import distributed as dist_utils
from gazecli.core.errors import DataError
from gazecli.core.io import write_array, write_arrays, write_json

CHUNK = 256


def recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


class PseudoLabelCache:
    def __init__(self, folder: Path, recipe: dict):
        self.folder = Path(folder)
        self.recipe = recipe
        self.key = recipe_hash(recipe)

    @property
    def array_path(self) -> Path:
        return self.folder / f"pseudo-{self.key}.npy"

    @property
    def index_path(self) -> Path:
        return self.folder / f"pseudo-{self.key}.json"

    def complete(self) -> bool:
        return self.array_path.is_file() and self.index_path.is_file()

    def chunk_path(self, c: int) -> Path:
        return self.folder / f"chunks-{self.key}" / f"{c:06d}.npz"

    def build(self, teacher, dataset, rows: np.ndarray, samples: int, batch_size: int, device, seed: int,
              progress=None) -> None:
        """Fill the cache for `rows` of `dataset` (un-augmented views) with `samples` draws each."""
        if self.complete():
            return
        info = dist_utils.env_info()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"chunks-{self.key}").mkdir(exist_ok=True)
        n_chunks = -(-len(rows) // CHUNK)
        mine = [c for c in dist_utils.shard(n_chunks, info.rank, info.world_size)]
        done = 0
        for c in mine:
            if self.chunk_path(c).is_file():
                done += 1
                continue
            chunk_rows = rows[c * CHUNK:(c + 1) * CHUNK]
            maps, usable = [], []
            generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + c)
            for b in range(0, len(chunk_rows), batch_size):
                items = [dataset[int(r)] for r in chunk_rows[b:b + batch_size]]
                batch = {k: v.to(device) for k, v in torch.utils.data.default_collate(items).items()
                         if isinstance(v, torch.Tensor)}
                draws, ok = [], None
                for _ in range(samples):
                    target, ok = teacher(batch, generator)
                    draws.append(target[:, 0].float().cpu().numpy())
                maps.append(np.stack(draws, 1).astype(np.float16))  # (b, K, h, w)
                usable.append(ok.cpu().numpy())
            write_arrays(self.chunk_path(c), {"maps": np.concatenate(maps), "usable": np.concatenate(usable)})
            done += 1
            if progress is not None and info.is_main:
                progress(done * info.world_size, n_chunks)
        dist_utils.barrier()
        if info.is_main:
            self._merge(rows, n_chunks, dataset.table)
        dist_utils.barrier()

    def _merge(self, rows: np.ndarray, n_chunks: int, table) -> None:
        parts = [np.load(self.chunk_path(c)) for c in range(n_chunks)]
        maps = np.concatenate([p["maps"] for p in parts])
        usable = np.concatenate([p["usable"] for p in parts])
        write_array(self.array_path, maps)
        keys = [[str(table.path[r]), float(table.eye_xy_norm[r, 0]), float(table.eye_xy_norm[r, 1])] for r in rows]
        index = {"recipe": self.recipe, "keys": keys, "usable": usable.astype(bool).tolist(),
                 "shape": list(maps.shape)}
        write_json(self.index_path, index, indent=None, newline=False)

    def for_table(self, table, seed: int = 0) -> "CachedMaps":
        if not self.complete():
            raise DataError(f"{self.folder}: the pseudo-label cache is not complete")
        index = json.loads(self.index_path.read_text(encoding="utf-8"))
        positions = {(p, x, y): i for i, (p, x, y) in enumerate(index["keys"])}
        rows = np.array([positions.get(k, -1) for k in table.keys()], dtype=np.int64)
        return CachedMaps(self.array_path, rows, np.array(index["usable"], dtype=bool), seed)


class CachedMaps:
    """MapSource: each person's pseudo-label, draw (seed, epoch, row) of its K cached samples;
    None for persons not in the cache or without a usable target."""

    def __init__(self, array_path: Path, rows: np.ndarray, usable: np.ndarray, seed: int):
        self.array_path, self.rows, self.usable, self.seed = Path(array_path), rows, usable, seed
        self.epoch = 0
        self._array = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def get(self, index: int) -> np.ndarray | None:
        pos = int(self.rows[int(index)])
        if pos < 0 or not self.usable[pos]:
            return None
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r", allow_pickle=False)
        k = int(np.random.default_rng([self.seed, self.epoch, int(index), 5]).integers(self._array.shape[1]))
        return np.asarray(self._array[pos, k], dtype=np.float32)


class CachedTeacher:
    """The teacher of a cached run: the dataset already attached the drawn pseudo-label."""

    kind = "cached"
    needs_gradcam = False

    def __call__(self, batch, generator):
        return batch["pseudo"].float(), batch["pseudo_valid"].bool()
