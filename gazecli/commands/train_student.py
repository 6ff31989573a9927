"""gaze train-student"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import TrainStudentSettings

app = typer.Typer(name="train-student", add_completion=False)


@settings_command(app, "train-student", TrainStudentSettings, resumable=True)
def train_student(s: TrainStudentSettings) -> None:
    """Train the VAT / VAT-GC student (now: supervised on the labelled split; --ratio 1.0: all labels)."""
    from gazecli.commands._report import RichReporter, console, metrics_table, print_outputs
    from gazecli.core.stages.train_student import train_student as run

    result = run(s, RichReporter("train-student"))
    if result.test_metrics:
        console.print(metrics_table(f"test, best weights ({s.select_metric} on {s.select_on})",
                                    [{"split": "test", **result.test_metrics}], ["split", "n", "auc", "avg_l2", "min_l2"]))
    print_outputs(f"run folder {result.run_dir}", result.files)
