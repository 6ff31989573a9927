"""Settings of `gaze import-weights` (pydantic only, no torch; docs/import-weights.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gazecli.core.constants import IMPORT_KINDS
from gazecli.core.settings.base import ExistingFile, GazeSettings, cli


class ImportWeightsSettings(GazeSettings):
    """gaze import-weights"""

    file: ExistingFile = Field(description="the authors' weights file (.pt / .pth / .tar / .safetensors)",
                               json_schema_extra=cli(argument=True))
    kind: Literal[IMPORT_KINDS] = Field(  # type: ignore[valid-type]
        description="what the file holds: vat (Chong et al.'s ModelSpatial), vat-gc (ModelSpatial_GradCAM), "
                    "diffusion (GCDR's GF_Diffusion_Model_new teacher)")
    out: Path = Field(description="run folder to write (weights/best.safetensors + .json); give it to --checkpoint, "
                                  "--teacher-checkpoint or --init", json_schema_extra=cli(short="-o"))
