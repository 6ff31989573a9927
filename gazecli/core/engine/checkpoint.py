"""Checkpoints: one safetensors file (nothing is unpickled) plus a JSON sidecar for people.

`weights/last.safetensors` holds the model, the optimizer and scheduler state and every RNG
state, so `--resume` continues exactly; `weights/best.safetensors` holds the model alone. The
metadata (epoch, step, settings, metrics, model name and config, package version) lives in the
safetensors header as JSON (authoritative) and in `<name>.json` beside it. Each file is written
to a temporary name and renamed, so a kill never leaves a broken checkpoint.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from gazecli.core.errors import DataError
from gazecli.core.io import write_file, write_json

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
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model_state.items()}
    structure = _flatten(STATE_PREFIX, state, tensors) if state is not None else None
    header = {META_KEY: json.dumps({"meta": meta, "state": structure})}

    def write_to(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=header)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - safetensors reports I/O failures as SafetensorError
            code = errno.ENOSPC if "No space" in str(e) else errno.EIO
            raise OSError(code, f"cannot write the checkpoint ({' '.join(str(e).split())[:120]})") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates its file private; a checkpoint is data

    write_file(path, write_to)  # a full disk or read-only folder: one line naming the file, no .tmp left
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
    from gazecli.core.safe_read import parse_json_text

    blob = parse_json_text(header[META_KEY], path.name, f"the {META_KEY!r} header")
    meta = blob.get("meta")
    check_meta(meta, path.name)
    model_state = {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIX)}
    check_finite_weights(model_state, path.name)
    try:
        state = _unflatten(blob["state"], tensors) if blob.get("state") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{path.name}: the training state in the header does not match the stored tensors "
                        f"({e.__class__.__name__}: {e})") from None
    return model_state, meta, state


# the metadata keys a checkpoint's code reads, and the JSON types they must have
META_TYPES = {"model": dict, "epoch_next": int, "skip": int, "step": int, "sample": dict, "settings": dict,
              "metrics": dict, "select": dict, "command": str}


def check_meta(meta, where: str) -> None:
    """The header's `meta` must be an object whose known keys have the right JSON types."""
    if not isinstance(meta, dict):
        raise DataError(f"{where}: the checkpoint header has no 'meta' object (found {type(meta).__name__}); "
                        f"not a gazecli checkpoint, or a damaged one")
    for key, kind in META_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise DataError(f"{where}: checkpoint meta {key!r} must be a JSON "
                            f"{ {dict: 'object', int: 'integer', str: 'string'}[kind]}, found {value!r:.60}")
    model = meta.get("model")
    if model is not None:
        if not isinstance(model.get("name"), str) or not isinstance(model.get("config"), dict):
            raise DataError(f"{where}: checkpoint meta 'model' must be {{'name': string, 'config': object}}")


def check_finite_weights(model_state: dict, where: str) -> None:
    """Refuse weights holding NaN or infinity: such a model scores as garbage, silently."""
    import torch

    bad = [k for k, v in model_state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise DataError(f"{where}: {len(bad)} weight tensors hold NaN or infinite values (first: {bad[0]}); "
                        f"the checkpoint is damaged or its training diverged")


def load_weights_into(model, state_dict: dict, where: str) -> None:
    """`model.load_state_dict(state_dict)` with one line naming the missing, extra or mis-shaped tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    shapes = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first: {extra[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (first: {k} {tuple(state_dict[k].shape)}, the model "
                         f"has {tuple(own[k].shape)})")
        raise DataError(f"{where}: the weights do not fit the model its metadata describes: {'; '.join(parts)}")
    model.load_state_dict(state_dict)


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
