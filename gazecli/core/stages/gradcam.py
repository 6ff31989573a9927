"""`gaze gradcam` as a function: annotate a split with VQA Grad-CAMs into a store, resumable
and sharded; merge shards; import the authors' pickles.

Work order. The split's persons (unique (path, eye_x, eye_y) keys in table order) are cut to
`--limit`, then to the `--shard i/n` share, then to this torchrun rank's share
(`engine.distributed.shard`: contiguous, disjoint). Persons already in the store are skipped;
the rest are processed `chunk_size` at a time in batches of `batch_size`, and each chunk is
written atomically. A single run merges its chunks at the end; under torchrun rank 0 merges
after a barrier; with `--shard` nothing is merged until `--merge` (shards may run on other
machines at the same time).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.errors import SettingsError
from gazecli.core.gradcam.records import Records, StoreError
from gazecli.core.gradcam.store import GradcamStore

Progress = Callable[[int, int], None]


def parse_shard(spec: str | None) -> tuple[int, int]:
    if not spec:
        return 0, 1
    i, n = (int(v) for v in spec.split("/"))
    return i, n


def unique_rows(table) -> np.ndarray:
    """The first table row of every distinct person key, in table order."""
    seen, rows = set(), []
    for row, key in enumerate(table.keys()):
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return np.array(rows, dtype=np.int64)


def work_rows(table, limit: int | None, shard: tuple[int, int], rank: int = 0, world_size: int = 1) -> np.ndarray:
    from gazecli.core.engine.distributed import shard as share

    rows = unique_rows(table)
    if limit is not None:
        rows = rows[:limit]
    i, n = shard
    rows = rows[list(share(len(rows), i, n))]
    return rows[list(share(len(rows), rank, world_size))]


class PromptLoader:
    """Reads, prompts and resizes the images of a batch (each distinct file decoded once)."""

    def __init__(self, table, size: int, draw_box: bool, box_question: str, plain_question: str):
        self.table = table
        self.size = size
        self.draw_box = draw_box
        self.box_question = box_question
        self.plain_question = plain_question

    def full(self, row: int, cache: dict | None = None) -> tuple[np.ndarray, str, bool]:
        """(full-resolution image with the prompt drawn, question, box drawn)."""
        from gazecli.core.data.images import read_image_rgb
        from gazecli.core.gradcam.prompt import draw_prompt

        path = str(self.table.path[row])
        if cache is None or path not in cache:
            image = read_image_rgb(self.table.root / path)
            if cache is not None:
                cache[path] = image
        else:
            image = cache[path]
        return draw_prompt(image, self.table.body_box_xyxy_px[row], self.draw_box, self.box_question,
                           self.plain_question)

    def __call__(self, rows) -> tuple[list[np.ndarray], list[str], list[bool]]:
        from gazecli.core.gradcam.prompt import resize_square

        cache: dict = {}
        images, questions, drew = [], [], []
        for row in rows:
            image, question, box = self.full(int(row), cache)
            images.append(resize_square(image, self.size))
            questions.append(question)
            drew.append(box)
        return images, questions, drew


def annotate_batch(backend, images, questions, layers: list[int], num_beams: int, max_answer_tokens: int,
                   key_noun_method: str, length_penalty: float = 1.0, early_stopping: bool = False,
                   mapping: str = "char-span") -> dict:
    """Answer, key-noun step and raw Grad-CAMs for one batch. Backends whose padded batches
    are not exact (`backend.equal_questions`) get one pass per distinct question instead."""
    if hasattr(backend, "annotate"):  # backends with their own Grad-CAM (cnn: classic, on a conv map)
        return backend.annotate(images, questions, layers)
    if getattr(backend, "equal_questions", False) and len(set(questions)) > 1:
        groups: dict[str, list[int]] = {}
        for i, q in enumerate(questions):
            groups.setdefault(q, []).append(i)
        parts = [(idx, _annotate(backend, [images[i] for i in idx], [questions[i] for i in idx], layers, num_beams,
                                 max_answer_tokens, key_noun_method, length_penalty, early_stopping, mapping))
                 for idx in groups.values()]
        out: dict = {k: [None] * len(questions) for k in ("answer", "key_noun", "step", "tokens")}
        cams = {l: np.zeros((len(questions), *backend.grid), dtype=np.float32) for l in layers}
        for idx, part in parts:
            for j, i in enumerate(idx):
                for k in out:
                    out[k][i] = part[k][j]
                for l in layers:
                    cams[l][i] = part["cams"][l][j]
        out["cams"] = cams
        return out
    return _annotate(backend, images, questions, layers, num_beams, max_answer_tokens, key_noun_method,
                     length_penalty, early_stopping, mapping)


def _annotate(backend, images, questions, layers, num_beams, max_answer_tokens, key_noun_method,
              length_penalty=1.0, early_stopping=False, mapping="char-span") -> dict:
    from gazecli.core.gradcam.cam import gradcam_from_attention
    from gazecli.core.gradcam.keynoun import key_noun_step, token_char_spans, word_index_step

    encoded = backend.encode(images, questions)
    answers = backend.answer(encoded, num_beams=num_beams, max_new_tokens=max_answer_tokens,
                             length_penalty=length_penalty, early_stopping=early_stopping)
    eos = backend.eos_ids
    texts, nouns, steps = [], [], []
    for ids in answers:
        text, spans = token_char_spans(backend.tokenizer, ids, backend.special_ids)
        n_content = len(ids) - (1 if ids and ids[-1] in eos else 0)
        if mapping == "word-index":  # --compat: the official word index as the step (docs/compat.md)
            kn = word_index_step(text, len(ids), n_content, key_noun_method)
        else:
            kn = key_noun_step(text, spans, n_content, key_noun_method)
        texts.append(text)
        nouns.append(kn.word)
        steps.append(kn.step)
    ta = backend.token_attention(encoded, answers, steps, layers)
    cams = gradcam_from_attention(ta, layers, backend.grad_scale)
    return {"answer": texts, "key_noun": nouns, "step": steps, "tokens": answers, "cams": cams}


def _key_noun_method(setting: str) -> str:
    from gazecli.core.gradcam.keynoun import spacy_available, spacy_noun_run

    if setting == "spacy":
        spacy_noun_run("probe")  # a clear error now rather than after loading the model
        return "spacy"
    if setting == "auto":
        return "spacy" if spacy_available() else "rule"
    return setting


def decoding_of(s) -> dict:
    """How answers are decoded and the key noun mapped. --compat: the official OFA run (beam 100,
    unnormalised scores, up to 200 tokens, stop at num_beams finished hypotheses, the word index
    as the step), each overridable by its own flag (docs/compat.md)."""
    given = s.model_fields_set
    compat = bool(getattr(s, "compat", False))

    def pick(name, official):
        return getattr(s, name) if (name in given or not compat) else official

    return {"num_beams": pick("num_beams", 100), "length_penalty": float(pick("length_penalty", 0.0)),
            "max_answer_tokens": pick("max_answer_tokens", 200), "early_stopping": compat,
            "key_noun_mapping": "word-index" if compat else "char-span"}


def recipe_of(s, backend, layers: list[int], key_noun_method: str) -> dict:
    """What decides the numbers in a store; a resumed or merged run must match it."""
    default = backend.num_layers - 2 if backend.num_layers - 2 in layers else layers[0]
    return {
        "model": str(s.vqa_model), "backend": backend.name, "layers": layers, "default_layer": default,
        "num_layers": backend.num_layers, "grid": list(backend.grid), "image_size": backend.image_size,
        "question": s.question, "question_no_box": s.question_no_box, "draw_box": s.draw_box,
        "answer_hint": s.answer_hint if backend.name == "vlm" else "", "key_noun": key_noun_method,
        **decoding_of(s),
    }


def _device_for(s, dist) -> str:
    import torch

    if dist.enabled and s.device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{dist.local_rank}"
    return s.device


def run_gradcam(s, progress: Progress | None = None, dist=None, backend=None) -> dict:
    """Entry point of `gaze gradcam` (settings: `GradcamSettings`). Returns a summary dict."""
    if s.merge:
        return merge_gradcams(s.out, s.merge_from)
    if s.import_pickle is not None:
        return import_gradcams(s)
    if s.data is None:
        raise SettingsError("--data is required (the dataset root to annotate)")
    if s.vqa_model is None and backend is None:
        raise SettingsError("--vqa-model is required (a local folder, a Hugging Face id or a named model)")
    from gazecli.core.data import read_persons
    from gazecli.core.engine import distributed
    from gazecli.core.gradcam.backends import load_backend
    from gazecli.core.gradcam.simulated import SimulatedVQA, is_simulated

    t0 = time.perf_counter()
    owns_group = False
    if dist is None:
        import torch
        import torch.distributed as torch_dist

        cuda = str(s.device).startswith("cuda") or (s.device == "auto" and torch.cuda.is_available())
        owns_group = torch_dist.is_available() and not torch_dist.is_initialized()
        dist = distributed.init_distributed("cuda" if cuda else "cpu")
        owns_group = owns_group and dist.enabled
    table = read_persons(s.data, s.split, s.dataset, skip_invalid=s.skip_invalid)
    shard = parse_shard(s.shard)
    rows = work_rows(table, s.limit, shard, dist.rank, dist.world_size)
    key_method = _key_noun_method(s.key_noun)
    if backend is None and is_simulated(s.vqa_model):  # an ABLATION read from the sidecar (gradcam/simulated.py)
        backend = SimulatedVQA(s.vqa_model, s.data, s.split)
    if backend is None:
        backend = load_backend(s.vqa_model, s.backend, _device_for(s, dist), s.precision, s.image_size, s.answer_hint)
    layers = backend.resolve_layers(list(s.layers))
    store = GradcamStore(s.out)
    recipe = recipe_of(s, backend, layers, key_method)
    dec = decoding_of(s)
    store.check_recipe(recipe)
    if dist.is_main:
        store.ensure_meta(recipe)
    distributed.barrier()
    split = store.split(s.split)
    stored = split.stored_keys()
    keys = table.keys()
    todo = np.array([r for r in rows if keys[r] not in stored], dtype=np.int64)
    tag = f"s{shard[0]}of{shard[1]}-r{dist.rank}of{dist.world_size}"

    loader = PromptLoader(table, backend.image_size, s.draw_box, s.question, s.question_no_box)
    vis_dir = Path(s.out) / "visualizations" / s.split
    stats = {"computed": 0, "visualized": 0, "chunks": 0}
    total = len(todo)
    if progress is not None:
        progress(0, total)
    t_work = time.perf_counter()
    batches = [(c, todo[c + j: min(c + j + s.batch_size, c + s.chunk_size, total)])
               for c in range(0, total, s.chunk_size)
               for j in range(0, min(s.chunk_size, total - c), s.batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while the model runs
        pending = pool.submit(loader, batches[0][1]) if batches else None
        chunk_parts: list[Records] = []
        for bi, (chunk_start, batch_rows) in enumerate(batches):
            images, questions, drew = pending.result()
            pending = pool.submit(loader, batches[bi + 1][1]) if bi + 1 < len(batches) else None
            if hasattr(backend, "annotate_persons"):  # the simulated ablation: answers from the sidecar
                out = backend.annotate_persons([keys[r] for r in batch_rows], layers)
            else:
                out = annotate_batch(backend, images, questions, layers, dec["num_beams"], dec["max_answer_tokens"],
                                     key_method, dec["length_penalty"], dec["early_stopping"], dec["key_noun_mapping"])
            records = Records.from_raw([keys[r][0] for r in batch_rows],
                                       [keys[r][1:] for r in batch_rows], out["cams"], out["answer"],
                                       out["key_noun"], out["step"], out["tokens"], drew)
            chunk_parts.append(records)
            if stats["visualized"] < s.visualize and dist.is_main:
                stats["visualized"] += _visualize(loader, batch_rows, out, questions, layers, recipe["default_layer"],
                                                  vis_dir, s.visualize - stats["visualized"], keys)
            stats["computed"] += len(batch_rows)
            last_of_chunk = bi + 1 == len(batches) or batches[bi + 1][0] != chunk_start
            if last_of_chunk:
                split.write_chunk(_concat(chunk_parts), tag)
                chunk_parts = []
                stats["chunks"] += 1
            if progress is not None:
                progress(stats["computed"], total)
    seconds_work = time.perf_counter() - t_work

    distributed.barrier()
    merged = None
    if shard[1] == 1 and dist.is_main:
        merged = split.merge()
    distributed.barrier()
    if owns_group:
        distributed.cleanup()
    return {
        "mode": "annotate", "split": s.split, "persons": len(rows), "already_stored": len(rows) - total,
        "computed": stats["computed"], "chunks": stats["chunks"], "merged": merged,
        "sharded": shard[1] > 1, "shard": f"{shard[0]}/{shard[1]}", "rank": dist.rank, "world_size": dist.world_size,
        "is_main": dist.is_main, "backend": backend.name, "model": str(s.vqa_model), "layers": layers,
        "grid": list(backend.grid), "key_noun": key_method, "out": str(s.out),
        "index": str(split.index_path) if merged is not None else None,
        "visualized": stats["visualized"], "visualizations": str(vis_dir) if stats["visualized"] else None,
        "seconds": time.perf_counter() - t0, "seconds_work": seconds_work,
        "persons_per_s": stats["computed"] / seconds_work if seconds_work > 0 and stats["computed"] else 0.0,
    }


def _concat(parts: list[Records]) -> Records:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return Records(
        [p for r in parts for p in r.path], np.concatenate([r.eye_xy for r in parts]),
        {l: np.concatenate([r.maps[l] for r in parts]) for l in first.maps},
        {l: np.concatenate([r.exponent[l] for r in parts]) for l in first.maps},
        [a for r in parts for a in r.answer], [k for r in parts for k in r.key_noun],
        np.concatenate([r.step for r in parts]), [t for r in parts for t in r.tokens],
        np.concatenate([r.drew_box for r in parts]))


def _visualize(loader: PromptLoader, rows, out: dict, questions, layers, layer: int, folder: Path, budget: int,
               keys) -> int:
    from gazecli.core.gradcam.visualize import write_visualization

    layer = layer if layer in out["cams"] else layers[0]
    written = 0
    for b, row in enumerate(rows[:budget]):
        image, _, _ = loader.full(int(row))
        path, ex, ey = keys[int(row)]
        noun = out["key_noun"][b] or "(none: last answer token)"
        lines = [f"Q: {questions[b]}", f"A: {out['answer'][b]}",
                 f"key noun: {noun}, step {out['step'][b]}; layer {layer}"]
        stem = str(Path(path).with_suffix("")).replace("/", "_").replace("\\", "_").replace(" ", "_")
        name = f"{stem}_{ex:.4f}_{ey:.4f}.png"  # the relative path: VideoAttentionTarget frame names repeat
        write_visualization(folder / name, image, out["cams"][layer][b], lines)
        written += 1
    return written


def merge_gradcams(out: Path, sources: list[Path] = ()) -> dict:
    """Merge every split's chunks in `out` (and the contents of other stores) into `out`."""
    t0 = time.perf_counter()
    store = GradcamStore(out)
    if not store.exists():
        raise StoreError(f"--out {out}: not a Grad-CAM store (no gradcam.json); nothing to merge")
    others = []
    for src in sources:
        other = GradcamStore(src)
        if not other.exists():
            raise StoreError(f"--merge-from {src}: not a Grad-CAM store (no gradcam.json)")
        others.append(other)
    names = set()
    for st in [store, *others]:
        if st.root.is_dir():
            names.update(p.name for p in st.root.iterdir()
                         if p.is_dir() and ((p / "index.json").is_file() or (p / "chunks").is_dir()))
    counts = {}
    for name in sorted(names):
        counts[name] = store.split(name).merge([o.split(name) for o in others])
    return {"mode": "merge", "out": str(out), "splits": counts, "sources": [str(s) for s in sources],
            "seconds": time.perf_counter() - t0}


def import_gradcams(s) -> dict:
    """Convert the authors' pickle for --data/--split into the store at --out."""
    from gazecli.core.data import read_persons
    from gazecli.core.gradcam.authors import (AUTHORS_DEFAULT_LAYER, AUTHORS_RECIPE, authors_records,
                                              load_authors_pickle)

    if s.data is None:
        raise SettingsError("--data is required with --import-pickle (its persons are matched by image name and eye_x)")
    t0 = time.perf_counter()
    table = read_persons(s.data, s.split, s.dataset, skip_invalid=s.skip_invalid)
    data = load_authors_pickle(s.import_pickle)
    records, counts = authors_records(data, table, Path(s.import_pickle).name)
    layers = counts["layers"]
    recipe = {**AUTHORS_RECIPE, "model": f"authors:{Path(s.import_pickle).name}", "layers": layers,
              "default_layer": AUTHORS_DEFAULT_LAYER if AUTHORS_DEFAULT_LAYER in layers else layers[0],
              "grid": counts["grid"]}
    store = GradcamStore(s.out)
    store.ensure_meta(recipe)
    split = store.split(s.split)
    if len(records):
        split.write_chunk(records, "import")
    merged = split.merge()
    return {"mode": "import", "split": s.split, "out": str(s.out), "index": str(split.index_path), "merged": merged,
            **counts, "seconds": time.perf_counter() - t0}
