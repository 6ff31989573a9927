"""Import the authors' pre-computed Grad-CAM pickles into a store.

Their files (`gradcams_{train,test}_person_pos_all.pkl`) hold
`data[image_basename][eye_x] = {'answer': str, 'tokens': LongTensor, '9th_layer': 30x30,
'10th_layer': 30x30, '11th_layer': 30x30}`.

Risk: unpickling runs code. A pickle can name any importable callable (`os.system`,
`subprocess.Popen`, `builtins.eval`) and have it called with its own arguments while it
loads; `pickle.load` on a file from the internet is the same as running a program from it.
`load_authors_pickle` therefore uses a restricted unpickler: it resolves only the names that
plain data needs (containers, strings, bytes, numbers, numpy arrays and scalars, torch
tensors) and refuses every other name with a one-line error before anything is called.
Torch tensors are rebuilt with `torch.load(weights_only=True)` for their storage (torch's
own plain pickling would call `torch.load(weights_only=False)`, i.e. an unrestricted
unpickler, on embedded bytes). Even so, import only files you have reason to trust, and
prefer converting once and sharing the resulting store (plain .npy + JSON).
"""

from __future__ import annotations

import io
import pickle
import posixpath
import re
import warnings
from pathlib import Path

import numpy as np

from gazecli.core.errors import DataError
from gazecli.core.gradcam.records import Records

AUTHORS_DEFAULT_LAYER = 10  # the one the official training code uses
AUTHORS_RECIPE = {
    "backend": "authors-ofa",
    "question": "What is the person in the green bounding box looking at?",
    "question_no_box": "What is the person looking at?",
    "draw_box": True,
    "num_beams": 100,
}
EYE_X_TOLERANCE = 1e-6  # the authors' keys are floats parsed by pandas: match within this
_LAYER_KEY = re.compile(r"^(\d+)(?:st|nd|rd|th)_layer$")


class UnsafePickleError(DataError):
    """A pickle that references something other than plain data."""


class _Refused(Exception):
    """Raised while unpickling; becomes an UnsafePickleError naming the file."""


def _numpy_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are accepted")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype, data=None):
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only numeric numpy scalars are accepted")
    return scalar(dtype) if data is None else scalar(dtype, data)


def _numpy_frombuffer(buffer, dtype, shape, order):
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.numeric import _frombuffer

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only numeric numpy arrays are accepted")
    return _frombuffer(buffer, dtype, shape, order)


def _codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin1 byte strings are accepted")
    return text.encode("latin-1")


def _torch_storage_from_bytes(data):
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a torch storage must be bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the protocol of inner pickles
        try:
            return torch.load(io.BytesIO(bytes(data)), weights_only=True)
        except Exception:  # noqa: BLE001 - whatever torch's restricted loader refuses, we refuse
            raise _Refused("a torch tensor's embedded storage is not plain data (torch's weights-only loader "
                           "refused it)") from None


def _torch_rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                          metadata=None):
    import torch
    from torch._utils import _rebuild_tensor_v2

    if not isinstance(storage, (torch.storage.TypedStorage, torch.storage.UntypedStorage)):
        raise pickle.UnpicklingError("a torch tensor must be rebuilt from a storage")
    if backward_hooks:
        raise pickle.UnpicklingError("torch tensors with backward hooks are not accepted")
    return _rebuild_tensor_v2(storage, int(storage_offset), tuple(size), tuple(stride), False, {}, None)


def _numpy_dtype(*args):
    return np.dtype(*args)


# (module, name) -> what that name resolves to; nothing else is resolved
_SAFE = {
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray, ("__builtin__", "bytearray"): bytearray,
    ("builtins", "complex"): complex, ("__builtin__", "complex"): complex,
    ("collections", "OrderedDict"): dict,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("torch._utils", "_rebuild_tensor_v2"): _torch_rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _torch_storage_from_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in `_SAFE`; everything else raises UnsafePickleError."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        raise UnsafePickleError(
            f"{self.source}: refused to load: the pickle references {module}.{name}, which is not plain data "
            f"(a pickle can run code; only containers, strings, numbers and numpy/torch arrays are accepted)")

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refused to load: persistent references are not plain data")


def load_authors_pickle(path: Path) -> dict:
    """The authors' Grad-CAM dict, through the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: Grad-CAM pickle not found")
    with open(path, "rb") as f:
        try:
            data = RestrictedUnpickler(f, path.name).load()
        except UnsafePickleError:
            raise
        except _Refused as e:
            raise UnsafePickleError(f"{path.name}: refused to load: {e}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                RuntimeError, OverflowError, MemoryError) as e:
            raise DataError(f"{path.name}: not a readable Grad-CAM pickle ({e.__class__.__name__}: "
                            f"{' '.join(str(e).split())[:200]})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path.name}: expected a dict keyed by image name, found {type(data).__name__}")
    return data


def _as_array(value, where: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise DataError(f"{where}: expected a 2-D numeric map, found ragged lists") from None
    if arr.ndim != 2 or arr.dtype.kind not in "iuf" or 0 in arr.shape:
        raise DataError(f"{where}: expected a 2-D numeric map, found {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{where}: the map holds NaN or infinite values")
    return arr.astype(np.float32)


def _as_tokens(value, where: str = "") -> list[int]:
    if value is None:
        return []
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub" or arr.ndim > 2:
        raise DataError(f"{where}: 'tokens' must be whole numbers (token ids), found {arr.dtype} {arr.shape}")
    return [int(v) for v in arr.reshape(-1)]


def _as_eye_x(value, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(f"{where}: the eye_x key must be a number, found {value!r:.40}")
    value = float(value)
    if not np.isfinite(value):
        raise DataError(f"{where}: the eye_x key must be a finite number, found {value}")
    return value


def authors_records(data: dict, table, source: str) -> tuple[Records, dict]:
    """Match the pickle's (basename, eye_x) entries to the table's persons (basename and eye_x
    within EYE_X_TOLERANCE). Returns (records, counts)."""
    by_name: dict[str, list[tuple[float, dict]]] = {}
    layers: list[int] | None = None
    n_entries = 0
    for name, per_eye in data.items():
        if not isinstance(per_eye, dict):
            raise DataError(f"{source}: entry {name!r}: expected a dict keyed by eye_x, found {type(per_eye).__name__}")
        for eye_x, entry in per_eye.items():
            if not isinstance(entry, dict):
                raise DataError(f"{source}: entry {name!r} / {eye_x!r}: expected a dict, found {type(entry).__name__}")
            layer_maps = {int(_LAYER_KEY.match(k).group(1)): v for k, v in entry.items()
                          if isinstance(k, str) and _LAYER_KEY.match(k)}
            found = sorted(layer_maps)
            if layers is None:
                layers = found
            if not found or found != layers:
                raise DataError(f"{source}: entry {name!r} / {eye_x!r}: layers {found}, expected {layers}")
            by_name.setdefault(str(name), []).append((_as_eye_x(eye_x, f"{source}: entry {name!r}"),
                                                       {**entry, "maps": layer_maps}))
            n_entries += 1
    if not layers:
        raise DataError(f"{source}: no Grad-CAM entries")

    paths, eyes, maps, answers, tokens, drew = [], [], {l: [] for l in layers}, [], [], []
    seen, used = set(), set()
    has_body = table.has_body & (table.body_box_xyxy_px >= 0).all(axis=1)
    for row, key in enumerate(table.keys()):
        if key in seen:
            continue
        seen.add(key)
        path, ex, ey = key
        candidates = by_name.get(posixpath.basename(path), [])
        best = min(candidates, key=lambda c: abs(c[0] - ex), default=None)
        if best is None or abs(best[0] - ex) > EYE_X_TOLERANCE:
            continue
        entry = best[1]
        used.add((posixpath.basename(path), best[0]))
        paths.append(path)
        eyes.append((ex, ey))
        for l in layers:
            maps[l].append(_as_array(entry["maps"][l], f"{source}: {path} eye_x {ex}"))
        answers.append(str(entry.get("answer", "")))
        drew.append(bool(has_body[row]))  # the official script drew the body box whenever it had one
        tokens.append(_as_tokens(entry.get("tokens"), f"{source}: {path} eye_x {ex}"))
    shapes = {m.shape for l in layers for m in maps[l]}
    if len(shapes) > 1:
        raise DataError(f"{source}: maps of different shapes {sorted(shapes)}")
    n = len(paths)
    grid = next(iter(shapes)) if shapes else (30, 30)
    raw = {l: np.stack(maps[l]) if n else np.zeros((0, *grid), np.float32) for l in layers}
    records = Records.from_raw(paths, np.array(eyes, dtype=np.float64).reshape(-1, 2), raw, answers, [""] * n,
                               np.full(n, -1), tokens, np.array(drew, dtype=bool))
    counts = {"entries": n_entries, "matched_persons": n, "table_persons": len(seen),
              "unmatched_entries": n_entries - len(used), "layers": layers, "grid": list(grid)}
    return records, counts
