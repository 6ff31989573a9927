"""The `gaze` command: registers the subcommands, nothing else.

Subcommand modules are imported only when a subcommand runs (or its own --help is asked for),
so `gaze --help` does not pay for pydantic, numpy or torch.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperCommand, TyperGroup

try:  # recent typer vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[no-redef]

# name -> (module exposing `app`, one-line help shown by `gaze --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("gazecli.commands.demo", "The whole method end to end on GazeWorld in minutes on a CPU: the results table and figure."),
    "data": ("gazecli.commands.data", "Datasets: synthesize GazeWorld, check a dataset, make label splits, baselines."),
    "eval": ("gazecli.commands.eval", "Score predictions or a checkpoint with the published GazeFollow / VideoAttentionTarget protocols."),
    "predict": ("gazecli.commands.predict", "Predict where people look in your images, folders or videos (overlays + JSON lines)."),
    "train-student": ("gazecli.commands.train_student", "Train the VAT student: supervised, or semi-supervised with Grad-CAM / diffusion pseudo-labels."),
    "gradcam": ("gazecli.commands.gradcam", "VQA Grad-CAM pseudo-annotations: batched, resumable, sharded store."),
    "train-diffusion": ("gazecli.commands.train_diffusion", "Train the diffusion annotation prior (conditional heatmap DDPM) on the labelled split."),
    "mean-teacher": ("gazecli.commands.mean_teacher", "Train the diffusion prior with Mean Teacher on labelled and unlabelled persons."),
    "label": ("gazecli.commands.label", "Label your own images in the browser (head boxes, gaze points); export a GazeFollow-layout dataset."),
    "import-weights": ("gazecli.commands.import_weights", "Import the authors' released weights (VAT, VAT-GC, diffusion) as a run folder."),
}


class LazyGroup(TyperGroup):
    """Imports a subcommand's module only when that subcommand is needed."""

    _listing = False

    def list_commands(self, ctx) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module_name, short_help = COMMANDS[name]
        if self._listing:  # `gaze --help`: a stub carrying the one-line help is enough
            return TyperCommand(name, help=short_help, short_help=short_help)
        module = importlib.import_module(module_name)
        command = typer.main.get_command(module.app)
        command.name = name
        return command

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            return super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    name="gaze",
    help="gazecli: gaze following from few labels (GCDR, ECCV 2024): VQA Grad-CAM pseudo-labels "
         "refined by a diffusion prior, training, evaluation and prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True),
) -> None:
    if version:
        from gazecli._version import __version__

        typer.echo(f"gazecli {__version__}")
        raise typer.Exit()


def _error(message: str, code: int) -> int:
    typer.secho(f"error: {' '.join(str(message).split())}", fg="red", err=True)
    return code


_FILE_SYSTEM_ERRNOS = {28, 30, 13, 1, 122, 27}  # ENOSPC, EROFS, EACCES, EPERM, EDQUOT, EFBIG


def _os_error_line(e: OSError) -> str:
    """`PATH: No space left on device (ENOSPC)` for an OSError of the file system."""
    import errno

    name = errno.errorcode.get(e.errno or 0, "")
    reason = e.strerror or e.__class__.__name__
    where = "" if e.filename is None else f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "") + ": "
    return f"{where}{reason}" + (f" ({name})" if name else "")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors are one red line and a non-zero exit code, never a traceback."""
    from gazecli.core.errors import GazeError

    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="gaze", standalone_mode=False)
    except GazeError as e:
        code = _error(str(e), e.exit_code)
    except ClickException as e:  # usage errors: bad flag, bad type, missing argument
        # a bare `gaze` / `gaze data` has printed its help already
        code = 0 if type(e).__name__ == "NoArgsIsHelpError" else _error(e.format_message(), e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = _error("interrupted", 130)
    except BrokenPipeError:
        code = 0
    except OSError as e:  # the file system refused (read-only, full, a file where a folder goes)
        if e.filename is None and e.errno not in _FILE_SYSTEM_ERRNOS:
            raise
        code = _error(_os_error_line(e), 1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
