"""Batch orders that depend only on (seed, epoch): the same on every run, every resume and
every number of workers. Under DDP each rank takes a disjoint, equally long share."""

from __future__ import annotations

import numpy as np


class EpochBatches:
    """Batches of indices: shuffled by (seed, epoch), sharded by rank, resumable mid-epoch.

    Every rank sees `len(self)` batches per epoch (the order is padded by wrapping around so the
    ranks stay in step, as DistributedSampler does); `skip` batches are left out at the start
    of the epoch (resuming from a mid-epoch checkpoint).
    """

    def __init__(self, indices, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0
        if len(self.indices) == 0:
            raise ValueError("no samples to draw batches from")

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def _per_rank(self) -> int:
        return -(-len(self.indices) // self.world_size)

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> np.ndarray:
        idx = self.indices
        if self.shuffle:
            idx = idx[np.random.default_rng([self.seed, self.epoch, 7]).permutation(len(idx))]
        total = self._per_rank() * self.world_size
        if total > len(idx):
            idx = np.concatenate([idx, idx[: total - len(idx)]])
        return idx[self.rank::self.world_size]

    def __iter__(self):
        order = self.order()
        for b in range(self.skip, len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size].tolist()


class TwoStreamBatches(EpochBatches):
    """Each batch: `batch_size - labelled_batch_size` unlabelled indices (one pass over the
    unlabelled set per epoch) followed by `labelled_batch_size` labelled ones (reshuffled as
    often as needed). Epoch length = unlabelled per rank // unlabelled per batch (docs/design.md)."""

    def __init__(self, unlabelled, labelled, batch_size: int, labelled_batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if not 0 < labelled_batch_size < batch_size:
            raise ValueError("labelled_batch_size must be in (0, batch_size)")
        super().__init__(unlabelled, batch_size - labelled_batch_size, seed, True, True, rank, world_size)
        self.labelled = np.asarray(labelled, dtype=np.int64)
        self.labelled_batch_size = labelled_batch_size
        if len(self.labelled) == 0:
            raise ValueError("no labelled samples")

    def __iter__(self):
        unlabelled = self.order()
        n = len(self)
        need = n * self.labelled_batch_size
        rng = np.random.default_rng([self.seed, self.epoch, 11, self.rank])
        parts = []
        while sum(len(p) for p in parts) < need:
            parts.append(self.labelled[rng.permutation(len(self.labelled))])
        labelled = np.concatenate(parts)[:need] if parts else np.zeros(0, dtype=np.int64)
        u, lab = self.batch_size, self.labelled_batch_size
        for b in range(self.skip, n):
            yield unlabelled[b * u:(b + 1) * u].tolist() + labelled[b * lab:(b + 1) * lab].tolist()
