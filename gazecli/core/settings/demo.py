"""Settings of `gaze demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from gazecli.core.settings.base import DEVICE_HELP, Device, GazeSettings, IntList, StrList, cli


def _sweep_p(values: list[str]) -> list[str]:
    """--sweep-p: "guess" or answer accuracies in [0, 1]."""
    for v in values:
        if v == "guess":
            continue
        try:
            ok = 0.0 <= float(v) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"expected 'guess' or a number in [0, 1], got {v!r}")
    if not values:
        raise ValueError("give at least one value")
    return values


class DemoSettings(GazeSettings):
    """gaze demo"""

    out: Path = Field(Path("gaze-demo"), description="folder for the world, the runs and the results (a rerun "
                                                     "resumes it)", json_schema_extra=cli(short="-o"))
    ratio: float = Field(0.1, gt=0.0, lt=1.0, description="fraction of training persons with labels")
    seed: int = Field(0, ge=0, description="seed of the world (and of the figure's persons)")
    seeds: IntList | None = Field(None, description="seeds of the label split and of every training run, "
                                                    "comma-separated (default 0,1,2); the tables show mean ± std")
    device: Device = Field("auto", description=DEVICE_HELP)
    full: bool = Field(False, description="a larger world and longer training (for a GPU) instead of the "
                                          "10-minute CPU configuration")
    vqa_model: str = Field("gazeworld", description="VQA model of the Grad-CAM stage (gazeworld: the shipped one)")
    train_vqa: bool = Field(False, description="retrain the GazeWorld VQA on this world's question-answer pairs first")
    sweep: bool = Field(False, description="VQA-quality sweep (an ablation): the demo per seed with the shipped VQA "
                                           "and SIMULATED VQAs of answer accuracy --sweep-p; --out gets sweep.md/.json/.png",
                        json_schema_extra=cli(panel="Sweep"))
    sweep_seeds: IntList = Field([0, 1, 2], description="--sweep: seeds", json_schema_extra=cli(panel="Sweep"))
    sweep_p: Annotated[list[str], StrList, AfterValidator(_sweep_p)] = Field(
        ["guess", "0.5", "0.75", "1.0"], description="--sweep: simulated answer accuracies (guess: the gaze-free "
                                                    "most-frequent-class guess)", json_schema_extra=cli(panel="Sweep"))
    sweep_shipped: bool = Field(True, description="--sweep: also the --vqa-model row (the method)",
                                json_schema_extra=cli(panel="Sweep"))
    sweep_also: Annotated[list[str], StrList] = Field(
        [], description="--sweep: more real VQA models (names or folders), comma-separated: a row each, like "
                        "--vqa-model's", json_schema_extra=cli(panel="Sweep"))
    ablations: bool = Field(False, description="also train the student with the noise teacher (the prior sampled "
                                               "from pure noise, no Grad-CAM: the paper's ablation)")
    jobs: int = Field(0, ge=0, description="stages run side by side in worker processes (0: min(2, CPU cores))")
    force: bool = Field(False, description="delete --out and start over instead of resuming")
    train_images: int | None = Field(None, ge=20, description="training images (default: 1000; --full 8000)",
                                     json_schema_extra=cli(panel="Budget"))
    test_images: int | None = Field(None, ge=10, description="test images (default: 300; --full 1000)",
                                    json_schema_extra=cli(panel="Budget"))
    student_steps: int | None = Field(None, ge=1, description="optimiser steps of every student (default: 200; "
                                                              "--full 3000)", json_schema_extra=cli(panel="Budget"))
    diffusion_epochs: int | None = Field(None, ge=1, description="epochs of the diffusion prior (default: 50; "
                                                                 "--full 150)", json_schema_extra=cli(panel="Budget"))
    input_size: int | None = Field(None, ge=32, description="scene side of the students and the prior (default: 64; "
                                                         "--full 128)", json_schema_extra=cli(panel="Budget"))
    figure_persons: int | None = Field(None, ge=1, le=16, description="test persons in results.png",
                                       json_schema_extra=cli(panel="Budget"))
    cache_samples: int | None = Field(None, ge=1, description="refined pseudo-labels cached per unlabelled person",
                                      json_schema_extra=cli(panel="Budget"))
