"""The Grad-CAM store (method-spec §2.5, §10 item 18): memory-mappable, resumable, mergeable.

Layout of a store folder:

    gradcam.json                      the recipe (model, backend, layers, grid, prompt ...)
    <split>/index.json                the persons, sorted by (path, eye_x, eye_y): answer,
                                      key noun, step, answer tokens, whether the box was
                                      drawn, and the fp16 exponent of each map (see below)
    <split>/layer<L>-<hash>.npy       (N, gh, gw) float16, one per stored layer; open with
                                      np.load(..., mmap_mode="r"); row i is index person i
    <split>/chunks/*.npz              results not merged yet (written while a run goes on)

Raw Grad-CAM values are tiny (often 1e-6 and below, under float16's normal range), so each
map is stored as `map / 2**e` with a per-person power-of-two exponent `e` kept in the index:
`raw = array[i].astype(np.float32) * 2.0 ** exponent[i]` (exact; no normalisation).

Crash safety. Every file is written under a temporary name and renamed into place, so a kill
at any moment leaves either the old file or the new one. A run appends chunk files; merging
writes the new layer arrays under content-hashed names, then replaces `index.json` (the commit
point), then deletes the merged chunks and the arrays the index no longer names. The merged
store is sorted by person key, so its persons, order and text columns do not depend on batching,
chunking, sharding or how often a run was interrupted, and an interrupted and resumed run with
the same --batch-size gives the same files as an uninterrupted one. Map values from another
--batch-size agree up to float rounding only (README, "What the store depends on").

Integrity: the index records each layer file's name, shape, dtype and sha256 (`array_info`);
`SplitStore.verify` checks them (and that every file the index names lies inside the split's
folder) before any map is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from gazecli.core.errors import DataError, GazeError

STORE_FORMAT = "gazecli-gradcam"
STORE_VERSION = 1
META_NAME = "gradcam.json"
INDEX_NAME = "index.json"
CHUNK_DIR = "chunks"
FP16_TOP_EXPONENT = 14  # a map's maximum is stored in [2**14, 2**15): full float16 precision, far from overflow

Key = tuple[str, float, float]  # (image path, eye x, eye y), as PersonTable.keys()


class StoreError(GazeError):
    """A store that cannot be used as asked (another recipe, missing layer, damaged file)."""


# --------------------------------------------------------------------------------------------
# files written atomically


def _fsync_replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
    try:  # make the rename itself durable where the platform allows
        fd = os.open(final.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:12]}")


def write_json_atomic(path: Path, data) -> None:
    path = Path(path)
    tmp = _tmp_name(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    _fsync_replace(tmp, path)


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    _fsync_replace(tmp, path)


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


def _read_chunk(path: Path) -> Records:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Records.from_npz({k: data[k] for k in data.files})
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError, zipfile.BadZipFile) as e:
        raise StoreError(f"{path}: damaged store chunk ({e.__class__.__name__}); delete it and rerun to recompute "
                         f"its persons") from None


# --------------------------------------------------------------------------------------------
# the store


class GradcamStore:
    """A store folder: the recipe plus one `SplitStore` per split."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def meta_path(self) -> Path:
        return self.root / META_NAME

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def meta(self) -> dict:
        if not self.meta_path.is_file():
            raise StoreError(f"{self.root}: not a Grad-CAM store (no {META_NAME}); make one with gaze gradcam")
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.meta_path}: unreadable ({e.__class__.__name__})") from None
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.meta_path}: not a gazecli Grad-CAM store")
        if meta.get("version", 0) > STORE_VERSION:
            raise StoreError(f"{self.meta_path}: store version {meta.get('version')} is newer than this gazecli "
                             f"reads ({STORE_VERSION}); upgrade gazecli")
        return meta

    def check_recipe(self, recipe: dict) -> None:
        """A store holds maps of one recipe only: refuse to mix another into it."""
        if not self.exists():
            return
        meta = self.meta()
        for k, v in recipe.items():
            if k in meta and meta[k] != v:
                raise StoreError(f"{self.root} holds Grad-CAMs made with {k} = {meta[k]!r}, not {v!r}; "
                                 f"use another --out, or the same settings to resume")

    def ensure_meta(self, recipe: dict) -> dict:
        """Check the recipe against an existing store, or start a new store with it."""
        self.check_recipe(recipe)
        if self.exists():
            return self.meta()
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {"format": STORE_FORMAT, "version": STORE_VERSION, **recipe}
        write_json_atomic(self.meta_path, meta)
        return meta

    def split(self, name: str) -> "SplitStore":
        return SplitStore(self, name)

    def splits(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / INDEX_NAME).is_file()) \
            if self.root.is_dir() else []

    def for_table(self, table, layer: int | None = None) -> "StoreMaps":
        """The per-person maps of `table` (its split), as a `MapSource` for GazeDataset."""
        return self.split(table.split).for_table(table, layer)


class SplitStore:
    def __init__(self, store: GradcamStore, name: str):
        self.store = store
        self.name = name
        self.root = store.root / name
        self._index: dict | None = None
        self._positions: dict[Key, int] | None = None
        self._verified = False

    # ---- reading the merged part

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def has_index(self) -> bool:
        return self.index_path.is_file()

    def index(self) -> dict:
        if self._index is None:
            if not self.index_path.is_file():
                raise StoreError(f"{self.store.root}: no merged Grad-CAMs for split {self.name!r}"
                                 + (" (unmerged chunks found: run gaze gradcam --merge)" if self.chunk_files() else ""))
            try:
                self._index = json.loads(self.index_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise StoreError(f"{self.index_path}: unreadable ({e.__class__.__name__})") from None
            if not isinstance(self._index, dict):
                self._index = None
                raise self._damaged(self.index_path, "the index is not a JSON object")
        return self._index

    def __len__(self) -> int:
        return int(self.index()["count"]) if self.has_index() else 0

    @property
    def layers(self) -> list[int]:
        return [int(l) for l in self.index()["arrays"]]

    def keys(self) -> list[Key]:
        p = self.index()["persons"]
        return list(zip(p["path"], map(float, p["eye_x"]), map(float, p["eye_y"])))

    def positions(self) -> dict[Key, int]:
        if self._positions is None:
            self._positions = {k: i for i, k in enumerate(self.keys())}
        return self._positions

    def column(self, name: str) -> list:
        return self.index()["persons"][name]

    def array_path(self, layer: int) -> Path:
        arrays = self.index()["arrays"]
        if str(layer) not in arrays:
            raise StoreError(f"{self.store.root}: layer {layer} is not stored (stored: "
                             f"{', '.join(sorted(arrays, key=int))})")
        return self._inside(arrays[str(layer)])

    def array(self, layer: int) -> np.ndarray:
        """(N, gh, gw) float16, memory-mapped (scale row i by 2**exponent(layer)[i] for raw values)."""
        self.verify()
        return np.load(self.array_path(layer), mmap_mode="r", allow_pickle=False)

    # ---- integrity (docs/reliability.md): the index names plain files of this folder, and each
    # array has the count, grid, dtype and checksum the index records

    def _rebuild_hint(self) -> str:
        return (f"rebuild it: delete {self.root} and rerun the same gaze gradcam command with --out "
                f"{self.store.root} (or --import-pickle again); it recomputes only what is missing")

    def _damaged(self, file, what: str) -> StoreError:
        return StoreError(f"{file}: damaged Grad-CAM store ({what}); {self._rebuild_hint()}")

    def _inside(self, name) -> Path:
        """A file the index names: a plain file name inside this split's folder, nothing else."""
        if not isinstance(name, str) or not name or name != Path(name).name or name in (".", ".."):
            raise self._damaged(self.index_path, f"it names the file {name!r:.80}, which is not a plain file "
                                                 f"name inside the store")
        path = self.root / name
        try:
            inside = path.resolve().parent == self.root.resolve()
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise self._damaged(self.index_path, f"{name} leads outside the store folder")
        return path

    def verify(self, checksums: bool = True) -> None:
        """Check the index and every layer array it names (once per SplitStore); a StoreError
        naming the damaged file and how to rebuild it otherwise."""
        if self._verified:
            return
        idx = self.index()
        where = self.index_path
        try:
            n = idx["count"]
            arrays, exponents, persons = idx["arrays"], idx["exponent"], idx["persons"]
            grid = [int(v) for v in idx.get("grid") or self.store.meta()["grid"]]
        except (KeyError, TypeError, ValueError) as e:
            raise self._damaged(where, f"index lacks or garbles {e}") from None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or not isinstance(arrays, dict) \
                or not isinstance(exponents, dict) or not isinstance(persons, dict):
            raise self._damaged(where, "index fields of the wrong kind")
        for column in ("path", "eye_x", "eye_y", "answer", "key_noun", "step", "tokens", "drew_box"):
            values = persons.get(column)
            if not isinstance(values, list) or len(values) != n:
                raise self._damaged(where, f"index column {column!r} does not hold {n} persons")
        meta_grid = self.store.meta().get("grid")
        if meta_grid is not None and list(meta_grid) != grid:
            raise self._damaged(where, f"grid {grid} differs from the recipe's {list(meta_grid)}")
        info = idx.get("array_info", {})
        for layer, name in arrays.items():
            path = self._inside(name)
            ex = exponents.get(layer)
            if not isinstance(ex, list) or len(ex) != n:
                raise self._damaged(where, f"layer {layer} exponents do not hold {n} persons")
            if not path.is_file():
                raise self._damaged(path, "the layer file is missing")
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise self._damaged(path, f"unreadable layer file: {e.__class__.__name__}: "
                                          f"{' '.join(str(e).split())[:100]}") from None
            if array.dtype != np.float16 or tuple(array.shape) != (n, *grid):
                raise self._damaged(path, f"holds {array.dtype} {tuple(array.shape)}, the index says float16 "
                                          f"{(n, *grid)}")
            recorded = info.get(layer) if isinstance(info, dict) else None
            if checksums and isinstance(recorded, dict) and recorded.get("sha256"):
                if _file_sha256(path) != recorded["sha256"]:
                    raise self._damaged(path, "its checksum differs from the one the index records")
        self._verified = True

    def exponent(self, layer: int) -> np.ndarray:  # (N,) int32
        return np.asarray(self.index()["exponent"][str(layer)], dtype=np.int32)

    def raw(self, layer: int, position: int) -> np.ndarray:
        """One person's raw map, float32."""
        return np.ldexp(np.asarray(self.array(layer)[position], dtype=np.float32), int(self.exponent(layer)[position]))

    def default_layer(self) -> int:
        layer = self.store.meta().get("default_layer")
        return int(layer) if layer is not None and int(layer) in self.layers else self.layers[0]

    def for_table(self, table, layer: int | None = None) -> "StoreMaps":
        """A `MapSource` over `table`'s rows: `get(row)` is the row's raw map (float32) or None."""
        self.verify()
        layer = self.default_layer() if layer is None else int(layer)
        path = self.array_path(layer)
        positions = self.positions()
        rows = np.array([positions.get(k, -1) for k in table.keys()], dtype=np.int64)
        return StoreMaps(path, self.exponent(layer), rows, layer)

    def records(self, positions: np.ndarray | None = None) -> Records:
        """The merged persons (all, or those at `positions`) as Records."""
        idx = self.index()
        n = int(idx["count"])
        pos = np.arange(n) if positions is None else np.asarray(positions, dtype=np.int64)
        p = idx["persons"]
        pick = lambda col: [col[i] for i in pos]  # noqa: E731
        return Records(
            pick(p["path"]), np.stack([np.array(p["eye_x"], dtype=np.float64)[pos],
                                       np.array(p["eye_y"], dtype=np.float64)[pos]], axis=1).reshape(-1, 2),
            {l: np.asarray(self.array(l)[pos]) for l in self.layers},
            {l: self.exponent(l)[pos] for l in self.layers},
            pick(p["answer"]), pick(p["key_noun"]), np.array(p["step"], dtype=np.int64)[pos], pick(p["tokens"]),
            np.array(p["drew_box"], dtype=bool)[pos])

    # ---- chunks (results of a run not merged yet)

    @property
    def chunk_dir(self) -> Path:
        return self.root / CHUNK_DIR

    def chunk_files(self) -> list[Path]:
        return sorted(self.chunk_dir.glob("*.npz")) if self.chunk_dir.is_dir() else []

    def write_chunk(self, records: Records, tag: str) -> Path:
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        path = self.chunk_dir / f"{tag}-{uuid.uuid4().hex[:16]}.npz"
        _write_npz_atomic(path, records.to_npz())
        return path

    def stored_keys(self) -> set[Key]:
        """Persons already computed: merged ones and those in chunks."""
        keys = set(self.positions()) if self.has_index() else set()
        for path in self.chunk_files():
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys.update((str(p), float(x), float(y)) for p, (x, y) in zip(data["path"], data["eye_xy"]))
            except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as e:
                raise StoreError(f"{path}: damaged store chunk ({e.__class__.__name__}); delete it and rerun") from None
        return keys

    # ---- merging

    def merge(self, sources: Iterable["SplitStore"] = ()) -> int:
        """Merge the chunks (and the merged persons of other stores' `sources`) into this
        split's index and layer arrays. Returns the number of persons now merged."""
        meta = self.store.meta()
        grid = tuple(meta["grid"])
        layers = [int(l) for l in meta["layers"]]
        parts: list[Records] = []
        if self.has_index():
            parts.append(self.records())
        for other in sources:
            other_meta = other.store.meta()
            for k in ("model", "backend", "layers", "grid", "question", "question_no_box", "draw_box"):
                if other_meta.get(k) != meta.get(k):
                    raise StoreError(f"cannot merge {other.store.root} into {self.store.root}: {k} differs "
                                     f"({other_meta.get(k)!r} vs {meta.get(k)!r})")
            if other.has_index():
                parts.append(other.records())
            parts.extend(_read_chunk(p) for p in other.chunk_files())
        chunks = self.chunk_files()
        parts.extend(_read_chunk(p) for p in chunks)
        for part in parts:
            if sorted(part.maps) != sorted(layers) or any(m.shape[1:] != grid for m in part.maps.values()):
                raise StoreError(f"{self.store.root}: a chunk holds layers {sorted(part.maps)} / grid "
                                 f"{next(iter(part.maps.values())).shape[1:]}, the store {layers} / {grid}")

        # later parts win on duplicates (identical when the recipe is the same)
        where: dict[Key, tuple[int, int]] = {}
        for pi, part in enumerate(parts):
            for ri, k in enumerate(part.keys()):
                where[k] = (pi, ri)
        keys = sorted(where)
        n = len(keys)
        self.root.mkdir(parents=True, exist_ok=True)

        sel_part = np.array([where[k][0] for k in keys], dtype=np.int64)
        sel_row = np.array([where[k][1] for k in keys], dtype=np.int64)
        arrays, exponents, array_info = {}, {}, {}
        for layer in layers:
            out = np.zeros((n, *grid), dtype=np.float16)
            exp = np.zeros(n, dtype=np.int32)
            for pi, part in enumerate(parts):
                mask = sel_part == pi
                if mask.any():
                    out[mask] = part.maps[layer][sel_row[mask]]
                    exp[mask] = part.exponent[layer][sel_row[mask]]
            digest = hashlib.sha256(out.tobytes() + exp.tobytes()).hexdigest()[:16]
            name = f"layer{layer}-{digest}.npy"
            final = self.root / name
            if not final.is_file():
                tmp = _tmp_name(final)
                with open(tmp, "wb") as f:
                    np.save(f, out, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_replace(tmp, final)
            arrays[str(layer)] = name
            exponents[str(layer)] = exp.tolist()
            array_info[str(layer)] = {"file": name, "shape": [n, *grid], "dtype": "float16",
                                      "sha256": _file_sha256(final)}

        def col(getter):
            return [getter(parts[pi], ri) for pi, ri in zip(sel_part.tolist(), sel_row.tolist())]

        index = {
            "format": STORE_FORMAT, "version": STORE_VERSION, "split": self.name, "count": n, "grid": list(grid),
            "arrays": arrays, "exponent": exponents, "array_info": array_info,
            "persons": {
                "path": [k[0] for k in keys], "eye_x": [k[1] for k in keys], "eye_y": [k[2] for k in keys],
                "answer": col(lambda p, r: p.answer[r]), "key_noun": col(lambda p, r: p.key_noun[r]),
                "step": col(lambda p, r: int(p.step[r])), "tokens": col(lambda p, r: list(p.tokens[r])),
                "drew_box": col(lambda p, r: bool(p.drew_box[r])),
            },
        }
        write_json_atomic(self.index_path, index)  # the commit point
        self._index, self._positions, self._verified = None, None, False
        for path in chunks:
            path.unlink(missing_ok=True)
        keep = set(arrays.values())
        for path in self.root.glob("layer*.npy"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        for path in [*self.root.glob("*.tmp-*"), *(self.chunk_dir.glob("*.tmp-*") if self.chunk_dir.is_dir() else [])]:
            path.unlink(missing_ok=True)
        return n


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


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


def open_store(root: Path) -> GradcamStore:
    """An existing store (its recipe is checked on open)."""
    store = GradcamStore(root)
    if not Path(root).is_dir():
        raise DataError(f"{root}: Grad-CAM store not found")
    store.meta()
    return store


def write_maps(out: Path, split: str, table, raw_maps: np.ndarray, model: str, layer: int = 0,
               answers: list[str] | None = None) -> "SplitStore":
    """A store of maps made elsewhere (an oracle ablation, a test's synthetic maps): one layer,
    (N, gh, gw) raw maps for the persons of `table`, recipe `model` naming where they came from."""
    raw_maps = np.asarray(raw_maps, dtype=np.float32)
    n = len(table)
    if raw_maps.ndim != 3 or raw_maps.shape[0] != n:
        raise ValueError("raw_maps must be (persons, gh, gw)")
    store = GradcamStore(out)
    store.ensure_meta({"model": model, "backend": "external", "layers": [layer], "default_layer": layer,
                       "grid": list(raw_maps.shape[1:]), "question": "", "question_no_box": "", "draw_box": False})
    target = store.split(split)
    records = Records.from_raw(table.path.astype(str), table.eye_xy_norm, {layer: raw_maps},
                               answers or [""] * n, [""] * n, np.full(n, -1), [[] for _ in range(n)], np.zeros(n, bool))
    target.write_chunk(records, "external")
    target.merge()
    return target
