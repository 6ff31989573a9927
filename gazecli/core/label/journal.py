"""The append-only labelling journal: one JSON object per line, written and fsynced on every click.

Killing the server (or the machine) at any moment loses at most the action being written: a last
line without its newline, or one that does not parse, is a torn write and is cut off when the
journal is opened again. Any other unreadable line is a DataError naming the line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gazecli.core.errors import DataError, location

JOURNAL_NAME = "journal.jsonl"


class Journal:
    """`Journal(root).events` are the saved actions; `append(event)` adds one durably."""

    def __init__(self, root: Path):
        self.path = Path(root) / JOURNAL_NAME
        self.events: list[dict] = []
        self.torn_bytes = 0  # bytes of a torn last line that were cut off on opening
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        good_end = 0  # byte offset just after the last complete, readable line
        lines = data.split(b"\n")
        offset = 0
        for number, raw in enumerate(lines, start=1):
            end = offset + len(raw) + 1
            is_last = number == len(lines)
            if is_last:  # text after the final newline: a line whose write was cut short
                break
            if raw.strip():
                try:
                    event = json.loads(raw)
                    if not isinstance(event, dict) or "op" not in event:
                        raise ValueError("not an action")
                except ValueError:
                    if number == len(lines) - 1 and not lines[-1]:
                        # the very last line is garbage but newline-terminated: also a torn write
                        break
                    raise DataError(f"{location(self.path, number)}: unreadable journal line; the journal "
                                    f"is append-only, so this line was edited by hand") from None
                self.events.append(event)
            good_end = end
            offset = end
        self.torn_bytes = len(data) - good_end
        if self.torn_bytes:
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def append(self, event: dict) -> None:
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.events.append(event)
