"""Settings of `gaze eval` and `gaze predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gazecli.core.settings.base import (DEVICE_HELP, SKIP_INVALID_HELP, DatasetKind, Device, ExistingDir,
    ExistingFile, GazeSettings, Precision, cli)


class EvalSettings(GazeSettings):
    """gaze eval"""

    predictions: ExistingFile | None = Field(None, description="prediction file to score (.npz: path, eye, heatmap[, inout])")
    checkpoint: Path | None = Field(None, description="model to run instead: a run folder (its best weights) or a .safetensors file")
    data: ExistingDir = Field(description="dataset root")
    split: Literal["test", "val", "train"] = Field("test", description="persons to score (val: the held-out part of a label split)")
    dataset: DatasetKind = Field("auto", description="dataset layout (auto: detected from the files)")
    auc_resolution: Literal["native", "heatmap"] = Field(
        "native", description="GazeFollow AUC at the original image size (native) or on the heatmap grid")
    out: Path | None = Field(None, description="metrics JSON (with --checkpoint, predictions go beside it as .npz)",
                             json_schema_extra=cli(short="-o"))
    ratio: float | None = Field(None, gt=0.0, le=1.0, description="label split for --split val (default: the checkpoint's)")
    split_dir: Path | None = Field(None, description="folder of the split files for --split val (default: the checkpoint's)")
    device: Device = Field("auto", description="where to compute: auto, cpu, cuda, cuda:N or mps")
    precision: Precision = Field("auto", description="inference precision (AMP on CUDA)")
    batch_size: int = Field(64, ge=1, description="persons per batch")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    skip_invalid: bool = Field(False, description=SKIP_INVALID_HELP)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.predictions is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of --predictions and --checkpoint")
        if self.predictions is not None and self.split == "val":
            raise ValueError("--split val needs --checkpoint (a prediction file names its persons itself)")
        return self


class PredictSettings(GazeSettings):
    """gaze predict"""

    source: Path = Field(description="an image, a folder of images, or a video", json_schema_extra=cli(argument=True))
    checkpoint: Path = Field(description="a student: run folder (its best weights) or .safetensors file")
    head: list[str] = Field([], description="head box x,y,w,h in pixels (repeat for several persons); "
                                            "none: heads are detected")
    heads_csv: ExistingFile | None = Field(None, description="CSV file,x,y,w,h of head boxes per image (folders)")
    every: int = Field(1, ge=1, description="video: predict every N-th frame")
    save_heatmaps: bool = Field(False, description="also write every heatmap to heatmaps.npz")
    device: Device = Field("auto", description=DEVICE_HELP)
    precision: Precision = Field("auto", description="mixed precision on CUDA")
    project: Path = Field(Path("runs"), description="parent folder of output folders")
    name: str = Field("run", description="output folder name under PROJECT/predict (auto-incremented)")

    @model_validator(mode="after")
    def _source_exists(self):
        if not self.source.exists():
            raise ValueError(f"SOURCE not found: {self.source}")
        return self
