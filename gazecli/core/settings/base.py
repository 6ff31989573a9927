"""Settings: every command's options are one Pydantic model (docs/design.md, "Settings").

Values come from, highest first: keyword arguments (the CLI's flags), `GAZE_*` environment
variables, a TOML file (`--config`), the model's defaults. `load_settings` resolves them and
turns a validation failure into one `SettingsError` line that names the option as the user
wrote it (`--ratio`, `GAZE_RATIO` or `config.toml: ratio`) and what is accepted.

This package imports pydantic only (no torch), so the CLI can build its options from it.
base.py: the base class, its loader, shared field types, TOML output; one module per command
family for the models.
"""

from __future__ import annotations

import contextvars
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource
from pydantic_settings import SettingsError as PydanticSettingsError

from gazecli.core.constants import PRECISIONS
from gazecli.core.errors import SettingsError
from gazecli.core.settings.option_source import ENV_PREFIX

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

    threads: int = Field(0, ge=0, description="CPU threads (0: the cores this process may use, minus DataLoader "
                         "workers; OpenMP waits passively; docs/threads.md)", json_schema_extra=cli(panel="Settings"))

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        """`seed = true` (TOML) is not the number 1."""
        if isinstance(value, bool) and _is_number_field(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, found {str(value).lower()}")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file.get()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)


def _is_number_field(annotation) -> bool:
    import types
    import typing

    if typing.get_origin(annotation) is typing.Annotated:
        return _is_number_field(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_number_field(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation in (int, float)


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
    except PydanticSettingsError as e:  # a GAZE_* value of a list option that is not JSON
        raise SettingsError(_describe_source_error(str(e))) from None
    finally:
        _config_file.reset(token)


def _describe_source_error(message: str) -> str:
    import re

    found = re.search(r'field "(\w+)" from source "(\w+)"', message)
    if found is None:
        return " ".join(message.split())
    env = ENV_PREFIX + found.group(1).upper()
    if found.group(2) == "EnvSettingsSource":
        return (f"{env}: cannot parse {os.environ.get(env, '')!r}: a list option takes a JSON list in a GAZE_* "
                f"variable (e.g. {env}='[\"a\", \"b\"]')")
    return f"{found.group(1)}: cannot parse the value from {found.group(2)}"


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


def option_sources(cls, flags: dict, config: Path | None, fields=None) -> dict[str, str]:
    """{field: the flag, GAZE_* variable or `file.toml: key` it came from} (see option_source.py)."""
    from gazecli.core.settings.option_source import sources

    def is_argument(name: str) -> bool:
        info = cls.model_fields.get(name)
        extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        return bool(extra.get("cli", {}).get("argument"))

    names = list(cls.model_fields) if fields is None else list(fields)
    return sources(names, flags, config, [n for n in names if is_argument(n)])


def _describe(cls, error: ValidationError, flags: dict, config: Path | None) -> str:
    """One line for the first validation error, naming where the bad value came from."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if not field:  # a rule across options
        return _lower_first(first["msg"].removeprefix("Value error, "))
    where = option_sources(cls, flags, config, [field])[field]
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
# field types


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


def _str_list(value: Any) -> Any:
    """`--questions gaze,count --questions colour` -> ["gaze", "count", "colour"]."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        return [p.strip() for v in value for p in str(v).split(",") if p.strip()]
    return value


ShardSpec = Annotated[str, AfterValidator(_shard_spec)]
IntList = Annotated[list[int], BeforeValidator(_int_list)]
StrList = BeforeValidator(_str_list)

# options several commands share, declared once (a field keeps its place in each model)
DatasetKind = Literal["auto", "gazefollow", "videoatt"]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"
SKIP_INVALID_HELP = "skip malformed annotation rows (counted) instead of failing"
