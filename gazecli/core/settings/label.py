"""Settings of `gaze label` (Pydantic only: no torch, no starlette, so `gaze --help` stays instant)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gazecli.core.settings.base import Device, ExistingFile, GazeSettings, cli


class LabelSettings(GazeSettings):
    """gaze label"""

    images: Path | None = Field(None, description="folder of images to label (searched recursively); not needed with "
                                                  "--export or when --out already labels a folder",
                                json_schema_extra=cli(argument=True))
    out: Path = Field(description="folder of the labels: the journal of every click, and the exported dataset "
                                  "(ROOT/dataset)", json_schema_extra=cli(short="-o"))
    export: bool = Field(False, description="write the GazeFollow-layout dataset of the finished images and exit")
    checkpoint: Path | None = Field(None, description="a student run (folder or .safetensors) whose predicted head "
                                                      "boxes and gaze points are offered as suggestions")
    heads_csv: ExistingFile | None = Field(None, description="CSV file,x,y,w,h of suggested head boxes per image "
                                                             "(default: detected faces); needs --checkpoint")
    order: Literal["file", "random", "uncertain"] = Field(
        "file", description="order of the images: file (sorted names), random (seeded), uncertain (the images the "
                            "--checkpoint model is least sure of first)")
    seed: int = Field(0, ge=0, description="seed of --order random and of the exported test split")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="finished images held out as the exported test set")
    port: int = Field(0, ge=0, le=65535, description="port on 127.0.0.1 (0: a free one, printed)")
    open: bool = Field(False, description="open the page in the default browser")
    device: Device = Field("auto", description="where the suggestion model runs: auto, cpu, cuda, cuda:N or mps")

    @model_validator(mode="after")
    def _check_label(self):
        if self.order == "uncertain" and self.checkpoint is None:
            raise ValueError("--order uncertain needs --checkpoint (the model whose uncertainty orders the images)")
        if self.heads_csv is not None and self.checkpoint is None:
            raise ValueError("--heads-csv needs --checkpoint (head boxes are offered with the model's gaze)")
        if self.images is not None and not self.images.is_dir():
            raise ValueError(f"IMAGES: folder not found: {self.images}")
        if self.images is None and not (self.out / "label.json").is_file():
            raise ValueError("give the IMAGES folder (--out does not label a folder yet)")
        return self
