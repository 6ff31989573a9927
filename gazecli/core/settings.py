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

from pydantic import AfterValidator, Field, ValidationError
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
    message = message[:1].lower() + message[1:]
    got = first.get("input")
    shown = "" if got is None or isinstance(got, dict) else f" (got {got!r})"
    more = len(error.errors()) - 1
    return f"{where}: {message}{shown}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


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

    predictions: ExistingFile = Field(description="prediction file (.npz: path, eye, heatmap[, inout])")
    data: ExistingDir = Field(description="dataset root the predictions are for")
    split: Literal["test", "train"] = Field("test", description="annotation split to score against")
    dataset: DatasetKind = Field("auto", description="dataset layout (auto: detected from the files)")
    auc_resolution: Literal["native", "heatmap"] = Field(
        "native", description="GazeFollow AUC at the original image size (native) or on the heatmap grid")
    out: Path | None = Field(None, description="write the metrics here as JSON", json_schema_extra=cli(short="-o"))
    device: Device = Field("auto", description="where to compute: auto, cpu, cuda, cuda:N or mps")
    batch_size: int = Field(256, ge=1, description="persons per metric batch")
    skip_invalid: bool = Field(False, description="skip malformed annotation rows (counted) instead of failing")
