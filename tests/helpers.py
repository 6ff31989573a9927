"""Small hand-made datasets in the real on-disk formats, and a way to run the CLI in-process."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, width: int = 96, height: int = 64, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    return path


def gf_train_row(path="train/0/a.png", idx=0, eye=(0.3, 0.3), gaze=(0.7, 0.6), head=(20, 10, 30, 22), inout=1,
              body=(15, 8, 40, 60), extended=True) -> str:
    cells = [path, str(idx), "0.1", "0.1", "0.3", "0.6", f"{eye[0]}", f"{eye[1]}", f"{gaze[0]}", f"{gaze[1]}",
             *(f"{v}" for v in head), str(inout), "meta"]
    if extended:
        cells += ["orig", *(f"{v}" for v in body)]
    return ",".join(cells)


def gf_test_row(path="test2/0/b.png", idx=0, eye=(0.5, 0.4), gaze=(0.2, 0.7), head=(40, 20, 52, 32),
             body=(35, 18, 60, 64), extended=True) -> str:
    cells = [path, str(idx), "0.1", "0.1", "0.3", "0.6", f"{eye[0]}", f"{eye[1]}", f"{gaze[0]}", f"{gaze[1]}",
             *(f"{v}" for v in head), "meta"]
    if extended:
        cells += ["orig", *(f"{v}" for v in body)]
    return ",".join(cells)


def make_gazefollow(root: Path, extended: bool = True, train_rows=None, test_rows=None) -> Path:
    """Three train persons in two images (one out of frame, one inout=-1 row) and two test
    persons with 3 and 2 annotators."""
    root.mkdir(parents=True, exist_ok=True)
    suffix = "_persondet" if extended else ""
    if train_rows is None:
        train_rows = [
            gf_train_row("train/0/a.png", 0, extended=extended),
            gf_train_row("train/0/a.png", 1, eye=(0.6, 0.2), gaze=(-1, -1), head=(55, 5, 65, 15), inout=0, extended=extended),
            gf_train_row("train/0/b.png", 2, eye=(0.2, 0.5), gaze=(0.9, 0.9), head=(10, 25, 22, 37), extended=extended),
            gf_train_row("train/0/b.png", 3, eye=(0.7, 0.5), inout=-1, extended=extended),
        ]
    if test_rows is None:
        test_rows = [
            gf_test_row("test2/0/c.png", 0, gaze=(0.2, 0.7), extended=extended),
            gf_test_row("test2/0/c.png", 1, gaze=(0.25, 0.72), extended=extended),
            gf_test_row("test2/0/c.png", 2, gaze=(0.22, 0.68), extended=extended),
            gf_test_row("test2/0/d.png", 3, eye=(0.3, 0.3), gaze=(0.9, 0.1), head=(20, 10, 32, 24), extended=extended),
            gf_test_row("test2/0/d.png", 4, eye=(0.3, 0.3), gaze=(0.85, 0.15), head=(20, 10, 32, 24), extended=extended),
        ]
    (root / f"train_annotations_release{suffix}.txt").write_text("\n".join(train_rows) + "\n")
    (root / f"test_annotations_release{suffix}.txt").write_text("\n".join(test_rows) + "\n")
    for i, p in enumerate(["train/0/a.png", "train/0/b.png", "test2/0/c.png", "test2/0/d.png"]):
        write_image(root / p, seed=i)
    return root


def run_cli(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    """Run `gaze ARGS` in this process: (exit code, stdout, stderr)."""
    from gazecli.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = dict(os.environ)
    if env:
        os.environ.update(env)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = int(e.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return code, out.getvalue(), err.getvalue()


def csv_rows(path: Path) -> list[dict]:
    """The rows of a run folder's metrics.csv / steps.csv as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
