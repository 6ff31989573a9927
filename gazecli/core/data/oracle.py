"""ORACLE ablation maps for GazeWorld (never the method).

`oracle_class_maps` draws, for each person, a Gaussian on every object of the class the person
looks at, read from GazeWorld's sidecar: what a VQA model that names the right class and
grounds every instance of it would give, but with no idea which instance the person looks at.
It exists to study the diffusion refiner apart from the VQA model (such a
prior has a high AUC and a poor L2; the head-conditioned refiner must pick the instance).
Stores made from it are labelled "oracle-class" in their recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gazecli.core.data.table import PersonTable
from gazecli.core.errors import DataError

ORACLE_MODEL = "ORACLE-class-prior (GazeWorld sidecar; an ablation, not the method)"


def oracle_class_maps(root: Path, table: PersonTable, grid: int = 8, sigma_cells: float = 0.6) -> np.ndarray:
    """(N, grid, grid): Gaussians at every object of each person's target class; zeros for persons
    looking out of frame or at no object."""
    root = Path(root)
    sidecar = root / f"gazeworld_{table.split if table.split in ('train', 'test') else 'train'}.jsonl"
    if not sidecar.is_file():
        raise DataError(f"{root}: no {sidecar.name}; the oracle needs a GazeWorld")
    by_key = {}
    for line in sidecar.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for person in record["persons"]:
            key = (record["path"], round(person["eye_xy_norm"][0], 6), round(person["eye_xy_norm"][1], 6))
            by_key[key] = (record, person)
    centres = (np.arange(grid) + 0.5) / grid
    out = np.zeros((len(table), grid, grid), dtype=np.float32)
    for i, (path, x, y) in enumerate(table.keys()):
        found = by_key.get((path, round(x, 6), round(y, 6)))
        if found is None:
            raise DataError(f"{sidecar.name}: no record of {path} eye ({x:.6f}, {y:.6f})")
        record, person = found
        cls = person["target_class"]
        size = record["size"]
        for obj in record["objects"]:
            if obj["cls"] != cls:
                continue
            x1, y1, x2, y2 = obj["box_xyxy_px"]
            cx, cy = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size
            s = sigma_cells / grid
            out[i] += np.exp(-((centres[None, :] - cx) ** 2 + (centres[:, None] - cy) ** 2) / (2 * s * s))
    return out
