"""Low-label splits of GazeFollow-layout training sets (docs/formats.md, "Split files").

File format (the authors'): `train_annotations_weak_ratio{r}_use.txt` (labelled) and
`..._left.txt` (unlabelled), each holding full train-file rows, `{r}` as Python prints the
float (0.05, 0.1, 0.2). gazecli adds `..._val.txt`: labelled images held out for model
selection, so the test set never chooses checkpoints.

Two differences from the authors' script, both on purpose (docs/design.md, "Data"): our splits are
seeded, and they are drawn per *image* (all persons of an image are on one side), so a person
that is "unlabelled" never shares an image with a labelled one. The authors' files (drawn per
row, unseeded) load unchanged; their labelled part gets a seeded image-level validation
subset carved out at load time when no `_val` file is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gazecli.core.data.gazefollow import parse_rows
from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError
from gazecli.core.io import write_json, write_text

SPLIT_FOLDER = "weak_supervision"
PARTS = ("use", "left", "val")


def ratio_name(ratio: float) -> str:
    """0.1 -> '0.1', 0.05 -> '0.05' (Python's str of the float, as in the authors' names)."""
    return str(float(ratio))


def split_file(folder: Path, ratio: float, part: str) -> Path:
    return Path(folder) / f"train_annotations_weak_ratio{ratio_name(ratio)}_{part}.txt"


def default_split_folder(root: Path, seed: int) -> Path:
    return Path(root) / SPLIT_FOLDER / f"seed{seed}"


@dataclass
class LabelSplit:
    """Membership of every training person: labelled (train), val (labelled, held out) or
    unlabelled. Masks are aligned with the PersonTable the split was made for."""

    ratio: float
    labelled: np.ndarray  # (N,) bool
    val: np.ndarray  # (N,) bool
    unlabelled: np.ndarray  # (N,) bool
    seed: int | None = None
    source: str = "generated"
    n_in_neither: int = 0  # rows in no split file (treated as labelled, as the official code)

    def counts(self, table: PersonTable) -> dict:
        def images(mask):
            return int(len(np.unique(table.path[mask]))) if mask.any() else 0

        return {
            "labelled_persons": int(self.labelled.sum()), "labelled_images": images(self.labelled),
            "val_persons": int(self.val.sum()), "val_images": images(self.val),
            "unlabelled_persons": int(self.unlabelled.sum()), "unlabelled_images": images(self.unlabelled),
        }


def _image_groups(table: PersonTable):
    """Unique image paths (first-appearance order) and each row's image index."""
    _, first, inverse = np.unique(table.path, return_index=True, return_inverse=True)
    order = np.argsort(first)  # unique images in first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse]  # (N,) image index of each row


def _choose_val(image_of_row: np.ndarray, labelled: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Hold out round(val_fraction * labelled images) labelled images (at least one when asked,
    and never all of them)."""
    images = np.unique(image_of_row[labelled])
    val = np.zeros_like(labelled)
    if val_fraction <= 0 or len(images) < 2:
        return val
    n_val = min(max(1, int(round(val_fraction * len(images)))), len(images) - 1)
    rng = np.random.default_rng([seed, 1])
    chosen = rng.choice(images, size=n_val, replace=False)
    return labelled & np.isin(image_of_row, chosen)


def make_split(table: PersonTable, ratio: float, seed: int = 0, val_fraction: float = 0.1) -> LabelSplit:
    """A seeded image-level split: images in a random order are labelled until they hold
    round(ratio * persons) persons (overshooting by at most one image); then val_fraction of the
    labelled images are held out for validation."""
    if not 0 < ratio < 1:
        raise ValueError("ratio must be in (0, 1)")
    image_of_row = _image_groups(table)
    n_images = int(image_of_row.max()) + 1
    persons_per_image = np.bincount(image_of_row, minlength=n_images)
    target = int(round(ratio * len(table)))
    order = np.random.default_rng([seed, 0]).permutation(n_images)
    taken = np.cumsum(persons_per_image[order])
    n_take = int(np.searchsorted(taken, max(target, 1)) + 1)  # first prefix reaching the target
    chosen = np.zeros(n_images, dtype=bool)
    chosen[order[:n_take]] = True
    labelled_all = chosen[image_of_row]
    val = _choose_val(image_of_row, labelled_all, val_fraction, seed)
    return LabelSplit(ratio=ratio, labelled=labelled_all & ~val, val=val, unlabelled=~labelled_all,
                      seed=seed, source="generated")


def write_split(table: PersonTable, split: LabelSplit, folder: Path, force: bool = False,
                extra: dict | None = None) -> list[Path]:
    """Write the three split files (train-file rows, verbatim) and split.json; atomic."""
    if table.raw is None:
        raise ValueError("split files need the original rows (a GazeFollow train table)")
    folder = Path(folder)
    targets = {part: split_file(folder, split.ratio, part) for part in PARTS}
    existing = [p for p in targets.values() if p.exists()]
    if existing and not force:
        raise DataError(f"{existing[0]}: split file exists (use --force to overwrite)")
    folder.mkdir(parents=True, exist_ok=True)
    masks = {"use": split.labelled, "left": split.unlabelled, "val": split.val}
    written = []
    for part, path in targets.items():
        write_text(path, "".join(line + "\n" for line in table.raw[masks[part]]))
        written.append(path)
    meta = {"ratio": split.ratio, "seed": split.seed, "unit": "image", "source": split.source,
            "annotation_file": str(table.annotation_file.name if table.annotation_file else ""),
            **split.counts(table), **(extra or {})}
    meta_path = folder / f"split_ratio{ratio_name(split.ratio)}.json"
    write_json(meta_path, meta)
    written.append(meta_path)
    return written


def _keys_of(file: Path, skip_invalid: bool) -> set[tuple]:
    rows, _, _ = parse_rows(file, "train", skip_invalid)
    return {(r["path"], r["eye_x"], r["eye_y"]) for r in rows}


def load_split(table: PersonTable, folder: Path, ratio: float, val_fraction: float = 0.1, seed: int = 0,
               skip_invalid: bool = False) -> LabelSplit:
    """Read `_use` / `_left` (and `_val` if present) from `folder` for this training table.

    Membership is by (path, eye_x, eye_y). Rows in neither file count as labelled, as in the
    official code (reported as n_in_neither). Without a `_val` file, a seeded image-level
    val_fraction of the labelled images is held out.
    """
    folder = Path(folder)
    use_file, left_file, val_file = (split_file(folder, ratio, part) for part in PARTS)
    for f in (use_file, left_file):
        if not f.is_file():
            raise DataError(f"{f}: split file not found (make one with: gaze data split ROOT --ratio {ratio_name(ratio)})")
    use, left = _keys_of(use_file, skip_invalid), _keys_of(left_file, skip_invalid)
    val_keys = _keys_of(val_file, skip_invalid) if val_file.is_file() else set()
    keys = table.keys()
    in_use = np.array([k in use for k in keys])
    in_left = np.array([k in left for k in keys])
    in_val = np.array([k in val_keys for k in keys])
    neither = ~(in_use | in_left | in_val)
    unlabelled = in_left & ~in_use & ~in_val
    labelled_all = ~unlabelled
    if val_file.is_file():
        val = in_val
    else:
        val = _choose_val(_image_groups(table), labelled_all, val_fraction, seed)
    return LabelSplit(ratio=ratio, labelled=labelled_all & ~val, val=val, unlabelled=unlabelled,
                      seed=seed if not val_file.is_file() else None, source=str(folder),
                      n_in_neither=int(neither.sum()))


def find_split_files(root: Path) -> list[tuple[Path, float]]:
    """(folder, ratio) of every `_use` split file under ROOT/weak_supervision."""
    base = Path(root) / SPLIT_FOLDER
    found = []
    if base.is_dir():
        for f in sorted(base.rglob("train_annotations_weak_ratio*_use.txt")):
            try:
                ratio = float(f.name[len("train_annotations_weak_ratio"):-len("_use.txt")])
            except ValueError:
                continue
            found.append((f.parent, ratio))
    return found


def all_labels_split(table: PersonTable, val_fraction: float = 0.1, seed: int = 0) -> LabelSplit:
    """Every person labelled (ratio 1.0), with the usual image-level validation hold-out."""
    everyone = np.ones(len(table), dtype=bool)
    val = _choose_val(_image_groups(table), everyone, val_fraction, seed)
    return LabelSplit(ratio=1.0, labelled=everyone & ~val, val=val, unlabelled=~everyone, seed=seed, source="all")


def resolve_label_split(root: Path, table: PersonTable, ratio: float, split_dir: Path | None = None, seed: int = 0,
                        val_fraction: float = 0.1) -> tuple[LabelSplit, str]:
    """The split a run uses, and a line saying where it came from: ratio 1.0 = all labels; else
    the split files in `split_dir` (default ROOT/weak_supervision/seed<seed>) when present; else
    the same seeded image-level split `gaze data split` would write, made in memory."""
    if ratio >= 1.0:
        return all_labels_split(table, val_fraction, seed), "all labels (ratio 1.0)"
    folder = Path(split_dir) if split_dir is not None else default_split_folder(root, seed)
    if split_file(folder, ratio, "use").is_file():
        return load_split(table, folder, ratio, val_fraction, seed), f"split files in {folder}"
    if split_dir is not None:
        raise DataError(f"{folder}: no split files for ratio {ratio_name(ratio)}")
    return make_split(table, ratio, seed, val_fraction), (
        f"seeded image-level split (ratio {ratio_name(ratio)}, seed {seed}) made in memory, as `gaze data split` "
        f"would write it")
