"""Settings: every command's options are one Pydantic model.

Values come from, highest first: keyword arguments (the CLI's flags), `GAZE_*` environment
variables, a TOML file (`--config`), the model's defaults. `load_settings` resolves them and
turns a validation failure into one `SettingsError` line that names the option as the user
wrote it (`--ratio`, `GAZE_RATIO` or `config.toml: ratio`) and what is accepted.

This module imports pydantic only (no torch), so the CLI can build its options from it.
"""

from __future__ import annotations

import contextvars
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from gazecli.core.errors import SettingsError

ENV_PREFIX = "GAZE_"
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("gaze_config_file", default=None)


# --------------------------------------------------------------------------------------------
# reusable field types


def _existing_dir(value: Path) -> Path:
    if not Path(value).is_dir():
        raise ValueError(f"folder not found: {value}")
    return Path(value)


def _existing_file(value: Path) -> Path:
    if not Path(value).is_file():
        raise ValueError(f"file not found: {value}")
    return Path(value)


ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
Device = Annotated[str, AfterValidator(lambda v: _device(v))]


def _device(value: str) -> str:
    v = value.strip().lower()
    if v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise ValueError("expected auto, cpu, cuda, cuda:N or mps")


def cli(*, argument: bool = False, short: str | None = None, panel: str | None = None) -> dict:
    """Extra field metadata for the CLI: a positional argument, a short flag, a help panel."""
    return {"cli": {"argument": argument, "short": short, "panel": panel}}


# --------------------------------------------------------------------------------------------
# the base class and its loader


class GazeSettings(BaseSettings):
    """Base of every command's settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file.get()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)


def load_settings(cls: type[GazeSettings], flags: dict[str, Any] | None = None, config: Path | None = None):
    """Resolve `cls` from flags, GAZE_* variables, the TOML file and defaults (in that order)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if config is not None:
        config = Path(config)
        if not config.is_file():
            raise SettingsError(f"--config: file not found: {config}")
        _check_toml(config)
    token = _config_file.set(config)
    try:
        return cls(**flags)
    except ValidationError as e:
        raise SettingsError(_describe(cls, e, flags, config)) from None
    finally:
        _config_file.reset(token)


def _check_toml(path: Path) -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SettingsError(f"--config {path.name}: not valid TOML ({e})") from None


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _describe(cls, error: ValidationError, flags: dict, config: Path | None) -> str:
    """One line for the first validation error, naming where the bad value came from."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if not field:  # a rule across options
        return _lower_first(first["msg"].removeprefix("Value error, "))
    env_name = ENV_PREFIX + field.upper()
    info = cls.model_fields.get(field)
    extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
    as_flag = field.upper() if extra.get("cli", {}).get("argument") else flag_name(field)
    if field in flags:
        where = as_flag
    elif env_name in {k.upper() for k in os.environ}:
        where = env_name
    elif config is not None:
        where = f"{config.name}: {field}"
    else:
        where = as_flag
    kind = first["type"]
    if kind == "missing":
        return f"{where} is required"
    if kind == "extra_forbidden":
        known = ", ".join(sorted(cls.model_fields))
        return f"{where}: unknown option (known options: {known})"
    message = first["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    message = _lower_first(message)
    got = first.get("input")
    shown = "" if got is None or isinstance(got, dict) else f" (got {got!r})"
    more = len(error.errors()) - 1
    return f"{where}: {message}{shown}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _lower_first(message: str) -> str:
    """'Input should be ...' -> 'input should be ...'; leaves 'SOURCE ...' alone."""
    if len(message) > 1 and message[1].islower():
        return message[:1].lower() + message[1:]
    return message


# --------------------------------------------------------------------------------------------
# TOML output for --print-config (and the run folders of later commands)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(settings: GazeSettings) -> str:
    """The resolved settings as TOML that `--config` reads back (unset options are comments)."""
    lines = [f"# gaze settings: {type(settings).__name__}"]
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if field.description:
            lines.append(f"# {field.description}")
        if value is None:
            lines.append(f"# {name} =  (not set)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# command settings (one model per subcommand)

DatasetKind = Literal["auto", "gazefollow", "videoatt"]


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
    skip_invalid: bool = Field(False, description="skip malformed annotation rows (counted) instead of failing")


class SplitSettings(GazeSettings):
    """gaze data split"""

    root: ExistingDir = Field(description="GazeFollow-layout dataset root", json_schema_extra=cli(argument=True))
    ratio: float = Field(gt=0.0, lt=1.0, description="fraction of training persons that keep their labels")
    seed: int = Field(0, ge=0, description="random seed of the split")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                description="fraction of the labelled images held out for validation")
    out: Path | None = Field(None, description="output folder (default: ROOT/weak_supervision/seed<SEED>)")
    force: bool = Field(False, description="overwrite existing split files")
    skip_invalid: bool = Field(False, description="skip malformed annotation rows (counted) instead of failing")


class BaselineSettings(GazeSettings):
    """gaze data baseline"""

    root: ExistingDir = Field(description="GazeFollow-layout dataset root", json_schema_extra=cli(argument=True))
    kind: Literal["center", "prior"] = Field(
        "center", description="center: a Gaussian at the image centre; prior: mean training heatmap")
    split: Literal["test", "train"] = Field("test", description="persons to predict for")
    out: Path = Field(description="prediction file to write (.npz)", json_schema_extra=cli(short="-o"))
    heatmap_size: int = Field(64, ge=8, le=512, description="heatmap side in pixels")
    sigma: float = Field(3.0, gt=0, description="Gaussian sigma of the training heatmaps, in heatmap pixels")


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
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="inference precision (AMP on CUDA)")
    batch_size: int = Field(64, ge=1, description="persons per batch")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    skip_invalid: bool = Field(False, description="skip malformed annotation rows (counted) instead of failing")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.predictions is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of --predictions and --checkpoint")
        if self.predictions is not None and self.split == "val":
            raise ValueError("--split val needs --checkpoint (a prediction file names its persons itself)")
        return self


# --------------------------------------------------------------------------------------------
# training (shared by every `gaze train-*` command)

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
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="mixed precision on CUDA")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    eval_every: int = Field(1, ge=1, description="evaluate every N epochs")
    eval_batch_size: int = Field(64, ge=1, description="persons per evaluation batch")
    select_on: Literal["val", "test"] = Field(
        "val", description="split that selects the best weights (test: the official code's habit; biased)")
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


class PredictSettings(GazeSettings):
    """gaze predict"""

    source: Path = Field(description="an image, a folder of images, or a video", json_schema_extra=cli(argument=True))
    checkpoint: Path = Field(description="a student: run folder (its best weights) or .safetensors file")
    head: list[str] = Field([], description="head box x,y,w,h in pixels (repeat for several persons); "
                                            "none: heads are detected")
    heads_csv: ExistingFile | None = Field(None, description="CSV file,x,y,w,h of head boxes per image (folders)")
    every: int = Field(1, ge=1, description="video: predict every N-th frame")
    save_heatmaps: bool = Field(False, description="also write every heatmap to heatmaps.npz")
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="mixed precision on CUDA")
    project: Path = Field(Path("runs"), description="parent folder of output folders")
    name: str = Field("run", description="output folder name under PROJECT/predict (auto-incremented)")

    @model_validator(mode="after")
    def _source_exists(self):
        if not self.source.exists():
            raise ValueError(f"SOURCE not found: {self.source}")
        return self


class TrainStudentSettings(TrainSettings):
    """gaze train-student"""

    model: Literal["vat", "vat-gc"] = Field("vat", description="student model (vat-gc also reads --gradcam)")
    init: str = Field("random", description="initial weights: random, imagenet, or a file "
                                            "(e.g. Chong et al.'s initial_weights_for_spatial_training.pt)")
    teacher: Literal["none", "gradcam", "diffusion", "noise", "vat", "vat-gc"] = Field(
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
    compat: bool = Field(False, description="reproduce the official code: its sampler quirks and the ground-truth "
                         "in/out flag of unlabelled persons", json_schema_extra=cli(panel="Teacher"))
    pseudo_cache: Path | None = Field(None, description="precompute refined pseudo-labels into this folder once and "
                                      "draw one per epoch (default: online, every batch)",
                                      json_schema_extra=cli(panel="Teacher"))
    cache_samples: int = Field(4, ge=1, description="refined samples per person in --pseudo-cache",
                               json_schema_extra=cli(panel="Teacher"))
    pseudo_report: bool = Field(False, description="only score the pseudo-labels (raw Grad-CAM and the teacher's) of "
                                "the unlabelled persons against their hidden labels, print the table and exit",
                                json_schema_extra=cli(panel="Teacher"))
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
        if preset == "gazeworld":  # the tiny model learns in minutes of CPU with these (see README: GazeWorld)
            values.update(epochs=30, batch_size=32, lr=1e-3, milestones=[20], loss="kl", coords=True)
        else:
            values.update(loss="mse", coords=False)
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
        if preset != "gazeworld":  # the official student (method-spec §5)
            out.update(epochs=25, batch_size=80, labeled_batch_size=20, milestones=[15])
        else:
            out.update(labeled_batch_size=8)
        return out


# --------------------------------------------------------------------------------------------
# gaze gradcam (issue 4)


def _shard_spec(value: str | None) -> str | None:
    if value is None:
        return None
    import re

    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ValueError("expected i/n with 0 <= i < n (e.g. 0/4: the first of four shards)")
    return f"{int(m.group(1))}/{int(m.group(2))}"


def _int_list(value: Any) -> Any:
    """`--layers 9,10 --layers 11` -> [9, 10, 11] (flags arrive as strings)."""
    if isinstance(value, (int, str)):
        value = [value]
    if isinstance(value, (list, tuple)):
        out: list = []
        for v in value:
            out.extend(p.strip() for p in v.split(",") if p.strip()) if isinstance(v, str) else out.append(v)
        return out
    return value


from pydantic import BeforeValidator  # noqa: E402

ShardSpec = Annotated[str, AfterValidator(_shard_spec)]
IntList = Annotated[list[int], BeforeValidator(_int_list)]


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
    num_beams: int = Field(1, ge=1, description="beam width of the answer (1: greedy; the paper used 100)",
                           json_schema_extra=cli(panel="Model"))
    max_answer_tokens: int = Field(10, ge=1, le=256, description="longest answer, in tokens",
                                   json_schema_extra=cli(panel="Model"))
    image_size: int | None = Field(None, ge=16, le=4096, description="square side the image is resized to for the "
                                   "model (default: the model's own)", json_schema_extra=cli(panel="Model"))
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps", json_schema_extra=cli(panel="Model"))
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
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
    skip_invalid: bool = Field(False, description="skip malformed annotation rows (counted) instead of failing")


# --------------------------------------------------------------------------------------------
# the diffusion annotation prior: gaze train-diffusion and gaze mean-teacher (issue 5)


class DiffusionSettings(TrainSettings):
    """Options of the conditional heatmap diffusion model (method-spec §3), shared by
    train-diffusion and mean-teacher. The denoiser's image size is --heatmap-size."""

    init: str = Field("random", description="initial weights of the scene+head encoder: random, imagenet, or a file "
                                            "(e.g. Chong et al.'s initial_weights_for_spatial_training.pt)")
    epochs: int | None = Field(None, ge=1, description="training epochs (default: the paper's for --ratio)")
    model_channels: int | None = Field(None, ge=1, description="UNet base channels (preset; paper 64)",
                                       json_schema_extra=cli(panel="Denoiser"))
    channel_mult: IntList | None = Field(None, description="UNet channel multiplier per level, comma-separated "
                                                           "(preset; paper 1,2,3,4)",
                                         json_schema_extra=cli(panel="Denoiser"))
    num_res_blocks: int | None = Field(None, ge=1, description="residual blocks per UNet level (preset; paper 2)",
                                       json_schema_extra=cli(panel="Denoiser"))
    attention_resolutions: IntList | None = Field(
        None, description="feature-map sides with self-attention, comma-separated (preset; paper 16,8)",
        json_schema_extra=cli(panel="Denoiser"))
    num_heads: int | None = Field(None, ge=1, description="attention heads (preset; paper 4)",
                                  json_schema_extra=cli(panel="Denoiser"))
    norm_groups: int | None = Field(None, ge=1, description="GroupNorm groups of the UNet (preset; paper 32)",
                                    json_schema_extra=cli(panel="Denoiser"))
    coords: bool | None = Field(None, description="head-relative coordinate channels on the encoder's scene input "
                                "(CoordConv; preset: on for GazeWorld, off for the paper's model)",
                                json_schema_extra=cli(panel="Denoiser"))
    gradient_checkpointing: bool = Field(False, description="recompute attention in the backward pass (saves memory; "
                                                            "the official code always does)",
                                         json_schema_extra=cli(panel="Denoiser"))
    diffusion_steps: int = Field(500, ge=2, description="T, noising steps of the linear schedule",
                                 json_schema_extra=cli(panel="Diffusion"))
    noise_scale: float = Field(2.0, gt=0, description="s of the input mapping x' = (2 x - 1) s",
                               json_schema_extra=cli(panel="Diffusion"))
    inference_steps: int = Field(10, ge=1, description="DDIM steps when sampling from pure noise for evaluation",
                                 json_schema_extra=cli(panel="Diffusion"))
    eta: float = Field(1.0, ge=0, description="DDIM eta (1: stochastic, as the official default; 0: deterministic)",
                       json_schema_extra=cli(panel="Diffusion"))
    inference_samples: int = Field(1, ge=1, description="samples averaged per person when evaluating (the official "
                                                        "--inference_times)", json_schema_extra=cli(panel="Diffusion"))
    compat: bool = Field(False, description="reproduce the official code's sampler (and, for mean-teacher, its "
                                            "teacher/student choices) instead of the corrected behaviour",
                         json_schema_extra=cli(panel="Diffusion"))
    heatmap_loss_on: Literal["in-frame", "all"] = Field(
        "in-frame", description="labelled persons in the x0 loss (in-frame: the official --onlyin)")
    loss_scale: float = Field(10000.0, gt=0, description="the x0 MSE is multiplied by this (official 10000)")

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":  # a 0.28 M-parameter UNet at 32x32 that trains on a CPU in minutes
            values.update(model_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attention_resolutions=[8],
                          num_heads=4, norm_groups=8, coords=True)
        else:  # the paper's denoiser (spec §3.1)
            values.update(model_channels=64, channel_mult=[1, 2, 3, 4], num_res_blocks=2,
                          attention_resolutions=[16, 8], num_heads=4, norm_groups=32, coords=False)
        return values

    @classmethod
    def paper_epochs(cls, ratio: float) -> int:
        return 150 if ratio < 0.2 else 100

    @model_validator(mode="after")
    def _check_diffusion(self):
        if self.epochs is None:
            self.epochs = self.paper_epochs(self.ratio)
        if self.inference_steps > self.diffusion_steps:
            raise ValueError(f"--inference-steps ({self.inference_steps}) exceeds --diffusion-steps "
                             f"({self.diffusion_steps})")
        from gazecli.core.models.diffusion_unet import DenoiserConfig

        try:
            DenoiserConfig(image_size=self.heatmap_size, model_channels=self.model_channels,
                           channel_mult=tuple(self.channel_mult), num_res_blocks=self.num_res_blocks,
                           attention_resolutions=tuple(self.attention_resolutions), num_heads=self.num_heads,
                           norm_groups=self.norm_groups)
        except ValueError as e:
            raise ValueError(f"denoiser sizes: {e}") from None
        return self


class TrainDiffusionSettings(DiffusionSettings):
    """gaze train-diffusion"""

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":
            values.update(epochs=60, batch_size=32, lr=1e-3, eval_every=5, eval_batch_size=128)
        else:  # spec §3.3 / §8: Adam 5e-5, batch 48, evaluation every 2 epochs
            values.update(batch_size=48, lr=5e-5, eval_every=2)
        return values


class MeanTeacherSettings(DiffusionSettings):
    """gaze mean-teacher"""

    labeled_batch_size: int | None = Field(None, ge=1, description="labelled persons in each batch (preset; paper 10 "
                                                                   "of 40)")
    from_checkpoint: Path | None = Field(
        None, description="start student and teacher from this train-diffusion (or mean-teacher) run folder or "
                          "weights file (the official code starts from scratch)", json_schema_extra=cli(short="--from"))
    consistency: float = Field(4000.0, ge=0, description="weight of the consistency loss after the ramp-up",
                               json_schema_extra=cli(panel="Mean Teacher"))
    consistency_type: Literal["kl", "mse"] = Field(
        "kl", description="kl: KL(teacher || student) of the pixel softmaxes; mse: of the raw maps",
        json_schema_extra=cli(panel="Mean Teacher"))
    consistency_rampup: int = Field(5, ge=0, description="epochs of the sigmoid ramp-up of the consistency weight",
                                    json_schema_extra=cli(panel="Mean Teacher"))
    ema_decay: float = Field(0.99, ge=0, le=1, description="largest EMA factor of the teacher",
                             json_schema_extra=cli(panel="Mean Teacher"))
    ema_every: int = Field(15, ge=1, description="the EMA warm-up counts one step per N optimiser steps: "
                                                 "alpha = min(1 - 1/(step // N + 1), decay)",
                           json_schema_extra=cli(panel="Mean Teacher"))
    teacher_steps: int = Field(10, ge=1, description="DDIM steps of the teacher's sample from pure noise",
                               json_schema_extra=cli(panel="Mean Teacher"))
    select_network: Literal["teacher", "student"] = Field(
        "teacher", description="network whose validation metric selects the best weights and that eval / "
                               "train-student use (the official code kept the student)",
        json_schema_extra=cli(panel="Mean Teacher"))

    @classmethod
    def preset_values(cls, preset: str) -> dict:
        values = super().preset_values(preset)
        if preset == "gazeworld":
            values.update(epochs=8, batch_size=40, labeled_batch_size=10, lr=1e-3, eval_every=2,
                          eval_batch_size=128)
        else:  # spec §4 / §8: Adam 5e-5, 40 persons of which 10 labelled
            values.update(batch_size=40, labeled_batch_size=10, lr=5e-5, eval_every=2)
        return values

    @classmethod
    def paper_epochs(cls, ratio: float) -> int:
        return 40 if ratio <= 0.05 else 60 if ratio <= 0.1 else 80

    @model_validator(mode="after")
    def _check_mean_teacher(self):
        if self.ratio >= 1.0:
            raise ValueError("mean-teacher needs unlabelled persons: --ratio must be below 1")
        if not self.labeled_batch_size < self.batch_size:
            raise ValueError(f"--labeled-batch-size ({self.labeled_batch_size}) must be smaller than --batch-size "
                             f"({self.batch_size})")
        if self.teacher_steps > self.diffusion_steps:
            raise ValueError(f"--teacher-steps ({self.teacher_steps}) exceeds --diffusion-steps ({self.diffusion_steps})")
        return self


# --------------------------------------------------------------------------------------------
# gaze data train-vqa: the GazeWorld VQA model (issue 6)

VQA_QUESTION_TYPES = ("colour", "count", "region", "where", "where-person", "next-to", "relation", "gaze", "direction",
                      "cell")


def _str_list(value: Any) -> Any:
    """`--questions gaze,count --questions colour` -> ["gaze", "count", "colour"]."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        return [p.strip() for v in value for p in str(v).split(",") if p.strip()]
    return value


QuestionTypes = Annotated[list[Literal[VQA_QUESTION_TYPES]], BeforeValidator(_str_list)]  # type: ignore[valid-type]


class TrainVQASettings(GazeSettings):
    """gaze data train-vqa"""

    data: ExistingDir = Field(description="a GazeWorld root (gaze data synth) whose question-answer pairs train the "
                                          "model; its test split, when present, is scored at the end")
    arch: Literal["blip", "cnn"] = Field("blip", description="blip: a tiny BLIP (Grad-CAM on cross-attention); cnn: "
                                         "the convolutional late-fusion VQA (classic Grad-CAM on its last conv map)",
                                         json_schema_extra=cli(panel="Model"))
    gaze_weight: float = Field(3.0, gt=0, description="--arch cnn: loss weight of the gaze question",
                               json_schema_extra=cli(panel="Curriculum"))
    relative_hop: bool = Field(True, description="--arch cnn: the second attention pooling sees positions relative "
                                                 "to the first one's", json_schema_extra=cli(panel="Model"))
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
        description="question types to train on, comma-separated (" + ", ".join(VQA_QUESTION_TYPES) + ")",
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
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="mixed precision on CUDA")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    threads: int = Field(0, ge=0, description="CPU threads of torch (0: its default; 1 is often fastest for this tiny "
                                             "model on a busy machine)")
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
        self.questions = [t for t in VQA_QUESTION_TYPES if t in self.questions]  # canonical order, no repeats
        return self


# --------------------------------------------------------------------------------------------
# gaze demo (issue 8)


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
    seed: int = Field(0, ge=0, description="seed of the world, the split and every training run")
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    full: bool = Field(False, description="a larger world and longer training (for a GPU) instead of the "
                                          "10-minute CPU configuration")
    vqa_model: str = Field("gazeworld", description="VQA model of the Grad-CAM stage (gazeworld: the shipped one)")
    train_vqa: bool = Field(False, description="retrain the GazeWorld VQA on this world's question-answer pairs first")
    sweep: bool = Field(False, description="VQA-quality sweep (an ablation): the demo per seed with the shipped VQA "
                                           "and SIMULATED VQAs of answer accuracy --sweep-p; --out gets sweep.md/.json/.png",
                        json_schema_extra=cli(panel="Sweep"))
    sweep_seeds: IntList = Field([0, 1, 2], description="--sweep: seeds", json_schema_extra=cli(panel="Sweep"))
    sweep_p: Annotated[list[str], BeforeValidator(_str_list), AfterValidator(_sweep_p)] = Field(
        ["guess", "0.5", "0.75", "1.0"], description="--sweep: simulated answer accuracies (guess: the gaze-free "
                                                    "most-frequent-class guess)", json_schema_extra=cli(panel="Sweep"))
    sweep_shipped: bool = Field(True, description="--sweep: also the --vqa-model row (the method)",
                                json_schema_extra=cli(panel="Sweep"))
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
    input_size: int | None = Field(None, ge=32, description="scene side of the students and the prior (default: 96; "
                                                         "--full 128)", json_schema_extra=cli(panel="Budget"))
    figure_persons: int | None = Field(None, ge=1, le=16, description="test persons in results.png",
                                       json_schema_extra=cli(panel="Budget"))
    cache_samples: int | None = Field(None, ge=1, description="refined pseudo-labels cached per unlabelled person",
                                      json_schema_extra=cli(panel="Budget"))
