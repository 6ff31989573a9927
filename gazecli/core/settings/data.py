"""Settings of `gaze data ...`: synth, check, import, split, baseline, train-vqa."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gazecli.core.constants import QUESTION_TYPES
from gazecli.core.settings.base import (DEVICE_HELP, SKIP_INVALID_HELP, DatasetKind, Device, ExistingDir,
    ExistingFile, GazeSettings, Precision, StrList, cli)

QuestionTypes = Annotated[list[Literal[QUESTION_TYPES]], StrList]  # type: ignore[valid-type]


class SynthSettings(GazeSettings):
    """gaze data synth"""

    out: Path = Field(description="folder to write GazeWorld into (created)", json_schema_extra=cli(short="-o"))
    train: int = Field(2000, ge=0, description="number of training images")
    test: int = Field(500, ge=0, description="number of test images")
    seed: int = Field(0, ge=0, description="random seed: same seed, same bytes")
    size: int = Field(128, ge=32, le=2048, description="image size in pixels (square)")
    difficulty: Literal["easy", "normal", "hard"] = Field("normal", description="scene difficulty preset")
    image_format: Literal["png", "jpg"] = Field("png", description="image file format")
    test_annotators: int = Field(10, ge=1, le=50, description="simulated annotators per test person")
    force: bool = Field(False, description="write into a non-empty folder (replaces an earlier GazeWorld)")


class CheckSettings(GazeSettings):
    """gaze data check"""

    root: ExistingDir = Field(description="dataset root folder", json_schema_extra=cli(argument=True))
    dataset: DatasetKind = Field("auto", description="dataset layout (auto: detected from the files)")
    decode: bool = Field(True, description="decode every image (--no-decode: only check that files exist)")
    skip_invalid: bool = Field(False, description=SKIP_INVALID_HELP)
    follow_symlinks: bool = Field(False, description="accept image files that are symbolic links out of ROOT")
    max_image_pixels: int | None = Field(None, ge=1, description="refuse images whose header claims more pixels "
                                                                 "(default 100000000; a decompression-bomb guard)")


class ImportSettings(GazeSettings):
    """gaze data import"""

    file: ExistingFile = Field(description="labels: CSV image,head_x,head_y,head_w,head_h,gaze_x,gaze_y[,eye_x,eye_y] "
                                           "or JSON (pixels; gaze 'outside' when out of frame)",
                               json_schema_extra=cli(argument=True))
    images: ExistingDir = Field(description="folder the labels' image paths are relative to")
    out: Path = Field(description="dataset root to write (GazeFollow layout)", json_schema_extra=cli(short="-o"))
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of the images drawn into the test split "
                                 "(only images whose persons all look inside the frame)")
    seed: int = Field(0, ge=0, description="seed of the train/test draw")
    force: bool = Field(False, description="write into a non-empty --out folder")


class SplitSettings(GazeSettings):
    """gaze data split"""

    root: ExistingDir = Field(description="GazeFollow-layout dataset root", json_schema_extra=cli(argument=True))
    ratio: float = Field(gt=0.0, lt=1.0, description="fraction of training persons that keep their labels")
    seed: int = Field(0, ge=0, description="random seed of the split")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                description="fraction of the labelled images held out for validation")
    out: Path | None = Field(None, description="output folder (default: ROOT/weak_supervision/seed<SEED>)")
    force: bool = Field(False, description="overwrite existing split files")
    skip_invalid: bool = Field(False, description=SKIP_INVALID_HELP)


class BaselineSettings(GazeSettings):
    """gaze data baseline"""

    root: ExistingDir = Field(description="GazeFollow-layout dataset root", json_schema_extra=cli(argument=True))
    kind: Literal["center", "prior"] = Field(
        "center", description="center: a Gaussian at the image centre; prior: mean training heatmap")
    split: Literal["test", "train"] = Field("test", description="persons to predict for")
    out: Path = Field(description="prediction file to write (.npz)", json_schema_extra=cli(short="-o"))
    heatmap_size: int = Field(64, ge=8, le=512, description="heatmap side in pixels")
    sigma: float = Field(3.0, gt=0, description="Gaussian sigma of the training heatmaps, in heatmap pixels")


class TrainVQASettings(GazeSettings):
    """gaze data train-vqa"""

    data: ExistingDir = Field(description="a GazeWorld root (gaze data synth) whose question-answer pairs train the "
                                          "model; its test split, when present, is scored at the end")
    arch: Literal["blip", "cnn"] = Field("blip", description="blip: a tiny BLIP (Grad-CAM on cross-attention); cnn: "
                                         "the convolutional late-fusion VQA (classic Grad-CAM on its last conv map)",
                                         json_schema_extra=cli(panel="Model"))
    gaze_weight: float = Field(3.0, gt=0, description="--arch cnn: loss weight of the gaze question",
                               json_schema_extra=cli(panel="Curriculum"))
    relative_hop: bool = Field(False, description="--arch cnn: the second attention pooling also sees positions "
                                                  "relative to the first one's (measured: it did not learn the gaze "
                                                  "question; README)", json_schema_extra=cli(panel="Model"))
    key_positions: bool = Field(False, description="--arch cnn: the attention keys also carry each cell's absolute "
                                                   "position (the trunk's CoordConv input already does)",
                                json_schema_extra=cli(panel="Model"))
    stem: Literal["strided", "patchify"] = Field("patchify", description="--arch cnn: the trunk's way to 1/8 "
                                                 "resolution: a 4x4 stride-4 conv then a 2x2 stride-2 conv, or three "
                                                 "stride-2 3x3 convs (about 1.3x the time per step)",
                                                 json_schema_extra=cli(panel="Model"))
    image_size: int = Field(128, ge=16, le=1024, description="square input side in pixels", json_schema_extra=cli(panel="Model"))
    patch_size: int = Field(16, ge=2, description="ViT patch side (image-size / patch-size is the Grad-CAM grid)",
                            json_schema_extra=cli(panel="Model"))
    hidden_size: int = Field(64, ge=8, description="width of the vision and text transformers (--arch cnn: of the "
                                                   "conv trunk; its Grad-CAM map has twice as many channels)",
                             json_schema_extra=cli(panel="Model"))
    vision_layers: int = Field(3, ge=1, description="vision transformer layers", json_schema_extra=cli(panel="Model"))
    text_layers: int = Field(2, ge=1, description="layers of the question encoder and of the answer decoder",
                             json_schema_extra=cli(panel="Model"))
    heads: int = Field(4, ge=1, description="attention heads", json_schema_extra=cli(panel="Model"))
    cross_attention_init: float = Field(2.0, gt=0, description="factor on BLIP's initial cross-attention weights of "
                                        "the question encoder (1: BLIP's; larger: image-dependent attention from "
                                        "the start)", json_schema_extra=cli(panel="Model"))
    questions: QuestionTypes = Field(
        ["colour", "count", "region", "where", "where-person", "next-to", "relation", "gaze", "direction", "cell"],
        description="question types to train on, comma-separated (" + ", ".join(QUESTION_TYPES) + ")",
        json_schema_extra=cli(panel="Curriculum"))
    questions_per_view: int = Field(6, ge=1, le=32, description="question slots per prompted image and step",
                                    json_schema_extra=cli(panel="Curriculum"))
    warmup_scenes: int = Field(4000, ge=0, description="large-object GazeWorld scenes (rendered in memory) that the "
                               "first --warmup-epochs train on; 0: none", json_schema_extra=cli(panel="Curriculum"))
    warmup_epochs: int = Field(3, ge=0, description="epochs on the large-object scenes before the --data world",
                               json_schema_extra=cli(panel="Curriculum"))
    warmup_questions: QuestionTypes = Field(
        ["colour", "count", "cell", "region", "where"],
        description="question types asked of the large-object scenes (those also in --questions)",
        json_schema_extra=cli(panel="Curriculum"))
    grounding_epochs: int = Field(3, ge=0, description="first epochs (warm-up included) without the gaze question "
                                                       "(grounding questions only)",
                                  json_schema_extra=cli(panel="Curriculum"))
    gaze_fraction: float = Field(0.5, ge=0.0, le=1.0, description="afterwards: chance that a view's first slot is its "
                                 "gaze question", json_schema_extra=cli(panel="Curriculum"))
    init: Path | None = Field(None, description="--arch cnn: start from these weights (a convolutional VQA folder: a "
                              "run's model/ or a shipped one, e.g. gazeworld-cnn); its config replaces the model flags",
                              json_schema_extra=cli(panel="Model"))
    max_images: int | None = Field(None, ge=2, description="use only the first N training images")
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="training images held out to select the best epoch")
    epochs: int = Field(9, ge=1, description="passes over the prompted images of the --data world (after the warm-up)")
    batch_size: int = Field(32, ge=1, description="prompted images per step (each with --questions-per-view questions)")
    lr: float = Field(1e-3, gt=0, description="AdamW peak learning rate (linear warm-up, cosine decay per step)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay (matrices only)")
    warmup_steps: int = Field(150, ge=0, description="steps of linear learning-rate warm-up")
    grad_clip: float = Field(1.0, ge=0, description="clip the gradient norm to this (0: off)")
    eval_every: int = Field(1, ge=1, description="score the validation images every N epochs")
    eval_limit: int = Field(300, ge=1, description="validation pairs scored per non-gaze question type (every gaze "
                                                   "question is scored)")
    seed: int = Field(0, ge=0, description="seed of the weights, the held-out images and the question draws")
    device: Device = Field("auto", description=DEVICE_HELP)
    precision: Precision = Field("auto", description="mixed precision on CUDA")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    checkpoint_every: int = Field(0, ge=0, description="also save weights/last every N steps (0: at epoch ends)")
    project: Path = Field(Path("runs"), description="parent folder of run folders")
    name: str = Field("vqa", description="run folder name (auto-incremented)")
    resume: Path | None = Field(None, description="continue the run in this folder exactly where it stopped")

    @model_validator(mode="after")
    def _check_vqa(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"--image-size {self.image_size} must be a multiple of --patch-size {self.patch_size}")
        if self.hidden_size % self.heads:
            raise ValueError(f"--hidden-size {self.hidden_size} must be a multiple of --heads {self.heads}")
        if not self.questions:
            raise ValueError("--questions: give at least one question type")
        self.questions = [t for t in QUESTION_TYPES if t in self.questions]  # canonical order, no repeats
        if self.init is not None and self.arch != "cnn":
            raise ValueError("--init needs --arch cnn (the BLIP VQA trains from scratch)")
        return self
