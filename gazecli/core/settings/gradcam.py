"""Settings of `gaze gradcam`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gazecli.core.settings.base import (DEVICE_HELP, SKIP_INVALID_HELP, DatasetKind, Device, ExistingDir,
    ExistingFile, GazeSettings, IntList, Precision, ShardSpec, cli)


class GradcamSettings(GazeSettings):
    """gaze gradcam"""

    data: ExistingDir | None = Field(None, description="dataset root (GazeFollow or VideoAttentionTarget layout)")
    split: Literal["train", "test"] = Field("train", description="annotation split to annotate")
    dataset: DatasetKind = Field("auto", description="dataset layout (auto: detected from the files)")
    vqa_model: str | None = Field(
        None, description="VQA model: a local folder, a Hugging Face id (e.g. Salesforce/blip-vqa-base) or a named "
                          "model", json_schema_extra=cli(panel="Model"))
    backend: Literal["auto", "blip", "vlm", "cnn"] = Field(
        "auto", description="blip: BlipForQuestionAnswering; vlm: LLaVA / PaliGemma / Qwen2-VL / Idefics3; cnn: the "
                            "convolutional GazeWorld VQA, classic Grad-CAM (auto: from the model's config)",
        json_schema_extra=cli(panel="Model"))
    layers: IntList = Field([-2], description="attention layers to store, comma-separated; negative counts from "
                                              "the end (-2: second-to-last, as the paper)",
                            json_schema_extra=cli(panel="Model"))
    num_beams: int = Field(1, ge=1, description="beam width of the answer (1: greedy; the paper, --compat: 100)",
                           json_schema_extra=cli(panel="Model"))
    max_answer_tokens: int = Field(10, ge=1, le=256, description="longest answer, in tokens (--compat: 200)",
                                   json_schema_extra=cli(panel="Model"))
    length_penalty: float = Field(1.0, description="beam score = log-probability / length^L (0: unnormalised, "
                                  "as the paper; --compat: 0)", json_schema_extra=cli(panel="Model"))
    compat: bool = Field(False, description="decode as the official run (beam 100, unnormalised, up to 200 tokens; "
                         "flags given win) and take the key noun's word index as the token step (docs/compat.md)",
                         json_schema_extra=cli(panel="Model"))
    image_size: int | None = Field(None, ge=16, le=4096, description="square side the image is resized to for the "
                                   "model (default: the model's own)", json_schema_extra=cli(panel="Model"))
    device: Device = Field("auto", description=DEVICE_HELP, json_schema_extra=cli(panel="Model"))
    precision: Precision = Field(
        "auto", description="model weights (auto: bf16 on CUDA where supported, else fp32)",
        json_schema_extra=cli(panel="Model"))
    question: str = Field("What is the person in the green bounding box looking at?",
                          description="question asked when the body box is drawn", json_schema_extra=cli(panel="Prompt"))
    question_no_box: str = Field("What is the person looking at?",
                                 description="question asked without a body box", json_schema_extra=cli(panel="Prompt"))
    draw_box: bool = Field(True, description="draw the person's body box in green (2 px) on the image",
                           json_schema_extra=cli(panel="Prompt"))
    answer_hint: str = Field("Answer with a single word or phrase.",
                             description="appended to the question for vlm models ('' for none)",
                             json_schema_extra=cli(panel="Prompt"))
    key_noun: Literal["auto", "spacy", "rule"] = Field(
        "auto", description="how the key noun is found (auto: spaCy when installed with en_core_web_sm, else the "
                            "built-in rule)", json_schema_extra=cli(panel="Prompt"))
    out: Path = Field(description="store folder (created; a rerun resumes it)", json_schema_extra=cli(short="-o"))
    batch_size: int = Field(16, ge=1, description="persons per forward pass")
    chunk_size: int = Field(256, ge=1, description="persons per store chunk (what a kill can cost)")
    limit: int | None = Field(None, ge=1, description="only the first N persons of the split")
    shard: ShardSpec | None = Field(None, description="i/n: compute only shard i of n (merge later with --merge)")
    merge: bool = Field(False, description="merge the chunks of --out (and of --merge-from stores) and exit")
    merge_from: list[Path] = Field([], description="with --merge: other store folders (other machines' shards) "
                                                   "to merge into --out")
    import_pickle: ExistingFile | None = Field(
        None, description="convert the authors' Grad-CAM pickle for --data/--split into --out (restricted "
                          "unpickler: plain data only) and exit")
    visualize: int = Field(0, ge=0, description="write N PNGs (image, prompt, answer, key noun, CAM) to "
                                                "OUT/visualizations/SPLIT")
    skip_invalid: bool = Field(False, description=SKIP_INVALID_HELP)
