"""The one atomic write of the package: every file is written under a temporary name beside its
final one and renamed into place, so a reader never sees half a file and a killed writer leaves at
most a temporary file (which nothing reads: it has no known suffix).

The temporary name is `<name>.tmp`; `durable=True` (stores that several processes write and
merge) makes it unique per writer (`<name>.tmp-<random>`) and also flushes the file and the
rename to disk. A write the file system refuses (a full disk, a read-only folder) raises an
OSError that names the final file, and leaves no temporary file (docs/reliability.md).
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Callable, IO

import numpy as np


def temporary_name(path: Path, unique: bool = False) -> Path:
    """Where `path` is written before its rename."""
    return path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:12]}" if unique else f"{path.name}.tmp")


class _NamingFailures:
    """`with _NamingFailures(final, tmp, durable):` an exception raised inside removes `tmp`, a partly
    written file (for a durable write only an OSError does: the store, which resumes, clears its
    own leftovers), and an OSError that names no file (a full disk or a read-only file system raise
    one without a file name) or names `tmp` (which the user never asked for) is raised naming `final`."""

    def __init__(self, final: Path, tmp: Path, durable: bool):
        self.final, self.tmp, self.durable = final, tmp, durable

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or (self.durable and not isinstance(error, OSError)):
            return False
        try:
            os.unlink(self.tmp)
        except OSError:
            pass
        if isinstance(error, OSError) and not isinstance(error, BrokenPipeError) \
                and error.filename in (None, str(self.tmp)):
            raise OSError(error.errno, error.strerror or str(error), str(self.final)) from None
        return False


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


def write_file(path: Path, write_to: Callable[[Path], None], durable: bool = False) -> Path:
    """`write_to(tmp)` writes the temporary file by its name, which is then renamed to `path` (its
    folder is created). For libraries that write to a file name (safetensors); see `atomic_write`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, unique=durable)
    with _NamingFailures(path, tmp, durable):
        write_to(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    if durable:
        _sync_folder(path.parent)
    return path


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], durable: bool = False) -> Path:
    """`write(f)` into a temporary binary file, then rename it to `path` (its folder is created)."""
    def write_to(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return write_file(path, write_to, durable)


def write_bytes(path: Path, data: bytes, durable: bool = False) -> Path:
    return atomic_write(path, lambda f: f.write(data), durable)


def _write_text_of(path: Path, make_text: Callable[[], str], durable: bool) -> Path:
    # the text is made inside the guarded write: a failure while making it names the file too
    return write_file(path, lambda tmp: tmp.write_text(make_text(), encoding="utf-8", newline=""), durable)


def write_text(path: Path, text: str, durable: bool = False) -> Path:
    """UTF-8 text, written as given (no newline added, none translated)."""
    return _write_text_of(path, lambda: text, durable)


def write_json(path: Path, data, indent: int | None = 2, newline: bool = True, durable: bool = False,
               **dumps) -> Path:
    """`json.dumps(data, indent=indent, **dumps)`, plus a final newline unless `newline=False`."""
    return _write_text_of(path, lambda: json.dumps(data, indent=indent, **dumps) + ("\n" if newline else ""),
                          durable)


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
