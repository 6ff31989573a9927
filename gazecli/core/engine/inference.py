"""Batched inference over a dataset: every process takes a shard, rank 0 gathers the whole
split in table order (the prediction-file format of gazecli.core.predictions)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gazecli.core.engine import distributed as dist_utils
from gazecli.core.engine.precision import autocast
from gazecli.core.predictions import Predictions


@torch.no_grad()
def predict_dataset(forward: Callable[[dict], dict], dataset, batch_size: int, device, precision: str = "fp32",
                    workers: int = 0, progress: Callable[[int, int], None] | None = None) -> Predictions:
    """Run `forward(batch) -> {"heatmap": (B,1,h,w) or (B,h,w), "inout": (B,) logits or None}` over
    the whole dataset; returns predictions aligned with `dataset.table` (every rank gets them)."""
    info = dist_utils.env_info()
    share = list(dist_utils.shard(len(dataset), info.rank, info.world_size))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, share), batch_size=batch_size,
                                         num_workers=workers, pin_memory=device.type == "cuda")
    heatmaps, inouts, indices = [], [], []
    done = 0
    for batch in loader:
        batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        with autocast(device, precision):
            out = forward(batch)
        hm = out["heatmap"].float()
        heatmaps.append((hm[:, 0] if hm.dim() == 4 else hm).cpu().numpy())
        if out.get("inout") is not None:
            inouts.append(torch.sigmoid(out["inout"].float()).cpu().numpy())
        indices.append(batch["index"].cpu().numpy())
        done += len(batch["index"])
        if progress is not None and info.is_main:
            progress(done * info.world_size, len(dataset))
    part = (np.concatenate(indices) if indices else np.zeros(0, np.int64),
            np.concatenate(heatmaps) if heatmaps else None,
            np.concatenate(inouts) if inouts else None)
    if info.enabled:
        parts = [None] * info.world_size
        torch.distributed.all_gather_object(parts, part)
    else:
        parts = [part]
    index = np.concatenate([p[0] for p in parts])
    heatmap = np.concatenate([p[1] for p in parts if p[1] is not None])
    inout = np.concatenate([p[2] for p in parts if p[2] is not None]) if all(p[2] is not None for p in parts if len(p[0])) else None
    order = np.argsort(index)
    table = dataset.table
    heatmap = heatmap[order].astype(np.float32)
    return Predictions(path=table.path[index[order]].astype(str), eye=table.eye_xy_norm[index[order]],
                       heatmap=heatmap, inout=None if inout is None else inout[order])
