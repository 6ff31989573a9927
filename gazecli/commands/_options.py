"""Typer options generated from a settings model, so each option is declared once.

`settings_command(app, "synth", SynthSettings)` turns every field of the model into a flag
(`--field-name`; a positional argument where the field says so), adds `--config` and
`--print-config`, and calls the decorated function with the resolved, validated settings.
Flags default to "not given", so GAZE_* variables and the config file can fill them in.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer
from pydantic.fields import FieldInfo

from gazecli.core.settings import GazeSettings, flag_name, load_settings, to_toml

SETTINGS_PANEL = "Settings"


def _base_type(annotation: Any):
    """Strip Optional/Annotated: (python type, literal choices or None)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    if origin in (list, tuple):
        return list, None
    return annotation, None


def _help(field: FieldInfo) -> str:
    """The description, plus the default (flags default to "not given" so that GAZE_* and
    --config can fill them in; the model's default is shown here instead)."""
    text = field.description or ""
    if field.is_required():
        return text + r" \[required]"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        return text + (r" \[default: on]" if value else r" \[default: off]")
    if value is not None:
        text += rf" \[default: {value}]"
    return text


_METAVARS = {int: "INT", float: "FLOAT", Path: "PATH", str: "TEXT", list: "TEXT"}


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    kind, choices = _base_type(field.annotation)
    extra = (field.json_schema_extra or {}).get("cli", {}) if isinstance(field.json_schema_extra, dict) else {}
    if kind is bool:
        flag = flag_name(name)
        decls = [f"{flag}/--no-{flag[2:]}"]
        annotation = Optional[bool]
    elif kind is list:
        decls = [flag_name(name)]
        annotation = Optional[list[str]]
    else:
        decls = [flag_name(name)]
        annotation = Optional[{int: int, float: float}.get(kind, str)]
    if extra.get("short"):
        decls.append(extra["short"])
    metavar = "[" + "|".join(choices) + "]" if choices else _METAVARS.get(kind, "TEXT")
    if extra.get("argument"):
        info = typer.Argument(None, help=_help(field), metavar=name.upper(), show_default=False)
    else:
        info = typer.Option(None, *decls, help=_help(field), metavar=None if kind is bool else metavar,
                            show_default=False, rich_help_panel=extra.get("panel"))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def settings_command(app: typer.Typer, name: str, settings_cls: type[GazeSettings],
                     help: str | None = None, resumable: bool = False) -> Callable:
    """Register `run(settings)` as `name` under `app`, its options generated from `settings_cls`.

    resumable: `--resume RUN_DIR` alone restores the run's saved settings (RUN_DIR/settings.toml)
    as the config file; other flags still win.
    """

    def decorator(run: Callable[[GazeSettings], Any]) -> Callable:
        params = [_parameter(n, f) for n, f in settings_cls.model_fields.items()]
        params.append(inspect.Parameter(
            "config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
            default=typer.Option(None, "--config", help="TOML file with option values (flags and GAZE_* win)",
                                 rich_help_panel=SETTINGS_PANEL, show_default=False)))
        params.append(inspect.Parameter(
            "print_config", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
            default=typer.Option(False, "--print-config", help="print the resolved settings as TOML and exit",
                                 rich_help_panel=SETTINGS_PANEL)))

        def command(**kwargs):
            config = kwargs.pop("config")
            print_config = kwargs.pop("print_config")
            flags = {k: v for k, v in kwargs.items() if v is not None and v != [] and v != ()}
            if resumable and flags.get("resume") is not None and config is None:
                from gazecli.core.engine.runs import RunDir

                run_dir = RunDir(flags["resume"], writable=False)
                if not RunDir.is_run(run_dir.path):
                    from gazecli.core.errors import SettingsError

                    raise SettingsError(f"--resume {flags['resume']}: not a run folder (no settings.toml)")
                config = run_dir.settings_file
            settings = load_settings(settings_cls, flags, config)
            if print_config:
                typer.echo(to_toml(settings), nl=False)
                return None
            from gazecli.core.engine.threads import apply_thread_policy
            from gazecli.core.settings import option_sources
            from gazecli.core.settings.option_source import activate, deactivate

            apply_thread_policy(settings.threads, getattr(settings, "workers", 0))  # before torch loads
            token = activate(option_sources(settings_cls, flags, config))  # errors name --x / GAZE_X / file: x
            try:
                return run(settings)
            finally:
                deactivate(token)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__ = run.__name__
        command.__doc__ = run.__doc__
        app.command(name, help=help or run.__doc__)(command)
        return run

    return decorator
