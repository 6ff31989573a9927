"""Run folders: `runs/<command>/<name>/` with the resolved settings, per-epoch and per-step CSVs,
curves, weights and the final test metrics (docs/formats.md, "Run folders"). `RunDir` is the one
place that knows these names. Every file is written to a temporary name and renamed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from gazecli.core.io import write_figure, write_text


def new_run_dir(project: Path, command: str, name: str) -> Path:
    """runs/<command>/<name>, or <name>2, <name>3, ... when taken (created, empty)."""
    base = Path(project) / command
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / name
    n = 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = base / f"{name}{n}"


WEIGHTS = "weights"
SETTINGS = "settings.toml"


class _File:
    """A file of the run folder: `run.<attribute>` is its path."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, run, owner=None):
        return self if run is None else run.path / self.name


class RunDir:
    """The files of one run. Only the main process writes."""

    def __init__(self, path: Path, writable: bool = True):
        self.path = Path(path)
        self.writable = writable
        self.weights = self.path / WEIGHTS

    @classmethod
    def of_weights(cls, weights_file: Path) -> "RunDir":
        """The run folder a weights file (RUN/weights/NAME.safetensors) belongs to."""
        return cls(Path(weights_file).parent.parent, writable=False)

    @staticmethod
    def is_run(path: Path) -> bool:
        return (Path(path) / SETTINGS).is_file()

    settings_file = _File(SETTINGS)  # the resolved settings, read back by --resume
    metrics_csv = _File("metrics.csv")  # one row per epoch
    steps_csv = _File("steps.csv")  # one row per optimiser step
    curves_png = _File("curves.png")
    test_metrics_json = _File("test_metrics.json")  # the test split, scored once with the best weights
    ddp_check_json = _File("ddp_check.json")  # under torchrun: each rank's shard and final weights

    def eval_json(self, split: str) -> Path:
        """Where `gaze eval --checkpoint` writes its metrics (the predictions go beside, .npz)."""
        return self.path / f"eval_{split}.json"

    def last(self) -> Path:
        return self.weights / "last.safetensors"

    def best(self) -> Path:
        return self.weights / "best.safetensors"

    def weights_to_load(self, prefer: str = "best") -> Path | None:
        """The weights a user of the run gets: `prefer` (best or last), else the other, else None."""
        for path in ((self.best(), self.last()) if prefer == "best" else (self.last(), self.best())):
            if path.is_file():
                return path
        return None

    def write_settings(self, toml_text: str) -> None:
        if self.writable:
            write_text(self.settings_file, toml_text)

    # --- CSV logs (rewritten whole, atomically: small files) -------------------------------

    @staticmethod
    def _read(path: Path) -> list[dict]:
        if not path.is_file():
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    @staticmethod
    def _write(path: Path, rows: list[dict]) -> None:
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(v) for k, v in r.items()})
        write_text(path, buf.getvalue())

    def epoch_rows(self) -> list[dict]:
        return self._read(self.metrics_csv)

    def append_epoch(self, row: dict) -> None:
        if self.writable:
            rows = [r for r in self.epoch_rows() if int(r["epoch"]) < int(row["epoch"])]
            self._write(self.metrics_csv, rows + [row])

    def append_steps(self, rows: list[dict]) -> None:
        """Add per-step rows, dropping any earlier rows at or after the first new step (resume)."""
        if self.writable and rows:
            first = int(rows[0]["step"])
            kept = [r for r in self._read(self.steps_csv) if int(r["step"]) < first]
            self._write(self.steps_csv, kept + rows)

    def truncate_steps(self, after_step: int) -> None:
        if self.writable and self.steps_csv.is_file():
            self._write(self.steps_csv, [r for r in self._read(self.steps_csv) if int(r["step"]) <= after_step])

    def plot_curves(self) -> Path | None:
        """curves.png: every numeric column of metrics.csv against the epoch (needs matplotlib)."""
        rows = self.epoch_rows()
        if not self.writable or not rows:
            return None
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        keys = [k for k in rows[0] if k not in ("epoch", "step", "time") and not k.endswith("_n")
                and _is_number(rows[-1].get(k))]
        if not keys:
            return None
        cols = min(3, len(keys))
        nrows = (len(keys) + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
        epochs = [int(r["epoch"]) for r in rows]
        for ax, key in zip(axes.flat, keys):
            values = [float(r[key]) if _is_number(r.get(key)) else float("nan") for r in rows]
            ax.plot(epochs, values, marker=".")
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        fig.tight_layout()
        write_figure(self.curves_png, fig, dpi=90)
        plt.close(fig)
        return self.curves_png


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False

