"""The Grad-CAM store (docs/formats.md, "Grad-CAM store"): memory-mappable, resumable, mergeable.

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
import uuid
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from gazecli.core.gradcam.records import Key, Records, StoreError, StoreMaps, read_chunk
from gazecli.core.io import write_array, write_arrays, write_json

STORE_FORMAT = "gazecli-gradcam"
STORE_VERSION = 1
META_NAME = "gradcam.json"
INDEX_NAME = "index.json"
CHUNK_DIR = "chunks"



# --------------------------------------------------------------------------------------------
# files written atomically and durably (gazecli.core.io)


def write_json_atomic(path: Path, data) -> None:
    """The store's JSON files (compact); index.json last: the commit point of a merge."""
    write_json(path, data, indent=None, newline=False, durable=True, ensure_ascii=False, separators=(",", ":"))


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
        write_arrays(path, records.to_npz(), durable=True)
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
            parts.extend(read_chunk(p) for p in other.chunk_files())
        chunks = self.chunk_files()
        parts.extend(read_chunk(p) for p in chunks)
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
                write_array(final, out, durable=True)
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
