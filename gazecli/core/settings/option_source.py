"""Where each option's value came from, so an error names what the user wrote.

A value reaches a command from a flag (`--device`), a `GAZE_*` variable (`GAZE_DEVICE`), the
`--config` TOML file (`run.toml: device`) or the default. `load_settings` records the source of
every option while a command runs; code that finds a problem later (an unavailable device, a
head box outside the image) names the option with `option_name("device")`, never a flag the
user did not type. This module imports neither pydantic nor torch.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path

ENV_PREFIX = "GAZE_"
_sources: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("gaze_option_sources", default=None)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def toml_keys(config: Path | None) -> set[str]:
    if config is None:
        return set()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(config, "rb") as f:
            return set(tomllib.load(f))
    except (OSError, ValueError):
        return set()


def sources(fields, flags: dict, config: Path | None, arguments=()) -> dict[str, str]:
    """{field: how the user gave it}: the flag (or ARGUMENT), GAZE_FIELD, `file.toml: field`; the
    flag for defaults (that is how the user would change it)."""
    env = {k.upper() for k in os.environ}
    in_toml = toml_keys(config)
    out = {}
    for field in fields:
        as_flag = field.upper() if field in arguments else flag_name(field)
        if field in flags:
            out[field] = as_flag
        elif ENV_PREFIX + field.upper() in env:
            out[field] = ENV_PREFIX + field.upper()
        elif field in in_toml:
            out[field] = f"{Path(config).name}: {field}"
        else:
            out[field] = as_flag
    return out


def activate(mapping: dict[str, str]):
    """Make `mapping` the running command's sources; returns a token for `deactivate`."""
    return _sources.set(mapping)


def deactivate(token) -> None:
    _sources.reset(token)


def option_name(field: str) -> str:
    """How the running command's option `field` was given (`--device` outside a command)."""
    mapping = _sources.get() or {}
    return mapping.get(field, flag_name(field))
