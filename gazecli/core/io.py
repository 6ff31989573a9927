"""The one atomic write of the package: every file is written under a temporary name beside its
final one (`<name>.tmp-<random>`) and renamed into place, so a reader never sees half a file and a
killed writer leaves at most a temporary file (which nothing reads: it has no known suffix).

`durable=True` also flushes the file and the rename to disk (stores that other processes merge).
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Callable, IO

import numpy as np


def temporary_name(path: Path) -> Path:
    """Where `path` is written before its rename (unique per writer)."""
    return path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:12]}")


def _sync_folder(folder: Path) -> None:
    try:  # make the rename itself durable where the platform allows
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], durable: bool = False) -> Path:
    """`write(f)` into a temporary binary file, then rename it to `path` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    with open(tmp, "wb") as f:
        write(f)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        _sync_folder(path.parent)
    return path


def write_bytes(path: Path, data: bytes, durable: bool = False) -> Path:
    return atomic_write(path, lambda f: f.write(data), durable)


def write_text(path: Path, text: str, durable: bool = False) -> Path:
    """UTF-8 text, written as given (no newline added, none translated)."""
    return write_bytes(path, text.encode("utf-8"), durable)


def write_json(path: Path, data, indent: int | None = 2, newline: bool = True, durable: bool = False,
               **dumps) -> Path:
    """`json.dumps(data, indent=indent, **dumps)`, plus a final newline unless `newline=False`."""
    return write_text(path, json.dumps(data, indent=indent, **dumps) + ("\n" if newline else ""), durable)


def write_array(path: Path, array: np.ndarray, durable: bool = False) -> Path:
    """One array in .npy format (never pickled)."""
    return atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), durable)


def write_arrays(path: Path, arrays: dict[str, np.ndarray], compressed: bool = False, durable: bool = False) -> Path:
    """Named arrays in .npz format (deflated with `compressed`)."""
    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda f: save(f, **arrays), durable)


def write_figure(path: Path, figure, **savefig) -> Path:
    """A matplotlib figure as PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    return write_bytes(path, buffer.getvalue())
