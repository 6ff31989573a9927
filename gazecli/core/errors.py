"""Errors a user can cause. The CLI turns them into one red line and a non-zero exit code;
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class GazeError(Exception):
    """A problem with the user's input (data, files, options), reported as one line."""

    exit_code = 1

    def __init__(self, message: str):
        text = str(message)
        if "Original Traceback (most recent call last):" in text:  # re-raised by a DataLoader worker
            last = text.strip().splitlines()[-1]  # "gazecli.core.errors.DataError: <the message>"
            text = last.split(": ", 1)[1] if ": " in last else last
        super().__init__(" ".join(text.split()))  # always a single line


class SettingsError(GazeError):
    """An invalid option value (from a flag, a GAZE_* variable or the --config file)."""

    exit_code = 2


class DataError(GazeError):
    """A malformed or missing dataset file, row or image."""


def location(path, line: int | None = None) -> str:
    """`file:line` as used in every data error message (the file name, not the full path)."""
    from pathlib import Path

    name = Path(path).name
    return f"{name}:{line}" if line is not None else name
