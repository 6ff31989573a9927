"""Checkpoints: one safetensors file (nothing is unpickled) plus a JSON sidecar for people.

`weights/last.safetensors` holds the model, the optimizer and scheduler state and every RNG
state, so `--resume` continues exactly; `weights/best.safetensors` holds the model alone. The
metadata (epoch, step, settings, metrics, model name and config, package version) lives in the
safetensors header as JSON (authoritative) and in `<name>.json` beside it. Each file is written
to a temporary name and renamed, so a kill never leaves a broken checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gazecli.core.errors import DataError
from gazecli.core.io import write_bytes, write_json

STATE_PREFIX = "__state__/"
META_KEY = "gazecli"


def _flatten(prefix: str, obj: Any, tensors: dict, path: str = "") -> Any:
    """Move every tensor of a nested structure into `tensors`, leaving a reference behind."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"{prefix}{path}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}{path}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(prefix, k, tensors, f"{path}/k{i}"), _flatten(prefix, v, tensors, f"{path}/{i}")]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__":
                [_flatten(prefix, v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


def _unflatten(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy().astype(obj["dtype"])
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    return obj


def save_checkpoint(path: Path, model_state: dict, meta: dict, state: dict | None = None) -> Path:
    """Write model weights (+ optional training state) and metadata atomically."""
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model_state.items()}
    structure = _flatten(STATE_PREFIX, state, tensors) if state is not None else None
    header = {META_KEY: json.dumps({"meta": meta, "state": structure})}
    write_bytes(path, save(tensors, metadata=header))
    write_json(path.with_suffix(".json"), meta, default=str)
    return path


def load_checkpoint(path: Path, map_location: str = "cpu") -> tuple[dict, dict, dict | None]:
    """(model_state, meta, training_state or None)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path), device=map_location)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file
        raise DataError(f"{path}: not a readable safetensors checkpoint ({e.__class__.__name__})") from None
    if META_KEY not in header:
        raise DataError(f"{path}: a safetensors file without gazecli metadata (not a gazecli checkpoint)")
    blob = json.loads(header[META_KEY])
    model_state = {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIX)}
    state = _unflatten(blob["state"], tensors) if blob.get("state") is not None else None
    return model_state, blob["meta"], state


def resolve_checkpoint(path: Path, prefer: str = "best") -> Path:
    """A run folder -> its weights/best (or last) .safetensors; a file stays itself."""
    from gazecli.core.engine.runs import RunDir

    path = Path(path)
    if path.is_dir():
        found = RunDir(path, writable=False).weights_to_load(prefer)
        if found is None:
            raise DataError(f"{path}: no weights/{prefer}.safetensors in this run folder")
        return found
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    return path
