"""Readers of user files that fail in one line: what the file is, what is wrong, what is accepted.

Every function here raises `DataError` (exit 1) naming the file; none returns a half-checked
value. Used by the prediction, checkpoint, store and settings readers (see docs/reliability.md).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
PICKLE_MAGIC = (b"\x80",)


def sniff(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def describe_content(head: bytes) -> str:
    """A few words on what a file that is not what we wanted looks like."""
    if not head:
        return "an empty file"
    if head.startswith(NPY_MAGIC):
        return "a single .npy array"
    if head.startswith(ZIP_MAGIC):
        return "a zip archive"
    if head.startswith(PICKLE_MAGIC):
        return "a Python pickle"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8"):
        return "an image"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "binary data of an unknown kind"


def load_npz_arrays(path: Path, what: str, accepted: str) -> dict[str, np.ndarray]:
    """Every array of a .npz archive (no pickles). A missing file, a file of another kind, a
    damaged archive or an object array is a DataError naming `what` and what is `accepted`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    head = sniff(path)
    if not head.startswith(ZIP_MAGIC):
        raise DataError(f"{path.name}: not a readable .npz {what} ({describe_content(head)}); expected {accepted}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path.name}: not a readable .npz {what} (it holds an object array, which only "
                            f"unpickling could read, and gazecli never unpickles); expected {accepted}") from None
        raise DataError(f"{path.name}: not a readable .npz {what} (damaged: {e.__class__.__name__}: {_short(e)}); "
                        f"expected {accepted}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path.name}: not a readable .npz {what} (damaged: {e.__class__.__name__}: {_short(e)}); "
                        f"expected {accepted}") from None


def load_json_file(path: Path, what: str, accepted: str = "a JSON object") -> dict:
    """A JSON object from a file; anything else (missing, not UTF-8, not JSON, not an object) is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path.name}: {what} is not UTF-8 text ({e.reason} at byte {e.start}); expected {accepted}") from None
    except ValueError as e:
        raise DataError(f"{path.name}: {what} is not valid JSON ({_short(e)}); expected {accepted}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path.name}: {what} holds a JSON {type(value).__name__}; expected {accepted}")
    return value


def read_json_lines(path: Path, what: str) -> list[dict]:
    """One JSON object per non-empty line; a bad line is a DataError naming `file:line`."""
    from gazecli.core.data.gazefollow import read_text_lines

    path = Path(path)
    records = []
    for line_no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path.name}:{line_no}: {what} line is not valid JSON ({_short(e, 80)})") from None
        if not isinstance(value, dict):
            raise DataError(f"{path.name}:{line_no}: {what} line holds a JSON {type(value).__name__}, expected an object")
        records.append(value)
    return records


def parse_json_text(text: str, where: str, what: str) -> dict:
    """A JSON object from a string stored inside a file (a checkpoint header)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: {what} is not valid JSON ({_short(e)})") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: {what} is a JSON {type(value).__name__}, expected an object")
    return value


def numeric_array(value: np.ndarray, where: str, name: str, shape: str) -> np.ndarray:
    """`value` as float64, refusing strings, booleans and object arrays (named as `where: 'name'`)."""
    value = np.asarray(value)
    if value.dtype.kind not in "iuf":
        raise DataError(f"{where}: '{name}' must be numbers {shape}, found {_dtype_words(value.dtype)}")
    return value.astype(np.float64)


def _dtype_words(dtype: np.dtype) -> str:
    return {"U": "strings", "S": "byte strings", "b": "booleans", "O": "objects", "c": "complex numbers",
            "V": "raw records", "M": "dates", "m": "time spans"}.get(dtype.kind, str(dtype))


def _short(e: BaseException, n: int = 160) -> str:
    return " ".join(str(e).split())[:n]
