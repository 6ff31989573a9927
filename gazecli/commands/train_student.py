"""gaze train-student"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import TrainStudentSettings

app = typer.Typer(name="train-student", add_completion=False)


@settings_command(app, "train-student", TrainStudentSettings, resumable=True)
def train_student(s: TrainStudentSettings) -> None:
    """Train the VAT / VAT-GC student on the labelled split, plus pseudo-labels of the unlabelled persons
    from a teacher (--teacher diffusion: Grad-CAM refined by the diffusion prior, the paper's method)."""
    from gazecli.commands._report import RichReporter, console, metrics_table, print_outputs, progress_bar
    from gazecli.core.stages.train_student import pseudo_label_report, train_student as run

    if s.pseudo_report:
        from gazecli.core.engine.runs import new_run_dir
        from gazecli.core.io import write_json

        with progress_bar("pseudo-labels", "persons") as update:
            report = pseudo_label_report(s, update)
        console.print(metrics_table(f"pseudo-labels of {report['persons']} unlabelled in-frame persons vs their hidden "
                                    f"labels (ratio {s.ratio})", report["results"],
                                    ["name", "n", "auc", "avg_l2", "min_l2", "usable"]))
        folder = new_run_dir(s.project, "pseudo-report", s.name)
        write_json(folder / "pseudo_report.json", report, newline=False)
        print_outputs(f"report in {folder}", [folder / "pseudo_report.json"])
        return
    result = run(s, RichReporter("train-student"))
    if result.test_metrics:
        console.print(metrics_table(f"test, best weights ({s.select_metric} on {s.select_on})",
                                    [{"split": "test", **result.test_metrics}], ["split", "n", "auc", "avg_l2", "min_l2"]))
    print_outputs(f"run folder {result.run_dir}", result.files)
