"""Terminal output of the commands (rich): progress bars, tables, "where things went"."""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def progress_bar(description: str, unit: str = "items") -> Iterator[Callable[[int, int], None]]:
    """A callback `update(done, total)` drawing a rich progress bar on stderr. The bar appears
    on the first update (so an early error prints only its own line) and only on a terminal."""
    state: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            if not err_console.is_terminal:
                state["bar"] = None
            else:
                columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn(unit), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                           TextColumn("eta"), TimeRemainingColumn()]
                state["bar"] = Progress(*columns, console=err_console)
                state["bar"].start()
                state["task"] = state["bar"].add_task(description, total=total, rate="")
        bar = state["bar"]
        if bar is None:
            return
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:,.0f}/s" if elapsed > 0 else ""
        bar.update(state["task"], completed=done, total=total, rate=rate)

    try:
        yield update
    finally:
        if state.get("bar") is not None:
            state["bar"].stop()


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def metrics_table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, justify="left" if c in ("name", "split", "dataset") else "right")
    for r in rows:
        table.add_row(*(fmt(r.get(c)) for c in columns))
    return table


def key_value_table(title: str, items: list[tuple[str, object]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in items:
        table.add_row(k, fmt(v) if not isinstance(v, str) else v)
    return table


class RichReporter:
    """The engine's Reporter on the terminal: a progress bar per epoch and one line per epoch."""

    def __init__(self, command: str):
        self.command = command
        self.bar = None
        self.task = None

    def run_started(self, run_dir, epochs: int, start_epoch: int) -> None:
        console.print(f"[bold]{self.command}[/] -> {run_dir}")

    def epoch_started(self, epoch: int, epochs: int, n_steps: int, done: int) -> None:
        if not err_console.is_terminal:
            return
        columns = [TextColumn(f"[bold]epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[logs]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
        self.bar = Progress(*columns, console=err_console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("", total=n_steps, completed=done, logs="")

    def step(self, done: int, n_steps: int, logs: dict) -> None:
        if self.bar is not None:
            text = "  ".join(f"{k} {fmt(v, 4 if k != 'img/s' else 0)}" for k, v in logs.items()
                             if k in ("loss", "img/s"))
            self.bar.update(self.task, completed=done, logs=text)

    def epoch_finished(self, epoch: int, row: dict) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        shown = [f"{k} {fmt(v, 4)}" for k, v in row.items() if k not in ("epoch", "step", "lr", "images_per_s")]
        console.print(f"epoch {row['epoch']}: " + "  ".join(shown) +
                      f"  lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s")

    def message(self, text: str) -> None:
        console.print(text)


def print_outputs(title: str, paths) -> None:
    """End every command by saying where everything went."""
    console.print(f"[bold]{title}[/]")
    for p in paths:
        if p is not None:
            console.print(f"  {p}")
