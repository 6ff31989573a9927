"""Settings every `gaze train-*` command shares (presets, label split, engine options) and
`gaze train-student`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gazecli.core.constants import STUDENT_MODELS, TEACHER_NAMES
from gazecli.core.settings.base import DEVICE_HELP, Device, ExistingDir, GazeSettings, Precision, cli

PRESETS: dict[str, dict] = {
    # the paper's GazeFollow setting (VAT, 224 px, 64x64 heatmaps)
    "gazefollow": {"backbone": "resnet50", "input_size": 224, "face_size": 224, "heatmap_size": 64, "sigma": 3.0},
    # GazeWorld on a CPU: tiny backbone, 128 px scenes, 32x32 heatmaps
    "gazeworld": {"backbone": "tiny", "input_size": 128, "face_size": 32, "heatmap_size": 32, "sigma": 1.5},
}


class TrainSettings(GazeSettings):
    """Options every training command shares."""

    data: ExistingDir = Field(description="dataset root (GazeFollow layout)")
    preset: Literal["auto", "gazefollow", "gazeworld"] = Field(
        "auto", description="defaults for model and input sizes (auto: gazeworld when ROOT holds a GazeWorld)")
    ratio: float = Field(0.1, gt=0.0, le=1.0, description="fraction of training persons with labels (1.0: all)")
    split_dir: Path | None = Field(
        None, description="folder of the split files (default: ROOT/weak_supervision/seed<SPLIT_SEED>, "
                          "generated in memory when absent)")
    split_seed: int = Field(0, ge=0, description="seed of the label split")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="labelled images held out for model selection")
    backbone: Literal["resnet50", "resnet18", "tiny"] | None = Field(None, description="pathway backbone (preset)")
    input_size: int | None = Field(None, ge=32, description="scene side in pixels (preset)")
    face_size: int | None = Field(None, ge=16, description="face crop side in pixels (preset)")
    heatmap_size: int | None = Field(None, ge=8, description="heatmap side (preset)")
    sigma: float | None = Field(None, gt=0, description="target Gaussian sigma in heatmap pixels (preset)")
    augment: bool = Field(True, description="training augmentation (jitter, crop, flip, colour)")
    epochs: int = Field(40, ge=1, description="training epochs")
    batch_size: int = Field(48, ge=1, description="persons per batch (over all processes)")
    lr: float = Field(2.5e-4, gt=0, description="Adam learning rate")
    seed: int = Field(0, ge=0, description="seed of python, numpy, torch and the data order")
    device: Device = Field("auto", description=DEVICE_HELP)
    precision: Precision = Field("auto", description="mixed precision on CUDA")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    eval_every: int = Field(1, ge=1, description="evaluate every N epochs")
    eval_batch_size: int = Field(64, ge=1, description="persons per evaluation batch")
    select_on: Literal["val", "test", "last"] = Field(
        "val", description="split that selects the best weights (test: the official code's habit; biased; last: no "
                           "selection, the weights of the last step)")
    select_metric: Literal["avg_l2", "auc", "min_l2"] = Field("avg_l2", description="metric that selects the best weights")
    checkpoint_every: int = Field(0, ge=0, description="also save weights/last every N steps (0: at epoch ends)")
    project: Path = Field(Path("runs"), description="parent folder of run folders")
    name: str = Field("run", description="run folder name (auto-incremented: run, run2, ...)")
    resume: Path | None = Field(None, description="continue the run in this folder exactly where it stopped")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, values):
        if not isinstance(values, dict):
            return values
        preset = values.get("preset", "auto")
        if preset == "auto":
            data = values.get("data")
            preset = "gazeworld" if data is not None and (Path(data) / "gazeworld.json").is_file() else "gazefollow"
        for key, value in {**cls.dependent_defaults(preset, values), **cls.preset_values(preset)}.items():
            if values.get(key) is None:
                values[key] = value
        return values

    @classmethod
    def dependent_defaults(cls, preset: str, values: dict) -> dict:
        """Defaults that depend on other options' values (e.g. the student's teacher)."""
        return {}

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        """Defaults a preset gives (options set by the user win); commands add their own."""
        return dict(PRESETS.get(preset, {}))


# the GazeWorld preset's student (docs/gazeworld.md: what makes it learn in minutes of CPU)
GAZEWORLD_STUDENT = {"model": "gw-student", "optimizer": "adamw", "weight_decay": 1e-4, "schedule": "cosine",
                     "lr": 4e-3, "augment_kinds": "flip"}


class TrainStudentSettings(TrainSettings):
    """gaze train-student"""

    model: Literal[STUDENT_MODELS] | None = Field(  # type: ignore[valid-type]
        None, description="student model (vat-gc also reads --gradcam; gw-student: the small GazeWorld student; "
                          "preset: gw-student for GazeWorld, vat otherwise)")
    optimizer: Literal["adam", "adamw"] | None = Field(None, description="optimiser (preset: adamw for GazeWorld, "
                                                       "adam as the paper otherwise)")
    weight_decay: float | None = Field(None, ge=0, description="AdamW weight decay (preset: 1e-4 for GazeWorld)")
    schedule: Literal["step", "cosine"] | None = Field(
        None, description="learning rate: step (x --gamma at --milestones, the paper's) or cosine (per step to 0 over "
                          "the run; preset for GazeWorld)")
    augment_kinds: Literal["all", "flip"] | None = Field(
        None, description="with --augment: all (jitter, crop, flip, colour) or flip only (preset for GazeWorld)")
    init: str = Field("random", description="initial weights: random, imagenet, or a file "
                                            "(e.g. Chong et al.'s initial_weights_for_spatial_training.pt)")
    teacher: Literal[TEACHER_NAMES] = Field(  # type: ignore[valid-type]
        "none", description="pseudo-labels for the unlabelled persons: none (labelled only), gradcam (raw Grad-CAM), "
                            "diffusion (Grad-CAM refined by the diffusion prior: the method), noise (the prior sampled "
                            "from noise), vat / vat-gc (a supervised student)", json_schema_extra=cli(panel="Teacher"))
    teacher_checkpoint: Path | None = Field(
        None, description="the teacher: a train-diffusion / mean-teacher run (diffusion, noise) or a student run "
                          "(vat, vat-gc), folder or weights file", json_schema_extra=cli(panel="Teacher"))
    teacher_network: Literal["auto", "student", "teacher"] = Field(
        "auto", description="which network of a mean-teacher checkpoint (auto: the one its run selected)",
        json_schema_extra=cli(panel="Teacher"))
    gradcam: Path | None = Field(None, description="Grad-CAM store of the train split (gaze gradcam --out)",
                                 json_schema_extra=cli(panel="Teacher"))
    gradcam_layer: int | None = Field(None, description="store layer to use (default: the store's first)",
                                      json_schema_extra=cli(panel="Teacher"))
    denoise_steps: int | None = Field(None, ge=1, description="SDEdit noise level of the Grad-CAM (default: 200 at "
                                      "ratio <= 0.05, else 250, as the paper)", json_schema_extra=cli(panel="Teacher"))
    ddim_steps: int = Field(2, ge=1, description="DDIM steps of the refinement", json_schema_extra=cli(panel="Teacher"))
    eta: float = Field(1.0, ge=0.0, description="DDIM eta of the refinement (official 1.0)",
                       json_schema_extra=cli(panel="Teacher"))
    teacher_samples: int = Field(1, ge=1, description="average this many refinements per person (official "
                                 "--inference_times)", json_schema_extra=cli(panel="Teacher"))
    labeled_batch_size: int | None = Field(None, ge=1, description="labelled persons per batch with a teacher "
                                           "(default 20 of 80)", json_schema_extra=cli(panel="Teacher"))
    pseudo_inout: Literal["auto", "all", "predicted", "ground-truth"] = Field(
        "auto", description="which unlabelled persons get a pseudo-label loss: all (with a usable target), predicted "
                            "(the student's own in/out head says in frame; needs --inout-weight), ground-truth (reads "
                            "their hidden in/out flag: the official code's label leakage; --compat); auto: predicted "
                            "with an in/out head, else all", json_schema_extra=cli(panel="Teacher"))
    inout_threshold: float = Field(0.5, gt=0, lt=1, description="in-frame probability above which --pseudo-inout "
                                   "predicted keeps a person", json_schema_extra=cli(panel="Teacher"))
    pseudo_weight: float = Field(1.0, ge=0, description="weight of pseudo-labelled persons in the loss (official 1)",
                                 json_schema_extra=cli(panel="Teacher"))
    compat: bool = Field(False, description="reproduce the official code (docs/compat.md): its sampler quirks, its "
                         "Grad-CAM crop, the ground-truth in/out flag of unlabelled persons",
                         json_schema_extra=cli(panel="Teacher"))
    pseudo_cache: Path | None = Field(None, description="precompute refined pseudo-labels into this folder once and "
                                      "draw one per epoch (default: online, every batch)",
                                      json_schema_extra=cli(panel="Teacher"))
    cache_samples: int = Field(4, ge=1, description="refined samples per person in --pseudo-cache",
                               json_schema_extra=cli(panel="Teacher"))
    pseudo_report: bool = Field(False, description="only score the pseudo-labels (raw Grad-CAM and the teacher's) of "
                                "the unlabelled persons against their hidden labels, print the table and exit",
                                json_schema_extra=cli(panel="Teacher"))
    report_student: Path | None = Field(None, description="with --pseudo-report: also score this student (run folder "
                                        "or weights) on the same persons: the baseline a pseudo-label must beat",
                                        json_schema_extra=cli(panel="Teacher"))
    report_prior: bool = Field(False, description="with --pseudo-report and --teacher diffusion: also score the "
                               "prior sampled from pure noise (the noise teacher: the same prior, no Grad-CAM) on the "
                               "same persons: what the Grad-CAM must add to", json_schema_extra=cli(panel="Teacher"))
    milestones: list[int] | None = Field(None, description="epochs at which the learning rate is multiplied by "
                                         "--gamma (default 25,40; with a teacher 15)")
    gamma: float = Field(0.2, gt=0, le=1, description="learning-rate factor at each milestone")
    heatmap_loss_on: Literal["all", "in-frame"] | None = Field(
        None, description="labelled persons in the heatmap loss (all: out-of-frame targets are zero maps, as the "
                          "official VAT baseline; default with a teacher: in-frame, as the official student)")
    inout_weight: float = Field(0.0, ge=0, description="weight of the in/out BCE loss (0: no in/out head, as the paper)")
    loss: Literal["mse", "kl"] | None = Field(
        None, description="heatmap loss: mse (the paper's, x 10000) or kl (cross-entropy of the spatial softmax "
                          "against the normalised target; learns far faster from scratch; the GazeWorld preset)")
    loss_scale: float | None = Field(None, gt=0, description="the heatmap loss is multiplied by this "
                                     "(default: 10000 for mse, as the official code; 1 for kl)")
    coords: bool | None = Field(None, description="head-relative coordinate channels on the scene input "
                                "(CoordConv; default: on for the GazeWorld preset, off for the paper's model)")

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":  # the small student learns in minutes of CPU with these (docs/gazeworld.md)
            values.update(epochs=30, batch_size=32, lr=1e-3, milestones=[20], loss="kl", coords=True)
            values.update(GAZEWORLD_STUDENT)
        else:
            values.update(loss="mse", coords=False, model="vat", optimizer="adam", weight_decay=0.0,
                          schedule="step", augment_kinds="all")
        return values

    @classmethod
    def dependent_defaults(cls, preset: str, values: dict) -> dict:
        kind = values.get("loss") or ("kl" if preset == "gazeworld" else "mse")
        out: dict = {"loss_scale": 1.0 if kind == "kl" else 10000.0}
        teacher = values.get("teacher", "none")
        if teacher in (None, "none"):
            # the official VAT baseline trains out-of-frame persons towards an all-zero map (MSE only)
            out.update(milestones=[25, 40], heatmap_loss_on="all" if kind == "mse" else "in-frame")
            return out
        ratio = float(values.get("ratio") or 0.1)
        out.update(heatmap_loss_on="in-frame", denoise_steps=200 if ratio <= 0.05 else 250)
        if preset != "gazeworld":  # the official student (docs/design.md, "Student")
            out.update(epochs=25, batch_size=80, labeled_batch_size=20, milestones=[15])
        else:
            out.update(labeled_batch_size=8)
        return out
